"""Every fenced block of README.md is a test, by its language.

The rule, one per language (a block of any other language fails
``test_every_block_is_one_this_test_runs``):

``python``
    run as written (``exec``), from the checkout, against what it names: the checkout's
    ``../shared/data/mnist``, temporary folders, and for ``s3://models/...`` the session's
    S3 server with a fresh bucket ``models``.
``toml``
    a settings file: read by ``softmax_core.settings`` and its command tables checked
    against the CLI's commands and options, as the CLI checks them.
``text``
    a diagram of something the code makes, checked against it: the registry's key layout
    against the keys a registry writes, the source tree against the checkout.
``bash`` and ``console`` (the lines after ``$``)
    shell, run by bash as written (``set -e``, ``pipefail``), the blocks of one README
    section in order in one scratch checkout: a temporary HOME, the test's own ``.venv``,
    ``../shared/data/mnist``, a copy of ``deploy/``, a local registry and the session's S3
    server (bucket ``models``) holding the models the blocks name, and the folders they
    name (``images/``, ``scans/``, ``shots/``, ``script/``, ``rest/``, ``model.npz``).
    Every program runs for real (``softmax-pipe``, ``cp``, ``mkdir``, ``jq``, ``aws``,
    ``sha256sum``, ``python3 -c``), except what a test here must not run, which is checked
    offline instead by its own parser (``tests/readme_shell.py``, first on PATH):

    - installers (``pip``, ``python -m venv``, ``apt-get``): the packages named exist
      (pyproject's extras; dpkg, or the package's command on PATH);
    - ``docker compose`` (no engine here): ``docker-compose config`` validates the file
      offline, the action's options exist, the services it names are in the file, and a
      command run in a service is checked as its own program;
    - what stays up or needs a server not here (``prefect server/worker start``, ``prefect
      deployment run``, ``softmax-pipe serve`` and ``deploy``, ``--dask-address``, any
      command after the block points ``PREFECT_API_URL`` at a server it started): its
      ``--help`` (softmax-pipe's: click's own parsing of the arguments and values) accepts
      the command and every option used;
    - the test suite itself and the benchmarks (minutes each): the same.

    A step the prose asks a person to do between two blocks is done as described (one:
    labelling the review queue, from the digit in each source file's name). Outputs shown
    in console blocks come from another box and run, and are not compared.
``json``
    a document as written: it parses (``json.loads``).
no language (a bare fence)
    output shown as it came (a table, a transcript): not run; each ``$ `` line in it is a
    command, checked offline as below.

Adding a block (what the next README section needs):

- a shell block whose commands can run here runs with nothing more, if what it reads is
  in the scratch checkout; inputs it needs that are not there (a folder of images, a
  model, a bucket): a function ``SETUP_BEFORE[section]`` makes them before the section's
  first block (keyed by the heading; ``s3_inbox`` is one; ``STEPS_AFTER`` holds the
  steps between blocks);
- a transcript that cannot run here (another account's rights, a server, images that are
  not here) gets the line ``<!-- readme: offline -->`` just before its fence: its
  commands are then checked offline only (``test_offline_block_commands_are_accepted``):
  softmax-pipe's by its own parser (command, options, values), pip, apt-get, prefect,
  docker and python's calls by ``tests/readme_shell.py``'s checks, any other program by
  being installed here (or a shell builtin);
- a new program a block runs that a test must not run: add it to ``WRAPPED`` and give it
  a check in ``tests/readme_shell.py`` (``check``);
- another language: add its rule here and to ``LANGUAGES``; until then
  ``test_every_block_is_one_this_test_runs`` names the block.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry import Registry

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("python", "toml", "text", "bash", "console", "json", "")
OFFLINE = "<!-- readme: offline -->"  # the line before a fence: checked, not run
WRAPPED: tuple[str, ...] = ("softmax-pipe", "pip", "pip3", "python", "python3", "prefect", "docker")
WRAPPED += ("docker-compose", "apt-get")
SHELL_TIMEOUT = 1800  # seconds for one section's blocks (flow runs on a busy box)


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    section: str
    offline: bool = False  # marked OFFLINE, or a bare fence: its commands checked, not run

    @property
    def id(self) -> str:
        return f"{self.lang}@{self.line}"


def blocks() -> list[Block]:
    """Every fenced block, with the heading of the section it is in."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found, section, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.startswith("```"):
            lang, start = line[3:].strip(), i + 1
            marked = i > 0 and lines[i - 1].strip() == OFFLINE
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            code = "\n".join(lines[start:i]) + "\n"
            found.append(Block(lang, code, start, section, offline=marked or not lang))
        i += 1
    return found


BLOCKS = blocks()


def of(lang: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.lang == lang]


def test_every_block_is_one_this_test_runs() -> None:
    assert BLOCKS, "README.md has no code blocks?"
    odd = [(b.line, b.lang) for b in BLOCKS if b.lang not in LANGUAGES]
    assert not odd, f"blocks whose language this test does not know (line, language): {odd}"


# --- python ------------------------------------------------------------------------------


@pytest.fixture
def models_bucket(s3_env: str) -> str:
    """The bucket ``models`` on the session's S3 server, empty: what README's
    ``s3://models/...`` names."""
    from tests.conftest import S3_ADMIN

    client = S3_ADMIN.client(s3_env)
    try:
        with contextlib.suppress(client.exceptions.NoSuchBucket):
            client.delete_bucket(Bucket="models")  # the server empties it first
        client.create_bucket(Bucket="models")
    finally:
        client.close()
    return "models"


@pytest.mark.slow  # a block predicts, trains or runs the flow
@pytest.mark.parametrize("block", of("python"))
def test_python_block_runs_as_written(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import tempfile

    if "s3://models" in block.code:
        request.getfixturevalue("models_bucket")
    if "training_pipeline" in block.code:
        request.getfixturevalue("prefect_harness")
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scope: dict[str, object] = {}
    exec(compile(block.code, f"README.md:{block.line}", "exec"), scope)
    if "labels" in scope:  # From Python: it predicted
        labels = scope["labels"]
        assert isinstance(labels, np.ndarray) and labels.shape == (500,)
    if "summary" in scope:  # the flow from Python: it published
        assert scope["summary"].ref.startswith("mnist:")  # type: ignore[attr-defined]


# --- toml ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", of("toml"))
def test_toml_block_is_a_settings_file_the_cli_takes(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer.main

    from softmax_core import settings
    from softmax_pipe.cli import app
    from softmax_pipe.cli_common import file_defaults

    path = tmp_path / "config.toml"
    path.write_text(block.code)
    read = settings.SettingsFile.read(path)
    assert read.values and read.commands
    monkeypatch.setenv(settings.ENV_CONFIG, str(path))
    monkeypatch.chdir(tmp_path)
    assert file_defaults(typer.main.get_command(app)).default_map  # every table and option known


# --- text: diagrams --------------------------------------------------------------------------


@pytest.mark.parametrize("block", of("text"))
def test_text_block_is_a_diagram_of_what_the_code_makes(block: Block, tmp_path: Path) -> None:
    if block.code.startswith("blobs/"):
        registry_layout(block.code, tmp_path)
    elif block.code.startswith("softmax_pipe/"):
        source_layout(block.code)
    else:
        pytest.fail(f"README.md:{block.line}: a diagram this test does not know how to check")


def registry_layout(diagram: str, tmp_path: Path) -> None:
    """Each key pattern is a key a registry writes (publish, promote, a dataset), and each
    key it writes has its pattern."""
    from registry import layout
    from registry.monitoring import put_profile, put_reference
    from tests.printed_digits import write_printed
    from tests.registry.helpers import make_model

    patterns = [line.split()[0] for line in diagram.splitlines() if line and line[0] != " "]
    regexes = {
        p: re.compile(
            re.sub(r"<(\w+)>", lambda m: r"[0-9a-f]{64}" if m[1] == "digest" else r"[^/]+", p) + "$"
        )
        for p in patterns
    }
    with Registry.open(str(tmp_path / "reg"), cache_dir=tmp_path / "cache") as reg:
        reg.publish(make_model(1), "digits", alias="champion")
        for _ in range(layout.INDEX_PAGE):  # the 100th version closes the first index page
            reg.publish(make_model(2), "digits")
        reg.promote("digits", 2, "champion")
        reg.request("digits", 3, "champion", by="trainer")  # a request and its decision
        reg.approve("digits", 3, "champion", by="approver")
        reg.add_folder("printed", write_printed(tmp_path / "labelled", 2))
        profile = profile_of_a_run()  # what a scoring run leaves (registry.monitoring)
        put_profile(reg.store, "digits", profile)
        put_reference(reg.store, "digits", 3, profile)
        keys = list(reg.store.list_keys(""))
    for pattern, rx in regexes.items():
        assert any(rx.match(k) for k in keys), f"no key like {pattern} in {keys}"
    for key in keys:
        assert any(rx.match(key) for rx in regexes.values()), f"{key} is not in the diagram"


def profile_of_a_run() -> Any:
    """A scoring run's profile, counted from one scored batch."""
    from softmax_core.scoring import score_prepared
    from softmax_core.scoring.profile import ProfileCounts

    counts = ProfileCounts()
    probs = np.full((2, 10), 0.1, dtype=np.float32)
    counts.add(score_prepared(["a.png", "b.png"], (probs, [None, None], [1, 1])))
    return counts.profile(model="digits:3", input="images")


def source_layout(diagram: str) -> None:
    """Every folder and module the diagram names is in the checkout."""
    for folder in re.findall(r"^(\w+)/", diagram, flags=re.M):
        assert (ROOT / folder).is_dir(), folder
    files: set[str] = set()
    folders: set[str] = set()
    for _top, dirs, names in os.walk(ROOT):  # the checkout, not its .venv or .git
        dirs[:] = [d for d in dirs if d not in (".venv", ".git")]
        folders.update(dirs)
        files.update(n for n in names if n.endswith(".py"))
    for name in re.findall(r"\b([a-z_]+\.py)\b", diagram):
        assert name in files, f"{name} is named in the layout and not in the checkout"
    for name in re.findall(r"\b([a-z_]+)/ \(", diagram):
        assert name in folders, name


# --- bash and console: shell -----------------------------------------------------------------


SHELL = ("bash", "console")
SECTIONS = list(dict.fromkeys(b.section for b in BLOCKS if b.lang in SHELL and not b.offline))


def script(block: Block) -> str:
    """The commands of a block: all of a bash block, the lines after ``$ `` of the others."""
    if block.lang == "bash":
        return block.code
    return "\n".join(line[2:] for line in block.code.splitlines() if line.startswith("$ ")) + "\n"


@pytest.fixture(scope="session")
def readme_models(mnist_dir: Path, session_cache: Path) -> list[Any]:
    """Two quickly trained models (hog): what the scratch registries hold."""
    from softmax_core.mnist import load_mnist
    from softmax_core.requests import Hyper
    from softmax_core.train import train

    ds = load_mnist(str(mnist_dir), cache_dir=session_cache)
    return [train(ds, Hyper(epochs=1, limit=n, seed=n)) for n in (3000, 6000)]


@pytest.fixture(scope="session")
def scratch_template(
    tmp_path_factory: pytest.TempPathFactory,
    mnist_dir: Path,
    session_cache: Path,
    readme_models: list[Any],
) -> Path:
    """What a scratch checkout holds before a section's blocks run (see the module doc)."""
    from PIL import Image

    from softmax_core.mnist import load_mnist
    from tests.printed_digits import write_printed, write_script

    top = tmp_path_factory.mktemp("readme")
    (top / "shared" / "data").mkdir(parents=True)
    (top / "shared" / "data" / "mnist").symlink_to(mnist_dir)
    work = top / "checkout"
    work.mkdir()
    shutil.copytree(ROOT / "deploy", work / "deploy", ignore=shutil.ignore_patterns(".env"))
    (work / "benchmarks").symlink_to(ROOT / "benchmarks")
    ds = load_mnist(str(mnist_dir), cache_dir=session_cache)
    # the box the README's first block ran on: MNIST cached, found again without a source
    load_mnist(str(mnist_dir), cache_dir=top / "xdg-cache" / "softmax-pipe")
    for name, start in (("images", 0), ("scans", 40)):
        (work / name).mkdir()
        for i in range(start, start + 40):
            Image.fromarray(np.asarray(ds.x_test[i])).save(work / name / f"{i}_{ds.y_test[i]}.png")
    printed = write_printed(top / "printed", 100, seed=5)  # 1,000 printed digits
    (work / "shots").mkdir()
    for digit in range(10):
        for f in sorted((printed / str(digit)).iterdir()):
            shutil.copy(f, work / "shots" / f"{f.stem[1:]}_{digit}.png")
    write_script(work / "script", 20, seed=2023)
    write_script(work / "rest", 30, seed=2024, start=20)
    readme_models[0].save(work / "model.npz")
    home = work / "home"
    registry = home / ".local" / "share" / "softmax-pipe" / "registry"
    with Registry.open(str(registry), cache_dir=top / "pulled") as reg:
        for version in range(1, 8):
            reg.publish(readme_models[version % 2], "mnist", alias="champion")
    return top


def wrappers(folder: Path) -> None:
    """The wrapper of each program a block may call that a test here must not run."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WRAPPED:
        path = folder / name
        path.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "readme_shell.py"}" '
            f'"{name}" "$@"\n'
        )
        path.chmod(0o755)
    # The AWS CLI runs for real, against the loopback server: named on the command line,
    # since AWS_ENDPOINT_URL is read only from AWS CLI 2.13 / 1.29 on (Debian 12 ships 2.9).
    real = shutil.which("aws")
    if real is not None:
        aws = folder / "aws"
        aws.write_text(f'#!/bin/sh\nexec "{real}" --endpoint-url "$AWS_ENDPOINT_URL" "$@"\n')
        aws.chmod(0o755)


def label_queue(queue: Path) -> None:
    """What the prose asks a person to do: each image of ``queue/unlabelled`` into
    ``queue/<digit>/``, the digit read from its source file's name (``<i>_<digit>.png``)."""
    for f in sorted((queue / "unlabelled").iterdir()):
        digit = Path(f.name.split("__")[0]).stem.rsplit("_", 1)[-1]
        (queue / digit).mkdir(exist_ok=True)
        f.rename(queue / digit / f.name)


STEPS_AFTER = {("The loop, end to end", 0): label_queue}


def s3_inbox(work: Path, endpoint: str) -> None:
    """``s3://bucket/inbox/``: the scratch's ``images/``, in a bucket made anew."""
    from tests.conftest import S3_ADMIN

    client = S3_ADMIN.client(endpoint)
    try:
        with contextlib.suppress(client.exceptions.NoSuchBucket):
            client.delete_bucket(Bucket="bucket")  # the server empties it first
        client.create_bucket(Bucket="bucket")
        for f in sorted((work / "images").iterdir()):
            client.put_object(Bucket="bucket", Key=f"inbox/{f.name}", Body=f.read_bytes())
    finally:
        client.close()


# What a section's blocks read that the scratch checkout does not hold, by heading: made
# before the section's first block runs, given the checkout and the S3 server's endpoint.
SETUP_BEFORE: dict[str, Callable[[Path, str], None]] = {
    "Scoring folders of images: `softmax-pipe score`": s3_inbox,
}


@pytest.fixture
def harness_url(prefect_harness: None) -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the session's Prefect server has no URL"
    return str(url)


@contextlib.contextmanager
def scratch(template: Path, tmp_path: Path) -> Iterator[Path]:
    top = tmp_path / "readme"
    shutil.copytree(template, top, symlinks=True)
    work = top / "checkout"
    wrappers(work / ".wrappers")
    (work / ".venv" / "bin").mkdir(parents=True)
    for name in ("softmax-pipe", "pip", "python", "python3"):
        (work / ".venv" / "bin" / name).symlink_to(work / ".wrappers" / name)
    yield work


def publish_s3(models: list[Any], tmp_path: Path) -> None:
    """``s3://models/registry``: mnist:1..3 (champion 3) and digits:1 (champion)."""
    with Registry.open("s3://models/registry", cache_dir=tmp_path / "s3-cache") as reg:
        for version in range(1, 4):
            reg.publish(models[version % 2], "mnist", alias="champion")
        reg.publish(models[0], "digits", alias="champion")


@pytest.mark.slow  # a section trains, scores and runs flows: minutes
@pytest.mark.parametrize("section", SECTIONS)
def test_shell_blocks_run_as_written(
    section: str,
    tmp_path: Path,
    scratch_template: Path,
    readme_models: list[Any],
    models_bucket: str,
    s3_env: str,
    harness_url: str,
) -> None:
    from tests.conftest import S3_ADMIN
    from tests.readme_shell import HARNESS, WRAPPERS

    publish_s3(readme_models, tmp_path)
    with scratch(scratch_template, tmp_path) as work:
        env = {
            "PATH": os.pathsep.join([str(work / ".wrappers"), os.environ["PATH"]]),
            "HOME": str(work / "home"),
            "XDG_CACHE_HOME": str(scratch_template / "xdg-cache"),  # shared: verified entries
            "LANG": "C.UTF-8",
            "BROWSER": "true",  # report --open: a browser that shows nothing
            "PREFECT_HOME": os.environ["PREFECT_HOME"],
            "PREFECT_API_URL": harness_url,
            HARNESS: harness_url,
            WRAPPERS: str(work / ".wrappers"),
            **{
                k: v
                for k, v in os.environ.items()
                if k.startswith("PREFECT_") and k != "PREFECT_API_URL"
            },
            **S3_ADMIN.env(s3_env),
        }
        env["PREFECT_API_URL"] = harness_url
        setup = SETUP_BEFORE.get(section)
        if setup is not None:
            setup(work, s3_env)
        for i, block in enumerate(
            b for b in BLOCKS if b.section == section and b.lang in SHELL and not b.offline
        ):
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", script(block)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=SHELL_TIMEOUT,
            )
            assert done.returncode == 0, (
                f"README.md:{block.line} ({block.lang}) failed with {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}\n(inputs it needs: "
                "SETUP_BEFORE; a transcript that cannot run here: mark it offline, see the "
                "module doc)"
            )
            step = STEPS_AFTER.get((section, i))
            if step is not None:
                step(work / "queue")


# --- offline: transcripts, and what cannot run here -------------------------------------------

BUILTINS = {"cd", "echo", "export", "set", "source", ".", "true", "false", "test", "[", "exit"}


def commands(code: str) -> list[list[str]]:
    """The simple commands of shell ``code`` (continuations joined, comments dropped,
    split at ``|``, ``&&``, ``||``, ``;``; leading ``VAR=value`` assignments and
    redirections left out). Enough for a transcript's commands, not a shell parser."""
    import shlex

    found: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        found.append([])
        redirect = False
        for token in lexer:
            if redirect:  # the file of a redirection: not an argument
                redirect = False
            elif token in (">", ">>", "<", ">&", "&>"):
                redirect = True
                if found[-1][-1:] in (["1"], ["2"]):  # 2>file
                    found[-1].pop()
            elif set(token) <= set("|&;"):
                found.append([])
            elif not found[-1] and re.fullmatch(r"[A-Za-z_]\w*=.*", token):
                continue
            else:
                found[-1].append(token)
    return [c for c in found if c]


def check_offline(argv: list[str]) -> None:
    """One command of an offline block, checked without running it (see the module doc)."""
    from tests import readme_shell

    program, args = argv[0], argv[1:]
    name = Path(program).name
    if name.startswith("python") and args[:1] == ["-c"]:
        compile(args[1], "<python -c>", "exec")
    elif name in WRAPPED:
        readme_shell.check(program, args, ROOT)
    elif name not in BUILTINS:
        readme_shell.which(name)


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id) for b in BLOCKS if b.offline and b.lang in (*SHELL, "")]
)
def test_offline_block_commands_are_accepted(block: Block) -> None:
    from tests import readme_shell

    code = script(block) if block.lang == "bash" else script(Block("console", block.code, 0, ""))
    for argv in commands(code):
        try:
            check_offline(argv)
        except readme_shell.Refused as e:
            pytest.fail(f"README.md:{block.line}: {' '.join(argv)}: {e}")


@pytest.mark.parametrize("block", of("json"))
def test_json_block_parses(block: Block) -> None:
    import json

    json.loads(block.code)


def test_an_offline_block_is_checked_and_can_fail() -> None:
    """The offline check refuses what would not work: an unknown option or command, a
    program not installed; and accepts the README's kinds of calls."""
    from tests import readme_shell

    good = (
        "$ softmax-pipe registry versions mnist --json 2>/dev/null | jq -r '.[0].ref' && echo ok\n"
    )
    assert commands(script(Block("console", good, 0, ""))) == [
        ["softmax-pipe", "registry", "versions", "mnist", "--json"],
        ["jq", "-r", ".[0].ref"],
        ["echo", "ok"],
    ]
    for argv in commands(script(Block("console", good, 0, ""))):
        check_offline(argv)
    for bad in (
        ["softmax-pipe", "score", "images", "--no-such-option"],
        ["softmax-pipe", "no-such-command"],
        ["softmax-pipe", "run", "--margin", "half"],
        ["no-such-program-here", "x"],
    ):
        with pytest.raises(readme_shell.Refused):
            check_offline(bad)


def test_the_recovery_commands_work_as_written(tmp_path: Path) -> None:
    """Each `softmax-pipe registry ...` of "When a run is cut short" runs, in order, on a
    registry left as a run killed between publish and promote leaves it."""
    from typer.testing import CliRunner

    from registry import layout
    from softmax_pipe.cli import app
    from tests.registry.helpers import make_model

    text = (ROOT / "README.md").read_text()
    para = text.split("**When a run is cut short", 1)[1].split("\n\n**", 1)[0]
    commands = re.findall(r"`softmax-pipe (registry [^`]+)`", " ".join(para.split()))
    assert [c.split()[1] for c in commands] == [
        "versions",
        "promote",
        "rollback",
        "history",
        "promote",
    ]
    uri = str(tmp_path / "registry")
    with Registry.open(uri, cache_dir=tmp_path / "cache") as reg:
        reg.publish(make_model(1), "mnist", alias="champion")
        reg.publish(make_model(2), "mnist")  # the run was killed before its promote
    runner = CliRunner()
    for i, command in enumerate(commands):
        if i == len(commands) - 1:  # the champion's alias file damaged before the last
            reg.store.put(layout.alias_key("mnist", "champion"), b"{")
        args = [*command.replace("mnist:N", "mnist:2").split(), "--registry", uri]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.stderr)
    with Registry.open(uri, cache_dir=tmp_path / "cache") as reg:
        assert reg.resolve("mnist@champion").version == 2
