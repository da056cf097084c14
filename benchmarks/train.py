"""Training benchmark: softmax-pipe against scikit-learn, the blog's method and Keras.

One run, one table. Each row trains in its own subprocess so that its peak RSS is its
own (VmHWM read by the child at exit: ru_maxrss would carry the forking parent's peak
over exec on Linux). Test accuracy is the median over seeds; seconds are the median fit time
(features are prepared, and cached, before the clock starts, for every row alike).

    .venv/bin/python benchmarks/train.py [--source ../shared/data/mnist] [--seeds 0 1 2]

Also measured: deskewing the 70k images cold and from the cache, and the peak RSS of
the real `softmax-pipe train` command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mnist"


def _features(source: str, cache: Path, features: str) -> tuple[Any, Any, Any, Any]:
    from softmax_core import preprocess
    from softmax_core.mnist import cached_features, load_mnist

    ds = load_mnist(source, cache_dir=cache)
    steps = preprocess.FEATURE_SETS[features]
    return (
        cached_features(ds, "train", steps),
        ds.y_train.astype("int64"),
        cached_features(ds, "test", steps),
        ds.y_test.astype("int64"),
    )


def worker(row: str, seed: int, source: str, cache: Path) -> dict[str, Any]:
    """Train one row once; return accuracies and fit seconds (run in a subprocess)."""
    import numpy as np

    from softmax_core import settings

    features = {
        "softmax-pipe default": settings.FEATURES,
        "softmax-pipe --features deskew": "deskew",
    }.get(row, "pixels")  # every peer row sees the raw pixels
    Xtr, ytr, Xte, yte = _features(source, cache, features)
    if row.startswith("softmax-pipe"):
        from softmax_core.model import SoftmaxRegression

        t0 = time.perf_counter()
        m = SoftmaxRegression(seed=seed).fit(Xtr, ytr)
        secs = time.perf_counter() - t0
        return {"test": m.score(Xte, yte), "train": m.score(Xtr, ytr), "seconds": secs}
    if row.startswith("scikit-learn"):
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        Xtr = np.asarray(Xtr)
        if "lbfgs" in row:
            clf: Any = LogisticRegression(
                solver="lbfgs", max_iter=2000, tol=1e-4, random_state=seed
            )
        else:
            clf = SGDClassifier(loss="log_loss", random_state=seed, n_jobs=1)
        t0 = time.perf_counter()
        clf.fit(Xtr, ytr)
        secs = time.perf_counter() - t0
        return {"test": clf.score(Xte, yte), "train": clf.score(Xtr, ytr), "seconds": secs}
    if row.startswith("blog"):
        # The blog post: per-sample SGD on raw 0-255 pixels, np.random.rand init, lr 1e-6, one epoch.
        from softmax_core.softmax import softmax

        raw_tr = np.asarray(Xtr, dtype=np.float64) * 255.0
        raw_te = np.asarray(Xte, dtype=np.float64) * 255.0
        rng = np.random.default_rng(seed)
        W = rng.random((784, 10))
        b = rng.random(10)
        lr = 1e-6
        t0 = time.perf_counter()
        for i in range(raw_tr.shape[0]):
            x = raw_tr[i : i + 1]
            p = softmax(x @ W + b)
            p[0, ytr[i]] -= 1.0
            W -= lr * (x.T @ p)
            b -= lr * p[0]
        secs = time.perf_counter() - t0

        def acc(X: Any, y: Any) -> float:
            return float(np.mean(np.argmax(X @ W + b, axis=1) == y))

        return {"test": acc(raw_te, yte), "train": acc(raw_tr, ytr), "seconds": secs}
    if row.startswith("keras"):
        import keras

        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(10, activation="softmax")]
        )
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        Xtr = np.asarray(Xtr)
        t0 = time.perf_counter()
        model.fit(Xtr, ytr, epochs=5, batch_size=128, verbose=0)
        secs = time.perf_counter() - t0
        return {
            "test": float(model.evaluate(np.asarray(Xte), yte, verbose=0)[1]),
            "train": float(model.evaluate(Xtr, ytr, verbose=0)[1]),
            "seconds": secs,
        }
    raise SystemExit(f"unknown row {row!r}")


# Runs a Python script as __main__ and, at exit, writes its own peak RSS (VmHWM, kB) to
# the file named by $BENCH_HWM_FILE.
_HWM_WRAPPER = """
import atexit, os, runpy, sys
def _hwm():
    with open('/proc/self/status') as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
    with open(os.environ['BENCH_HWM_FILE'], 'w') as out:
        out.write(str(kb))
atexit.register(_hwm)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_child(args: list[str]) -> tuple[str, float]:
    """Run a Python script (args[0]) with its arguments; return its stdout and peak RSS in MB."""
    with tempfile.NamedTemporaryFile(suffix=".hwm") as hwm:
        env = {**os.environ, "BENCH_HWM_FILE": hwm.name}
        proc = subprocess.run(
            [sys.executable, "-c", _HWM_WRAPPER, *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{args} failed with exit {proc.returncode}")
        return proc.stdout, int(Path(hwm.name).read_text()) / 1024.0


def deskew_timing(source: str) -> tuple[float, float]:
    """Seconds to deskew all 70k images with an empty feature cache, then from the cache."""
    from softmax_core.mnist import cached_features, load_mnist

    with tempfile.TemporaryDirectory() as tmp:
        ds = load_mnist(source, cache_dir=Path(tmp))
        t0 = time.perf_counter()
        cached_features(ds, "train", ("scale", "deskew"))
        cached_features(ds, "test", ("scale", "deskew"))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        a = cached_features(ds, "train", ("scale", "deskew"))
        b = cached_features(ds, "test", ("scale", "deskew"))
        warm = time.perf_counter() - t0
        assert a.shape[0] + b.shape[0] == 70000
    return cold, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", default=os.environ.get("SOFTMAX_PIPE_MNIST", str(DEFAULT_SOURCE)))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--worker", nargs=3, metavar=("ROW", "SEED", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        row, seed, cache = args.worker
        print(json.dumps(worker(row, int(seed), args.source, Path(cache))))
        return

    import importlib.util
    import statistics

    rows = [
        "softmax-pipe default",
        "softmax-pipe --features deskew",
        "softmax-pipe --features pixels",
        "scikit-learn LogisticRegression(lbfgs)",
        "scikit-learn SGDClassifier(log_loss)",
        "blog: per-sample SGD, raw pixels",
    ]
    if importlib.util.find_spec("keras") is not None:
        rows.append("keras Dense(10, softmax)")
    cache = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        from softmax_core.mnist import cached_features, load_mnist

        ds = load_mnist(args.source, cache_dir=cache)  # warm the dataset and feature caches
        from softmax_core.preprocess import FEATURE_SETS

        for steps in FEATURE_SETS.values():
            cached_features(ds, "train", steps)
            cached_features(ds, "test", steps)

        results: dict[str, dict[str, float]] = {}
        for row in rows:
            seeds = (
                args.seeds
                if not row.startswith("scikit-learn LogisticRegression")
                else args.seeds[:1]
            )
            runs = []
            rss = 0.0
            for seed in seeds:
                out, peak = run_child(
                    [
                        __file__,
                        "--source",
                        args.source,
                        "--worker",
                        row,
                        str(seed),
                        str(cache),
                    ]
                )
                runs.append(json.loads(out))
                rss = max(rss, peak)
            results[row] = {
                "test": statistics.median(r["test"] for r in runs),
                "train": statistics.median(r["train"] for r in runs),
                "seconds": statistics.median(r["seconds"] for r in runs),
                "rss": rss,
                "n": len(runs),
            }
            print(f"  measured {row}", file=sys.stderr, flush=True)

        cold, warm = deskew_timing(args.source)
        cli = shutil.which("softmax-pipe") or str(Path(sys.executable).parent / "softmax-pipe")
        cli_runs: dict[str, tuple[float, float]] = {}  # cache state -> (seconds, peak RSS MB)
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "cache"  # empty: parse MNIST and deskew, then train
            for state in ("empty cache", "warm cache"):
                t0 = time.perf_counter()
                _, peak = run_child(
                    [
                        cli,
                        "train",
                        "--source",
                        args.source,
                        "--cache-dir",
                        str(fresh),
                        "--out",
                        str(Path(tmp) / "model.npz"),
                    ]
                )
                cli_runs[state] = (time.perf_counter() - t0, peak)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    print()
    print(f"| {'model':<40} | test acc (median) | train acc | train s | peak RSS MB | runs |")
    print(f"|{'-' * 42}|------------------|-----------|---------|-------------|------|")
    for row, r in results.items():
        print(
            f"| {row:<40} | {r['test'] * 100:15.2f}% | {r['train'] * 100:8.2f}% | "
            f"{r['seconds']:7.2f} | {r['rss']:11.0f} | {r['n']:4d} |"
        )
    print()
    lbfgs = results["scikit-learn LogisticRegression(lbfgs)"]["seconds"]
    d = results["softmax-pipe default"]
    nd = results["softmax-pipe --features pixels"]
    print(f"deskew 70k images: {cold:.2f} s cold, {warm:.3f} s from the cache")
    for state, (secs, peak) in cli_runs.items():
        print(f"`softmax-pipe train` end to end, {state}: {secs:.2f} s, peak RSS {peak:.0f} MB")
    cli_rss = max(peak for _, peak in cli_runs.values())
    print()
    print("bars:")
    bars = [
        ("default test accuracy >= 98.5%", d["test"] >= 0.985, f"{d['test'] * 100:.2f}%"),
        (
            "--features pixels test accuracy >= 92.5%",
            nd["test"] >= 0.925,
            f"{nd['test'] * 100:.2f}%",
        ),
        (
            "default train time <= lbfgs / 20",
            d["seconds"] <= lbfgs / 20,
            f"{d['seconds']:.2f} s vs {lbfgs / 20:.2f} s",
        ),
        (
            "--features pixels train time <= lbfgs / 20",
            nd["seconds"] <= lbfgs / 20,
            f"{nd['seconds']:.2f} s vs {lbfgs / 20:.2f} s",
        ),
        ("deskew 70k cold <= 3 s", cold <= 3.0, f"{cold:.2f} s"),
        ("peak RSS of softmax-pipe train <= 600 MB", cli_rss <= 600, f"{cli_rss:.0f} MB"),
    ]
    for name, ok, value in bars:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}: {value}")


if __name__ == "__main__":
    main()
