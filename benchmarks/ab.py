"""The real `softmax-pipe` commands, timed side by side on two or more variants of the code.

A variant is a source tree (``.``: this checkout, or any git revision, extracted with
``git archive``), optionally with other versions of some packages put ahead of the venv's
(``pip install --no-deps --target``), optionally with a named patch applied in the process
before the CLI starts (a peer that no revision has: see :data:`PATCHES`). Every command runs
as a user runs it, in a fresh process (``softmax_pipe.cli.main``, start-up and imports
included), with the variant's tree first on ``PYTHONPATH``. The rounds are interleaved (each
round runs every command on every variant, in alternating order) so that all variants see
the same machine; the table shows medians and each variant against the first.

Commands:

- ``help``: ``softmax-pipe --help``;
- ``train``: a warm ``softmax-pipe train`` (default features; MNIST cached, features cached,
  two warm-up runs per variant first, each variant with its own cache folder);
- ``evaluate``: a warm ``softmax-pipe evaluate MODEL``;
- ``score-mixed``: ``softmax-pipe score FOLDER --probs -o FILE`` on a realistic mixed folder
  (``benchmarks/_folders.realistic``: JPEG, RGB, RGBA, scans, 16-bit, BMP, 12 MP photos, a
  fifth plain 28×28 PNGs), in images/s, default workers (one per CPU);
- ``score-gray``: the same on a folder of 28×28 8-bit gray PNGs (MNIST written to files);
- ``score-*-1``: the same with ``--workers 1`` (scored in the CLI's own process).

The score rows of every variant are compared byte for byte with the first's (``--probs``:
the ten probabilities too) and the table says whether they are identical.

Examples (the figures of issue 22's ornaments)::

    .venv/bin/python benchmarks/ab.py --variant before=main --variant after=. \\
        --commands help train evaluate score-mixed score-gray
    .venv/bin/python benchmarks/ab.py --variant 'typer-0.28=.;typer==0.28.0' \\
        --variant 'typer-0.29=.;typer==0.29.2' --commands help train
    .venv/bin/python benchmarks/ab.py --variant stamps=. \\
        --variant 'hash-every-load=.;patch:hash-every-load' --commands train evaluate
    SOFTMAX_PIPE_MNIST=../shared/data/mnist .venv/bin/python benchmarks/ab.py \\
        --variant profile=. --variant 'no-profile=.;patch:no-profile' \\
        --commands score-gray score-mixed
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"

# Python run in the command's process before the CLI starts: peers that no revision has.
PATCHES = {
    # glibc's allocator left at its defaults, for revisions that still tune it with mallopt
    # (softmax_core/memory.py, removed in the commit after 4e475c4: it paid under 10%).
    "no-mallopt": "import softmax_core.memory as m; m.reuse_freed_memory = lambda: False",
    # The MNIST cache hashed on every load (no verified stamps): every array and cached
    # feature file a command opens is read through sha256 first.
    "hash-every-load": "from softmax_core.mnist import arrays as a, cache as c, features as f; "
    "a.sha256_matches = c.sha256_matches = f.sha256_matches = "
    "lambda path, sha: a.file_sha256(path) == sha",
    # `score` without the run's profile and drift check (what --no-profile does): the
    # profile's cost, measured with SOFTMAX_PIPE_MNIST set so that the check runs.
    "no-profile": "sys.argv += ['--no-profile'] if sys.argv[1:2] == ['score'] else []",
}
LAUNCH = (
    "import sys; sys.argv[0] = 'softmax-pipe'; {prelude}\nfrom softmax_pipe.cli import main; main()"
)
COMMANDS = (
    "help",
    "train",
    "evaluate",
    "score-mixed",
    "score-gray",
    "score-mixed-1",
    "score-gray-1",
)


@dataclass
class Variant:
    name: str
    rev: str
    packages: list[str] = field(default_factory=list)
    patch: str = ""
    tree: Path = REPO
    site: Path | None = None
    cache: Path = REPO

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``NAME=REV[;pkg==version...][;patch:NAME]``."""
        name, _, rest = spec.partition("=")
        rev, *options = rest.split(";")
        v = cls(name=name, rev=rev or ".")
        for opt in options:
            if opt.startswith("patch:"):
                v.patch = PATCHES[opt.removeprefix("patch:")]
            elif opt:
                v.packages.append(opt)
        return v

    def prepare(self, work: Path) -> None:
        home = work / self.name
        home.mkdir()
        if self.rev != ".":
            self.tree = home / "tree"
            self.tree.mkdir()
            archive = home / "tree.tar"
            with archive.open("wb") as f:
                subprocess.run(["git", "-C", str(REPO), "archive", self.rev], stdout=f, check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(self.tree, filter="data")
        if self.packages:
            self.site = home / "site"
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
            subprocess.run([*pip, str(self.site), *self.packages], check=True)
        self.cache = home / "cache"

    def env(self) -> dict[str, str]:
        path = [str(self.tree)] + ([str(self.site)] if self.site else [])
        return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}

    def run(self, args: list[str], cwd: Path) -> tuple[float, float]:
        """Seconds of wall time and of CPU time (user + system, the command's process and
        every process it waited for: the scoring workers) of ``softmax-pipe ARGS`` in a
        fresh process. CPU time is the steadier figure on a shared machine: other
        people's load stretches wall time far more than it changes the work done."""
        code = LAUNCH.format(prelude=self.patch)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        took = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(
                f"{self.name}: softmax-pipe {' '.join(args)} -> {done.returncode}\n"
                f"{done.stderr[-3000:]}"
            )
        return took, cpu

    def describe(self) -> str:
        code = (
            "import softmax_core, typer, importlib.metadata as md; "
            "print(softmax_core.__file__, 'typer', md.version('typer') if not hasattr(typer, "
            "'__version__') else typer.__version__)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
            cwd=self.cache.parent,
        ).stdout.strip()
        return f"{self.name}: rev {self.rev} {' '.join(self.packages)} -> {out}" + (
            f" + patch {self.patch!r}" if self.patch else ""
        )


def _rev_name(rev: str) -> str:
    if rev == ".":
        return "this checkout"
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True
    ).stdout.strip()
    return f"{rev} ({sha})"


def _folders_for(
    commands: list[str], mnist: str, images: int, work: Path, cache: Path
) -> dict[str, Path]:
    """The score folders (mixed, gray) when a score command is asked for."""
    if not any(c.startswith("score") for c in commands):
        return {}
    sys.path.insert(0, str(REPO / "benchmarks"))
    import _folders

    from softmax_core.mnist import load_mnist

    ds = load_mnist(mnist, cache_dir=cache)
    folders = {
        "mixed": _folders.realistic(work / "mixed", ds.x_test, ds.y_test, images),
        "gray": _folders.gray_pngs(work / "gray", ds.x_test, ds.y_test, images),
    }
    print(f"mixed folder: {_folders.counts(folders['mixed'])}", flush=True)
    return folders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=REV[;pkg==v][;patch:P]")
    ap.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS[:4]))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--images", type=int, default=2000, help="files in each score folder")
    ap.add_argument("--mnist", default=str(DEFAULT_MNIST))
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    variants = [Variant.parse(s) for s in args.variant]

    tmp = tempfile.TemporaryDirectory(prefix="ab-", dir=args.workdir)
    work = Path(tmp.name)
    for v in variants:
        v.prepare(work)
        print(v.describe(), flush=True)

    # --- data: the MNIST cache and a model (trained by the first variant), the folders ---
    model = work / "model.npz"
    for v in variants:
        for _ in range(2):  # the second run finds everything cached
            v.run(
                ["train", "--source", args.mnist, "--cache-dir", str(v.cache), "-o", str(model)],
                work,
            )
    folders = _folders_for(args.commands, args.mnist, args.images, work, variants[0].cache)

    def argv(command: str, v: Variant, out: Path) -> tuple[list[str], int]:
        """The command's arguments, and the images it scores (0: timed in seconds)."""
        data = ["--source", args.mnist, "--cache-dir", str(v.cache)]
        if command == "help":
            return ["--help"], 0
        if command == "train":
            return ["train", *data, "-o", str(work / f"{v.name}-trained.npz")], 0
        if command == "evaluate":
            return ["evaluate", str(model), *data], 0
        kind = command.split("-")[1]
        extra = ["--workers", "1"] if command.endswith("-1") else []
        n = sum(1 for p in folders[kind].rglob("*") if p.is_file())
        return ["score", str(folders[kind]), "-m", str(model), "--probs", "-o", str(out), *extra], n

    times: dict[tuple[str, str, str], list[float]] = {}
    identical: dict[str, bool] = {}
    for r in range(args.repeat):
        order = variants if r % 2 == 0 else variants[::-1]
        for command in args.commands:
            for v in order:
                out = work / f"{v.name}-{command}.csv"
                cmd, n = argv(command, v, out)
                wall, cpu = v.run(cmd, work)
                times.setdefault((command, "wall", v.name), []).append(n / wall if n else wall)
                times.setdefault((command, "cpu", v.name), []).append(cpu * 1000 / n if n else cpu)
            if command.startswith("score"):
                first = work / f"{variants[0].name}-{command}.csv"
                same = all(
                    filecmp.cmp(first, work / f"{v.name}-{command}.csv", shallow=False)
                    for v in variants[1:]
                )
                identical[command] = identical.get(command, True) and same

    _table(variants, args.commands, times, identical, args.repeat)
    shutil.rmtree(work / "mixed", ignore_errors=True)
    tmp.cleanup()


def _table(
    variants: list[Variant],
    commands: list[str],
    times: dict[tuple[str, str, str], list[float]],
    identical: dict[str, bool],
    repeat: int,
) -> None:
    """The medians side by side, each variant against the first, then every run: per
    command its wall time (images/s for score) and its CPU time (ms per image for score)."""
    base = variants[0].name
    head = "| command | " + " | ".join(v.name for v in variants) + " | "
    head += " | ".join(f"{v.name} vs {base}" for v in variants[1:]) + " | score rows |"
    print()
    print(head)
    print("|---" * (2 * len(variants) + 1) + "|")
    for command, metric in ((c, m) for c in commands for m in ("wall", "cpu")):
        score = command.startswith("score")
        rate = score and metric == "wall"
        med = {v.name: statistics.median(times[(command, metric, v.name)]) for v in variants}
        unit = _unit(command, metric)
        cells = [
            f"{med[v.name]:,.0f} {unit}" if rate else f"{med[v.name]:.3f} {unit}" for v in variants
        ]
        gains = []
        for v in variants[1:]:
            # Positive: the variant is faster (less time, more images/s) than the first.
            change = med[v.name] / med[base] - 1 if rate else 1 - med[v.name] / med[base]
            gains.append(f"{change:+.1%} {'faster' if change >= 0 else 'slower'}")
        same = ("identical" if identical[command] else "**differ**") if score else ""
        name = f"{command}, {'wall' if metric == 'wall' else 'CPU'}"
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(gains) + f" | {same} |")
    print()
    for v in variants:
        print(f"{v.name} = {_rev_name(v.rev)}", *v.packages, "(patched)" if v.patch else "")
    for (command, metric, name), values in times.items():
        unit = _unit(command, metric)
        print(f"  {command} {metric} {name}: " + ", ".join(f"{x:.3g}" for x in values) + f" {unit}")
    load = os.getloadavg()[0]
    print(
        f"medians of {repeat} interleaved rounds; {os.cpu_count()} CPUs, 1-min load "
        f"average {load:.1f} at the end"
    )


def _unit(command: str, metric: str) -> str:
    if not command.startswith("score"):
        return "s" if metric == "wall" else "CPU s"
    return "images/s" if metric == "wall" else "CPU ms/image"


if __name__ == "__main__":
    main()
