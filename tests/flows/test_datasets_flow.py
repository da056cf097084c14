"""The training flow with the users' data: datasets, a gate per domain, the labelled inbox,
and "nothing new to learn" (real Prefect test server, real MNIST, a real local registry)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from flows.records import Skipped
from registry import Registry, layout
from softmax_core.errors import GateFailedError
from softmax_core.requests import Data, Gate, Hyper, Target
from tests.flows.test_training_flow import _artifacts, _published, _run, _task_runs
from tests.printed_digits import write_printed

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_printed(tmp_path_factory.mktemp("printed") / "p", 30, seed=31)


def test_trains_on_a_dataset_and_gates_its_holdout(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, printed: Path
) -> None:
    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=session_cache) as r:
        m = r.add_folder("printed", printed)[0].manifest
    data = Data(datasets=("printed",), data_weight=5)
    state = _run(mnist_dir, session_cache, str(reg), data=data)
    summary = _published(state)
    [printed_gate] = summary.evaluation.domains
    assert printed_gate.domain == "printed" and printed_gate.n == m.holdout
    assert printed_gate.accuracy >= 0.9
    assert summary.to_json()["domains"]["printed"]["n"] == m.holdout
    assert summary.lineage.datasets == (m.lineage(),)
    with Registry.open(str(reg), cache_dir=session_cache) as r:
        published = r.resolve("mnist@champion")
        page = r.store.get(layout.report_key("mnist", published.version))[0].decode()
    # the page the flow stores shows the dataset's holdout and the gate on it
    assert 'id="your-data"' in page and "printed holdout" in page
    assert f"{printed_gate.accuracy:.4f}" in page
    assert published.lineage["datasets"] == [dataclasses.asdict(m.lineage())]
    assert published.lineage["data_weight"] == 5 and published.params["data_weight"] == 5
    assert published.metrics["domains"]["printed"]["accuracy"] == printed_gate.accuracy
    report = _artifacts(state.state_details.flow_run_id)["gate-report"].data
    assert "## Gate per domain" in report and "| printed |" in report


def test_a_domain_below_its_floor_is_refused_by_name(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, printed: Path
) -> None:
    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=session_cache) as r:
        r.add_folder("printed", printed)
    state = _run(
        mnist_dir,
        session_cache,
        str(reg),
        data=Data(datasets=("printed:1",), data_weight=1),
        hyper=Hyper(epochs=1),
        gate=Gate(min_dataset_accuracy=1.0),
    )
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, GateFailedError)
    assert "gate refused the model on printed: accuracy" in str(exc)
    assert "below the floor 1.0000" in str(exc) and "nothing was published" in str(exc)
    assert "publish" not in _task_runs(state.state_details.flow_run_id)
    report = _artifacts(state.state_details.flow_run_id)["gate-report"].data
    assert "REFUSED (floor rule on printed)" in report


@pytest.mark.slow
def test_the_inbox_is_synced_and_nothing_new_trains_nothing(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, printed: Path
) -> None:
    reg, inbox = tmp_path / "reg", tmp_path / "labelled"
    inbox.mkdir()  # nothing labelled yet
    common: dict[str, Any] = {
        "data": Data(inbox=str(inbox), skip_unchanged=True),
        "hyper": Hyper(epochs=2),
    }

    first = _published(_run(mnist_dir, session_cache, str(reg), **common))
    assert first.ref == "mnist:1" and first.lineage.datasets == ()
    assert first.to_json()["datasets"] == []

    shutil.copytree(printed, inbox, dirs_exist_ok=True)  # labelled images arrive
    s2 = _published(_run(mnist_dir, session_cache, str(reg), **common))
    assert s2.ref == "mnist:2" and s2.lineage.datasets[0].name == "inbox"
    assert s2.to_json()["datasets"][0]["name"] == "inbox"
    [inbox_gate] = s2.evaluation.domains
    assert inbox_gate.domain == "inbox" and inbox_gate.champion_accuracy is not None
    assert inbox_gate.accuracy > inbox_gate.champion_accuracy

    third = _run(mnist_dir, session_cache, str(reg), **common)
    assert third.is_completed(), third.message
    skipped = third.result()
    assert skipped == Skipped(registry=str(reg), name="mnist", champion="mnist:2")
    assert skipped.to_json() == {
        "skipped": True,
        "reason": "nothing new to learn",
        "registry": str(reg),
        "name": "mnist",
        "champion": "mnist:2",
        "awaiting": None,
        "rejected": None,
    }
    assert "train" not in _task_runs(third.state_details.flow_run_id)
    with Registry.open(str(reg), cache_dir=session_cache) as r:
        assert r.version_numbers("mnist") == [1, 2]
        assert [v.version for v in r.dataset_versions("inbox")] == [1]

    # other parameters are something new to try: it trains (and the gate decides)
    fourth = _run(mnist_dir, session_cache, str(reg), **{**common, "hyper": Hyper(epochs=3)})
    assert "train" in _task_runs(fourth.state_details.flow_run_id)


def test_a_version_awaiting_approval_with_the_same_data_is_nothing_new(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """Under ``request`` (the deployment's retraining) the champion stays until an approver
    moves it: a second run with the same data and code published mnist:2 and requested it
    too, and a third mnist:3, one request more each week. Now it is "nothing new to learn"
    against the version awaiting approval."""
    reg = str(tmp_path / "reg")
    common: dict[str, Any] = {
        "data": Data(skip_unchanged=True),
        "hyper": Hyper(epochs=1),
        "target": Target(action="request"),
    }
    assert _published(_run(mnist_dir, session_cache, reg, **common)).ref == "mnist:1"
    again = _run(mnist_dir, session_cache, reg, **common)
    assert again.is_completed(), again.message
    skipped = again.result()
    assert skipped == Skipped(
        registry=reg, name="mnist", champion=None, awaiting="mnist:1 (request #1)"
    )
    assert "train" not in _task_runs(again.state_details.flow_run_id)
    with Registry.open(reg, cache_dir=session_cache) as r:
        assert r.version_numbers("mnist") == [1]
        assert [p.request.seq for p in r.requests("mnist")] == [1]


def test_a_rejected_version_with_the_same_data_is_nothing_new(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """The approver rejected mnist:1; the next scheduled run, with the same data and code,
    trained, published mnist:2 (the same model) and requested it: the person had already
    said no to exactly this. Now it is "nothing new to learn" against the rejected one."""
    reg = str(tmp_path / "reg")
    common: dict[str, Any] = {
        "data": Data(skip_unchanged=True),
        "hyper": Hyper(epochs=1),
        "target": Target(action="request"),
    }
    assert _published(_run(mnist_dir, session_cache, reg, **common)).ref == "mnist:1"
    with Registry.open(reg, cache_dir=session_cache) as r:
        r.reject("mnist", 1, "champion", by="carol", comment="no")
    again = _run(mnist_dir, session_cache, reg, **common)
    assert again.is_completed(), again.message
    skipped = again.result()
    assert skipped == Skipped(
        registry=reg, name="mnist", champion=None, rejected="mnist:1 (request #1)"
    )
    assert skipped.message == (
        "nothing new to learn: mnist:1 (request #1) was rejected with this data and code"
    )
    assert "train" not in _task_runs(again.state_details.flow_run_id)
    with Registry.open(reg, cache_dir=session_cache) as r:
        assert r.version_numbers("mnist") == [1]
        assert [p.request.seq for p in r.requests("mnist", closed=True)] == [1]

    # the last word on this data and code counts: mnist:2, the same, requested and then
    # approved; the alias moved on to another model since: a run with this data and code
    # trains again (it said "mnist:1 was rejected", an older word)
    fresh = {**common, "data": Data(skip_unchanged=False)}
    assert _published(_run(mnist_dir, session_cache, reg, **fresh)).ref == "mnist:2"
    with Registry.open(reg, cache_dir=session_cache) as r:
        r.approve("mnist", 2, "champion", by="dave")
    other = {"hyper": Hyper(epochs=2), "target": Target(action="promote")}
    assert _published(_run(mnist_dir, session_cache, reg, **other)).ref == "mnist:3"
    last = _run(mnist_dir, session_cache, reg, **common)
    assert last.is_completed(), last.message
    assert "train" in _task_runs(last.state_details.flow_run_id)


@pytest.mark.timeout(120)  # the inbox read used to hang on the FIFO: fail, never hang
def test_an_inbox_with_a_fifo_or_a_device_link_is_synced_without_them(
    session_cache: Path, tmp_path: Path, printed: Path
) -> None:
    """``run --inbox`` (the scheduled retraining) reads the inbox like ``dataset add``:
    a FIFO, a link to /dev/zero and a dangling link are left out, the rest is synced."""
    import os

    from prefect.logging import disable_run_logger

    from flows.datasets import sync_inbox
    from softmax_core.requests import Location

    inbox = tmp_path / "labelled"
    shutil.copytree(printed, inbox)
    os.mkfifo(inbox / "3" / "fifo.png")
    (inbox / "4" / "zero.png").symlink_to("/dev/zero")
    (inbox / "5" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    location = Location(registry=str(tmp_path / "reg"), cache_dir=str(session_cache))
    with disable_run_logger():
        ref = sync_inbox.fn(location, str(inbox), "inbox")
    assert ref == "inbox:1"
    with Registry.open(str(tmp_path / "reg"), cache_dir=session_cache) as r:
        assert r.resolve_dataset("inbox").count == 300
