"""S3 benchmark: scoring from SeaweedFS against local disk and on a Dask cluster, the raw
download rate as the peer, registry latency on a folder and on SeaweedFS, and the
registry check's wall time. One run, one table.

    .venv/bin/python benchmarks/s3.py [--n 10000] [--workdir DIR] [--keep]

- A realistic mixed folder of ``--n`` files (``benchmarks/_folders.realistic``: plain
  crops, the transformed copies, 300-dpi grey scans, bilevel G4 scans, 12 MP phone
  photos), scored by the default model (hog features, trained here on MNIST's 60,000):
  from local disk with the local pool (2 workers); from SeaweedFS (``weed server -s3``
  on loopback, the suite's server: tests/s3server.py) with the local pool, with and
  without read-ahead; the same behind a proxy that adds ``--latency`` (20 ms) to every
  request, as a server in another building would (what read-ahead is for: a few GETs in
  flight per worker); and from SeaweedFS on a Dask cluster of 1 and of 2 ``dask worker``
  processes (one thread each; the flow ``batch-scoring``, shards of 512 keys). images/s
  is the flow's or the command's own count over its own time (listing included).
- The peer: the same objects downloaded raw, one ``get_object`` per key, in 2 processes
  with a client each: what the object store can hand out here, with nothing decoded.
- Registry latency, median of ``--reps``: publish and cold pull of the trained model on
  a local folder and on SeaweedFS (after a first write, so the check is remembered).
- ``registry check`` wall time on each (median of 3).

The box it runs on is shared: the table's header says the load average at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import _folders  # noqa: E402

DEFAULT_MNIST = Path(os.environ.get("SOFTMAX_PIPE_MNIST") or REPO.parent / "shared/data/mnist")
BUCKET = "bench"
WORKERS = 2
SHARD = 512


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- the raw download peer ------------------------------------------------------------------


def _download(keys: list[str], endpoint: str | None = None) -> tuple[int, int]:
    """One process: its own client, one GET per key, every body read. (objects, bytes)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    total = 0
    for key in keys:
        total += len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return len(keys), total


def raw_download(keys: list[str], processes: int, endpoint: str | None = None) -> tuple[float, int]:
    """(seconds, bytes) to download every key once, split over ``processes``."""
    parts = [keys[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        pool.submit(int).result()  # the processes are up before the clock starts
        t0 = time.perf_counter()
        done = list(pool.map(_download, parts, [endpoint] * processes))
        seconds = time.perf_counter() - t0
    return seconds, sum(b for _, b in done)


# --- a server farther away -----------------------------------------------------------------

_FAR = """
import sys
from tests.s3proxy import StrippingProxy
from tests.s3server import admin_identity
identity = admin_identity(access_key=sys.argv[3], secret_key=sys.argv[4])
with StrippingProxy(sys.argv[1], identity, strip=(), delay=float(sys.argv[2])) as proxy:
    print(proxy.endpoint, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def farther(upstream: str, delay: float) -> Iterator[str]:
    """``upstream`` behind a proxy (a process of its own: no GIL shared with the client)
    that adds ``delay`` seconds to every request; yields its endpoint."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", _FAR, upstream, str(delay)]
    argv += [os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- a Dask cluster -------------------------------------------------------------------------


@contextlib.contextmanager
def dask_cluster(work: Path, workers: int) -> Iterator[str]:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes (1 thread each), each in a
    folder of its own with the S3 variables of this process; yields the address."""
    dask = str(Path(sys.executable).parent / "dask")
    root = Path(tempfile.mkdtemp(prefix=f"dask-{workers}-", dir=work))
    sched_file = root / "scheduler.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    argv = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    argv += ["--scheduler-file", str(sched_file)]
    procs = [subprocess.Popen(argv, cwd=root, env=env, **quiet)]
    try:
        deadline = time.monotonic() + 120
        while not (sched_file.is_file() and sched_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError("the Dask scheduler did not start in 120 s")
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(workers):
            home = root / f"w{i}"
            home.mkdir()
            argv = [dask, "worker", address, "--nthreads", "1", "--no-dashboard"]
            argv += ["--local-directory", str(home)]
            own = {**env, "HOME": str(home), "TMPDIR": str(home)}
            procs.append(subprocess.Popen(argv, cwd=home, env=own, **quiet))
        from distributed import Client

        with Client(address, timeout=60) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(workers, timeout=180)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000, help="files in the realistic folder")
    ap.add_argument("--reps", type=int, default=20, help="repetitions of the latency rows")
    ap.add_argument("--mnist", default=str(DEFAULT_MNIST))
    ap.add_argument("--workdir", default=None, help="where the folder and servers live")
    ap.add_argument("--keep", action="store_true", help="reuse/keep --workdir's folder")
    ap.add_argument(
        "--latency", type=float, default=0.02, help="seconds added per request, farther rows"
    )
    args = ap.parse_args()
    load = os.getloadavg()[0]

    from tests.s3server import SeaweedFS, admin_identity

    work = Path(args.workdir or tempfile.mkdtemp(prefix="s3-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    admin = admin_identity()
    server = SeaweedFS(work / f"seaweedfs-{os.getpid()}", [admin])
    server.start()
    os.environ.update(admin.env(server.endpoint))
    try:
        return run(args, work, server.endpoint, load)
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, endpoint: str, load: float) -> int:
    import boto3
    from prefect.testing.utilities import prefect_test_harness

    from flows.scoring import run_batch_scoring
    from registry import Registry, open_model
    from registry.objects import ObjectReader, ObjectSource
    from softmax_core import scoring
    from softmax_core.mnist import load_mnist
    from softmax_core.requests import Hyper, ModelRef, Output, Performance, ScoringRequest
    from softmax_core.train import train
    from tests.s3server import upload_tree

    ds = load_mnist(args.mnist, cache_dir=work / "mnist-cache")
    model_path = train(ds, Hyper(seed=0)).save(work / "model.npz")
    model = open_model(ModelRef(str(model_path)))  # as the command and the flow load it
    folder = work / f"realistic-{args.n}"
    if not (args.keep and folder.is_dir()):
        shutil.rmtree(folder, ignore_errors=True)
        _folders.realistic(folder, ds.x_test, ds.y_test, args.n)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    print(f"folder: {len(files):,} files, {size / 1e6:,.0f} MB, {_folders.counts(folder)}")

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    t_up = timed(lambda: upload_tree(client, folder, BUCKET, "images/"))
    print(f"uploaded to SeaweedFS in {t_up:.0f} s", flush=True)
    uri = f"s3://{BUCKET}/images/"
    out = work / "scores.csv"

    def request(source: str, **perf: Any) -> ScoringRequest:
        return ScoringRequest(
            source,
            ModelRef(str(model_path)),
            Output(str(out)),
            Performance(workers=WORKERS, shard_size=SHARD, **perf),
        )

    rows: list[tuple[str, str]] = []

    def rate(label: str, summary: Any) -> None:
        rows.append((label, f"{summary.total / summary.seconds:,.0f} images/s"))
        print(rows[-1], flush=True)

    local = scoring.score(request(str(folder)), model)
    rate(f"score {local.total:,} files from local disk, local pool ({WORKERS} workers)", local)
    reference = out.read_bytes()
    s3 = scoring.score(request(uri), model, source=ObjectSource(uri))
    assert out.read_bytes() == reference
    rate(f"same from SeaweedFS, local pool ({WORKERS} workers)", s3)
    no_ahead = ObjectSource(uri)
    no_ahead.reader = ObjectReader(BUCKET, ahead=1)
    plain = scoring.score(request(uri), model, source=no_ahead)
    rate("  same, no read-ahead (one GET at a time per worker)", plain)
    ms = int(args.latency * 1000)
    with farther(endpoint, args.latency) as far:
        remote = scoring.score(request(uri), model, source=ObjectSource(uri, endpoint_url=far))
        assert out.read_bytes() == reference
        rate(f"same from SeaweedFS {ms} ms farther away, local pool", remote)
        one_by_one = ObjectSource(uri, endpoint_url=far)
        one_by_one.reader = ObjectReader(BUCKET, far, ahead=1)
        rate("  same, no read-ahead", scoring.score(request(uri), model, source=one_by_one))
        keys = [f"images/{p.relative_to(folder).as_posix()}" for p in files]
        seconds, got = raw_download(keys, WORKERS, far)
        assert got == size
        rows.append(
            (
                f"  peer: raw download {ms} ms farther away, {WORKERS} processes, one GET per key",
                f"{len(keys) / seconds:,.0f} objects/s ({got / seconds / 1e6:,.0f} MB/s)",
            )
        )
    with prefect_test_harness(server_startup_timeout=120):
        for n in (1, 2):
            with dask_cluster(work, n) as address:
                warm = request(f"s3://{BUCKET}/images/plain-28x28/")
                run_batch_scoring(warm, dask_address=address)  # imports done on the workers
                dasked = run_batch_scoring(request(uri), dask_address=address)
                if out.read_bytes() != reference:
                    (work / "reference.csv").write_bytes(reference)
                    raise AssertionError(f"Dask rows differ: diff {work}/reference.csv {out}")
                rate(f"same from SeaweedFS, Dask cluster of {n} worker(s), flow", dasked)
    keys = [f"images/{p.relative_to(folder).as_posix()}" for p in files]
    seconds, got = raw_download(keys, WORKERS)
    assert got == size
    rows.append(
        (
            f"peer: raw download of the same objects, {WORKERS} processes, one GET per key",
            f"{len(keys) / seconds:,.0f} objects/s ({got / seconds / 1e6:,.0f} MB/s)",
        )
    )
    print(rows[-1], flush=True)

    for kind, reg_uri in (
        ("local folder", str(work / f"registry-{os.getpid()}")),
        ("SeaweedFS", f"s3://{BUCKET}/registry"),
    ):
        with Registry.open(reg_uri, cache_dir=work / f"cache-{kind}") as reg:
            checks = [reg.check().seconds for _ in range(3)]
            reg.publish(model_path, "bench")  # the first write (the check is remembered)
            pubs = [timed(partial(reg.publish, model_path, "bench")) for _ in range(args.reps)]
            pulls = []
            for v in range(2, args.reps + 2):
                reg.cache_dir = work / f"cold-{kind}-{v}"
                pulls.append(timed(partial(reg.pull, f"bench:{v}")))
        kib = model_path.stat().st_size / 1024
        rows.append(
            (f"publish ({kib:.0f} KiB), {kind}", f"{statistics.median(pubs) * 1000:.1f} ms")
        )
        rows.append((f"pull, cold, {kind}", f"{statistics.median(pulls) * 1000:.1f} ms"))
        rows.append((f"registry check, {kind}", f"{statistics.median(checks):.2f} s"))
        for row in rows[-3:]:
            print(row, flush=True)

    print()
    print(
        f"s3 benchmark: Python {platform.python_version()}, {os.cpu_count()} cpus, load "
        f"average {load:.1f} at the start; SeaweedFS {endpoint} (loopback); "
        f"{len(files):,} files, {size / 1e6:,.0f} MB"
    )
    width = max(len(r[0]) for r in rows) + 2
    for label, value in rows:
        print(label.ljust(width) + value.rjust(34))
    return 0


if __name__ == "__main__":
    sys.exit(main())
