"""The programs a README shell block calls, as ``tests/test_readme.py`` runs the block.

bash runs each block as written; the programs a test here must not run are these
wrappers, first on PATH (and as ``.venv/bin/...`` in the scratch checkout), each checking
its call offline and answering 0 (checked) or 1 (with the reason on stderr), while every
other call runs the real program. See ``tests/test_readme.py`` for the rule.

Invoked as ``python tests/readme_shell.py PROGRAM ARGS...`` by the wrapper scripts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
HARNESS = "SOFTMAX_PIPE_README_PREFECT"  # the Prefect API the test provides
WRAPPERS = "SOFTMAX_PIPE_README_WRAPPERS"  # the folder of these wrappers, first on PATH
APT_COMMANDS = {"awscli": "aws"}  # an apt package whose command has another name


class Refused(Exception):
    """The call would not work: what is wrong with it."""


def which(name: str) -> str:
    """The real program ``name`` on PATH, these wrappers left out."""
    ours = os.environ.get(WRAPPERS, "")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)
    found = shutil.which(name, path=path)
    if found is None:
        raise Refused(f"{name} is not installed here")
    return found


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        argv, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def options_listed(help_argv: list[str], args: list[str], cwd: Path = REPO) -> None:
    """``help_argv`` (a ``--help`` call) answers 0 and names every ``--option`` in ``args``:
    the program's own parser knows the command and its options."""
    done = run(help_argv, cwd=cwd)
    if done.returncode != 0:
        raise Refused(f"{' '.join(help_argv)} failed: {done.stderr.strip()[-300:]}")
    text = done.stdout + done.stderr
    for arg in args:
        flag = arg.split("=", 1)[0]
        whole = re.compile(re.escape(flag) + r"(?![\w-])")  # --rep is not --repeat
        if flag.startswith("-") and flag not in ("-", "--") and not whole.search(text):
            raise Refused(f"{' '.join(help_argv[:-1])} has no option {flag}")


def check_pip(args: list[str]) -> None:
    """``pip install [-e] .[extras]``: the checkout is installable and its extras exist."""
    options_listed([sys.executable, "-m", "pip", "install", "--help"], args)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for arg in args[1:]:
        if arg.startswith("."):
            for extra in re.findall(r"\[([^\]]*)\]", arg)[0].split(",") if "[" in arg else []:
                if extra.strip() not in extras:
                    raise Refused(f"pyproject.toml has no extra {extra!r}")


def check_apt(args: list[str]) -> None:
    """``apt-get update`` / ``install -y PKG...``: each package is here (dpkg knows it, or
    its command is on PATH): what the suite needs is what the README installs."""
    if args[:1] == ["update"]:
        return
    if args[:1] != ["install"]:
        raise Refused(f"apt-get {' '.join(args)}: expected update or install")
    for pkg in (a for a in args[1:] if not a.startswith("-")):
        known = run(["dpkg-query", "-W", pkg]).returncode == 0
        try:
            known = known or bool(which(APT_COMMANDS.get(pkg, pkg)))
        except Refused:
            raise Refused(f"apt package {pkg} is not installed here (nor its command)") from None


def check_python(args: list[str]) -> None:
    """The suite (``-m pytest``), a venv (``-m venv``) or a benchmark (minutes): their
    parsers accept the arguments."""
    if args[:2] == ["-m", "venv"]:
        options_listed([sys.executable, "-m", "venv", "--help"], args[2:])
    elif args[:2] == ["-m", "pytest"] or args[:1] == ["-mpytest"]:
        options_listed([sys.executable, "-m", "pytest", "--help"], args[2:])
    elif args and args[0].startswith("benchmarks/"):
        if not (REPO / args[0]).is_file():
            raise Refused(f"{args[0]} is not in the checkout")
        options_listed([sys.executable, args[0], "--help"], args[1:])
    else:
        raise Refused(f"python {' '.join(args)} is not a call this wrapper checks")


def check_prefect(args: list[str]) -> None:
    """A Prefect command (it starts or needs a server): its help knows it and its options."""
    words = []
    for a in args:
        if a.startswith("-") or "/" in a or "=" in a:
            break
        words.append(a)
    options_listed([str(VENV_BIN / "prefect"), *words, "--help"], args[len(words) :])


def compose_file(args: list[str], cwd: Path) -> Path:
    for i, a in enumerate(args):
        if a in ("-f", "--file"):
            return cwd / args[i + 1]
    raise Refused("docker compose without -f FILE: say which compose file")


EXEC_VALUED = ("-e", "--env", "-u", "--user", "-w", "--workdir", "--index")  # take a value


def exec_service(rest: list[str]) -> str:
    """The service of ``exec [OPTIONS] SERVICE COMMAND...``: the first word that is neither
    an option nor an option's value (``-e KEY=VALUE``, ``--user 1000``)."""
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        i += 2 if rest[i] in EXEC_VALUED else 1
    if i >= len(rest):
        raise Refused("docker compose exec without a service")
    return rest[i]


def check_docker(args: list[str], cwd: Path) -> None:
    """``docker compose -f FILE ACTION ...`` (no engine here): ``docker-compose config``
    validates the file offline, the action's options exist, and the services named are
    in the file; a command run in a service is checked as its own program."""
    if args[:1] == ["compose"]:
        args = args[1:]
    path = compose_file(args, cwd)
    env_file = path.parent / ".env"
    env_file = env_file if env_file.is_file() else path.parent / ".env.example"
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    compose = which("docker-compose")
    done = run(
        [compose, "--env-file", str(env_file), "-f", str(path), "config", "--services"], env=clean
    )
    if done.returncode != 0:
        raise Refused(f"docker-compose config of {path} failed: {done.stderr.strip()[-300:]}")
    services = set(done.stdout.split())
    i = args.index(next(a for a in args if a in ("-f", "--file"))) + 2
    action, rest = args[i], args[i + 1 :]
    if action == "exec":
        service = exec_service(rest)
        if service not in services:
            raise Refused(f"{path} has no service {service!r} (services: {sorted(services)})")
        inner = rest[rest.index(service) + 1 :]
        check(inner[0], inner[1:], cwd)
        return
    opts = [a for a in rest if a.startswith("-")]
    options_listed([compose, action, "--help"], opts)
    for name in (a for a in rest if not a.startswith("-")):
        if name not in services:
            raise Refused(f"{path} has no service {name!r}")


def check_softmax_pipe(args: list[str]) -> None:
    """A command that stays up or needs a service not here: softmax-pipe's own parser
    (click) accepts it, options and values, without running it."""
    import typer.main

    from softmax_pipe.cli import app

    command = typer.main.get_command(app)
    words = list(args)
    path = ["softmax-pipe"]
    while words and getattr(command, "commands", None) and words[0] in command.commands:  # type: ignore[attr-defined]
        path.append(words[0])
        command = command.commands[words.pop(0)]  # type: ignore[attr-defined]
    if getattr(command, "commands", None) and words[:1] and not words[0].startswith("-"):
        raise Refused(f"{' '.join(path)} has no command {words[0]!r}")
    try:
        command.make_context(" ".join(path), words)
    except Exception as e:  # click's usage errors: vendored by typer, not exported
        raise Refused(f"{' '.join(path)}: {e}") from None


def needs_what_is_not_here(args: list[str]) -> bool:
    """serve (stays up), deploy (a Prefect server), a Dask scheduler, or any command run
    after the block pointed PREFECT_API_URL at a server it started (not the test's)."""
    api = os.environ.get("PREFECT_API_URL")
    elsewhere = api is not None and api != os.environ.get(HARNESS)
    return bool(set(args[:1]) & {"serve", "deploy"}) or "--dask-address" in args or elsewhere


def check(program: str, args: list[str], cwd: Path) -> None:
    """Check one call offline; Refused says why it would not work."""
    name = Path(program).name
    if name in ("pip", "pip3"):
        check_pip(args)
    elif name == "apt-get":
        check_apt(args)
    elif name.startswith("python"):
        check_python(args)
    elif name == "prefect":
        check_prefect(args)
    elif name in ("docker", "docker-compose"):
        check_docker(args, cwd)
    elif name == "softmax-pipe":
        check_softmax_pipe(args)
    else:
        raise Refused(f"{program}: no offline check for this program")


def real(program: str, args: list[str]) -> None:
    """Run the real program in this process's place."""
    name = Path(program).name
    if name == "softmax-pipe":
        os.execv(str(VENV_BIN / "softmax-pipe"), ["softmax-pipe", *args])
    if name.startswith("python"):
        if args[:2] == ["-m", "setuptools_scm"]:
            os.chdir(REPO)  # the checkout's own version: its git history
        os.execv(sys.executable, [sys.executable, *args])
    raise SystemExit(f"readme_shell: {program} has no real program here")


def main(argv: list[str]) -> None:
    program, args = argv[0], argv[1:]
    name = Path(program).name
    offline = (
        name in ("pip", "pip3", "apt-get", "prefect", "docker", "docker-compose")
        or (
            name.startswith("python")
            and (args[:1] in (["-m"],) and args[1:2] in (["venv"], ["pytest"]))
        )
        or (name.startswith("python") and bool(args) and args[0].startswith("benchmarks/"))
        or (name == "softmax-pipe" and needs_what_is_not_here(args))
    )
    if not offline:
        real(program, args)
    try:
        check(program, args, Path.cwd())
    except Refused as e:
        print(f"readme_shell: {name} {' '.join(args)}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"readme_shell: checked offline: {name} {' '.join(args)}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main(sys.argv[1:])
