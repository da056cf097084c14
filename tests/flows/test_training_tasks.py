"""The training flow's pieces without a flow run: task bodies through ``.fn``, retry rules,
retry options and the report artifacts' content."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prefect.client.schemas.objects import State
from prefect.logging import disable_run_logger
from prefect.states import Failed

from flows._common import (
    DOWNLOAD_RETRY,
    STORAGE_RETRY,
    exception_of,
    io_retry_options,
    is_unresolved_host,
)
from flows.publishing import promote_model, publish_model
from flows.records import PUBLISHED, Champion, Evaluation
from flows.report import gate_report_markdown, per_class_rows, published_metrics
from flows.training import evaluate_model, ingest, pull_champion, train_model
from registry import LocalStore, Manifest, Registry
from registry.store import ObjectInfo
from softmax_core import gate
from softmax_core.errors import (
    CorruptObjectError,
    DataNotFoundError,
    DownloadError,
    IntegrityError,
    InvalidInputError,
    PreconditionFailedError,
    StorageError,
)
from softmax_core.lineage import DatasetLineage, Lineage
from softmax_core.metrics import ClassMetrics, EvaluationReport
from softmax_core.mnist import Dataset
from softmax_core.model import Model
from softmax_core.requests import Data, Gate, Hyper, Location, Retries, Target


@pytest.fixture(autouse=True)
def _no_run_logger() -> Iterator[None]:
    """Task bodies log through get_run_logger(); outside a run that is a null logger."""
    with disable_run_logger():
        yield


def _mnist(mnist_dir: Path) -> Data:
    return Data(source=str(mnist_dir))


def _cache(path: Path) -> Location:
    return Location(cache_dir=str(path))


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    with disable_run_logger():
        return ingest.fn(_mnist(mnist_dir), _cache(session_cache))


@pytest.fixture(scope="module")
def small_model(ds: Dataset) -> Model:
    hyper = Hyper(features="deskew", limit=3000, epochs=2, seed=3)
    with disable_run_logger():
        return train_model.fn(ds, hyper, Data(), init=None, extra=[])


# --- retry rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "download", "storage"),
    [
        (DownloadError("HTTP 503"), True, True),
        (StorageError("connection reset"), False, True),
        (PreconditionFailedError("etag changed"), False, True),
        (IntegrityError("sha256 mismatch"), False, False),
        (CorruptObjectError("not JSON"), False, False),
        (DataNotFoundError("no folder"), False, False),
        (InvalidInputError("bad epochs"), False, False),
        (ValueError("a bug"), False, False),
    ],
)
def test_retry_conditions(exc: Exception, download: bool, storage: bool) -> None:
    state: State[Any] = Failed(data=exc)
    assert exception_of(state) is exc
    assert DOWNLOAD_RETRY(None, None, state) is download  # type: ignore[arg-type]
    assert STORAGE_RETRY(None, None, state) is storage  # type: ignore[arg-type]


def test_a_host_that_does_not_resolve_is_not_retried() -> None:
    import socket

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as e:
            raise StorageError("cannot reach s3.nowhere.invalid") from e
    except StorageError as chained:
        dns = chained
    assert is_unresolved_host(dns)
    assert STORAGE_RETRY(None, None, Failed(data=dns)) is False  # type: ignore[arg-type]
    text_only = DownloadError(
        "download failed: <urlopen error [Errno -2] Name or service not known>"
    )
    assert DOWNLOAD_RETRY(None, None, Failed(data=text_only)) is False  # type: ignore[arg-type]
    refused = StorageError("connection refused")
    assert not is_unresolved_host(refused)
    assert STORAGE_RETRY(None, None, Failed(data=refused)) is True  # type: ignore[arg-type]


def test_retry_condition_without_an_exception_does_not_retry() -> None:
    assert STORAGE_RETRY(None, None, Failed(message="no exception attached")) is False  # type: ignore[arg-type]
    assert "StorageError unless IntegrityError" in repr(STORAGE_RETRY)


def test_io_retry_options_are_prefects_exponential_backoff() -> None:
    def delays(retries: int, delay: float) -> object:
        options = io_retry_options(Retries(io_retries=retries, io_retry_delay=delay))
        return publish_model.with_options(**options).retry_delay_seconds

    assert io_retry_options(Retries(io_retries=3, io_retry_delay=2.0))["retries"] == 3
    assert delays(3, 2.0) == [2.0, 4.0, 8.0]
    assert delays(2, 0) == [0.0, 0.0]
    assert delays(0, 5.0) == []
    with pytest.raises(InvalidInputError, match="io_retries=-1"):
        Retries(io_retries=-1, io_retry_delay=1.0)
    with pytest.raises(InvalidInputError, match="io_retry_delay=-2"):
        Retries(io_retries=1, io_retry_delay=-2.0)


# --- task bodies -----------------------------------------------------------------------------


def test_ingest_fn_is_a_cache_hit_the_second_time(
    ds: Dataset, mnist_dir: Path, session_cache: Path
) -> None:
    again = ingest.fn(_mnist(mnist_dir), _cache(session_cache))
    assert again.cached and again.digest == ds.digest
    assert again.x_train.shape == (60_000, 28, 28) and again.y_test.shape == (10_000,)


def test_ingest_fn_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        ingest.fn(Data(source=str(tmp_path / "nothing-here")), _cache(tmp_path / "cache"))


def test_train_fn_records_params_and_time(small_model: Model, ds: Dataset) -> None:
    info = small_model.info
    assert info.params["limit"] == 3000 and info.params["features"] == "deskew"
    assert info.params["epochs"] == 2 and info.params["seed"] == 3
    assert info.data_digest == ds.digest
    assert info.train_seconds is not None and info.train_seconds >= 0
    assert info.warm_start is None


def test_train_fn_warm_start_keeps_the_init_weights_origin(small_model: Model, ds: Dataset) -> None:
    init = small_model.evolve(ref="m:4")  # as pulled from the registry: its version
    hyper = Hyper(features="deskew", limit=500, epochs=1, warm_start=True)
    model = train_model.fn(ds, hyper, Data(), init=init, extra=[])
    assert model.info.warm_start == "m:4"
    assert not np.array_equal(model.W, small_model.W)


def test_train_fn_refuses_weights_no_command_would_load(ds: Dataset) -> None:
    """run's train task: a model over modelcheck's bound is a divergence, not a model that
    the gate, publish and score then refuse (or, with a lower floor, publish)."""
    hyper = Hyper(features="pixels", limit=2000, epochs=1, learning_rate=20000)
    with pytest.raises(InvalidInputError, match=r"diverged at epoch 1 \(weights reach"):
        train_model.fn(ds, hyper, Data(reject=False), init=None, extra=[])


def test_evaluate_fn_gates_against_floor_and_champion(
    prefect_harness: None, small_model: Model, ds: Dataset
) -> None:
    from prefect import flow

    worse = small_model.evolve(W=small_model.W * 0.0)
    manifest = SimpleNamespace(ref="m:1")  # all the gate reads of the champion's manifest
    champion = Champion("m@champion", manifest, small_model)  # type: ignore[arg-type]

    # The task body, called inside a bare flow run: artifacts belong to a run.
    @flow
    def body() -> tuple[Evaluation, Evaluation]:
        floor = evaluate_model.fn(
            small_model,
            ds,
            Gate(min_accuracy=0.999, alpha=0.05),
            champion=None,
            lineage=Lineage(flow_run_id="k"),
            user_data=[],
        )
        vs = evaluate_model.fn(
            worse,
            ds,
            Gate(min_accuracy=0.0, alpha=0.05),
            champion=champion,
            lineage=Lineage(),
            user_data=[],
        )
        return floor, vs

    floor, vs = body()
    assert floor.decision.rule == "floor" and floor.domains == ()
    assert floor.report.accuracy == pytest.approx(floor.decision.accuracy)
    assert floor.report.n == 10_000 and len(floor.report.per_class) == 11  # and "not a digit"
    assert vs.decision.rule == "non-inferiority" and vs.decision.champion == "m:1"
    assert vs.decision.p_worse is not None and vs.decision.p_worse < 1e-10


def test_publish_promote_and_pull_champion_fn(small_model: Model, tmp_path: Path) -> None:
    where = Location(registry=str(tmp_path / "reg"), cache_dir=str(tmp_path / "cache"))
    target = Target(location=where, name="m", alias="champion")
    assert pull_champion.fn(target) is None

    lineage = Lineage(flow_run_id="1234", code_version="test-code", extra={"extra": [1, 2]})
    manifest = publish_model.fn(target, small_model, metrics={"accuracy": 0.9}, lineage=lineage)
    assert manifest.ref == "m:1"
    assert manifest.metrics == {"accuracy": 0.9} and manifest.code_version == "test-code"
    assert manifest.lineage["flow_run_id"] == "1234" and manifest.lineage["extra"] == [1, 2]
    assert Lineage.from_json(manifest.lineage) == lineage
    assert manifest.data_digest == small_model.info.data_digest
    assert small_model.info.metrics == {}  # the task does not change its input
    assert pull_champion.fn(target) is None  # published, not promoted

    promote_model.fn(target, 1)
    champion = pull_champion.fn(target)
    assert champion is not None
    assert champion.ref == "m:1" and champion.alias_ref == "m@champion"
    assert champion.manifest == manifest
    assert np.array_equal(champion.model.W, small_model.W)
    assert champion.model.ref == "m:1"
    assert champion.model.info.metrics == {"accuracy": 0.9}


@pytest.mark.usefixtures("prefect_harness")
def test_a_retried_publish_finishes_the_version_its_first_attempt_claimed(
    small_model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails once right after the manifest is written (the blob's check): the
    retry finishes that version, m:1, instead of claiming m:2 for the same training."""
    from prefect import flow

    reg = tmp_path / "reg"
    real_head = LocalStore.head
    failed: list[str] = []

    def head_failing_once(self: LocalStore, key: str) -> ObjectInfo | None:
        if key.startswith("blobs/") and not failed:
            assert (reg / "models" / "m" / "versions" / "00000001.json").is_file()
            failed.append(key)
            raise StorageError(f"injected fault: connection reset reading {key}")
        return real_head(self, key)

    monkeypatch.setattr(LocalStore, "head", head_failing_once)
    where = Location(registry=str(reg), cache_dir=str(tmp_path / "cache"))
    target = Target(location=where, name="m")
    lineage = Lineage(flow_run_id="1234", code_version="test-code")
    publish = publish_model.with_options(retries=2, retry_delay_seconds=0)

    @flow(name="publish-once")
    def publishing() -> Manifest:
        return publish(target, small_model, metrics={"accuracy": 0.9}, lineage=lineage)

    mark = PUBLISHED.mark()
    state = publishing(return_state=True)
    assert failed  # the first attempt failed after its manifest was written
    assert state.is_completed(), state.message
    manifest = state.result()
    assert manifest.ref == "m:1" and manifest.metrics == {"accuracy": 0.9}
    assert PUBLISHED.since(mark) == ["m:1"]  # noted once, by the attempt that claimed it
    with Registry.open(str(reg), cache_dir=tmp_path / "cache") as r:
        assert r.version_numbers("m") == [1]  # not a second version of the same training
        assert r.manifest("m", 1) == manifest
        assert r.load("m:1")[1].info.metrics == {"accuracy": 0.9}  # its blob is in place


# --- report content --------------------------------------------------------------------------


def test_published_metrics_carry_the_calibration(small_model: Model) -> None:
    y = np.arange(100) % 10
    decision = gate.decide(y, y, min_accuracy=0.95)
    report = EvaluationReport(
        accuracy=1.0, n=100, per_class=(), confusion=(), ece=0.012, ece_uncalibrated=0.034
    )
    metrics = published_metrics(decision, small_model, (), report)
    assert (metrics["ece"], metrics["ece_uncalibrated"]) == (0.012, 0.034)
    assert metrics["temperature"] == small_model.temperature != 1.0
    assert "ece" not in published_metrics(decision, small_model)


def test_report_markdown_and_table(small_model: Model) -> None:
    y = np.arange(1000) % 10
    champ = y.copy()
    pred = y.copy()
    pred[:100] = (pred[:100] + 1) % 10
    decision = gate.decide(y, pred, min_accuracy=0.95, champion_pred=champ, champion="m:7")
    report = EvaluationReport(accuracy=decision.accuracy, n=1000, per_class=(), confusion=())
    md = gate_report_markdown(report, decision, small_model, Lineage(flow_run_id="abc-123"))
    assert md.startswith("# Training pipeline: gate REFUSED (floor rule)")
    assert "| test accuracy | 0.9000 | 1.0000 |" in md
    assert "| test images only this model got right | 0 | 100 |" in md
    assert "failed: floor** by 0.0500" in md
    assert "failed: non\\-inferiority** by 0.0805" in md  # the upper bound -0.0855, margin 0.005
    assert f"one-sided p = {decision.p_worse:.3g}" in md
    assert "**Next step:** train longer" in md
    assert "- flow_run_id: `abc-123`" in md
    assert "`limit=3000`" in md
    assert small_model.calibration is not None
    assert (
        f"- expected calibration error (15 bins): — with the temperature "
        f"T = {small_model.temperature:.4f}, — without it" in md
    )
    md = gate_report_markdown(
        dataclasses.replace(report, ece=0.0123, ece_uncalibrated=0.0456),
        decision,
        small_model,
        Lineage(),
    )
    assert "0.0123 with the temperature" in md and "0.0456 without it" in md

    passed = gate.decide(y, y, min_accuracy=0.95)
    md = gate_report_markdown(report, passed, small_model, Lineage())
    assert md.startswith("# Training pipeline: gate passed")
    assert "champion (none)" in md and "p = —" in md

    table = EvaluationReport(
        accuracy=1.0, n=7, per_class=(ClassMetrics(3, 0.123456, 1.0, 7),), confusion=()
    )
    rows = per_class_rows(table)
    assert rows == [{"class": 3, "precision": 0.1235, "recall": 1.0, "support": 7}]


EVIL = "x`\n```\n</code><img src=x onerror=alert(1)>\n# forged\n[click me](javascript:alert(1))"


def test_report_markdown_escapes_every_user_string(small_model: Model) -> None:
    """Issue 27 item 2: dataset names, lineage values (paths), parameters, the champion and
    the report URL cannot add a link, HTML, a heading or leave their code span."""
    import dataclasses

    from markdown_it import MarkdownIt

    from softmax_core.escaping import printable

    y = np.arange(1000) % 10
    pred = y.copy()
    pred[:100] = (pred[:100] + 1) % 10
    decision = gate.decide(y, y, min_accuracy=0.95, champion_pred=y, champion=EVIL)
    domain = gate.decide(y, pred, min_accuracy=0.95, domain=EVIL)
    info = dataclasses.replace(small_model.info, params={"source": EVIL, "epochs": 2})
    model = small_model.evolve(info=info)
    report = EvaluationReport(accuracy=decision.accuracy, n=1000, per_class=(), confusion=())
    evil_set = DatasetLineage(EVIL, 1, "d" * 64, "c" * 64, count=1, train=1, holdout=0)
    lineage = Lineage(data_source=EVIL, datasets=(evil_set,), flow_run_id="abc")
    md_it = MarkdownIt("commonmark", {"html": True}).enable("table")
    md_it.validateLink = lambda url: True  # type: ignore[method-assign]  # see every link
    for url in ("javascript:alert(1)", f"https://s3.example/r.html?{EVIL}"):
        md = gate_report_markdown(
            report, decision, model, lineage, page=("m:1", url), domains=[domain]
        )
        tokens = md_it.parse(md)
        inline = [c for t in tokens if t.children for c in t.children]
        links = [c.attrGet("href") for c in inline if c.type == "link_open"]
        shown = md_it.normalizeLink(printable(url))  # the link, its newlines shown as \n
        assert links == ([] if url.startswith("javascript") else [shown])
        kinds = {t.type for t in [*tokens, *inline]}
        assert not kinds & {"html_block", "html_inline", "image", "fence", "code_block"}, kinds
        headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
        assert [h.split(":")[0] for h in headings] == [
            "Training pipeline", "Gate", "Gate per domain", "Metrics", "Lineage", "Report"
        ]  # fmt: skip
        assert "<img" not in md_it.render(md)
