"""The training flow's publishing tasks: weights, the alias (moved, or its move requested
from an approver), the report page (all I/O, all retried on storage errors, never on a
refusal by the store; see :mod:`flows.training` for the flow)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.runtime import task_run

from flows._common import IN_MEMORY, STORAGE_RETRY, open_registry
from flows.records import PUBLISHED, Champion, Evaluation
from flows.report import CONFUSION_KEY, REPORT_KEY, gate_report_markdown
from softmax_core.escaping import markdown
from softmax_core.lineage import Lineage
from softmax_core.model import Model
from softmax_core.requests import Gate, Location, Target

if TYPE_CHECKING:
    from registry import Manifest
    from registry.manifest import RequestRecord
    from softmax_core.mnist import Dataset
    from softmax_core.train import Holdout


@task(name="publish", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def publish_model(
    target: Target, model: Model, *, metrics: dict[str, Any], lineage: Lineage
) -> Manifest:
    """Weights, then manifest, to the registry: a new version, visible only once complete.
    A retry finishes the version an earlier attempt wrote (its manifest, then a storage
    error) instead of publishing the same model again as the next version."""
    info = dataclasses.replace(model.info, metrics=metrics, code_version=lineage.code_version)
    run: str | None = task_run.id  # the same in every attempt of this task run
    with open_registry(target.location) as reg:
        manifest = reg.publish(  # noted once its manifest is written: the runner says so
            model.evolve(info=info),
            target.name,
            lineage=lineage.to_json(),
            committed=lambda m: PUBLISHED.note(m, task_run=run),
            claimed=PUBLISHED.claimed_by(run),
        )
        get_run_logger().info("published %s to %s", manifest.ref, reg.uri)
    return manifest


@task(name="promote", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def promote_model(target: Target, version: int) -> None:
    """Move ``name@alias`` to ``version`` (compare-and-swap; the move is logged for rollback)."""
    with open_registry(target.location) as reg:
        move = reg.promote(  # noted once the record is written: the runner says so
            target.name,
            version,
            target.alias,
            committed=lambda r: PUBLISHED.note_move(target.champion, f"{r.name}:{r.version}"),
        )
    said = "->" if move.moved else "is already"  # a retried task finds its own move done
    get_run_logger().info("%s %s %s:%d", target.champion, said, target.name, version)


@task(name="request", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def request_model(target: Target, version: int) -> RequestRecord | None:
    """Ask an approver to move ``name@alias`` to ``version``: a request record, which a
    trainer's key may write (None when the alias already points there)."""
    with open_registry(target.location) as reg:
        done = reg.request(  # noted once the record is written: the runner says so
            target.name,
            version,
            target.alias,
            committed=lambda r: PUBLISHED.note_request(target.champion, r),
        )
    logger = get_run_logger()
    if done.record is None:
        logger.info(
            "%s is already %s:%d: nothing to request", target.champion, target.name, version
        )
        return None
    said = "requested" if done.created else "already requested"
    logger.info(
        "%s %s -> %s:%d (request #%d); an approver runs `softmax-pipe registry approve %s:%d %s`",
        said,
        target.champion,
        target.name,
        version,
        done.record.seq,
        target.name,
        version,
        target.alias,
    )
    return done.record


@task(name="publish-report", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def publish_report(
    location: Location,
    manifest: Manifest,
    model: Model,
    ds: Dataset,
    *,
    champion: Champion | None,
    evaluation: Evaluation,
    lineage: Lineage,
    rules: Gate,
    holdouts: Sequence[Holdout] = (),
) -> str | None:
    """The version's report page beside its manifest (``versions/<n>.html``), with the gate
    on MNIST test and each dataset's ``holdouts`` under ``rules``, then the
    ``gate-report`` artifact again, linking to it, and, where the registry serves HTTP
    (S3, MinIO: presigned URLs), a ``confusion-matrix`` image artifact."""
    from softmax_core.report import confusion_picture, render_report

    html = render_report(
        model,
        images=ds.x_test,
        labels=ds.y_test,
        manifest=manifest.to_dict(),
        champion=champion.model if champion else None,
        champion_ref=champion.ref if champion else None,
        test_digest=ds.digest,
        rules=rules,
        holdouts=holdouts,
    )
    picture = confusion_picture(model, images=ds.x_test, labels=ds.y_test)
    with open_registry(location) as reg:
        reg.put_report(manifest.name, manifest.version, html, confusion_png=picture)
        url = reg.report_url(manifest.name, manifest.version)
        png_url = reg.report_url(manifest.name, manifest.version, suffix=".confusion.png")
    if url is None:  # written a moment ago: only a registry that lost it says so
        return None
    decision = evaluation.decision
    create_markdown_artifact(
        key=REPORT_KEY,
        markdown=gate_report_markdown(
            evaluation.report,
            decision,
            model,
            lineage,
            page=(manifest.ref, url),
            domains=evaluation.domains,
        ),
        description=markdown(f"passed: {decision.message} (report: {manifest.ref})"),
    )
    if png_url is not None and png_url.startswith(("http://", "https://")):
        create_image_artifact(
            image_url=png_url,
            key=CONFUSION_KEY,
            description=markdown(f"confusion matrix of {manifest.ref} on {decision.n} test images"),
        )
    get_run_logger().info("report of %s: %s", manifest.ref, url)
    return url
