"""Same seed, same bytes: training runs BLAS at one thread whatever the machine gives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIT = """
import hashlib
import numpy as np
from threadpoolctl import threadpool_info
from softmax_core.requests import Hyper
from softmax_core.sgd import fit
rng = np.random.default_rng(0)
X = rng.random((6000, 784), dtype=np.float32)
y = rng.integers(0, 10, 6000)
model = fit(X, y, Hyper(epochs=2, seed=1))
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(hashlib.sha256(model.W.tobytes() + model.b.tobytes()).hexdigest(), max(blas))
"""


def _fit(threads: int) -> tuple[str, int]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", FIT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    digest, pool = out.stdout.split()
    return digest, int(pool)


def test_weights_are_byte_identical_with_one_and_two_blas_threads() -> None:
    one, two = _fit(1), _fit(2)
    assert two[1] == 2  # the process really had two BLAS threads outside fit
    assert one[0] == two[0]


def test_one_thread_limits_blas_inside_and_restores_it_after() -> None:
    import numpy  # noqa: F401  (loads the BLAS)
    from threadpoolctl import threadpool_info, threadpool_limits

    from softmax_core.blas import one_thread

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        for _ in range(2):  # the cached controller works every time, not only the first
            with one_thread():
                assert blas_threads() == {1}
            assert blas_threads() == {2}


ENTRY = """
import sys
sys.argv = ["softmax-pipe", "--help"]
from softmax_pipe.cli import main
try:
    main()
except SystemExit:
    pass
import numpy  # loaded after the entry point, as every command loads it
from threadpoolctl import threadpool_info
print(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
"""


def _blas_threads_after_entry(env_threads: str | None) -> int:
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    if env_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env_threads
    out = subprocess.run(
        [sys.executable, "-c", ENTRY], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    return int(out.stdout.split()[-1])


def test_the_cli_starts_blas_with_one_thread_unless_the_environment_says_otherwise() -> None:
    # a BLAS with more threads re-creates them whenever one_thread() restores it, and they
    # spin: on a busy machine that is CPU taken from the command itself
    cores = os.cpu_count()
    assert cores is not None and cores > 1  # else numpy's default is one thread too
    assert _blas_threads_after_entry(None) == 1
    assert _blas_threads_after_entry("2") == 2
