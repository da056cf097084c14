"""Ingest benchmark: load_mnist and cached_features, cold (empty cache) and warm.

Peers, side by side: parsing the gzipped IDX files straight into numpy every time
(gzip + frombuffer, no validation, no cache), and the feature steps uncached.
"Cold" means an empty softmax-pipe cache; the OS page cache is warm for the source files
in every row alike. Figures are medians over --repeat runs.

    .venv/bin/python benchmarks/ingest.py [--source ../shared/data/mnist] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from softmax_core.preprocess import FEATURE_SETS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mnist"
STEPS = FEATURE_SETS["deskew"]


def _median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _naive_idx(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for name, stem, offset in (
        ("x_train", "train-images-idx3-ubyte.gz", 16),
        ("y_train", "train-labels-idx1-ubyte.gz", 8),
        ("x_test", "t10k-images-idx3-ubyte.gz", 16),
        ("y_test", "t10k-labels-idx1-ubyte.gz", 8),
    ):
        out[name] = np.frombuffer(
            gzip.decompress((folder / stem).read_bytes()), np.uint8, -1, offset
        )
    return out


def main() -> None:
    from softmax_core.mnist import cached_features, load_mnist

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_SOURCE))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    folder = Path(args.source)
    rows: list[tuple[str, float]] = []

    def cold_load() -> None:
        with tempfile.TemporaryDirectory() as d:
            ds = load_mnist(str(folder), cache_dir=Path(d))
            assert not ds.cached

    rows.append(
        ("load_mnist, cold (parse, validate, hash, write)", _median_seconds(cold_load, args.repeat))
    )
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d)
        ds = load_mnist(str(folder), cache_dir=cache)

        def warm_load() -> None:
            assert load_mnist(str(folder), cache_dir=cache).cached

        rows.append(
            ("load_mnist, warm (verify sha256, mmap)", _median_seconds(warm_load, args.repeat))
        )
        rows.append(
            (
                "peer: gzip + frombuffer, every time",
                _median_seconds(lambda: _naive_idx(folder), args.repeat),
            )
        )

        for split in ("train", "test"):

            def cold_features(split: Literal["train", "test"] = split) -> None:
                shutil.rmtree(ds.path / "features", ignore_errors=True)
                cached_features(ds, split, STEPS)

            def warm_features(split: Literal["train", "test"] = split) -> None:
                np.asarray(cached_features(ds, split, STEPS)).sum()

            images = ds.x_train if split == "train" else ds.x_test
            rows.append(
                (
                    f"cached_features {split} {STEPS.key}, cold",
                    _median_seconds(cold_features, args.repeat),
                )
            )
            rows.append(
                (
                    f"cached_features {split} {STEPS.key}, warm (+ a full read)",
                    _median_seconds(warm_features, args.repeat),
                )
            )
            rows.append(
                (
                    f"peer: Steps.features {split}, uncached",
                    _median_seconds(partial(STEPS.features, images), args.repeat),
                )
            )

    width = max(len(r[0]) for r in rows)
    print(f"{'ingest of ' + str(folder):<{width}}  seconds (median of {args.repeat})")
    for label, secs in rows:
        print(f"{label:<{width}}  {secs:8.3f}")


if __name__ == "__main__":
    main()
