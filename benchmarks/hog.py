"""Feature-set benchmark: what each ``--features`` set costs and what it buys, side by side.

For pixels, deskew and hog, in one run on the same dataset: the seconds to compute the
features of all 70,000 images with an empty feature cache and from the cache, then
softmax_core.sgd.fit's seconds and MNIST test accuracy for seeds 0, 1 and 2 (median).

    .venv/bin/python benchmarks/hog.py [--source ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mnist"


def main() -> None:
    from softmax_core import preprocess, sgd
    from softmax_core.mnist import cached_features, load_mnist
    from softmax_core.requests import Hyper

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        ds = load_mnist(args.source, cache_dir=Path(cache))
        for name, steps in preprocess.FEATURE_SETS.items():
            t = time.perf_counter()
            Xtr, Xte = cached_features(ds, "train", steps), cached_features(ds, "test", steps)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            Xtr, Xte = cached_features(ds, "train", steps), cached_features(ds, "test", steps)
            warm = time.perf_counter() - t
            fits, accs = [], []
            for seed in (0, 1, 2):
                t = time.perf_counter()
                weights = sgd.fit(Xtr, ds.y_train, Hyper(seed=seed))
                fits.append(time.perf_counter() - t)
                pred = np.argmax(Xte @ weights.W + weights.b, axis=1)
                accs.append(float(np.mean(pred == ds.y_test)))
            rows.append((name, Xtr.shape[1], cold, warm, statistics.median(fits), accs))
    print("| features | d | features s, cold | cached | fit s | test acc (seeds 0, 1, 2) |")
    print("|---|---|---|---|---|---|")
    for name, d, cold, warm, fit, accs in rows:
        shown = " / ".join(f"{a * 100:.2f}%" for a in accs)
        print(f"| {name} | {d} | {cold:.2f} | {warm:.2f} | {fit:.2f} | {shown} |")


if __name__ == "__main__":
    main()
