"""CLI: ``softmax-pipe score PATH``: score a folder (or one file) of digit images.

Exit codes: 0 every image scored (or rejected); 1 some images failed (error rows; all the others were
scored and written); 2 bad input (a bad option, --output a folder or one of the inputs);
3 not found (PATH, the model, or no image at all under PATH); 4 registry storage / network
failure, or --output cannot be written (checked before any work); 141 the reader of stdout
went away (``| head``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from softmax_core import settings
from softmax_core.errors import OVER_PIXEL_CAP
from softmax_core.words import plural
from softmax_pipe.cli_common import (
    CacheOpt,
    EndpointOpt,
    ImageProgress,
    RegistryOpt,
    err,
    location,
    stdout_closed_early,
)

if TYPE_CHECKING:
    from registry.events import Listener


class OutputFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


SCORE_HELP = (
    "Score images with a model's weights: one CSV/JSONL row per image, a summary on stderr."
    "\n\n"
    "Each image goes through the MNIST procedure (grayscale, ink made bright on dark, cropped "
    "to the ink, fitted into 20×20, centred by mass in 28×28), then the model's own "
    "preprocessing. Files that fail become rows with status=error and the run goes on; "
    "with a model that can reject, images that are not one digit (a letter, a drawing, a "
    "number of several digits) and blank pages become rows with status=rejected (not a "
    "failure)."
    "\n\n"
    "PATH and --output may be on S3 (s3://bucket/...), on the registry's endpoint and with "
    "its credentials; with --dask-address each worker then reads its own objects."
    "\n\n"
    "Every run leaves a profile (FILE.profile.json beside an --output file, none beside stdout "
    "or a device; for a registry model also monitoring/NAME/ in the registry) checked for drift "
    "against the model's reference; drift is a line of the summary and a Prefect event, never "
    "an exit code."
    "\n\n"
    "Exit codes: 0 all scored; 1 some images failed (the others were scored and written); "
    "2 bad input (a bad option, --output is a folder or an input); 3 PATH or the model not "
    "found, or no image under PATH; 4 registry storage or network failure, or --output cannot "
    "be written; 141 stdout closed early (| head)."
)


def register(app: typer.Typer) -> None:
    """Add ``score`` to the main app."""
    app.command("score", help=SCORE_HELP)(score)


def score(
    path: Annotated[
        str,
        typer.Argument(
            help="An image file, or a folder walked recursively for images; or an "
            "s3://bucket/prefix/ (or one object), listed in the same order.",
            show_default=False,
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Registry reference (name@alias, name:version, name) or a model file (.npz).",
            envvar=settings.ENV_MODEL,
            show_envvar=True,
            rich_help_panel="Model",
        ),
    ] = settings.MODEL_REF,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Write rows to FILE (a temporary file renamed at the end; missing folders "
            "are made), or to an object s3://bucket/key (a temporary key copied into place). "
            "A device or pipe (/dev/null, a named pipe) is written through. '-' or nothing: "
            "stdout (./- for a file named '-').",
            rich_help_panel="Output",
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Row format. Default: jsonl for an --output named *.jsonl or *.ndjson, else csv.",
            show_default=False,
            rich_help_panel="Output",
        ),
    ] = None,
    probs: Annotated[
        bool,
        typer.Option(
            "--probs",
            help="Add the columns p0..p9, and p_reject for a model that can reject.",
            rich_help_panel="Output",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Decoding processes. Default: one per CPU.",
            rich_help_panel="Performance",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Images per batch (one worker task).",
            rich_help_panel="Performance",
        ),
    ] = settings.SCORE_BATCH_SIZE,
    max_pixels: Annotated[
        int,
        typer.Option(
            help="Refuse images with more pixels than this, from their header "
            f"(decompression bombs). At most {settings.PIXEL_CEILING:,}: Pillow refuses "
            "larger images whatever this says.",
            rich_help_panel="Performance",
        ),
    ] = settings.MAX_PIXELS,
    min_confidence: Annotated[
        float,
        typer.Option(
            help="The summary counts predictions below this confidence.",
            rich_help_panel="Review",
        ),
    ] = settings.MIN_CONFIDENCE,
    flow: Annotated[
        bool,
        typer.Option(
            "--flow",
            help="Run as the Prefect flow `batch-scoring`.",
            rich_help_panel="As a Prefect flow",
        ),
    ] = False,
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Run the flow's shards on this Dask scheduler (tcp://host:8786); implies --flow.",
            envvar=settings.ENV_DASK_ADDRESS,
            show_envvar=True,
            rich_help_panel="As a Prefect flow",
        ),
    ] = None,
    shard_size: Annotated[
        int,
        typer.Option(
            help="With --flow: images per shard task (a multiple of batches).",
            rich_help_panel="As a Prefect flow",
        ),
    ] = settings.SHARD_SIZE,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="With --flow: show Prefect's own log lines.",
            rich_help_panel="As a Prefect flow",
        ),
    ] = False,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile/--no-profile",
            help="Write the run's profile (label mix, rejected share, confidence, estimated "
            f"accuracy) beside an --output file (FILE{settings.PROFILE_SUFFIX}; not beside "
            "stdout, a device or a pipe) and, for a registry "
            "model, under monitoring/NAME/ in the registry; check it for drift against the "
            "model's reference (MNIST test): a significant drift is said in the summary and "
            "sent as the Prefect event softmax-pipe.scoring.drift. See `softmax-pipe monitor`. "
            "--no-profile: none, and an earlier run's FILE.profile.json goes once the new "
            "rows are in FILE.",
            rich_help_panel="Monitoring",
        ),
    ] = settings.PROFILE,
    review: Annotated[
        Path | None,
        typer.Option(
            "--review",
            help="Copy every image scored below --min-confidence, and every image rejected "
            "as not a digit, into QUEUE/unlabelled/ (named: source, predicted digit or "
            "'rejected', confidence, content hash; never twice) and write QUEUE/index.html, "
            "a contact sheet to label them by. Move each file into QUEUE/<digit>/ or "
            "QUEUE/not-a-digit/ to label it. Runs with the local command only: not with "
            "--flow or --dask-address.",
            metavar="QUEUE",
            rich_help_panel="Review",
        ),
    ] = None,
    reject: Annotated[
        bool,
        typer.Option(
            "--reject/--no-reject",
            help="With a model that has the class 'not a digit': an image it calls not a "
            "digit, and a blank page, is a status=rejected row (empty label, the reason); "
            "they do not make the run fail. --no-reject: every image gets a digit, its "
            "confidence that digit's probability among all the classes (a non-digit's is low).",
            rich_help_panel="Review",
        ),
    ] = settings.REJECT,
    reject_threshold: Annotated[
        float,
        typer.Option(
            help="Reject when 'not a digit' is the model's most likely class and its "
            "probability is at least this.",
            rich_help_panel="Review",
        ),
    ] = settings.REJECT_THRESHOLD,
) -> None:
    """Score a folder or file of images; see SCORE_HELP."""
    from softmax_core import scoring
    from softmax_core.errors import PartialFailure
    from softmax_core.requests import (
        ModelRef,
        Output,
        Performance,
        Review,
        ScoringRequest,
        format_for,
    )

    scoring.quiet_pillow_warnings()  # over --max-pixels is an error row; bad EXIF is read
    request = ScoringRequest(
        input=path,
        model=ModelRef(model, location(registry, endpoint_url, cache_dir, say=False)),
        output=Output(
            path=output,
            format=fmt.value if fmt else format_for(output),
            probs=probs,
            profile=profile,
        ),
        performance=Performance(
            workers=workers, batch_size=batch_size, shard_size=shard_size, max_pixels=max_pixels
        ),
        review=Review(
            min_confidence=min_confidence,
            queue=str(review) if review else None,
            reject=reject,
            reject_threshold=reject_threshold,
        ),
    )
    listeners: tuple[Listener, ...] = ()
    if flow or dask_address:
        from flows.runner import run_scoring

        with stdout_closed_early():
            summary = run_scoring(request, dask_address=dask_address, verbose=verbose, say=err)
    else:
        from registry import open_model
        from registry.objects import scoring_io

        scoring.check_request(request)  # a missing PATH is exit 3 before the model is pulled
        source, sink = scoring_io(request)  # the same for an s3:// input or output
        the_model = open_model(request.model)
        count = None if source is not None else lambda: scoring.count_images(path)
        with ImageProgress("scoring", count) as bar, stdout_closed_early():
            summary = scoring.score(
                request,
                the_model,
                progress=bar.advance if bar.enabled else None,
                source=source,
                sink=sink,
            )
        if request.output.profile:
            from flows.events import registry_listeners
            from registry.monitoring import watch_summary

            listeners = registry_listeners()
            watch_summary(summary, the_model, request, listeners)
    output = request.output.path  # None for stdout, also when it was given as '-'
    for line in summary.lines():
        err(line)
    if output is not None:
        err(f"rows written to {output}")
    if listeners:
        from flows.events import flush

        flush(listeners)  # the drift event, once the output is printed
    if summary.failed:
        where = f" to {output}" if output is not None else ""
        rest = summary.total - summary.failed
        done = (  # as the summary's first line counts "scored": the rows read as digits
            f"written{where} ({summary.scored:,} scored, {summary.rejected:,} rejected)"
            if summary.rejected
            else f"scored and written{where}"
        )
        others = f"; the other {rest:,} {plural(rest, 'was', 'were')} {done}" if rest else ""
        big = summary.failure_kinds[OVER_PIXEL_CAP]  # not Pillow's: no --max-pixels helps
        hint = f"; {big:,} over the pixel cap (--max-pixels raises it)" if big else ""
        raise PartialFailure(
            f"{summary.failed:,} of {summary.total:,} {plural(summary.total, 'image')} could "
            f"not be scored (status=error rows){others}{hint}"
        )
