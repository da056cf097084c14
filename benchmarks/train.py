"""Training benchmark: softmax-pipe against scikit-learn, the blog's method and Keras.

One run, one table; every row trains in its own fresh process, seed by seed, the rows
interleaved (seed 0 of every row, then seed 1, ...) so that all see the same machine.
Shown per row: the median over seeds of MNIST test and train accuracy, fit seconds and
whole-command seconds, and the largest peak RSS.

- The softmax-pipe rows run the real command, ``softmax-pipe train --features F --seed S``
  with a warm cache; fit seconds are what it records (``metrics.train_seconds``), the
  whole command is the process's wall time, start-up and imports included. The default
  model has 11 classes (the digits, then "not a digit" fitted beside them over the
  generated non-digits and cluttered digits, made once per seed before the table, as on a
  machine after its first training); ``--no-reject`` is the 10-class model, as the peers
  are. A digit the model rejects counts wrong, in train accuracy as in test.
- The peers run a small script: load the same cached features, fit (timed), evaluate.
  "pixels" is the raw image scaled to [0, 1]; "hog" the default features, from the same
  cache. Keras runs on JAX (CPU), ``Dense(10, softmax)``, Adam, 10 epochs, batch 128.
- Peak RSS is the process's VmHWM, read by the child at exit (ru_maxrss would carry the
  forking parent's peak over exec on Linux).

Also measured: the default features of all 70k images with an empty cache and from it,
and an empty-cache ``softmax-pipe train``. The bars of the features issue close the run.

    .venv/bin/python benchmarks/train.py [--source ../shared/data/mnist] [--seeds 0 1 2]
        [--contention] [--rows NAME ...]

``--contention`` runs the whole table while busy-loop processes (one per core) hold
every core, as a shared machine would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "mnist"

# row name -> (kind, features)
ROWS: dict[str, tuple[str, str]] = {
    "softmax-pipe default (hog)": ("softmax-pipe", "hog"),
    "softmax-pipe --no-reject (hog)": ("softmax-pipe --no-reject", "hog"),
    "softmax-pipe --features deskew": ("softmax-pipe", "deskew"),
    "softmax-pipe --features pixels": ("softmax-pipe", "pixels"),
    "sklearn LogisticRegression(lbfgs), pixels": ("lbfgs", "pixels"),
    "sklearn LogisticRegression(lbfgs), hog": ("lbfgs", "hog"),
    "sklearn SGDClassifier(log_loss), pixels": ("sgdclassifier", "pixels"),
    "blog: per-sample SGD, raw pixels": ("blog", "pixels"),
    "keras+jax Dense(10) Adam x10, pixels": ("keras", "pixels"),
    "keras+jax Dense(10) Adam x10, hog": ("keras", "hog"),
}
LBFGS_PIXELS = "sklearn LogisticRegression(lbfgs), pixels"
DEFAULT_ROW = "softmax-pipe default (hog)"


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


def worker(kind: str, features: str, seed: int, source: str, cache: Path) -> dict[str, Any]:
    """Train one peer row once; return accuracies and fit seconds (run in a subprocess)."""
    import numpy as np

    Xtr, ytr, Xte, yte = _features(source, cache, features)
    Xtr, Xte = np.asarray(Xtr), np.asarray(Xte)
    if kind in ("lbfgs", "sgdclassifier"):
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        if kind == "lbfgs":  # converged: the default C, iterations to spare
            clf: Any = LogisticRegression(solver="lbfgs", max_iter=2000, random_state=seed)
        else:
            clf = SGDClassifier(loss="log_loss", random_state=seed, n_jobs=1)
        t0 = time.perf_counter()
        clf.fit(Xtr, ytr)
        secs = time.perf_counter() - t0
        return {"test": clf.score(Xte, yte), "train": clf.score(Xtr, ytr), "fit": secs}
    if kind == "blog":
        # The blog post: per-sample SGD on raw 0-255 pixels, np.random.rand init, lr 1e-6, one epoch.
        from softmax_core.softmax import softmax

        raw_tr = Xtr.astype(np.float64) * 255.0
        raw_te = Xte.astype(np.float64) * 255.0
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

        return {"test": acc(raw_te, yte), "train": acc(raw_tr, ytr), "fit": secs}
    if kind == "keras":
        import keras

        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [keras.Input((Xtr.shape[1],)), keras.layers.Dense(10, activation="softmax")]
        )
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        t0 = time.perf_counter()
        model.fit(Xtr, ytr, epochs=10, batch_size=128, verbose=0)
        secs = time.perf_counter() - t0
        return {
            "test": float(model.evaluate(Xte, yte, batch_size=1024, verbose=0)[1]),
            "train": float(model.evaluate(Xtr, ytr, batch_size=1024, verbose=0)[1]),
            "fit": secs,
        }
    raise SystemExit(f"unknown kind {kind!r}")


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


def run_child(args: list[str]) -> tuple[str, float, float]:
    """Run a Python script (args[0]) with its arguments: (stdout, wall seconds, peak RSS MB)."""
    with tempfile.NamedTemporaryFile(suffix=".hwm") as hwm:
        env = {**os.environ, "BENCH_HWM_FILE": hwm.name, "KERAS_BACKEND": "jax"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _HWM_WRAPPER, *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"{args} failed with exit {proc.returncode}")
        return proc.stdout, wall, int(Path(hwm.name).read_text()) / 1024.0


def cli_path() -> str:
    return shutil.which("softmax-pipe") or str(Path(sys.executable).parent / "softmax-pipe")


def run_row(row: str, seed: int, source: str, cache: Path, tmp: Path) -> dict[str, float]:
    kind, features = ROWS[row]
    if not kind.startswith("softmax-pipe"):
        args = [__file__, "--source", source, "--worker", kind, features, str(seed), str(cache)]
        out, wall, rss = run_child(args)
        return {**json.loads(out), "wall": wall, "rss": rss}
    model = tmp / f"{features}-{seed}.npz"
    args = [cli_path(), "train", "--source", source, "--cache-dir", str(cache)]
    args += ["--features", features, "--seed", str(seed), "--out", str(model)]
    _, wall, rss = run_child(args + kind.split()[1:])
    import numpy as np

    from softmax_core import preprocess
    from softmax_core.model import Model

    m = Model.load(model)
    Xtr, ytr, _, _ = _features(source, cache, features)
    train_acc = 0.0  # as the test accuracy is counted: a rejected digit is wrong
    for start in range(0, Xtr.shape[0], 10000):  # bounded memory; not timed
        X = np.ascontiguousarray(Xtr[start : start + 10000])
        train_acc += float((m.predict_features(X) == ytr[start : start + 10000]).sum())
    assert m.steps == preprocess.FEATURE_SETS[features]
    metrics = m.info.metrics
    return {
        "test": float(metrics["accuracy"]),
        "train": train_acc / Xtr.shape[0],
        "fit": float(metrics["train_seconds"]),
        "wall": wall,
        "rss": rss,
    }


def features_timing(source: str, features: str) -> tuple[float, float, float]:
    """Seconds for ``features`` of all 70k images: with an empty feature cache; re-read at
    once (verified by hashing); re-read later, as the next command would (the files are
    stamped once older than the racy window, so nothing is hashed). A fresh dataset cache
    each time, MNIST parsed before the clock."""
    from softmax_core import preprocess
    from softmax_core.mnist import arrays, cached_features, load_mnist

    steps = preprocess.FEATURE_SETS[features]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_mnist(source, cache_dir=Path(tmp))
        for wait in (0.0, 0.0, arrays.STAMP_MIN_AGE_NS / 1e9 + 0.1):
            time.sleep(wait)
            t0 = time.perf_counter()
            a = cached_features(ds, "train", steps)
            b = cached_features(ds, "test", steps)
            times.append(time.perf_counter() - t0)
            assert a.shape[0] + b.shape[0] == 70000
        t0 = time.perf_counter()  # the third read hashed once more and stamped: now ...
        cached_features(ds, "train", steps)
        cached_features(ds, "test", steps)
        times[2] = time.perf_counter() - t0  # ... what every later command sees
    return times[0], times[1], times[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", default=os.environ.get("SOFTMAX_PIPE_MNIST", str(DEFAULT_SOURCE)))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--contention", action="store_true", help="busy loops hold every core")
    ap.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS))
    ap.add_argument("--worker", nargs=4, metavar=("KIND", "FEATURES", "SEED", "CACHE"))
    args = ap.parse_args()
    if args.worker:
        kind, features, seed, cache = args.worker
        print(json.dumps(worker(kind, features, int(seed), args.source, Path(cache))))
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _contention import busy_cores

    from softmax_core import preprocess
    from softmax_core.mnist import cached_features, load_mnist

    rows = [r for r in ROWS if r in args.rows]
    cache = Path(tempfile.mkdtemp(prefix="bench-train-"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-"))
    runs: dict[str, list[dict[str, float]]] = {r: [] for r in rows}
    started = time.perf_counter()
    try:
        ds = load_mnist(args.source, cache_dir=cache)  # the dataset and feature caches, warm
        for steps in preprocess.FEATURE_SETS.values():
            cached_features(ds, "train", steps)
            cached_features(ds, "test", steps)
        if any(ROWS[r][0] == "softmax-pipe" for r in rows):
            for seed in args.seeds:  # each seed's derived images (non-digits, cluttered
                # digits) made once, untimed, as on a machine after its first training
                run_row(DEFAULT_ROW, seed, args.source, cache, tmp)
        with busy_cores(args.contention) as loops:
            for seed in args.seeds:
                for row in rows:
                    runs[row].append(run_row(row, seed, args.source, cache, tmp))
                    print(f"  seed {seed}: {row}", file=sys.stderr, flush=True)
            cold, rehashed, stamped = features_timing(args.source, "hog")
            empty: dict[str, float] = {}
            with tempfile.TemporaryDirectory() as t:  # parse MNIST, features, train
                args_ = [cli_path(), "train", "--source", args.source, "--cache-dir", t]
                _, empty["wall"], empty["rss"] = run_child([*args_, "--out", f"{t}/m.npz"])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

    med = {r: {k: statistics.median(x[k] for x in runs[r]) for k in runs[r][0]} for r in rows}
    rss = {r: max(x["rss"] for x in runs[r]) for r in rows}
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; "
        + (f"under contention: {loops} busy loops" if args.contention else "no other load started")
        + f"; seeds {' '.join(map(str, args.seeds))}; {time.perf_counter() - started:.0f} s"
    )
    print()
    print(f"| {'model':<42} | test acc | train acc | fit s | whole command s | peak RSS MB |")
    print(f"|{'-' * 44}|---------:|----------:|------:|----------------:|------------:|")
    for r in rows:
        m = med[r]
        print(
            f"| {r:<42} | {m['test'] * 100:7.2f}% | {m['train'] * 100:8.2f}% | "
            f"{m['fit']:5.2f} | {m['wall']:15.2f} | {rss[r]:11.0f} |"
        )
    print()
    print(
        f"hog features of 70k images: {cold:.2f} s cold; from the cache {rehashed:.3f} s "
        f"at once (hashed), {stamped:.3f} s later (stamped)"
    )
    print(
        f"`softmax-pipe train`, empty cache: {empty['wall']:.2f} s, peak RSS {empty['rss']:.0f} MB"
    )
    if DEFAULT_ROW not in med:
        return
    d = med[DEFAULT_ROW]
    bars = [
        ("default test accuracy >= 98.5%", d["test"] >= 0.985, f"{d['test'] * 100:.2f}%"),
        ("hog features of 70k, cold <= 3 s", cold <= 3.0, f"{cold:.2f} s"),
        (
            "warm `softmax-pipe train` <= 2x its fit",
            d["wall"] <= 2 * d["fit"],
            f"{d['wall']:.2f} s vs 2 x {d['fit']:.2f} s",
        ),
        (
            "peak RSS of softmax-pipe train <= 600 MB",
            max(rss[DEFAULT_ROW], empty["rss"]) <= 600,
            f"{max(rss[DEFAULT_ROW], empty['rss']):.0f} MB",
        ),
    ]
    if LBFGS_PIXELS in med:
        lbfgs = med[LBFGS_PIXELS]["fit"]
        bars.append(
            (
                "default fit <= lbfgs on pixels / 20",
                d["fit"] <= lbfgs / 20,
                f"{d['fit']:.2f} s vs {lbfgs:.1f} / 20 = {lbfgs / 20:.2f} s",
            )
        )
    print()
    print("bars:")
    for name, ok, value in bars:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}: {value}")


if __name__ == "__main__":
    main()
