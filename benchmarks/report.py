"""Model-report benchmark: render time and page size for the 10,000-image MNIST test split.

Rows, each next to the issue's bar:

- render time of ``softmax_core.report.render_report`` (deskewed model against a champion,
  every section drawn), in a fresh process so matplotlib's import is counted; the median
  of --repeat runs; bar: <= 3 s;
- size of the HTML page; bar: <= 2 MB;
- ``softmax-pipe --help`` wall time in a fresh process (matplotlib never imported at
  start-up); the median of --repeat runs; bar: < 1 s.

    .venv/bin/python benchmarks/report.py [--mnist ../shared/data/mnist] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RENDER = """
import json, sys, time
from pathlib import Path
from softmax_core.mnist import load_mnist
from softmax_core.model import Model
ds = load_mnist(sys.argv[1], cache_dir=Path(sys.argv[2]))
model, champion = Model.load(sys.argv[3]), Model.load(sys.argv[4])
images, labels = ds.x_test[:], ds.y_test[:]
t0 = time.perf_counter()
from softmax_core.report import render_report
html = render_report(model, images=images, labels=labels, champion=champion,
                     champion_ref="mnist:1", manifest={"name": "mnist", "version": 2})
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "bytes": len(html.encode()), "n": int(labels.size)}))
"""


def _train(mnist: str, cache: Path, work: Path) -> tuple[Path, Path]:
    from softmax_core.mnist import load_mnist
    from softmax_core.requests import Hyper
    from softmax_core.train import train

    ds = load_mnist(mnist, cache_dir=cache)
    model = train(ds, Hyper(features="deskew", epochs=2)).save(work / "model.npz")
    champion = train(ds, Hyper(features="pixels", epochs=1, limit=10000))
    return model, champion.save(work / "champion.npz")


def _render(mnist: str, cache: Path, model: Path, champion: Path) -> dict[str, float]:
    args = [sys.executable, "-c", RENDER, mnist, str(cache), str(model), str(champion)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=REPO, timeout=300)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def _help_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "softmax_pipe", "--help"],
        capture_output=True,
        check=True,
        cwd=REPO,
        timeout=60,
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        work = Path(tmp)
        model, champion = _train(opts.mnist, work / "cache", work)
        runs = [_render(opts.mnist, work / "cache", model, champion) for _ in range(opts.repeat)]
    helps = [_help_seconds() for _ in range(opts.repeat)]
    seconds = statistics.median(r["seconds"] for r in runs)
    size = runs[0]["bytes"] / 1e6
    print(f"{'measure':<34}{'value':>10}  bar")
    label = f"render, {runs[0]['n']:.0f} test images"
    print(f"{label:<34}{seconds:>9.2f}s  <= 3 s")
    print(f"{'page size':<34}{size:>8.2f}MB  <= 2 MB")
    print(f"{'softmax-pipe --help':<34}{statistics.median(helps):>9.2f}s  < 1 s")


if __name__ == "__main__":
    main()
