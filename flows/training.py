"""The training pipeline as a Prefect 3 flow: ingest → train → evaluate (gate) → publish.

The flow body reads as the pipeline; each task is a thin wrapper over a library call
(``softmax_core`` for the data, the model and the gate, ``registry`` for storage).

- Only I/O tasks retry: ``ingest`` on download errors, ``pull-champion`` / ``publish`` /
  ``promote`` on storage errors (``io_retries`` times, first delay ``io_retry_delay``
  seconds, doubling).
- Results stay in process: datasets and weights are passed between tasks in memory,
  never persisted or hashed by Prefect (``NO_CACHE``, ``persist_result=False``).
- Settings are built at the flow's entry from its plain parameters (strings and numbers,
  so deployments and the UI can set them), never at import time.
- A gate refusal raises :class:`~softmax_core.errors.GateFailedError`: the run ends
  Failed with a message naming the rule and the margin; nothing is published and the
  champion stays where it was. The evaluation leaves two artifacts either way:
  ``gate-report`` (markdown: metrics, decision with both accuracies and the p-value,
  lineage) and ``per-class`` (a table).

Run it: ``softmax-pipe run`` (see ``softmax_pipe/cli_run.py``), or from Python::

    from flows.training import training_pipeline
    summary = training_pipeline(source="../shared/data/mnist", registry="/tmp/reg")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows._common import (
    DEFAULT_IO_RETRIES,
    DEFAULT_IO_RETRY_DELAY,
    DOWNLOAD_RETRY,
    STORAGE_RETRY,
    RegistryRef,
    io_retry_options,
)
from softmax_core import gate
from softmax_core.errors import ModelNotFoundError
from softmax_core.modelfile import ModelFile

if TYPE_CHECKING:
    from registry import Manifest
    from softmax_core.data import Dataset
    from softmax_core.model import EpochStats

FLOW_NAME = "training-pipeline"
REPORT_KEY = "gate-report"
PER_CLASS_KEY = "per-class"
DEFAULT_NAME = "mnist"
DEFAULT_ALIAS = "champion"

# Every task: results in memory only, nothing hashed or written by Prefect.
_IN_MEMORY: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


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
    decision: gate.GateDecision


# --- tasks: thin wrappers over library calls ------------------------------------------------


@task(name="ingest", retry_condition_fn=DOWNLOAD_RETRY, **_IN_MEMORY)
def ingest(source: str | None, cache_dir: Path, download_url: str | None = None) -> Dataset:
    """MNIST from ``source`` into the cache (a re-run with the same source is a cache hit)."""
    from softmax_core.data import load_mnist

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


@task(name="pull-champion", retry_condition_fn=STORAGE_RETRY, **_IN_MEMORY)
def pull_champion(where: RegistryRef, name: str, alias: str) -> Champion | None:
    """The model behind ``name@alias`` with its weights (verified), or None if there is none."""
    logger = get_run_logger()
    alias_ref = f"{name}@{alias}"
    try:
        with where.open() as reg:
            manifest, model = reg.load(alias_ref)
    except ModelNotFoundError:
        logger.info("no %s in %s yet: nothing to compare against", alias_ref, where.uri)
        return None
    champion = Champion(manifest.ref, alias_ref, manifest, model)
    model.meta["registry"] = manifest.ref  # train() records it as the warm start's origin
    logger.info("%s is %s (blob sha256:%s)", alias_ref, champion.ref, manifest.digest)
    return champion


@task(name="train", **_IN_MEMORY)
def train_model(
    ds: Dataset,
    *,
    init: ModelFile | None,
    deskew: bool,
    limit: int | None,
    params: dict[str, Any],
) -> ModelFile:
    """Minibatch SGD on the training split (warm-started from ``init`` when given)."""
    from softmax_core.train import train

    logger = get_run_logger()

    def progress(stats: EpochStats) -> None:
        logger.info(
            "epoch %d/%d: loss %.4f, train accuracy %.4f, learning rate %.4g",
            stats.epoch,
            stats.epochs,
            stats.loss,
            stats.accuracy,
            stats.learning_rate,
        )

    t0 = time.perf_counter()
    model = train(ds, deskew=deskew, init=init, limit=limit, callback=progress, **params)
    model.meta["train_seconds"] = round(time.perf_counter() - t0, 3)
    return model


@task(name="evaluate", **_IN_MEMORY)
def evaluate_model(
    model: ModelFile,
    ds: Dataset,
    *,
    champion: Champion | None,
    min_accuracy: float,
    alpha: float,
    lineage: dict[str, Any],
) -> Evaluation:
    """Test-split metrics and the gate decision; leaves the report and per-class artifacts."""
    from softmax_core.train import evaluate, predict_test_split

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
    (logger.info if decision.passed else logger.error)(decision.message)
    create_markdown_artifact(
        key=REPORT_KEY,
        markdown=gate_report_markdown(report, decision, model, lineage),
        description=f"{'passed' if decision.passed else 'REFUSED'}: {decision.message}",
    )
    create_table_artifact(
        key=PER_CLASS_KEY,
        table=per_class_rows(report),
        description=f"per-class precision and recall on {report['n']} test images",
    )
    return Evaluation(report, decision)


@task(name="publish", retry_condition_fn=STORAGE_RETRY, **_IN_MEMORY)
def publish_model(
    where: RegistryRef,
    model: ModelFile,
    name: str,
    *,
    metrics: dict[str, Any],
    code_version: str,
    lineage: dict[str, Any],
) -> Manifest:
    """Weights, then manifest, to the registry: a new version, visible only once complete."""
    logger = get_run_logger()
    meta = {**model.meta, "metrics": metrics, "code_version": code_version}
    with where.open() as reg:
        manifest = reg.publish(ModelFile(W=model.W, b=model.b, meta=meta), name, lineage=lineage)
    logger.info("published %s:%d to %s", name, manifest.version, where.uri)
    return manifest


@task(name="promote", retry_condition_fn=STORAGE_RETRY, **_IN_MEMORY)
def promote_model(where: RegistryRef, name: str, version: int, alias: str) -> None:
    """Move ``name@alias`` to ``version`` (compare-and-swap; the move is logged for rollback)."""
    with where.open() as reg:
        reg.promote(name, version, alias)
    get_run_logger().info("%s@%s -> %s:%d", name, alias, name, version)


# --- the flow --------------------------------------------------------------------------------


@flow(name=FLOW_NAME, persist_result=False, log_prints=False)
def training_pipeline(
    source: str | None = None,
    registry: str | None = None,
    name: str = DEFAULT_NAME,
    epochs: int = 4,
    seed: int = 0,
    min_accuracy: float = gate.DEFAULT_MIN_ACCURACY,
    promote: str | None = DEFAULT_ALIAS,
    warm_start: bool = False,
    deskew: bool = True,
    learning_rate: float = 0.5,
    batch_size: int = 128,
    l2: float = 1e-5,
    limit: int | None = None,
    alpha: float = gate.DEFAULT_ALPHA,
    endpoint_url: str | None = None,
    cache_dir: str | None = None,
    download_url: str | None = None,
    io_retries: int = DEFAULT_IO_RETRIES,
    io_retry_delay: float = DEFAULT_IO_RETRY_DELAY,
) -> dict[str, Any]:
    """Ingest MNIST, train, gate against the floor and the champion, publish and promote.

    The champion is ``name@promote`` (``name@champion`` with ``promote=None``): the model
    the challenger must not be significantly worse than, and with ``warm_start`` the
    weights training starts from. Returns a JSON-ready summary (registry, name, version,
    accuracy, gate decision, flow-run id).
    """
    from prefect.runtime import flow_run

    from registry.names import validate_name
    from softmax_core.settings import Settings
    from softmax_core.version import code_version

    settings = Settings.build(source=source, cache_dir=cache_dir, registry=registry)
    where = RegistryRef(settings.registry, endpoint_url, settings.cache_dir)
    validate_name("model name", name)
    against = validate_name("alias", promote or DEFAULT_ALIAS)
    io = io_retry_options(io_retries, io_retry_delay)

    ds = ingest.with_options(**io)(settings.source, settings.cache_dir, download_url)
    champion = pull_champion.with_options(**io)(where, name, against)
    if warm_start and champion is None:
        raise ModelNotFoundError(
            f"--warm-start needs {name}@{against} in {where.uri}, and there is none; "
            "run once without --warm-start to create a champion"
        )
    model = train_model(
        ds,
        init=champion.model if warm_start and champion else None,
        deskew=deskew,
        limit=limit,
        params={
            "epochs": epochs,
            "seed": seed,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "l2": l2,
        },
    )
    lineage = {
        "flow": FLOW_NAME,
        "flow_run_id": str(flow_run.id),
        "flow_run_name": flow_run.name,
        "data_digest": ds.digest,
        "data_source": ds.source,
        "code_version": code_version(),
        "warm_start_from": champion.ref if warm_start and champion else None,
        "champion": champion.ref if champion else None,
    }
    evaluation = evaluate_model(
        model, ds, champion=champion, min_accuracy=min_accuracy, alpha=alpha, lineage=lineage
    )
    decision = evaluation.decision
    if not decision.passed:
        raise decision.error()

    metrics = {
        "accuracy": decision.accuracy,
        "n_test": decision.n,
        "train_accuracy": model.meta.get("train_accuracy"),
        "train_seconds": model.meta.get("train_seconds"),
        "champion": decision.champion,
        "champion_accuracy": decision.champion_accuracy,
        "mcnemar_p": decision.p_value,
    }
    manifest = publish_model.with_options(**io)(
        where,
        model,
        name,
        metrics=metrics,
        code_version=lineage["code_version"],
        lineage={**lineage, "gate": decision.to_dict()},
    )
    if promote:
        promote_model.with_options(**io)(where, name, manifest.version, promote)

    return {
        "registry": where.uri,
        "name": name,
        "version": manifest.version,
        "ref": f"{name}:{manifest.version}",
        "digest": manifest.digest,
        "promoted": promote,
        "accuracy": decision.accuracy,
        "gate": decision.to_dict(),
        "champion_before": champion.ref if champion else None,
        "warm_start_from": lineage["warm_start_from"],
        "data_digest": ds.digest,
        "flow_run_id": lineage["flow_run_id"],
        "flow_run_name": lineage["flow_run_name"],
    }


# --- report artifacts (pure: tested without Prefect) -----------------------------------------


def per_class_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-class table artifact: one row per digit."""
    return [
        {
            "class": int(row["class"]),
            "precision": round(float(row["precision"]), 4),
            "recall": round(float(row["recall"]), 4),
            "support": int(row["support"]),
        }
        for row in report["per_class"]
    ]


def gate_report_markdown(
    report: dict[str, Any],
    decision: gate.GateDecision,
    model: ModelFile,
    lineage: dict[str, Any],
) -> str:
    """The ``gate-report`` artifact: metrics, the decision and its numbers, the lineage."""

    def fmt(x: float | None, spec: str = ".4f") -> str:
        return "—" if x is None else format(x, spec)

    def count(n: int | None) -> str:
        return "—" if n is None else str(n)

    verdict = "passed" if decision.passed else f"REFUSED ({decision.rule} rule)"
    champ = decision.champion or "none"
    p = "—" if decision.p_value is None else f"{decision.p_value:.3g}"
    lines = [
        f"# Training pipeline: gate {verdict}",
        "",
        decision.message,
        "",
        "## Gate",
        "",
        f"| | challenger | champion ({champ}) |",
        "|---|---|---|",
        f"| test accuracy | {fmt(decision.accuracy)} | {fmt(decision.champion_accuracy)} |",
        f"| test images only this model got right | {count(decision.only_challenger)} "
        f"| {count(decision.only_champion)} |",
        "",
        f"- floor (`min_accuracy`): {decision.min_accuracy:.4f} → "
        f"{'met' if decision.accuracy >= decision.min_accuracy else 'NOT met'}",
        f"- McNemar exact test vs champion: p = {p} (refused when worse and p < {decision.alpha:g})",
    ]
    for f in decision.failures:
        lines.append(f"- **failed: {f.rule}** by {f.shortfall:.4f}: {f.message}")
    params = model.meta.get("params", {})
    lines += [
        "",
        "## Metrics",
        "",
        f"- test accuracy: {report['accuracy']:.4f} on {report['n']} images",
        f"- train accuracy (last epoch): {fmt(model.meta.get('train_accuracy'))}",
        f"- training time: {fmt(model.meta.get('train_seconds'), '.2f')} s",
        f"- preprocessing: {' → '.join(model.steps)}",
        "- params: " + ", ".join(f"`{k}={v}`" for k, v in sorted(params.items())),
        "",
        "## Lineage",
        "",
        *(f"- {k}: `{v}`" for k, v in lineage.items()),
    ]
    return "\n".join(lines) + "\n"
