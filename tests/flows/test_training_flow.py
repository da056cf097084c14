"""The training flow for real: Prefect's temporary test server, real MNIST, real registries.

Every test here runs the flow under the session's ``prefect_test_harness`` and reads the
outcome back the way a user would: from the registry (manifests, aliases, blobs) and
from the Prefect API (flow-run states, task runs, artifacts).
"""

from __future__ import annotations

import dataclasses
import http.server
import operator
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from prefect.exceptions import ParameterTypeError

from flows.records import Published
from flows.report import CONFUSION_KEY, REPORT_KEY
from flows.training import PER_CLASS_KEY, PROGRESS_KEY, prepare, training_pipeline
from registry import LocalStore, Registry
from softmax_core import settings
from softmax_core.errors import (
    DataNotFoundError,
    DownloadError,
    GateFailedError,
    InvalidNameError,
    ModelNotFoundError,
    StorageError,
)
from softmax_core.mnist import load_mnist
from softmax_core.preprocess import Steps
from softmax_core.requests import (
    Data,
    Gate,
    Hyper,
    Location,
    Retries,
    Target,
    TrainingRequest,
)
from softmax_core.train import evaluate
from softmax_core.version import code_version
from tests.training_runs import run_training_flow, training_request

pytestmark = pytest.mark.usefixtures("prefect_harness")


# --- helpers -----------------------------------------------------------------------------------


def _run(mnist_dir: Path, cache: Path, registry: str, **parts: Any) -> Any:
    """Run the flow on real MNIST (``parts``: the request's ``data``, ``hyper``, ``gate``,
    ``target``, ``retries``, ``endpoint_url``); its final state (never raises on a failed run)."""
    return run_training_flow(training_request(mnist_dir, cache, registry, **parts))


def _published(state: Any) -> Published:
    """The summary of a completed run that published."""
    assert state.is_completed(), state.message
    summary = state.result()
    assert isinstance(summary, Published), summary
    return summary


def _elsewhere(tmp_path: Path, data: Data, *, io_retries: int = 3) -> TrainingRequest:
    """A request on ``data`` (not the real MNIST folder), with its cache and registry in
    ``tmp_path``, retrying I/O ``io_retries`` times without a delay."""
    return TrainingRequest(
        data=data,
        target=Target(
            location=Location(registry=str(tmp_path / "reg"), cache_dir=str(tmp_path / "cache"))
        ),
        retries=Retries(io_retries=io_retries, io_retry_delay=0.0),
    )


def _flow_run(flow_run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def _artifacts(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    latest_last = sorted(found, key=operator.attrgetter("created"))
    return {a.key: a for a in latest_last if a.key}  # the latest


def _task_runs(flow_run_id: Any) -> dict[str, Any]:
    """Task runs of a flow run by task name ("ingest", "publish", ...)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


def _open(registry: str | Path, cache: Path, endpoint_url: str | None = None) -> Registry:
    return Registry.open(str(registry), endpoint_url=endpoint_url, cache_dir=cache)


# --- end to end --------------------------------------------------------------------------------


def test_end_to_end_local_registry(mnist_dir: Path, session_cache: Path, tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    state = _run(mnist_dir, session_cache, str(reg), hyper=Hyper(epochs=3, seed=7))
    summary = _published(state)
    flow_run_id = state.state_details.flow_run_id

    assert summary.ref == "mnist:1" and summary.promoted == "champion"
    assert summary.registry == str(reg)
    assert summary.lineage.flow_run_id == str(flow_run_id)
    doc = summary.to_json()  # what `run --json` prints: the summary as it always was
    assert (doc["skipped"], doc["ref"], doc["promoted"]) == (False, "mnist:1", "champion")
    assert doc["flow_run_id"] == str(flow_run_id) and doc["digest"] == summary.manifest.digest
    with _open(reg, session_cache) as r:
        [manifest] = r.versions("mnist")
        assert r.aliases("mnist") == {"champion": 1}
        pulled_manifest, model = r.load("mnist@champion")
    assert pulled_manifest == manifest
    assert manifest == summary.manifest

    ds = load_mnist(str(mnist_dir), cache_dir=session_cache)
    accuracy = evaluate(model, ds).accuracy
    assert accuracy >= 0.95
    decision = summary.evaluation.decision
    assert manifest.metrics["accuracy"] == pytest.approx(accuracy) == decision.accuracy
    assert summary.evaluation.report.accuracy == pytest.approx(accuracy)
    assert manifest.params["epochs"] == 3 and manifest.params["seed"] == 7
    assert manifest.data_digest == ds.digest
    assert manifest.code_version == code_version()
    assert manifest.preprocessing == {"steps": Steps.named(settings.FEATURES).to_json()}
    lineage = manifest.lineage
    assert lineage["flow_run_id"] == str(flow_run_id)
    assert lineage["flow"] == "training-pipeline"
    assert lineage["data_digest"] == ds.digest
    assert lineage["code_version"] == code_version()
    assert lineage["gate"]["passed"] is True and lineage["gate"]["champion"] is None
    assert lineage["warm_start_from"] is None

    flow_run = _flow_run(flow_run_id)
    assert flow_run.state.is_completed()
    # the request's parts, as the UI shows them
    assert list(flow_run.parameters) == ["data", "hyper", "gate", "target", "retries"]
    assert flow_run.parameters["target"]["location"]["registry"] == str(reg)
    assert flow_run.parameters["hyper"]["epochs"] == 3
    tasks = _task_runs(flow_run_id)
    assert set(tasks) == {
        "ingest", "pull-champion", "train", "evaluate", "publish", "promote", "publish-report"
    }  # fmt: skip
    assert all(t.state.is_completed() for t in tasks.values())


def test_artifacts_report_and_per_class_table(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    state = _run(mnist_dir, session_cache, str(tmp_path / "reg"), target=Target(action="publish"))
    summary = _published(state)
    arts = _artifacts(state.state_details.flow_run_id)
    assert set(arts) == {REPORT_KEY, PER_CLASS_KEY, PROGRESS_KEY}  # a folder: no image URL
    assert {REPORT_KEY, PER_CLASS_KEY, PROGRESS_KEY} == {
        "gate-report",
        "per-class",
        "training-progress",
    }
    progress = arts["training-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0  # every epoch done

    report = arts["gate-report"]
    assert report.type == "markdown"
    assert "gate passed" in report.data
    assert f"{summary.evaluation.decision.accuracy:.4f}" in report.data
    assert str(summary.lineage.flow_run_id) in report.data  # lineage section
    assert str(summary.lineage.data_digest) in report.data
    # The report page, beside the manifest, and the gate report's latest version links it.
    page = tmp_path / "reg" / "models" / "mnist" / "versions" / "00000001.html"
    # (the link text is escaped markdown, the destination quoted: softmax_core.escaping)
    assert f"[The report of mnist\\:1](<{page.as_uri()}>)" in report.data
    assert "presigned" not in report.data  # a file:// link does not expire
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "mnist:1" in html and "<script" not in html
    assert page.with_name("00000001.confusion.png").read_bytes().startswith(b"\x89PNG")

    table = arts["per-class"]
    assert table.type == "table"
    import json

    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    # the digits, then "not a digit" (MNIST has none: its support is 0)
    assert [row["class"] for row in rows] == list(range(11))
    assert sum(row["support"] for row in rows) == 10_000 and rows[10]["support"] == 0
    assert all(0.85 < row["recall"] <= 1.0 for row in rows[:10])
    with _open(tmp_path / "reg", session_cache) as r:
        assert r.aliases("mnist") == {}  # action="publish": published, no alias moved
    assert summary.promoted is None


@pytest.mark.slow
def test_end_to_end_s3_registry(
    mnist_dir: Path, session_cache: Path, s3_env: str, s3_bucket: str
) -> None:
    uri = f"s3://{s3_bucket}/team/registry"
    state = _run(mnist_dir, session_cache, uri, endpoint_url=s3_env, target=Target(name="digits"))
    summary = _published(state)
    assert summary.ref == "digits:1" and summary.registry == uri

    with _open(uri, session_cache, s3_env) as r:
        manifest = r.resolve("digits@champion")
        _, model = r.load("digits:1")
    assert manifest.lineage["flow_run_id"] == str(state.state_details.flow_run_id)
    assert manifest.metrics["accuracy"] >= 0.95
    assert model.W.shape == (Steps.named(settings.FEATURES).n_features, 11)  # "not a digit"

    # What the flow wrote is plain S3: visible to any client, under the prefix.
    s3 = boto3.client("s3", endpoint_url=s3_env)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert f"team/registry/blobs/sha256/{manifest.digest}.npz" in keys
    assert "team/registry/models/digits/versions/00000001.json" in keys
    assert "team/registry/models/digits/aliases/champion.json" in keys
    assert "team/registry/models/digits/versions/00000001.html" in keys

    # The report links are presigned: they open with no credentials, as a page.
    import urllib.request

    arts = _artifacts(state.state_details.flow_run_id)
    image = arts[CONFUSION_KEY]
    assert image.type == "image" and "X-Amz-Signature=" in image.data
    with urllib.request.urlopen(image.data, timeout=30) as resp:  # loopback: the S3 server
        assert resp.read().startswith(b"\x89PNG")
    link = re.search(r"\[The report of digits\\:1\]\(<(http[^>]+)>\)", arts[REPORT_KEY].data)
    assert link is not None and "works for 12 hours" in arts[REPORT_KEY].data
    for url in (image.data, link.group(1)):  # issue 27, item 3: hours, not a week
        assert f"X-Amz-Expires={settings.REPORT_URL_SECONDS}&" in url.replace("&amp;", "&")
    assert settings.REPORT_URL_SECONDS <= 24 * 3600
    with urllib.request.urlopen(link.group(1), timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        assert b"digits:1" in resp.read()


# --- the gate ----------------------------------------------------------------------------------


def test_floor_not_met_fails_the_run_and_publishes_nothing(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    state = _run(mnist_dir, session_cache, str(with_champion), gate=Gate(min_accuracy=0.995))
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError) and exc.exit_code == 5
    assert "below the floor 0.9950 by 0.0" in str(exc)
    assert "nothing was published" in str(exc)

    flow_run = _flow_run(state.state_details.flow_run_id)
    assert flow_run.state.is_failed()
    assert "below the floor 0.9950" in flow_run.state.message
    tasks = _task_runs(state.state_details.flow_run_id)
    assert "publish" not in tasks and "promote" not in tasks
    with _open(with_champion, session_cache) as r:
        assert r.version_numbers("mnist") == [1]
        assert r.aliases("mnist") == {"champion": 1}
    report = _artifacts(state.state_details.flow_run_id)["gate-report"].data
    assert "REFUSED (floor rule)" in report


def test_worse_challenger_refused_against_champion_with_the_margin(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    # One epoch on 1,200 images (2% of the training set): well above a 0.5 floor, but
    # worse than the champion beyond the margin on the same 10,000 test images.
    state = _run(
        mnist_dir,
        session_cache,
        str(with_champion),
        hyper=Hyper(epochs=1, limit=1200),
        gate=Gate(min_accuracy=0.5),
    )
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError)
    assert "gate refused the model: champion mnist:1 " in str(exc)
    assert "worse beyond the 0.5-point margin" in str(exc)
    assert "next step: lower --data-weight" in str(exc)

    with _open(with_champion, session_cache) as r:
        assert r.version_numbers("mnist") == [1]
        assert r.aliases("mnist") == {"champion": 1}
        champion_accuracy = r.resolve("mnist@champion").metrics["accuracy"]

    report = _artifacts(state.state_details.flow_run_id)["gate-report"].data
    assert "REFUSED (non-inferiority rule)" in report
    assert "champion (mnist\\:1)" in report  # escaped markdown
    assert f"{champion_accuracy:.4f}" in report
    p_line = next(line for line in report.splitlines() if "non-inferiority vs champion" in line)
    p_value = float(p_line.split("p = ")[1].split()[0])
    assert 0.0 <= p_value < 0.05


def test_better_or_equal_challenger_replaces_the_champion(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    state = _run(mnist_dir, session_cache, str(with_champion), hyper=Hyper(seed=1))
    summary = _published(state)
    assert summary.ref == "mnist:2" and summary.lineage.champion == "mnist:1"
    assert summary.to_json()["champion_before"] == "mnist:1"
    decision = summary.evaluation.decision
    assert decision.champion == "mnist:1" and decision.comparison == "within the margin"
    with _open(with_champion, session_cache) as r:
        assert r.aliases("mnist") == {"champion": 2}
        assert [rec.version for rec in r.history("mnist", "champion")] == [1, 2]
        assert r.resolve("mnist:2").lineage["champion"] == "mnist:1"


# --- warm start --------------------------------------------------------------------------------


@pytest.mark.slow
def test_warm_start_trains_from_the_champion(
    mnist_dir: Path, session_cache: Path, with_champion: Path, tmp_path: Path
) -> None:
    # 300 images, one epoch: from scratch that is far below the floor (86%); from the
    # champion's weights it stays near the champion. The accuracy proves which weights were
    # used. (Not 100: its 30 cluttered digits move the digits' columns in one SGD step that
    # the column "not a digit", refitted for one step, cannot follow; the gate then refuses
    # a model that rejects 32% of the held-out negatives.)
    few = Hyper(epochs=1, limit=300)
    rest: dict[str, Any] = {"gate": Gate(min_accuracy=0.9), "target": Target(action="publish")}
    cold = _run(mnist_dir, session_cache, str(with_champion), hyper=few, **rest)
    assert cold.is_failed()
    assert "below the floor" in str(cold.result(raise_on_failure=False))

    warm_hyper = dataclasses.replace(few, warm_start=True)
    warm = _run(mnist_dir, session_cache, str(with_champion), hyper=warm_hyper, **rest)
    summary = _published(warm)
    assert summary.lineage.warm_start_from == "mnist:1" and summary.ref == "mnist:2"
    assert summary.evaluation.decision.accuracy >= 0.9

    with _open(with_champion, tmp_path / "fresh-cache") as r:
        manifest, model = r.load("mnist:2")
    assert manifest.lineage["warm_start_from"] == "mnist:1"
    assert model.info.warm_start == "mnist:1"
    assert manifest.params["limit"] == 300


@pytest.mark.slow
def test_the_scheduled_retrain_warm_starts_an_eleven_class_model_from_a_ten_class_champion(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """After the upgrade, the weekly retrain (warm start, the default reject option) finds a
    10-class champion written before it: the challenger copies its digits' columns, the
    column "not a digit" starts at zero, and it is gated on its reject rates too."""
    reg = str(tmp_path / "reg")
    few = Hyper(features="pixels", epochs=1, limit=5000)
    loose = Gate(min_accuracy=0.8)
    old = _run(mnist_dir, session_cache, reg, data=Data(reject=False), hyper=few, gate=loose)
    assert _published(old).ref == "mnist:1"
    with _open(reg, tmp_path / "c1") as r:
        assert r.load("mnist:1")[1].n_classes == 10

    weekly = dataclasses.replace(few, warm_start=True)
    # (pixels on 5,000 images reject few: the point here is that it runs and is gated)
    lenient = Gate(min_accuracy=0.8, margin=0.05, max_reject_rate=0.05, min_negatives_rejected=0.05)
    summary = _published(_run(mnist_dir, session_cache, reg, hyper=weekly, gate=lenient))
    assert summary.ref == "mnist:2" and summary.lineage.warm_start_from == "mnist:1"
    evaluation = summary.evaluation
    assert evaluation.decision.reject_rate is not None and evaluation.negatives is not None
    assert evaluation.negatives.domain == "held-out negatives" and evaluation.negatives.passed
    with _open(reg, tmp_path / "c2") as r:
        _, champion = r.load("mnist:2")
    assert champion.n_classes == 11 and champion.info.warm_start == "mnist:1"

    # the same gate, strict about held-out negatives: refused, with what to do
    strict = dataclasses.replace(lenient, min_negatives_rejected=1.0)
    refused = _run(mnist_dir, session_cache, reg, hyper=weekly, gate=strict)
    assert refused.is_failed()
    message = str(refused.result(raise_on_failure=False))
    assert "gate refused the model on held-out negatives: it rejects" in message
    assert "--min-negatives-rejected" in message and "nothing was published" in message


def test_warm_start_without_champion_is_not_found(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    state = _run(mnist_dir, session_cache, str(tmp_path / "empty"), hyper=Hyper(warm_start=True))
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, ModelNotFoundError) and exc.exit_code == 3
    assert "--warm-start needs mnist@champion" in str(exc)


# --- failures of I/O ---------------------------------------------------------------------------


@pytest.mark.slow
def test_publish_failing_after_blob_upload_leaves_no_version_and_rerun_succeeds(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = tmp_path / "registry"
    real_put = LocalStore.put
    manifest_writes: list[str] = []

    def put_failing_on_manifests(self: LocalStore, key: str, data: bytes, **kw: Any) -> str:
        if "/versions/" in key:  # after the blob, when the version would become visible
            manifest_writes.append(key)
            raise StorageError(f"injected fault: connection reset while writing {key}")
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(LocalStore, "put", put_failing_on_manifests)
    state = _run(
        mnist_dir, session_cache, str(reg), retries=Retries(io_retries=1, io_retry_delay=0)
    )
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, StorageError) and "injected fault" in str(exc)
    assert manifest_writes == ["models/mnist/versions/00000001.json"] * 2  # tried, retried once
    assert _task_runs(state.state_details.flow_run_id)["publish"].run_count == 2

    with _open(reg, session_cache) as r:
        assert r.version_numbers("mnist") == []
        with pytest.raises(ModelNotFoundError):
            r.resolve("mnist@champion")
    blobs = list((reg / "blobs" / "sha256").glob("*.npz"))
    assert len(blobs) == 1  # the blob was uploaded before the fault: an orphan for gc

    monkeypatch.undo()
    state = _run(mnist_dir, session_cache, str(reg))
    assert _published(state).ref == "mnist:1"
    with _open(reg, session_cache) as r:
        manifest, model = r.load("mnist@champion")
    assert manifest.version == 1
    assert model.W.shape == (Steps.named(settings.FEATURES).n_features, 11)  # "not a digit"


class _Always500(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = b"upstream exploded"
        self.send_response(500, "Internal Server Error")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def failing_http() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering 500 to everything; yields (url, paths requested)."""
    requests: list[str] = []
    handler = type("Handler", (_Always500,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist.npz", requests
    finally:
        server.shutdown()
        server.server_close()


def test_download_error_is_retried_then_fails_clearly(
    tmp_path: Path, failing_http: tuple[str, list[str]]
) -> None:
    url, requests = failing_http
    request = _elsewhere(tmp_path, Data(source="download", download_url=url), io_retries=2)
    state = run_training_flow(request)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, DownloadError) and exc.exit_code == 4
    assert f"download {url} failed: HTTP 500" in str(exc)
    assert requests == ["/mnist.npz"] * 3  # the first try and two retries
    tasks = _task_runs(state.state_details.flow_run_id)
    assert tasks["ingest"].run_count == 3
    assert "train" not in tasks
    assert not (tmp_path / "reg").exists()


def test_a_download_host_that_does_not_resolve_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    real = socket.getaddrinfo
    asked: list[str] = []

    def no_such_host(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "mnist.example":  # only this name: the test server stays reachable
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    data = Data(source="download", download_url="http://mnist.example/mnist.npz")
    state = run_training_flow(_elsewhere(tmp_path, data, io_retries=3))
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, DownloadError) and "Name or service not known" in str(exc)
    assert asked == ["mnist.example"]  # asked once: not retried
    assert _task_runs(state.state_details.flow_run_id)["ingest"].run_count == 1


def test_missing_data_is_refused_before_any_task(tmp_path: Path) -> None:
    data = Data(source=str(tmp_path / "no-such-folder"))
    state = run_training_flow(_elsewhere(tmp_path, data, io_retries=3))
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, DataNotFoundError) and exc.exit_code == 3
    assert "no-such-folder" in str(exc)
    assert _task_runs(state.state_details.flow_run_id) == {}  # not even ingest: no retries


def test_a_missing_inbox_is_nothing_labelled_yet_for_the_flow_only(
    mnist_dir: Path, tmp_path: Path
) -> None:
    """The scheduled retraining may run before anyone made the inbox (serve makes it, a
    worker's may come later): the flow syncs nothing. ``softmax-pipe run``, where the
    folder was typed just now, refuses it (``flows.runner.run_training``)."""
    request = _elsewhere(tmp_path, Data(source=str(mnist_dir), inbox=str(tmp_path / "none")))
    assert prepare(request).data.inbox == str(tmp_path / "none")
    with pytest.raises(DataNotFoundError, match="none does not exist") as e:
        prepare(request, inbox_must_exist=True)
    assert e.value.exit_code == 3


def test_bad_model_name_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError, match=re.escape("model name '../evil'")) as e:
        Target(name="../evil")  # the request cannot even be built (the CLI: exit 2)
    assert e.value.exit_code == 2

    # What a deployment's run gets: its parameters as JSON, refused by the flow's schema.
    doc = dataclasses.asdict(_elsewhere(tmp_path, Data(source=str(tmp_path / "unused"))))
    doc["target"]["name"] = "../evil"
    state = training_pipeline(**doc, return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, ParameterTypeError)
    assert " - target: " in str(exc) and "model name '../evil'" in str(exc)
    assert _task_runs(state.state_details.flow_run_id) == {}
    assert not (tmp_path / "reg").exists()


@pytest.mark.slow
def test_same_seed_same_weights_across_runs(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    reg = str(tmp_path / "reg")
    for _ in range(2):
        state = _run(
            mnist_dir, session_cache, reg, hyper=Hyper(epochs=1), target=Target(action="publish")
        )
        assert state.is_completed(), state.message
    with _open(reg, session_cache) as r:
        a, b = r.versions("mnist")
        _, ma = r.load("mnist:1")
        _, mb = r.load("mnist:2")
    assert np.array_equal(ma.W, mb.W) and a.metrics["accuracy"] == b.metrics["accuracy"]
