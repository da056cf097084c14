"""Share-nothing scale-out: ``score s3://... --dask-address`` on a Dask scheduler and two
``dask worker`` processes started here, each in a temporary folder of its own, with the
images only in the object store (the local copy is deleted before the cluster runs).
The shards carry object keys; each worker fetches its own with its own client and the
credentials of its own environment (boto3's variables).

The rows are byte-identical to a local run of the same files; and when one worker is
SIGKILLed in the middle of a run, Dask gives its shards to the other and every row is
written once.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core.mnist import Dataset
from tests import scoring_data as sd
from tests.cli_invoke import invoke
from tests.conftest import S3_ADMIN
from tests.flows.prefect_stack import ProcessTracker, base_env, tail, wait_until
from tests.s3server import upload_tree

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.slow,  # two worker processes, and a model trained on the whole of MNIST
    pytest.mark.timeout(900),
]

N_DIGITS = 1500
BATCH = 32  # shards of one batch: many shards, so a worker dies holding some


@dataclass
class Cluster:
    address: str
    tracker: ProcessTracker

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=30)  # type: ignore[no-untyped-call]


@pytest.fixture
def cluster(tmp_path: Path, s3_env: str) -> Iterator[Cluster]:
    """``dask scheduler`` and two ``dask worker`` processes on loopback, each in its own
    folder (its HOME and working directory) with only the S3 variables of a user."""
    tracker = ProcessTracker(tmp_path / "dask-logs")
    dask = str(Path(sys.executable).parent / "dask")
    sched_dir = tmp_path / "scheduler"
    sched_dir.mkdir()
    sched_file = sched_dir / "scheduler.json"
    try:
        argv = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        argv += ["--scheduler-file", str(sched_file)]
        tracker.start("scheduler", argv, base_env(sched_dir), cwd=sched_dir)
        address: str = wait_until(
            "the Dask scheduler's address",
            lambda: (
                sched_file.is_file() and json.loads(sched_file.read_text() or "{}").get("address")
            ),
            timeout=120,
            on_timeout=lambda: tail(tracker.log("scheduler")),
        )
        for name in ("w1", "w2"):
            home = tmp_path / name
            home.mkdir()
            env = {**base_env(home), **S3_ADMIN.env(s3_env), "TMPDIR": str(home)}
            argv = [dask, "worker", address, "--name", name, "--nworkers", "1", "--nthreads", "1"]
            argv += ["--no-dashboard", "--local-directory", str(home / "dask")]
            argv += ["--death-timeout", "60"]
            tracker.start(name, argv, env, cwd=home)
        c = Cluster(address, tracker)
        with c.client() as client:
            client.wait_for_workers(2, timeout=180)
        yield c
    finally:
        tracker.stop_all()
        assert not tracker.survivors()


@pytest.fixture
def images(tmp_path: Path, mnist_dir: Path, session_cache: Path) -> Path:
    """1,500 real test digits, a few as users' files, and broken ones (regular files)."""
    ds: Dataset = sd.mnist(mnist_dir, session_cache)
    folder = tmp_path / "images"
    sd.write_pngs(folder / "mnist", ds.x_test[:N_DIGITS], ds.y_test[:N_DIGITS])
    sd.write_transformed(folder / "users", ds.x_test, ds.y_test, range(0, 400, 40))
    (folder / "bad").mkdir()
    (folder / "bad" / "empty.png").write_bytes(b"")
    (folder / "bad" / "notes.jpg").write_text("not a JPEG\n")
    (folder / "bad" / "blank.png").write_bytes(sd.png_bytes(np.full((28, 28), 255, np.uint8)))
    return folder


@pytest.fixture
def model(mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.trained_model(mnist_dir, session_cache, tmp_path_factory)


def test_two_workers_sharing_only_the_object_store(
    cluster: Cluster, images: Path, model: Path, s3_bucket: str, s3_env: str, tmp_path: Path
) -> None:
    local = tmp_path / "local.csv"
    common = ["-m", model, "--probs", "--batch-size", BATCH]
    code, _, err = invoke("score", images, *common, "-o", local)
    assert code == 1, err  # the broken files are error rows
    client = S3_ADMIN.client(s3_env)
    upload_tree(client, images, s3_bucket, "in/")
    shutil.rmtree(images)  # from here on the images exist only in the object store

    dasked = tmp_path / "dask.csv"
    on_dask = [*common, "--dask-address", cluster.address, "--shard-size", BATCH]
    code, _, err = invoke("score", f"s3://{s3_bucket}/in/", *on_dask, "-o", dasked)
    assert code == 1, err
    assert dasked.read_bytes() == local.read_bytes()
    with cluster.client() as c:  # both workers took shards
        counts = c.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert len(counts) == 2 and all(n > 0 for n in counts.values()), counts

    # one worker dies in the middle of a run: its shards go to the other, rows once each
    out = f"s3://{s3_bucket}/out/scores.csv"
    done: dict[str, Any] = {}
    run = threading.Thread(
        target=lambda: done.update(
            result=invoke("score", f"s3://{s3_bucket}/in/", *on_dask, "-o", out)
        )
    )
    run.start()
    try:
        with cluster.client() as c:
            wait_until(
                "worker w1 to be scoring a shard",
                lambda: any(c.processing().get(w) for w in _address_of(c, "w1")),
                timeout=300,
                interval=0.05,
            )
        cluster.tracker.kill_tree("w1")
    finally:
        run.join(timeout=600)
    assert not run.is_alive()
    code, _, err = done["result"]
    assert code == 1, err
    written = client.get_object(Bucket=s3_bucket, Key="out/scores.csv")["Body"].read()
    assert written == local.read_bytes()  # every row, once, in the walk's order
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]]
    assert keys == ["out/scores.csv"]  # no temporary key left
    client.close()


def _address_of(client: Any, name: str) -> list[str]:
    info = client.scheduler_info()["workers"]
    return [addr for addr, w in info.items() if w.get("name") == name]
