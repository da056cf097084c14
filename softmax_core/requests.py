"""One request per job: what a training run and a scoring run are asked to do.

A request is a frozen tree of dataclasses, built once at the edge (the CLI's options, a
deployment's parameters, the Python API) from the defaults in :mod:`softmax_core.settings`,
validated when it is built (each part in its ``__post_init__``, with a message naming the
field and what is allowed), then passed whole down the layers. A flow takes the request's
parts as its (at most five) parameters and puts the request together again first thing,
so Prefect validates a deployment's parameters against them and shows each part as a
section of the run dialog's form; ``deploy/prefect.yaml`` nests the same fields. (Parts,
not one ``request`` parameter: Prefect merges a run's parameters into the deployment's
only at the top level, so ``--param hyper='{"epochs": 1}'`` replaces one part, not the
whole request.)

Adding a knob is one field here (with its default in settings) and its CLI option.

Training::

    TrainingRequest
    ├── data: Data        MNIST source and cache, users' datasets, inbox, their weight,
    │                     the class "not a digit" and its generated negatives
    ├── hyper: Hyper      features and the SGD hyperparameters, warm start
    ├── gate: Gate        the floors, the non-inferiority margin and alpha, the reject rates
    ├── target: Target    registry location, model name, champion alias, and what a
    │                     passing model gets: promoted, requested or only published
    └── retries: Retries  how the I/O steps retry

Scoring::

    ScoringRequest
    ├── input             a folder or an image file
    ├── model: ModelRef   a registry reference or a model file, and the registry it is in
    ├── output: Output    file (or stdout), format, probabilities
    ├── performance       workers, batch and shard sizes, the pixel cap, retries
    └── review: Review    the confidence below which images are counted and queued; the
                          reject option (on or off, its threshold)

Locations the environment may supply (``SOFTMAX_PIPE_REGISTRY``, ``SOFTMAX_PIPE_MNIST``,
the cache folder) stay ``None`` until :meth:`Location.resolved` / :meth:`Data.resolved`
fill them, at the edge or at a flow's entry: never at import time.

Pure: no numpy, no Prefect; validation does no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from softmax_core import settings
from softmax_core.errors import InvalidInputError, InvalidNameError
from softmax_core.names import parse_dataset_ref, parse_ref, validate_name

Features = Literal["pixels", "deskew", "hog"]  # softmax_core.preprocess.FEATURE_SETS (tested)
Weighting = Literal["jitter", "oversample", "loss"]
Format = Literal["csv", "jsonl"]
Action = Literal["promote", "request", "publish"]  # settings.TARGET_ACTIONS (tested)
STDOUT = "-"  # an output named "-" is stdout, as for most Unix tools


def _bad(name: str, value: Any, expected: str) -> InvalidInputError:
    return InvalidInputError(
        f"{name}={value!r} is invalid; expected {expected}", setting=(name, value)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _whole(name: str, value: Any, low: int, high: int | None = None) -> None:
    if not _is_int(value) or value < low or (high is not None and value > high):
        raise _bad(
            name, value, f"an integer >= {low}" if high is None else f"an integer {low}..{high}"
        )


def _fraction(name: str, value: Any) -> None:
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise _bad(name, value, "a number in [0, 1]")


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise _bad(name, value, expected)


def _flag(name: str, value: Any) -> None:
    _check(name, value, isinstance(value, bool), "true or false")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    _check(name, value, value in allowed, f"one of {', '.join(allowed)}")


def _part(name: str, value: Any, kind: type) -> None:
    """A nested part must be built as its own dataclass (from Python; Prefect converts
    a deployment's dicts itself)."""
    _check(name, value, isinstance(value, kind), f"a {kind.__name__}(...)")


def _optional_text(name: str, value: Any) -> None:
    ok = value is None or (isinstance(value, str) and bool(value.strip()))
    _check(name, value, ok, "a non-empty string, or nothing for the default")


def parts(request: TrainingRequest | ScoringRequest) -> dict[str, Any]:
    """The request's top-level parts by name: a flow's keyword arguments."""
    return {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}


# --- where things are ---------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where the registry is, and where this machine caches what it reads.

    ``registry``: a folder, ``file:///path`` or ``s3://bucket/prefix``; None:
    ``$SOFTMAX_PIPE_REGISTRY``, else the settings files' ``registry``, else a folder in
    the user's data dir. ``endpoint_url``: an S3 endpoint; None: ``AWS_ENDPOINT_URL``, the
    settings files' ``endpoint-url``, else boto3's own (the profile). ``cache_dir``:
    datasets and pulled blobs; None: ``$SOFTMAX_PIPE_CACHE``, the files' ``cache``, else
    the user's cache dir.
    """

    registry: str | None = None
    endpoint_url: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _optional_text("registry", self.registry)
        _optional_text("endpoint_url", self.endpoint_url)
        _optional_text("cache_dir", self.cache_dir)

    def resolved(self) -> Location:
        """Registry, endpoint and cache folder filled from the environment, the settings
        files and the defaults (:func:`softmax_core.settings.resolve`)."""
        built = settings.Settings.build(registry=self.registry, cache_dir=self.cache_dir)
        endpoint = settings.resolve("endpoint-url", self.endpoint_url).value
        return dataclasses.replace(
            self, registry=built.registry, endpoint_url=endpoint, cache_dir=str(built.cache_dir)
        )


@dataclass(frozen=True)
class Retries:
    """How the I/O steps (download, registry) retry on transient errors: ``io_retries``
    attempts more, the first after ``io_retry_delay`` seconds, each next one doubled."""

    io_retries: int = settings.IO_RETRIES
    io_retry_delay: float = settings.IO_RETRY_DELAY

    def __post_init__(self) -> None:
        _whole("io_retries", self.io_retries, 0)
        _check(
            "io_retry_delay",
            self.io_retry_delay,
            _is_real(self.io_retry_delay) and self.io_retry_delay >= 0,
            "seconds >= 0",
        )


# --- training -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """What a model learns from: MNIST, and the users' labelled datasets.

    ``source``: ``keras``, ``download``, a folder of IDX files or an ``.npz``; None:
    ``$SOFTMAX_PIPE_MNIST``, else keras's copy, keras, or the download. ``datasets``:
    ``NAME[:VERSION]`` references whose train splits are added (each image counted
    ``data_weight`` times, by ``weighting``; None: as many times as make them
    ``data_share`` of the MNIST images, see :meth:`weight_for`) and whose holdouts are
    gated. ``inbox``: a
    labelled folder synced into dataset ``inbox_dataset`` first, then trained on.
    ``skip_unchanged``: train nothing when the champion was made from the same data,
    code and parameters ("nothing new to learn"). ``reject``: train an 11-class model
    whose class 10 is "not a digit", from ``negatives_share`` x the MNIST images of
    generated non-digits (``softmax_core.negatives``) plus the datasets' ``not-a-digit``
    images; False: a 10-class model (the datasets' non-digits are left out).
    ``terms``: every class also weighs the pairwise products of the features along that
    many of the digits' leading directions (``softmax_core.quadratic``); 0: linear.
    """

    source: str | None = None
    download_url: str | None = None
    datasets: tuple[str, ...] = ()
    data_weight: int | None = settings.DATA_WEIGHT
    data_share: float = settings.DATA_SHARE
    weighting: Weighting = settings.DATA_WEIGHTING
    inbox: str | None = None
    inbox_dataset: str = settings.INBOX_DATASET
    skip_unchanged: bool = False
    reject: bool = settings.REJECT
    negatives_share: float = settings.NEGATIVES_SHARE
    terms: int = settings.TERMS

    def __post_init__(self) -> None:
        _optional_text("source", self.source)
        _optional_text("download_url", self.download_url)
        _optional_text("inbox", self.inbox)
        _check(
            "datasets",
            self.datasets,
            isinstance(self.datasets, list | tuple),  # tuple("printed") would be its letters
            "a list of NAME or NAME:VERSION",
        )
        object.__setattr__(self, "datasets", tuple(self.datasets))
        names = [parse_dataset_ref(ref)[0] for ref in self.datasets]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            refs = " and ".join(r for r, n in zip(self.datasets, names, strict=True) if n == name)
            raise InvalidNameError(
                f"dataset {name} is named twice ({refs}); name each dataset once, at the "
                "version to train on (NAME is its newest)"
            )
        if self.data_weight is not None:
            _whole("data_weight", self.data_weight, 1)
        share = self.data_share
        _check("data_share", share, _is_real(share) and 0 < share <= 1, "a number in (0, 1]")
        _choice("weighting", self.weighting, settings.DATA_WEIGHTINGS)
        validate_name("dataset name", self.inbox_dataset)
        if self.inbox is not None and self.inbox_dataset in names:
            raise InvalidNameError(
                f"dataset {self.inbox_dataset} is named twice (the inbox's dataset and in "
                "datasets); the inbox is trained on at its newest version: leave it out of "
                "datasets"
            )
        _flag("skip_unchanged", self.skip_unchanged)
        _flag("reject", self.reject)
        _fraction("negatives_share", self.negatives_share)
        _whole("terms", self.terms, 0, settings.MAX_TERMS)

    def n_negatives(self, n_mnist: int) -> int:
        """How many generated non-digits go with ``n_mnist`` MNIST images (0 without
        ``reject``)."""
        return math.ceil(self.negatives_share * n_mnist - 1e-9) if self.reject else 0

    def weight_for(self, n_users: int, n_mnist: int) -> int:
        """How many times each of ``n_users`` images counts next to ``n_mnist`` MNIST
        images: ``data_weight``, else ``ceil(data_share * n_mnist / n_users)``, at least 1.
        Few labels weigh more each, so a user's domain is learned whatever its size (x37
        for 164 images, x5 for 1,201; ``benchmarks/own_data.py``)."""
        if self.data_weight is not None:
            return self.data_weight
        if n_users <= 0:
            return 1
        return max(1, math.ceil(self.data_share * n_mnist / n_users - 1e-9))

    def resolved(self) -> Data:
        """The MNIST source filled from ``$SOFTMAX_PIPE_MNIST`` when none is given."""
        return dataclasses.replace(self, source=settings.Settings.build(source=self.source).source)


@dataclass(frozen=True)
class Hyper:
    """What the model sees and how SGD trains it (``softmax_core.sgd``).

    ``features``: pixels, deskew or hog (see ``softmax_core.preprocess``). The learning
    rate decays as ``learning_rate / (1 + decay * epoch)``; momentum is heavy-ball; with
    ``average`` the weights are the mean of the last epoch's iterates. ``limit``: train on
    the first N MNIST images only. ``warm_start``: start from the champion's weights.
    ``calibration_images``: the last N MNIST training images, on which the temperature is
    fitted with the logits of a model that did not learn from them (``softmax_core.train``;
    at most a fifth of the split; 0: no temperature, T = 1).
    """

    features: Features = settings.FEATURES
    epochs: int = settings.EPOCHS
    seed: int = settings.SEED
    learning_rate: float = settings.LEARNING_RATE
    batch_size: int = settings.BATCH_SIZE
    l2: float = settings.L2
    momentum: float = settings.MOMENTUM
    decay: float = settings.DECAY
    average: bool = settings.AVERAGE
    limit: int | None = None
    warm_start: bool = False
    calibration_images: int = settings.CALIBRATION_IMAGES

    def __post_init__(self) -> None:
        _choice("features", self.features, settings.FEATURE_NAMES)
        _whole("epochs", self.epochs, 1)
        _whole("seed", self.seed, 0)
        lr, mu = self.learning_rate, self.momentum
        _check("learning_rate", lr, _is_real(lr) and 0 < lr < float("inf"), "a number > 0")
        _whole("batch_size", self.batch_size, 1)
        _check("l2", self.l2, _is_real(self.l2) and self.l2 >= 0, "a number >= 0")
        _check("momentum", mu, _is_real(mu) and 0 <= mu < 1, "a number in [0, 1)")
        _check("decay", self.decay, _is_real(self.decay) and self.decay >= 0, "a number >= 0")
        _flag("average", self.average)
        if self.limit is not None:
            _whole("limit", self.limit, 1)
        _flag("warm_start", self.warm_start)
        _whole("calibration_images", self.calibration_images, 0)

    def sgd_params(self) -> dict[str, Any]:
        """The SGD hyperparameters as a model file records them (``params``)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "decay": self.decay,
            "l2": self.l2,
            "average": self.average,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Gate:
    """When a challenger may be published (``softmax_core.gate``): MNIST test accuracy at
    least ``min_accuracy``; on each dataset's holdout at least ``min_dataset_accuracy``
    once the holdout is large enough for a floor to mean something
    (``gate.floor_min_images``); and on each, not shown worse than the champion by more
    than ``margin`` (a one-sided test at ``alpha``). A model that can reject (11
    classes) rejects at most ``max_reject_rate`` of MNIST test and at least
    ``min_negatives_rejected`` of the held-out generated negatives."""

    min_accuracy: float = settings.MIN_ACCURACY
    alpha: float = settings.ALPHA
    min_dataset_accuracy: float = settings.DATASET_MIN_ACCURACY
    margin: float = settings.MARGIN
    max_reject_rate: float = settings.MAX_REJECT_RATE
    min_negatives_rejected: float = settings.MIN_NEGATIVES_REJECTED

    def __post_init__(self) -> None:
        _fraction("min_accuracy", self.min_accuracy)
        a = self.alpha
        _check("alpha", a, _is_real(a) and 0 < a < 1, "a number in (0, 1)")
        _fraction("min_dataset_accuracy", self.min_dataset_accuracy)
        m = self.margin
        _check("margin", m, _is_real(m) and 0 <= m < 1, "a number in [0, 1)")
        _fraction("max_reject_rate", self.max_reject_rate)
        _fraction("min_negatives_rejected", self.min_negatives_rejected)


@dataclass(frozen=True)
class Target:
    """Where a passing model goes: the registry, its name, and the champion alias. The
    challenger is gated against ``name@alias`` (and warm-starts from it). ``action``,
    once it is published: ``promote`` moves the alias to it; ``request`` asks an approver
    to (a request record, which a trainer's key may write, where it may not move the
    alias); ``publish`` does neither."""

    location: Location = field(default_factory=Location)
    name: str = settings.MODEL_NAME
    alias: str = settings.ALIAS
    action: Action = settings.TARGET_ACTION

    def __post_init__(self) -> None:
        _part("location", self.location, Location)
        validate_name("model name", self.name)
        validate_name("alias", self.alias)
        _choice("action", self.action, settings.TARGET_ACTIONS)

    @property
    def champion(self) -> str:
        """``name@alias``."""
        return f"{self.name}@{self.alias}"

    @property
    def promote(self) -> bool:
        """Whether the alias moves to the new version (``action == "promote"``)."""
        return self.action == "promote"


@dataclass(frozen=True)
class TrainingRequest:
    """A training run: ingest → train → gate → publish (→ promote). See the module doc."""

    data: Data = field(default_factory=Data)
    hyper: Hyper = field(default_factory=Hyper)
    gate: Gate = field(default_factory=Gate)
    target: Target = field(default_factory=Target)
    retries: Retries = field(default_factory=Retries)

    def __post_init__(self) -> None:
        for name, kind in (("data", Data), ("hyper", Hyper), ("gate", Gate)):
            _part(name, getattr(self, name), kind)
        _part("target", self.target, Target)
        _part("retries", self.retries, Retries)

    def resolved(self) -> TrainingRequest:
        """The same request with the source, registry and cache folder the environment
        supplies filled in (the CLI and the flow's entry call this; no I/O)."""
        target = dataclasses.replace(self.target, location=self.target.location.resolved())
        return dataclasses.replace(self, data=self.data.resolved(), target=target)


# --- scoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """The model that scores: ``name@alias``, ``name:version``, ``name`` (its newest
    version) in the registry at ``location``, or a model file (``.npz``)."""

    ref: str = settings.MODEL_REF
    location: Location = field(default_factory=Location)

    def __post_init__(self) -> None:
        _part("location", self.location, Location)
        if not isinstance(self.ref, str) or not self.ref:
            raise _bad("model", self.ref, "a registry reference or a model file")
        if os.path.isdir(self.ref) and not _could_be_ref(self.ref):  # `evaluate ./m`
            raise InvalidInputError(f"{self.ref} is a folder, not a model file (.npz)")
        if not self.is_file:
            parse_ref(self.ref)

    @property
    def is_file(self) -> bool:
        """``ref`` names a model file: it ends in ``.npz`` or exists as a file."""
        return self.ref.lower().endswith(".npz") or os.path.isfile(self.ref)


def _could_be_ref(ref: str) -> bool:
    """True when ``ref`` reads as a registry reference (``mnist``, ``mnist@champion``): a
    folder of that name in the working folder (the user's data) does not hide the model."""
    try:
        parse_ref(ref)
    except InvalidNameError:
        return False
    return True


def format_for(path: str | None) -> Format:
    """The row format an output's name asks for when none is given: JSON Lines for a name
    ending in ``.jsonl`` or ``.ndjson``, else the default (CSV; stdout too)."""
    jsonl = (path or "").lower().endswith((".jsonl", ".ndjson"))
    return "jsonl" if jsonl else settings.SCORE_FORMAT


@dataclass(frozen=True)
class Output:
    """Where rows go: ``path`` (a temporary file renamed into place at the end) or stdout
    (None; ``-`` is stdout too, as for most Unix tools), as CSV or JSON Lines, with the
    probabilities ``p0``..``p9`` when ``probs``; with ``profile``, the run's profile and
    drift check too (``registry.monitoring``: beside ``path`` and, for a registry model,
    under ``monitoring/<name>/``)."""

    path: str | None = None
    format: Format = settings.SCORE_FORMAT
    probs: bool = False
    profile: bool = settings.PROFILE

    def __post_init__(self) -> None:
        _optional_text("output", self.path)
        if self.path == STDOUT:
            object.__setattr__(self, "path", None)
        _choice("format", self.format, settings.SCORE_FORMATS)
        _flag("probs", self.probs)
        _flag("profile", self.profile)

    @property
    def file(self) -> Path | None:
        """The local file ``path`` names (None: stdout). ``./-`` is a file named ``-`` in
        the current folder, as documented: pathlib would make it ``-``, stdout's name."""
        if self.path is None:
            return None
        file = Path(self.path)
        return file.absolute() if str(file) == STDOUT else file


@dataclass(frozen=True)
class Performance:
    """How the work is split: ``workers`` processes locally (threads in a flow; None: one
    per CPU), ``batch_size`` images per task, ``shard_size`` images per flow task (a whole
    number of batches), ``max_pixels`` the most pixels an image may have (bombs)."""

    workers: int | None = None
    batch_size: int = settings.SCORE_BATCH_SIZE
    shard_size: int = settings.SHARD_SIZE
    max_pixels: int = settings.MAX_PIXELS
    retries: Retries = field(default_factory=Retries)

    def __post_init__(self) -> None:
        _part("retries", self.retries, Retries)
        if self.workers is not None:
            _whole("workers", self.workers, 1, 256)
        _whole("batch_size", self.batch_size, 1, 65536)
        _whole("shard_size", self.shard_size, 1)
        _whole("max_pixels", self.max_pixels, 1)


@dataclass(frozen=True)
class Review:
    """Unsure predictions: the summary counts those below ``min_confidence``; with
    ``queue`` (a folder) they, and the rejected images, are copied there for a person to
    label. ``reject``: with a model that can reject (11 classes), an image whose "not a
    digit" probability is the largest and at least ``reject_threshold`` is a
    ``status=rejected`` row, and so is a blank page; False: every image gets a digit (a
    blank page is an error row). A 10-class model's rows are the same either way."""

    min_confidence: float = settings.MIN_CONFIDENCE
    queue: str | None = None
    reject: bool = settings.REJECT
    reject_threshold: float = settings.REJECT_THRESHOLD

    def __post_init__(self) -> None:
        _fraction("min_confidence", self.min_confidence)
        _optional_text("review", self.queue)
        _flag("reject", self.reject)
        _fraction("reject_threshold", self.reject_threshold)


@dataclass(frozen=True)
class ScoringRequest:
    """A scoring run: every image under ``input`` labelled by ``model``. See the module doc."""

    input: str
    model: ModelRef = field(default_factory=ModelRef)
    output: Output = field(default_factory=Output)
    performance: Performance = field(default_factory=Performance)
    review: Review = field(default_factory=Review)

    def __post_init__(self) -> None:
        if not isinstance(self.input, str) or not self.input:
            raise _bad("path", self.input, "an image file or a folder")
        _part("model", self.model, ModelRef)
        _part("output", self.output, Output)
        _part("performance", self.performance, Performance)
        _part("review", self.review, Review)

    def resolved(self) -> ScoringRequest:
        """The same request with the registry and cache folder filled in (no I/O)."""
        model = dataclasses.replace(self.model, location=self.model.location.resolved())
        return dataclasses.replace(self, model=model)
