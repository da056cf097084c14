"""Registry benchmark: the local folder store and S3 (SeaweedFS on loopback), side by side.

One run, one table. The S3 column talks HTTP to SeaweedFS (``weed server -s3``, the test
suite's server: tests/s3server.py) in its own process, through the same boto3 client the
CLI uses. Each registry is checked (``registry check``) before the clock starts, as its
first write would, so the rows are the steady state.

    .venv/bin/python benchmarks/registry.py [--n 30] [--versions 1000]

Rows (milliseconds, median over --n runs unless noted):
- publish: a ~33 KB model file as the next version (blob + version claim + blob check);
- publish into a model that already has --versions versions;
- pull, cold: resolve + download + sha256 into an empty cache;
- pull, cached: resolve + sha256 of the cached file (the blob is not downloaded);
- resolve name@alias: time, and requests sent (HTTP requests counted with botocore's
  ``before-send`` event for S3, store calls for the folder); the target is <= 3;
- listing a model with --versions versions: the version numbers (one paginated listing),
  and every manifest (`softmax-pipe registry versions NAME`): the first time (one GET per
  manifest; it also writes the write-once index pages) and then (index pages: one GET
  per 100 versions); the target is <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This file is named like the package it measures: put the repo first on the path so
# that `import registry` is the package, not this script.
sys.path.insert(0, str(REPO))


def make_model_bytes(seed: int) -> bytes:
    import numpy as np

    from softmax_core.model import Model, ModelInfo
    from softmax_core.preprocess import FEATURE_SETS

    rng = np.random.default_rng(seed)
    return Model(
        W=rng.normal(scale=0.01, size=(784, 10)).astype(np.float32),
        b=np.zeros(10, np.float32),
        steps=FEATURE_SETS["pixels"],
        info=ModelInfo(
            created="2026-01-01T00:00:00+00:00",
            params={"seed": seed},
            metrics={"accuracy": 0.92},
            data_digest="d" * 64,
        ),
    ).to_bytes()


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f}"


class RequestCounter:
    """Counts requests: HTTP requests for S3 (botocore event), store calls for a folder."""

    def __init__(self, store: Any) -> None:
        from registry.check import unchecked

        store = unchecked(store)  # the S3 client itself, under the check before writes
        self.n = 0
        if hasattr(store, "client"):
            store.client.meta.events.register("before-send.s3", self._bump)
        else:
            for method in ("get", "head", "put", "list_keys", "list_info", "children", "delete"):
                real = getattr(store, method)
                setattr(store, method, self._wrap(real))

    def _bump(self, **_: Any) -> None:
        self.n += 1

    def _wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return real(*args, **kwargs)

        return counted


def seed_versions(reg: Any, name: str, count: int, model: bytes) -> None:
    """Write `count` versions the way publish writes them, in parallel (setup, not measured)."""
    import dataclasses

    from registry import layout

    path = Path(tempfile.mkdtemp()) / "m.npz"
    path.write_bytes(model)
    base = reg.publish(path, name)  # version 1 through the real code path

    def write(n: int) -> None:
        m = dataclasses.replace(base, version=n)
        reg.store.put(layout.manifest_key(name, n), m.to_bytes(), if_none_match=True)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(2, count + 1)))


def bench(kind: str, uri: str, n: int, versions: int, models: list[bytes]) -> dict[str, str]:
    from registry import Registry

    work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    reg = Registry.open(uri, cache_dir=work / "cache")
    reg.check()  # what the first write would run; remembered, as in a user's steady state
    files = []
    for i, data in enumerate(models):
        p = work / f"m{i}.npz"
        p.write_bytes(data)
        files.append(p)
    out: dict[str, str] = {}

    pub = [timed(partial(reg.publish, f, "bench")) for f in files[:n]]
    out["publish"] = median_ms(pub)

    cold, cached = [], []
    for v in range(1, n + 1):
        reg.cache_dir = work / f"cold-{v}"
        cold.append(timed(partial(reg.pull, f"bench:{v}")))
        cached.append(timed(partial(reg.pull, f"bench:{v}")))
    out["pull, cold"] = median_ms(cold)
    out["pull, cached"] = median_ms(cached)

    reg.promote("bench", n, "champion")
    counter = RequestCounter(reg.store)
    counter.n = 0
    reg.resolve("bench@champion")
    out["resolve name@alias: requests"] = str(counter.n)
    out["resolve name@alias"] = median_ms(
        [timed(lambda: reg.resolve("bench@champion")) for _ in range(n)]
    )

    fresh = Registry.open(uri, cache_dir=work / "cache-big")
    t0 = time.perf_counter()
    seed_versions(fresh, "big", versions, models[0])
    seed_s = time.perf_counter() - t0
    numbers = [timed(lambda: fresh.version_numbers("big")) for _ in range(5)]
    assert len(fresh.version_numbers("big")) == versions
    out[f"list {versions:,} version numbers"] = median_ms(numbers)
    t0 = time.perf_counter()
    got = fresh.versions("big")  # first listing: every manifest, then writes the index pages
    first_ms = (time.perf_counter() - t0) * 1000.0
    assert len(got) == versions
    out[f"list {versions:,} versions + manifests, first"] = f"{first_ms:.1f}"
    counter = RequestCounter(fresh.store)
    full = []
    for _ in range(5):
        counter.n = 0
        t0 = time.perf_counter()
        got = fresh.versions("big")
        full.append((time.perf_counter() - t0) * 1000.0)
        assert len(got) == versions
    out[f"list {versions:,} versions + manifests"] = median_ms(full)
    out[f"list {versions:,} versions + manifests: requests"] = str(counter.n)
    big_pub = [timed(partial(fresh.publish, f, "big")) for f in files[:5]]
    out[f"publish into a model with {versions:,} versions"] = median_ms(big_pub)
    out["(setup: seeding versions, s)"] = f"{seed_s:.1f}"
    reg.close()
    fresh.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=30, help="repetitions per row (default 30)")
    ap.add_argument("--versions", type=int, default=1000, help="versions for the listing rows")
    args = ap.parse_args()
    from tests.s3server import SeaweedFS, admin_identity

    admin = admin_identity()
    server = SeaweedFS(Path(tempfile.mkdtemp(prefix="bench-seaweedfs-")), [admin])
    server.start()
    try:
        os.environ.update(admin.env(server.endpoint))
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        models = [make_model_bytes(seed) for seed in range(args.n)]
        local_root = Path(tempfile.mkdtemp(prefix="bench-registry-")) / "registry"
        results = {
            "local folder": bench("local", str(local_root), args.n, args.versions, models),
            "S3 (SeaweedFS, loopback)": bench(
                "s3", "s3://bench/registry", args.n, args.versions, models
            ),
        }
    finally:
        server.stop()

    cols = list(results)
    rows = list(results[cols[0]])
    width = max(len(r) for r in rows) + 2
    print(
        f"registry benchmark: {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cpus; model file {len(models[0]) / 1024:.0f} KiB; ms unless noted"
    )
    col = max(22, *(len(c) + 2 for c in cols))
    print("".ljust(width) + "".join(c.rjust(col) for c in cols))
    for r in rows:
        print(r.ljust(width) + "".join(results[c][r].rjust(col) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
