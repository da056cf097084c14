"""The training flow's publishing tasks: weights, the alias, the report page (all I/O,
all retried on storage errors; see :mod:`flows.training` for the flow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact

from flows._common import IN_MEMORY, STORAGE_RETRY, RegistryLocation
from flows.report import CONFUSION_KEY, REPORT_KEY, gate_report_markdown
from softmax_core.escaping import markdown
from softmax_core.modelfile import ModelFile

if TYPE_CHECKING:
    from flows.training import Champion, Evaluation
    from registry import Manifest
    from softmax_core.mnist import Dataset


@task(name="publish", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def publish_model(
    location: RegistryLocation,
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
    with location.open() as reg:
        manifest = reg.publish(ModelFile(W=model.W, b=model.b, meta=meta), name, lineage=lineage)
    logger.info("published %s:%d to %s", name, manifest.version, location.uri)
    return manifest


@task(name="promote", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def promote_model(location: RegistryLocation, name: str, version: int, alias: str) -> None:
    """Move ``name@alias`` to ``version`` (compare-and-swap; the move is logged for rollback)."""
    with location.open() as reg:
        reg.promote(name, version, alias)
    get_run_logger().info("%s@%s -> %s:%d", name, alias, name, version)


@task(name="publish-report", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def publish_report(
    location: RegistryLocation,
    manifest: Manifest,
    model: ModelFile,
    ds: Dataset,
    *,
    champion: Champion | None,
    evaluation: Evaluation,
    lineage: dict[str, Any],
) -> str | None:
    """The version's report page beside its manifest (``versions/<n>.html``), then the
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
        min_accuracy=evaluation.decision.min_accuracy,
        alpha=evaluation.decision.alpha,
    )
    picture = confusion_picture(model, images=ds.x_test, labels=ds.y_test)
    with location.open() as reg:
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
