"""The training pipeline as a Prefect 3 flow: ingest → train → evaluate (gate) → publish.

The flow takes the parts of a :class:`~softmax_core.requests.TrainingRequest` (data,
hyper, gate, target, retries) as its parameters and puts the request together first, so
Prefect validates a deployment's parameters against them and shows each as a section of
a form. The body reads as the pipeline; each task is a thin wrapper over a library
call (``softmax_core`` for the data, the model and the gate, ``registry`` for storage).

With the users' data (``flows.datasets``): ``sync-inbox`` and ``pull-datasets`` first,
training on MNIST plus each dataset's train split, the gate on MNIST test and on each
dataset's holdout; ``data.skip_unchanged`` returns "nothing new to learn" before training
when the champion was made from the same data, code, features and parameters, or (under
``target.action == "request"``) a version still awaiting an approver, or one an approver
rejected, was.

- Only I/O tasks retry: ``ingest`` on download errors, ``pull-champion`` / ``publish`` /
  ``promote`` / the datasets on storage errors (``retries``).
- Results stay in process: datasets and weights are passed between tasks in memory,
  never persisted or hashed by Prefect (``NO_CACHE``, ``persist_result=False``).
- :func:`prepare` fills what the environment supplies (source, registry, cache) and
  checks what needs a look at the machine (a source path exists, a registry URI parses,
  an inbox is a folder), before any task; ``flows.runner.run_training`` calls it before
  a Prefect server starts too, so a bad input fails at once.
- The ``train`` task keeps a progress artifact (``training-progress``) at the fraction of
  epochs done, so the Prefect UI shows how far a run is.
- A gate refusal raises :class:`~softmax_core.errors.GateFailedError`: the run ends
  Failed with a message naming the rule and the margin; nothing is published and the
  champion stays where it was. The evaluation leaves two artifacts either way:
  ``gate-report`` (markdown: metrics, decision with both accuracies and the p-value,
  lineage) and ``per-class`` (a table).
- After publishing (and promoting), ``publish-report`` stores the version's report page
  beside its manifest and links it from a new version of ``gate-report`` (plus a
  ``confusion-matrix`` image where the registry serves presigned URLs); it failing is a
  warning, never a failed run: the version is already published.

Run it: ``softmax-pipe run`` (through ``flows.runner.run_training``), or from Python::

    from flows.training import training_pipeline
    from softmax_core.requests import Data, Location, Target, TrainingRequest

    summary = training_pipeline(
        data=Data(source="../shared/data/mnist"),
        target=Target(location=Location(registry="/tmp/reg")),
    )
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows._common import (
    DOWNLOAD_RETRY,
    IN_MEMORY,
    STORAGE_RETRY,
    io_retry_options,
    open_registry,
    preparing,
)
from flows.datasets import UserData, holdouts, nothing_new, pull_datasets, sync_inbox, uses
from flows.publishing import promote_model, publish_model, publish_report, request_model
from flows.records import Champion, Evaluation, Published, RunSummary, Skipped, run_notes
from flows.report import REPORT_KEY, gate_report_markdown, per_class_rows, published_metrics
from softmax_core import gate as gates
from softmax_core.errors import DataNotFoundError, ModelNotFoundError
from softmax_core.escaping import markdown
from softmax_core.lineage import Lineage
from softmax_core.model import Model
from softmax_core.requests import Data, Gate, Hyper, Location, Retries, Target, TrainingRequest
from softmax_core.scoring import is_uri

if TYPE_CHECKING:
    from uuid import UUID

    from registry.approvals import Pending
    from softmax_core.mnist import Dataset
    from softmax_core.sgd import EpochStats
    from softmax_core.train import Labelled

FLOW_NAME = "training-pipeline"
PER_CLASS_KEY = "per-class"
PROGRESS_KEY = "training-progress"


# --- before any task: the request, resolved and checked ----------------------------------------


def prepare(request: TrainingRequest, *, inbox_must_exist: bool = False) -> TrainingRequest:
    """The request with what the environment supplies filled in (MNIST source, registry,
    cache folder), after the checks that need a look at the machine: the source exists,
    the registry URI parses (no I/O), the inbox (if any) is laid out as a labelled folder.

    A missing inbox folder is nothing to sync yet (sync-inbox says so): the scheduled
    retraining may run before anyone labelled anything. ``inbox_must_exist`` (``softmax-pipe
    run``, where the folder was typed just now) makes it DataNotFoundError instead.

    Raises DataNotFoundError (a source path that does not exist), InvalidNameError (a
    malformed registry URI) or InvalidInputError.
    """
    from registry import open_store
    from softmax_core.mnist import resolve_source

    run = request.resolved()
    if run.data.source is not None:
        resolve_source(run.data.source)
    if run.data.inbox is not None and is_uri(run.data.inbox):
        from registry.objects import ObjectURI

        ObjectURI.parse(run.data.inbox, "labelled folder")  # the address alone: no request
    elif run.data.inbox is not None:
        check_inbox(run.data.inbox, must_exist=inbox_must_exist)
    location = run.target.location
    open_store(location.registry or "", endpoint_url=location.endpoint_url).close()
    return run


def check_inbox(inbox: str, *, must_exist: bool) -> None:
    """InvalidInputError when the inbox folder holds what a labelled folder may not (the
    names only: ``labelled.scan_folder``, no image is read); DataNotFoundError when it
    does not exist and ``must_exist``. An inbox with nothing labelled yet is no error."""
    from softmax_core.labelled import scan_folder

    folder = Path(inbox).expanduser()
    try:
        scan_folder(folder, shown=f"inbox {inbox}")
    except DataNotFoundError:
        if must_exist and not folder.exists():
            raise


def run_lineage(
    run: TrainingRequest, ds: Dataset, champion: Champion | None, user_data: UserData
) -> Lineage:
    """Where the model comes from: this flow run, the data, the code, the champion, and
    the hyperparameters."""
    from prefect.runtime import flow_run

    from softmax_core.train import extra_weight
    from softmax_core.version import code_version

    hyper, data = run.hyper, run.data
    n_mnist = ds.y_train.shape[0] if hyper.limit is None else min(hyper.limit, ds.y_train.shape[0])
    weight = extra_weight(data, int(n_mnist), [d.split("train") for _, d in user_data])
    return Lineage(
        flow=FLOW_NAME,
        flow_run_id=str(flow_run.id),
        flow_run_name=flow_run.name,
        data_digest=ds.digest,
        data_source=ds.source,
        datasets=tuple(m.lineage() for m, _ in user_data),
        data_weight=weight if user_data else None,
        weighting=data.weighting if user_data else None,
        features=hyper.features,
        train_params={
            **hyper.sgd_params(),
            "limit": hyper.limit,
            "calibration_images": hyper.calibration_images,
        },
        code_version=code_version(),
        warm_start_from=champion.ref if hyper.warm_start and champion else None,
        champion=champion.ref if champion else None,
    )


def warm_start_weights(target: Target, champion: Champion | None) -> Model:
    """The champion's model to start from; ModelNotFoundError when there is none."""
    if champion is None:
        raise ModelNotFoundError(
            f"--warm-start needs {target.champion} in {target.location.registry}, and there "
            "is none; run once without --warm-start to create a champion"
        )
    return champion.model


# --- tasks: thin wrappers over library calls ------------------------------------------------


@task(name="ingest", retry_condition_fn=DOWNLOAD_RETRY, **IN_MEMORY)
def ingest(data: Data, location: Location) -> Dataset:
    """MNIST from the source into the cache (a re-run with the same source is a cache hit)."""
    from softmax_core.mnist import load_mnist

    logger = get_run_logger()
    extra = {"url": data.download_url} if data.download_url else {}
    cache = Path(location.cache_dir or "")
    said = preparing(logger)

    def progress(line: str) -> None:  # a cache hit prepares nothing: a run stays quiet
        if line.startswith("cache hit:"):
            logger.info("%s", line)
        else:
            said(line)

    ds = load_mnist(data.source, cache_dir=cache, progress=progress, **extra)
    logger.info(
        "MNIST %s from %s: %d train / %d test images, digest sha256:%s",
        "cache hit" if ds.cached else "parsed and cached",
        ds.source,
        ds.y_train.shape[0],
        ds.y_test.shape[0],
        ds.digest,
    )
    return ds


@task(name="pull-champion", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def pull_champion(target: Target) -> Champion | None:
    """The model behind ``name@alias`` with its weights (verified), or None if there is none."""
    logger = get_run_logger()
    try:
        with open_registry(target.location) as reg:
            manifest, model = reg.load(target.champion)
    except ModelNotFoundError:
        where = target.location.registry
        logger.info("no %s in %s yet: nothing to compare against", target.champion, where)
        return None
    logger.info("%s is %s (blob sha256:%s)", target.champion, manifest.ref, manifest.digest)
    return Champion(target.champion, manifest, model)


@task(name="requested-before", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def requested_before(target: Target, lineage: Lineage) -> Pending | None:
    """The newest request to move ``name@alias`` to a version made from this run's data
    and code, when it is still open or an approver rejected it; None when there is none,
    or the newest was approved or closed as superseded (the last word on this data and
    code is not "no"). Under ``request`` the champion stays until an approver moves it,
    so "nothing new" against it alone published and requested the same model again at
    every scheduled run, and again after the approver said no to it."""
    with open_registry(target.location) as reg:
        try:
            every = reg.requests(target.name, closed=True)
        except ModelNotFoundError:
            return None
        for p in reversed(every):
            r = p.request
            if r.alias == target.alias and nothing_new(reg.manifest(r.name, r.version), lineage):
                return p if p.is_open or p.refused else None
    return None


@task(name="train", **IN_MEMORY)
def train_model(
    ds: Dataset, hyper: Hyper, data: Data, *, init: Model | None, extra: list[Labelled]
) -> Model:
    """Minibatch SGD on the training split, plus ``extra`` labelled images (the datasets'
    train splits, each counted ``data.weight_for`` times); warm-started from ``init``
    when given."""
    from softmax_core.train import train

    logger = get_run_logger()
    bar = progress_artifact()

    def progress(stats: EpochStats) -> None:
        bar(100.0 * stats.epoch / stats.epochs)
        logger.info(
            "epoch %d/%d: loss %.4f, train accuracy %.4f, learning rate %.4g",
            stats.epoch,
            stats.epochs,
            stats.loss,
            stats.accuracy,
            stats.learning_rate,
        )

    t0 = time.perf_counter()
    model = train(
        ds,
        hyper,
        data=data,
        init=init,
        extra=extra,
        callback=progress,
        progress=preparing(logger),
    )
    seconds = round(time.perf_counter() - t0, 3)
    if model.calibration is not None and model.calibration.too_few:
        logger.info("not calibrated: %s", model.calibration.note())
    elif model.calibration is not None:
        logger.info(
            "calibrated: temperature %.4f, fitted on the last %d training images "
            "(their log-loss %.4f -> %.4f)",
            model.calibration.temperature,
            model.calibration.images,
            model.calibration.nll_before,
            model.calibration.nll_after,
        )
    return model.evolve(info=dataclasses.replace(model.info, train_seconds=seconds))


def progress_artifact() -> Callable[[float], None]:
    """A ``training-progress`` artifact (the UI's bar, 0-100) for this run; its updater.

    Outside a flow or task run (a task body called through ``.fn``) there is nothing to
    attach it to: the updater does nothing.
    """
    from prefect.context import FlowRunContext, TaskRunContext

    if TaskRunContext.get() is None and FlowRunContext.get() is None:
        return lambda percent: None
    artifact = cast(
        "UUID",  # sync-compatible: called outside an event loop, it returns the id
        create_progress_artifact(
            0.0, key=PROGRESS_KEY, description="training: percent of epochs done"
        ),
    )

    def update(percent: float) -> None:
        update_progress_artifact(artifact, percent)

    return update


@task(name="evaluate", **IN_MEMORY)
def evaluate_model(
    model: Model,
    ds: Dataset,
    rules: Gate,
    *,
    champion: Champion | None,
    lineage: Lineage,
    user_data: UserData,
) -> Evaluation:
    """Test-split metrics and the gate decision on MNIST test and on each dataset's holdout;
    leaves the report and per-class artifacts."""
    from softmax_core.train import (
        evaluate,
        heldout_negatives,
        holdout_decisions,
        predict_test_split,
    )

    logger = get_run_logger()
    report = evaluate(model, ds)
    decision = gates.decide(
        ds.y_test,
        predict_test_split(model, ds),
        min_accuracy=rules.min_accuracy,
        champion_pred=predict_test_split(champion.model, ds) if champion else None,
        champion=champion.ref if champion else None,
        alpha=rules.alpha,
        margin=rules.margin,
        max_reject_rate=rules.max_reject_rate if model.can_reject else None,
    )
    negatives = (
        gates.decide_negatives(
            model.predict(heldout_negatives(ds)), min_rejected=rules.min_negatives_rejected
        )
        if model.can_reject
        else None
    )
    domains = holdout_decisions(
        model,
        holdouts(user_data),
        champion=champion.model if champion else None,
        min_accuracy=rules.min_dataset_accuracy,
        alpha=rules.alpha,
        margin=rules.margin,
    )
    evaluation = Evaluation(report, decision, tuple(domains), negatives)
    for d in evaluation.decisions:
        (logger.info if d.passed else logger.error)(d.message)
    verdict = gates.refusal(evaluation.decisions)
    create_markdown_artifact(
        key=REPORT_KEY,
        markdown=gate_report_markdown(report, decision, model, lineage, domains=domains),
        description=markdown(
            f"passed: {decision.message}" if verdict is None else f"REFUSED: {verdict}"
        ),
    )
    create_table_artifact(
        key=PER_CLASS_KEY,
        table=per_class_rows(report),
        description=f"per-class precision and recall on {report.n} test images",
    )
    return evaluation


# --- the flow --------------------------------------------------------------------------------


@flow(name=FLOW_NAME, persist_result=False, log_prints=False)
def training_pipeline(
    data: Data = Data(),
    hyper: Hyper = Hyper(),
    gate: Gate = Gate(),
    target: Target = Target(),
    retries: Retries = Retries(),
) -> RunSummary:
    """Ingest MNIST (and the users' datasets), train, gate every domain against its floor
    and the champion, publish and promote: one :class:`TrainingRequest`, given by parts.

    The champion is ``target.name@target.alias``: the model the challenger must not be
    shown worse than by more than ``gate.margin``, and with ``hyper.warm_start`` the
    weights training starts from; ``target.action`` says what the new version gets: the
    alias moved to it (promote), a request that an approver move it (request), or nothing.
    Returns what was
    published (:class:`~flows.records.Published`) or that nothing was new
    (:class:`~flows.records.Skipped`).
    """
    run = prepare(TrainingRequest(data, hyper, gate, target, retries))
    io = io_retry_options(run.retries)
    target = run.target
    user_data = users_data(run, io)
    ds = ingest.with_options(**io)(run.data, target.location)
    champion = pull_champion.with_options(**io)(target)
    lineage = run_lineage(run, ds, champion, user_data)
    if run.data.skip_unchanged and champion and nothing_new(champion.manifest, lineage):
        get_run_logger().info("nothing new to learn: %s has the same data and code", champion.ref)
        return Skipped(
            registry=target.location.registry or "", name=target.name, champion=champion.ref
        )
    if run.data.skip_unchanged and target.action == "request":
        before = requested_before.with_options(**io)(target, lineage)
        if before is not None:
            said = f"{before.request.ref} (request #{before.request.seq})"
            skipped = Skipped(
                registry=target.location.registry or "",
                name=target.name,
                champion=champion.ref if champion else None,
                awaiting=said if before.is_open else None,
                rejected=None if before.is_open else said,
            )
            get_run_logger().info("%s", skipped.message)
            return skipped
    init = warm_start_weights(target, champion) if run.hyper.warm_start else None
    used = uses(user_data, can_reject=run.data.reject)
    left_out = lineage.left_out_of(Lineage.from_json(champion.manifest.lineage)) if champion else ()
    for note in run_notes(used, left_out, lineage.champion):
        get_run_logger().warning("%s", note)
    extra = [data.split("train") for _, data in user_data]
    model = train_model(ds, run.hyper, run.data, init=init, extra=extra)
    evaluation = evaluate_model(
        model, ds, run.gate, champion=champion, lineage=lineage, user_data=user_data
    )
    refused = gates.refusal(evaluation.decisions)
    if refused is not None:
        raise refused
    lineage = dataclasses.replace(lineage, gate=evaluation.decision.to_dict())
    metrics = published_metrics(evaluation.decision, model, evaluation.domains, evaluation.report)
    manifest = publish_model.with_options(**io)(target, model, metrics=metrics, lineage=lineage)
    requested = None
    if target.action == "promote":
        promote_model.with_options(**io)(target, manifest.version)
    elif target.action == "request":
        requested = request_model.with_options(**io)(target, manifest.version)
    report = publish_report.with_options(**io)(
        target.location,
        manifest,
        model,
        ds,
        champion=champion,
        evaluation=evaluation,
        lineage=lineage,
        rules=run.gate,
        holdouts=holdouts(user_data),
        return_state=True,
    )
    if report.is_failed():  # the version is published: a missing page is a warning
        get_run_logger().warning("no report for %s: %s", manifest.ref, report.message)
    promoted = target.alias if target.promote else None
    registry = target.location.registry or ""
    return Published(registry, manifest, promoted, evaluation, lineage, requested, used, left_out)


def users_data(run: TrainingRequest, io: dict[str, Any]) -> UserData:
    """The labelled inbox synced into its dataset (when given), then every dataset the
    run trains on, pulled and verified."""
    refs = list(run.data.datasets)
    location = run.target.location
    if run.data.inbox is not None:
        inbox = run.data.inbox if is_uri(run.data.inbox) else str(Path(run.data.inbox).expanduser())
        synced = sync_inbox.with_options(**io)(location, inbox, run.data.inbox_dataset)
        refs += [synced] if synced else []
    return pull_datasets.with_options(**io)(location, refs) if refs else []
