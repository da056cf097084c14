"""The training pipeline as a Prefect 3 flow: ingest → train → evaluate (gate) → publish.

With the users' data (``flows.datasets``): ``sync-inbox`` and ``pull-datasets`` first,
training on MNIST plus each dataset's train split, the gate on MNIST test and on each
dataset's holdout; ``skip_unchanged`` returns "nothing new to learn" before training when
the champion was made from the same data, code, features and parameters.

The flow body reads as the pipeline; each task is a thin wrapper over a library call
(``softmax_core`` for the data, the model and the gate, ``registry`` for storage).

- Only I/O tasks retry: ``ingest`` on download errors, ``pull-champion`` / ``publish`` /
  ``promote`` on storage errors (``io_retries`` times, first delay ``io_retry_delay``
  seconds, doubling).
- Results stay in process: datasets and weights are passed between tasks in memory,
  never persisted or hashed by Prefect (``NO_CACHE``, ``persist_result=False``).
- Settings are built at the flow's entry from its plain parameters (strings and numbers,
  so deployments and the UI can set them), never at import time; every default is
  ``softmax_core.settings``'s. :func:`check_inputs` checks them all before any task runs
  (and ``flows.runner.run_training`` calls it before a Prefect server starts).
- The ``train`` task keeps a progress artifact (``training-progress``) at the fraction of
  epochs done, so the Prefect UI shows how far a run is.
- A gate refusal raises :class:`~softmax_core.errors.GateFailedError`: the run ends
  Failed with a message naming the rule and the margin; nothing is published and the
  champion stays location it was. The evaluation leaves two artifacts either way:
  ``gate-report`` (markdown: metrics, decision with both accuracies and the p-value,
  lineage) and ``per-class`` (a table).
- After publishing (and promoting), ``publish-report`` stores the version's report page
  beside its manifest and links it from a new version of ``gate-report`` (plus a
  ``confusion-matrix`` image where the registry serves presigned URLs); it failing is a
  warning, never a failed run: the version is already published.

Run it: ``softmax-pipe run`` (through ``flows.runner.run_training``), or from Python::

    from flows.training import training_pipeline
    summary = training_pipeline(source="../shared/data/mnist", registry="/tmp/reg")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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
    RegistryLocation,
)
from flows.datasets import UserData, nothing_new, pull_datasets, sync_inbox
from flows.publishing import promote_model, publish_model, publish_report
from flows.report import (
    NOTHING_NEW,
    REPORT_KEY,
    gate_report_markdown,
    per_class_rows,
    published_metrics,
    run_summary,
    skipped_summary,
)
from flows.training_inputs import (
    FLOW_NAME,
    Inputs,
    check_inputs,
    run_lineage,
    warm_start_weights,
)
from softmax_core import gate, settings
from softmax_core.errors import ModelNotFoundError
from softmax_core.escaping import markdown
from softmax_core.modelfile import ModelFile

if TYPE_CHECKING:
    from uuid import UUID

    from registry import Manifest
    from softmax_core.mnist import Dataset
    from softmax_core.model import EpochStats
    from softmax_core.train import Labelled

PER_CLASS_KEY = "per-class"
PROGRESS_KEY = "training-progress"

# Every task: results in memory only, nothing hashed or written by Prefect.


@dataclass(frozen=True)
class Champion:
    """The model currently behind ``name@alias``: what the challenger is compared against."""

    ref: str  # "mnist:3"
    alias_ref: str  # "mnist@champion"
    manifest: Manifest
    model: ModelFile


@dataclass(frozen=True)
class Evaluation:
    """What the evaluate task hands on: the test metrics and the gate's decision."""

    report: dict[str, Any]  # softmax_core.train.evaluate(): accuracy, n, per_class, confusion
    decision: gate.GateDecision  # on MNIST test
    domains: tuple[gate.GateDecision, ...] = ()  # on each dataset's holdout

    @property
    def decisions(self) -> tuple[gate.GateDecision, ...]:
        return (self.decision, *self.domains)


# --- tasks: thin wrappers over library calls ------------------------------------------------


@task(name="ingest", retry_condition_fn=DOWNLOAD_RETRY, **IN_MEMORY)
def ingest(source: str | None, cache_dir: Path, download_url: str | None = None) -> Dataset:
    """MNIST from ``source`` into the cache (a re-run with the same source is a cache hit)."""
    from softmax_core.mnist import load_mnist

    logger = get_run_logger()
    extra = {"url": download_url} if download_url else {}
    ds = load_mnist(source, cache_dir=cache_dir, progress=logger.info, **extra)
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
def pull_champion(location: RegistryLocation, name: str, alias: str) -> Champion | None:
    """The model behind ``name@alias`` with its weights (verified), or None if there is none."""
    logger = get_run_logger()
    alias_ref = f"{name}@{alias}"
    try:
        with location.open() as reg:
            manifest, model = reg.load(alias_ref)
    except ModelNotFoundError:
        logger.info("no %s in %s yet: nothing to compare against", alias_ref, location.uri)
        return None
    champion = Champion(manifest.ref, alias_ref, manifest, model)
    model.meta["registry"] = manifest.ref  # train() records it as the warm start's origin
    logger.info("%s is %s (blob sha256:%s)", alias_ref, champion.ref, manifest.digest)
    return champion


@task(name="train", **IN_MEMORY)
def train_model(
    ds: Dataset,
    *,
    init: ModelFile | None,
    features: str,
    limit: int | None,
    params: dict[str, Any],
    extra: list[Labelled] | None = None,
    data_weight: int = settings.DATA_WEIGHT,
) -> ModelFile:
    """Minibatch SGD on the training split, plus ``extra`` labelled images (the datasets'
    train splits, each ``data_weight`` times); warm-started from ``init`` when given."""
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
        ds, features=features, init=init, limit=limit, callback=progress,
        extra=extra or [], data_weight=data_weight, **params,
    )  # fmt: skip
    model.meta["train_seconds"] = round(time.perf_counter() - t0, 3)
    return model


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
    model: ModelFile,
    ds: Dataset,
    *,
    champion: Champion | None,
    min_accuracy: float,
    alpha: float,
    lineage: dict[str, Any],
    user_data: UserData = (),  # type: ignore[assignment]
    min_dataset_accuracy: float = settings.DATASET_MIN_ACCURACY,
) -> Evaluation:
    """Test-split metrics and the gate decision on MNIST test and on each dataset's holdout;
    leaves the report and per-class artifacts."""
    from softmax_core.train import evaluate, holdout_decisions, predict_test_split

    logger = get_run_logger()
    report = evaluate(model, ds)
    decision = gate.decide(
        ds.y_test,
        predict_test_split(model, ds),
        min_accuracy=min_accuracy,
        champion_pred=predict_test_split(champion.model, ds) if champion else None,
        champion=champion.ref if champion else None,
        alpha=alpha,
    )
    domains = holdout_decisions(
        model,
        [(m.name, *data.split("holdout")) for m, data in user_data],
        champion=champion.model if champion else None,
        champion_ref=champion.ref if champion else None,
        min_accuracy=min_dataset_accuracy,
        alpha=alpha,
    )
    evaluation = Evaluation(report, decision, tuple(domains))
    for d in evaluation.decisions:
        (logger.info if d.passed else logger.error)(d.message)
    verdict = gate.refusal(evaluation.decisions)
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
        description=f"per-class precision and recall on {report['n']} test images",
    )
    return evaluation


# --- the flow --------------------------------------------------------------------------------


@flow(name=FLOW_NAME, persist_result=False, log_prints=False)
def training_pipeline(
    source: str | None = None,
    registry: str | None = None,
    name: str = settings.MODEL_NAME,
    epochs: int = settings.EPOCHS,
    seed: int = settings.SEED,
    min_accuracy: float = settings.MIN_ACCURACY,
    promote: str | None = settings.ALIAS,
    warm_start: bool = False,
    features: str = settings.FEATURES,
    learning_rate: float = settings.LEARNING_RATE,
    batch_size: int = settings.BATCH_SIZE,
    l2: float = settings.L2,
    limit: int | None = None,
    alpha: float = settings.ALPHA,
    endpoint_url: str | None = None,
    cache_dir: str | None = None,
    download_url: str | None = None,
    io_retries: int = settings.IO_RETRIES,
    io_retry_delay: float = settings.IO_RETRY_DELAY,
    datasets: list[str] | None = None,
    data_weight: int = settings.DATA_WEIGHT,
    min_dataset_accuracy: float = settings.DATASET_MIN_ACCURACY,
    inbox: str | None = None,
    inbox_dataset: str = settings.INBOX_DATASET,
    skip_unchanged: bool = False,
) -> dict[str, Any]:
    """Ingest MNIST (and the users' datasets), train, gate every domain against its floor
    and the champion, publish and promote.

    The champion is ``name@promote`` (``name@champion`` with ``promote=None``): the model
    the challenger must not be significantly worse than, and with ``warm_start`` the
    weights training starts from. ``datasets``: ``NAME[:VERSION]`` of labelled datasets
    whose train splits are added (each image ``data_weight`` times) and whose holdouts are
    gated (floor ``min_dataset_accuracy``). ``inbox``: a labelled folder synced into
    dataset ``inbox_dataset`` first, then trained on. ``skip_unchanged``: when the
    champion was made from the same data, code and features, train nothing ("nothing new
    to learn"). Returns a JSON-ready summary (registry, name, version, accuracy, gate
    decision, flow-run id).
    """
    run = check_inputs(
        source=source, registry=registry, name=name, promote=promote, features=features,
        endpoint_url=endpoint_url, cache_dir=cache_dir,
        io_retries=io_retries, io_retry_delay=io_retry_delay, datasets=datasets,
        data_weight=data_weight, min_dataset_accuracy=min_dataset_accuracy,
        inbox=inbox, inbox_dataset=inbox_dataset,
    )  # fmt: skip
    user_data = users_data(run, inbox_dataset)
    ds = ingest.with_options(**run.io)(run.source, run.cache_dir, download_url)
    champion = pull_champion.with_options(**run.io)(run.location, name, run.alias)
    params = {"epochs": epochs, "seed": seed, "learning_rate": learning_rate}
    params |= {"batch_size": batch_size, "l2": l2}
    lineage = run_lineage(
        ds, champion, warm_start=warm_start, features=features, user_data=user_data,
        data_weight=data_weight, train_params={**params, "limit": limit},
    )  # fmt: skip
    if skip_unchanged and champion and nothing_new(champion.manifest, lineage):
        get_run_logger().info(f"{NOTHING_NEW}: {champion.ref} was made from the same data and code")
        return skipped_summary(registry=run.location.uri, name=name, champion=champion.ref)
    init = warm_start_weights(run, champion) if warm_start else None
    model = train_model(
        ds, init=init, features=features, limit=limit, params=params,
        extra=[data.split("train") for _, data in user_data], data_weight=data_weight,
    )  # fmt: skip
    evaluation = evaluate_model(
        model, ds, champion=champion, min_accuracy=min_accuracy, alpha=alpha, lineage=lineage,
        user_data=user_data, min_dataset_accuracy=min_dataset_accuracy,
    )  # fmt: skip
    refused = gate.refusal(evaluation.decisions)
    if refused is not None:
        raise refused
    decision = evaluation.decision
    manifest = publish_model.with_options(**run.io)(
        run.location,
        model,
        name,
        metrics=published_metrics(decision, model, evaluation.domains),
        code_version=lineage["code_version"],
        lineage={**lineage, "gate": decision.to_dict()},
    )
    if promote:
        promote_model.with_options(**run.io)(run.location, name, manifest.version, promote)
    report = publish_report.with_options(**run.io)(
        run.location, manifest, model, ds,
        champion=champion, evaluation=evaluation, lineage=lineage, return_state=True,
    )  # fmt: skip
    if report.is_failed():  # the version is published: a missing page is a warning
        get_run_logger().warning("no report for %s: %s", manifest.ref, report.message)
    return run_summary(
        registry=run.location.uri,
        name=name,
        manifest=manifest,
        decision=decision,
        lineage=lineage,
        promoted=promote,
        domains=evaluation.domains,
    )


def users_data(run: Inputs, inbox_dataset: str) -> UserData:
    """The labelled inbox synced into ``inbox_dataset`` (when given), then every dataset
    the run trains on, pulled and verified."""
    refs = list(run.datasets)
    if run.inbox is not None:
        synced = sync_inbox.with_options(**run.io)(run.location, run.inbox, inbox_dataset)
        refs += [synced] if synced else []
    return pull_datasets.with_options(**run.io)(run.location, refs) if refs else []
