"""CLI: ``ingest``, ``train`` and ``evaluate``: the ad-hoc steps of the pipeline."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from softmax_core import settings as defaults
from softmax_core.escaping import printable
from softmax_core.words import plural
from softmax_pipe.cli_common import (
    LOCAL_PATH,
    BatchSizeOpt,
    CacheOpt,
    EndpointOpt,
    EpochsOpt,
    FeaturesOpt,
    JsonOpt,
    L2Opt,
    LearningRateOpt,
    LimitOpt,
    RegistryOpt,
    SeedOpt,
    SourceOpt,
    data_reads,
    echo,
    err,
    hyper,
    location,
)

if TYPE_CHECKING:
    from softmax_core.metrics import EvaluationReport
    from softmax_core.mnist import Dataset
    from softmax_core.model import Model
    from softmax_core.requests import Location
    from softmax_core.settings import Settings


def register(app: typer.Typer) -> None:
    """Add ingest, train and evaluate to the main app."""
    app.command("ingest")(ingest)
    app.command("train")(train)
    app.command("evaluate")(evaluate)


def _load(settings: Settings) -> Dataset:
    from softmax_core.mnist import load_mnist

    return load_mnist(settings.source, cache_dir=settings.cache_dir, progress=err)


def ingest(source: SourceOpt = None, cache_dir: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """Load MNIST from SOURCE into the cache as memory-mapped .npy arrays; print the digests."""
    from softmax_core.settings import Settings

    settings = Settings.build(source=source, cache_dir=cache_dir)
    t0 = time.perf_counter()
    ds = _load(settings)
    seconds = time.perf_counter() - t0
    info = {
        "source": ds.source,
        "cache": str(ds.path),
        "cached": ds.cached,
        "digest": ds.digest,
        "arrays": ds.arrays,
        "train": int(ds.y_train.shape[0]),
        "test": int(ds.y_test.shape[0]),
        "seconds": round(seconds, 3),
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    state = "already cached (memory-mapped)" if ds.cached else "parsed and cached"
    echo(f"MNIST from {ds.source}: {state} in {seconds:.2f} s")
    echo(f"  cache:   {ds.path}")
    typer.echo(f"  digest:  sha256:{ds.digest}")
    typer.echo(f"  train:   {info['train']} images, test: {info['test']} images")
    for name, digest in sorted(ds.arrays.items()):
        typer.echo(f"  {name + '.npy':<14} sha256:{digest}")


def train(
    out: Annotated[
        str,  # as typed: a Path would drop the trailing slash of a folder
        typer.Option(
            "--out",
            "-o",
            metavar=LOCAL_PATH,
            help="Where to write the model file (.npz); missing folders are made. Checked "
            "before training: a folder (or a name ending in /) or the training data is "
            "exit 2, a place that cannot be written exit 4.",
        ),
    ] = "model.npz",
    source: SourceOpt = None,
    epochs: EpochsOpt = defaults.EPOCHS,
    seed: SeedOpt = defaults.SEED,
    features: FeaturesOpt = defaults.FEATURES,
    learning_rate: LearningRateOpt = defaults.LEARNING_RATE,
    batch_size: BatchSizeOpt = defaults.BATCH_SIZE,
    l2: L2Opt = defaults.L2,
    limit: LimitOpt = None,
    cache_dir: CacheOpt = None,
    reject: Annotated[
        bool,
        typer.Option(
            "--reject/--no-reject",
            help="Train the class 'not a digit' (11 classes) from generated non-digits; "
            "--no-reject: a 10-class model.",
            rich_help_panel="Training",
        ),
    ] = defaults.REJECT,
    negatives_share: Annotated[
        float,
        typer.Option(
            help="Generated non-digits trained on, as a share of the MNIST images.",
            rich_help_panel="Training",
        ),
    ] = defaults.NEGATIVES_SHARE,
    as_json: JsonOpt = False,
) -> None:
    """Train softmax regression with minibatch SGD and write a model file (weights + metadata)."""
    import dataclasses

    from softmax_core.atomicio import prepare_output
    from softmax_core.requests import Data
    from softmax_core.settings import Settings
    from softmax_core.train import evaluate as evaluate_model
    from softmax_core.train import train as train_model
    from softmax_core.version import code_version

    options = hyper(
        features=features,
        epochs=epochs,
        seed=seed,
        learning_rate=learning_rate,
        batch_size=batch_size,
        l2=l2,
        limit=limit,
    )
    data = Data(reject=reject, negatives_share=negatives_share)
    settings = Settings.build(source=source, cache_dir=cache_dir)
    # a folder, the data, a place that cannot be written: now, not after training
    prepare_output(out, option="--out", reads=data_reads("the training data", settings.source))
    ds = _load(settings)
    t0 = time.perf_counter()
    with _EpochBar(epochs) as bar:
        model = train_model(ds, options, data=data, callback=bar.update, progress=bar.say)
    seconds = round(time.perf_counter() - t0, 3)
    report = evaluate_model(model, ds)
    metrics = {
        "accuracy": report.accuracy,
        "ece": report.ece,
        "ece_uncalibrated": report.ece_uncalibrated,
        "temperature": model.temperature,
        "train_accuracy": model.info.train_accuracy,
        "train_seconds": seconds,
    }
    info = dataclasses.replace(model.info, metrics=metrics, code_version=code_version())
    model.evolve(info=info).save(out)
    note = "" if model.calibration is None else model.calibration.note()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "model": str(out),
                    "features": features,
                    "epochs": epochs,
                    "seed": seed,
                    "classes": model.n_classes,
                    **metrics,
                    "calibration_note": note or None,  # why T is 1: too few held-out images
                    "data_digest": ds.digest,
                    "code_version": info.code_version,
                },
                indent=2,
            )
        )
        return
    calibration = (
        f"calibration error {report.ece:.4f} at temperature 1 ({note})"
        if note
        else f"calibration error {report.ece:.4f} at temperature {model.temperature:.3f} "
        f"({report.ece_uncalibrated:.4f} at 1)"
    )
    typer.echo(
        f"test accuracy {report.accuracy:.4f} after {epochs} {plural(epochs, 'epoch')} in "
        f"{seconds:.2f} s "
        f"({features} features, {model.n_classes} classes); {calibration}; "
        f"model written to {out}"
    )


class _EpochBar:
    """A rich progress bar over epochs on stderr (silent when stderr is not a terminal),
    and the lines saying what is prepared before the first epoch (:meth:`say`)."""

    def __init__(self, epochs: int) -> None:
        self.progress: Any = None
        if not sys.stderr.isatty():  # nothing to draw on: not even rich is imported
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("epoch {task.completed}/{task.total}"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=epochs, stats="")

    def __enter__(self) -> _EpochBar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, message: str) -> None:
        """One line on stderr, above the bar when there is one (the preparation of a first
        run: ~20 s at 'epoch 0/4' that said nothing)."""
        if self.progress is None:
            err(message)
        else:
            self.progress.console.print(printable(message), markup=False, highlight=False)

    def update(self, stats: Any) -> None:
        if self.progress is None:
            return
        self.progress.update(
            self.task,
            completed=stats.epoch,
            stats=f"loss {stats.loss:.4f}  train acc {stats.accuracy:.4f}",
        )


def evaluate(
    model: Annotated[
        str,
        typer.Argument(
            help="A model file (.npz), or a registry reference as `score` takes it "
            "(mnist@champion, mnist:3, mnist)."
        ),
    ],
    source: SourceOpt = None,
    as_json: JsonOpt = False,
    cache_dir: CacheOpt = None,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            metavar="NAME[:VERSION]",
            help="Also report the accuracy on this dataset's holdout split, the images the "
            "gate checks for that domain (repeatable).",
        ),
    ] = None,
) -> None:
    """Accuracy, per-class precision/recall and the confusion matrix on the test split,
    and per domain on each --dataset's holdout.

    A model that can reject counts its rejects as errors and says how many it rejected;
    the expected calibration error (15 equal-width bins) is given with and without the
    model's temperature."""
    from registry import open_model
    from softmax_core.labelled import NOT_A_DIGIT
    from softmax_core.requests import ModelRef
    from softmax_core.settings import Settings
    from softmax_core.train import evaluate as evaluate_model

    ref = ModelRef(model, location(registry, endpoint_url, cache_dir, say=False))
    pulled = open_model(ref)
    domains = _holdout_reports(pulled, dataset or [], ref.location)  # a typo before MNIST
    settings = Settings.build(source=source, cache_dir=ref.location.cache_dir)
    report = evaluate_model(pulled, _load(settings))
    if as_json:
        doc = {"model": pulled.ref, "temperature": pulled.temperature, **report.to_json()}
        doc["domains"] = {
            k: {**r.to_json(), "not_a_digit_left_out": left} for k, (r, left) in domains.items()
        }
        typer.echo(json.dumps(doc))
        return
    _print_report(pulled.ref, report)
    for name, (r, left) in domains.items():
        note = (
            f" ({left} {NOT_A_DIGIT} {plural(left, 'image')} left out: a 10-class model "
            'cannot say "not a digit")'
            if left
            else ""
        )
        typer.echo(
            f"{name} holdout: accuracy {r.accuracy:.4f} on {r.n} {plural(r.n, 'image')}{note}"
        )


def _holdout_reports(
    model: Model, refs: list[str], where: Location
) -> dict[str, tuple[EvaluationReport, int]]:
    """``{dataset ref: (metrics on its holdout, its not-a-digit images left out)}`` for
    each ``--dataset``: a 10-class model is measured on the holdout's digits only, as the
    gate measures it (``train.used_split``)."""
    if not refs:
        return {}
    from registry import Registry
    from softmax_core.errors import InvalidInputError
    from softmax_core.labelled import NOT_A_DIGIT
    from softmax_core.train import evaluate_images, used_split

    out = {}
    with Registry.at(where) as reg:
        for ref in refs:
            m, data = reg.load_dataset(ref)
            images, labels = used_split(data, "holdout", can_reject=model.can_reject)
            left = int(data.holdout.sum()) - len(labels)
            if len(labels) == 0 and left:
                raise InvalidInputError(
                    f"{m.ref}'s holdout holds only {NOT_A_DIGIT} images, which a 10-class "
                    f"model ({model.ref}) cannot say; evaluate a model trained without "
                    "--no-reject"
                )
            if len(labels) == 0:
                raise InvalidInputError(f"{m.ref} has no holdout images yet; add more images")
            out[m.ref] = (evaluate_images(model, images, labels), left)
    return out


def _print_report(title: str, report: EvaluationReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from softmax_core.labelled import label_name as name
    from softmax_core.model import REJECT

    console = Console(highlight=False)
    console.print(
        f"{title}: test accuracy [bold]{report.accuracy:.4f}[/] on {report.n} "
        f"{plural(report.n, 'image')}"
    )
    if report.ece is not None and report.ece_uncalibrated is not None:
        console.print(
            f"expected calibration error {report.ece:.4f} "
            f"({report.ece_uncalibrated:.4f} without the temperature)"
        )
    if report.reject_rate is not None:
        rejected = sum(row[REJECT] for row in report.confusion)
        console.print(
            f"rejected as not a digit: {rejected} of {report.n} ({100 * report.reject_rate:.2f}%)"
        )
    # an 11-class model's class 10 is "not a digit"; a set of digits has none, so its
    # row (no support) is left out and its column shows the rejected digits
    shown = [r for r in report.per_class if r.digit < REJECT or r.support]
    table = Table("class", "precision", "recall", "support", title="per class")
    for row in shown:
        table.add_row(
            name(row.digit), f"{row.precision:.4f}", f"{row.recall:.4f}", str(row.support)
        )
    console.print(table)
    columns = [name(k) for k in range(len(report.confusion))]
    # no padding: at 80 columns the eleventh column's name ("not-a-digit", one word that
    # cannot wrap) and every count fit whole (with padding its name was cut to "not-a-d…")
    cm = Table("true \\ pred", *columns, title="confusion matrix", padding=(0, 0))
    for row in shown:
        cm.add_row(name(row.digit), *[str(c) for c in report.confusion[row.digit]])
    console.print(cm)
