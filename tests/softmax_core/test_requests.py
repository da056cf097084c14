"""softmax_core.requests: one frozen request per job, validated when built, its defaults from
softmax_core.settings, the environment read only by ``resolved()``."""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from softmax_core import settings
from softmax_core.errors import InvalidInputError, InvalidNameError
from softmax_core.requests import (
    Data,
    Gate,
    Hyper,
    Location,
    ModelRef,
    Output,
    Performance,
    Retries,
    Review,
    ScoringRequest,
    Target,
    TrainingRequest,
)

TEXT = "a non-empty string, or nothing for the default"
FLAG = "true or false"

# (request part, its field's name in the message, the field, a bad value, what is allowed)
BAD: list[tuple[type, str, str, Any, str]] = [
    *[
        (Location, name, name, value, TEXT)
        for name in ("registry", "endpoint_url", "cache_dir")
        for value in ("", "   ", 3)
    ],
    (Retries, "io_retries", "io_retries", -1, "an integer >= 0"),
    (Retries, "io_retries", "io_retries", 1.5, "an integer >= 0"),
    (Retries, "io_retries", "io_retries", True, "an integer >= 0"),
    (Retries, "io_retries", "io_retries", "3", "an integer >= 0"),
    (Retries, "io_retry_delay", "io_retry_delay", -0.5, "seconds >= 0"),
    (Retries, "io_retry_delay", "io_retry_delay", math.nan, "seconds >= 0"),
    (Retries, "io_retry_delay", "io_retry_delay", "2", "seconds >= 0"),
    *[
        (Data, name, name, value, TEXT)
        for name in ("source", "download_url", "inbox")
        for value in ("", " ", 7)
    ],
    (Data, "datasets", "datasets", "printed", "a list of NAME or NAME:VERSION"),
    (Data, "datasets", "datasets", None, "a list of NAME or NAME:VERSION"),
    (Data, "data_weight", "data_weight", 0, "an integer >= 1"),
    (Data, "data_weight", "data_weight", 2.5, "an integer >= 1"),
    (Data, "data_weight", "data_weight", False, "an integer >= 1"),
    *[
        (Data, "data_share", "data_share", value, "a number in (0, 1]")
        for value in (0, -0.1, 1.5, math.nan, "0.2", True)
    ],
    (Data, "weighting", "weighting", "both", "one of jitter, oversample, loss"),
    (Data, "weighting", "weighting", None, "one of jitter, oversample, loss"),
    (Data, "skip_unchanged", "skip_unchanged", "yes", FLAG),
    (Data, "skip_unchanged", "skip_unchanged", 1, FLAG),
    (Hyper, "features", "features", "sift", "one of pixels, deskew, hog"),
    (Hyper, "features", "features", "HOG", "one of pixels, deskew, hog"),
    (Hyper, "epochs", "epochs", 0, "an integer >= 1"),
    (Hyper, "epochs", "epochs", 2.0, "an integer >= 1"),
    (Hyper, "epochs", "epochs", True, "an integer >= 1"),
    (Hyper, "seed", "seed", -1, "an integer >= 0"),
    (Hyper, "seed", "seed", "0", "an integer >= 0"),
    *[
        (Hyper, "learning_rate", "learning_rate", value, "a number > 0")
        for value in (0, -1.0, math.inf, math.nan, "0.5", True)
    ],
    (Hyper, "batch_size", "batch_size", 0, "an integer >= 1"),
    (Hyper, "batch_size", "batch_size", 128.0, "an integer >= 1"),
    (Hyper, "l2", "l2", -0.1, "a number >= 0"),
    (Hyper, "l2", "l2", math.nan, "a number >= 0"),
    (Hyper, "momentum", "momentum", 1.0, "a number in [0, 1)"),
    (Hyper, "momentum", "momentum", -0.1, "a number in [0, 1)"),
    (Hyper, "decay", "decay", -1, "a number >= 0"),
    (Hyper, "decay", "decay", "1", "a number >= 0"),
    (Hyper, "average", "average", 1, FLAG),
    (Hyper, "average", "average", "false", FLAG),
    (Hyper, "limit", "limit", 0, "an integer >= 1"),
    (Hyper, "limit", "limit", 10.5, "an integer >= 1"),
    (Hyper, "warm_start", "warm_start", "no", FLAG),
    (Hyper, "calibration_images", "calibration_images", -1, "an integer >= 0"),
    (Hyper, "calibration_images", "calibration_images", 5000.0, "an integer >= 0"),
    *[
        (Gate, name, name, value, "a number in [0, 1]")
        for name in (
            "min_accuracy",
            "min_dataset_accuracy",
            "max_reject_rate",
            "min_negatives_rejected",
        )
        for value in (-0.01, 1.01, math.nan, "0.9", True)
    ],
    (Data, "reject", "reject", "yes", FLAG),
    *[
        (Data, "negatives_share", "negatives_share", value, "a number in [0, 1]")
        for value in (-0.1, 1.5, math.nan, "0.1")
    ],
    *[(Data, "terms", "terms", value, "an integer 0..64") for value in (-1, 65, 2.0, True)],
    *[(Gate, "alpha", "alpha", value, "a number in (0, 1)") for value in (0, 1, 1.5, None)],
    *[
        (Gate, "margin", "margin", value, "a number in [0, 1)")
        for value in (-0.001, 1, math.nan, "0.005", True)
    ],
    (Target, "action", "action", True, "one of promote, request, publish"),
    (Target, "action", "action", "Promote", "one of promote, request, publish"),
    (ModelRef, "model", "ref", "", "a registry reference or a model file"),
    (ModelRef, "model", "ref", None, "a registry reference or a model file"),
    (Output, "output", "path", "", TEXT),
    (Output, "format", "format", "xml", "one of csv, jsonl"),
    (Output, "format", "format", "CSV", "one of csv, jsonl"),
    (Output, "probs", "probs", 1, FLAG),
    (Output, "profile", "profile", "yes", FLAG),
    *[
        (Performance, "workers", "workers", value, "an integer 1..256")
        for value in (0, 257, 2.0, True)
    ],
    (Performance, "batch_size", "batch_size", 0, "an integer 1..65536"),
    (Performance, "batch_size", "batch_size", 65537, "an integer 1..65536"),
    (Performance, "shard_size", "shard_size", 0, "an integer >= 1"),
    (Performance, "max_pixels", "max_pixels", 0, "an integer >= 1"),
    (Performance, "max_pixels", "max_pixels", 1e6, "an integer >= 1"),
    (Review, "min_confidence", "min_confidence", 1.5, "a number in [0, 1]"),
    (Review, "min_confidence", "min_confidence", -0.5, "a number in [0, 1]"),
    (Review, "review", "queue", "", TEXT),
    (Review, "reject", "reject", 1, FLAG),
    *[
        (Review, "reject_threshold", "reject_threshold", value, "a number in [0, 1]")
        for value in (-0.1, 1.01, math.nan, None)
    ],
]


def build(part: type, field: str, value: Any) -> Any:
    return (
        part(input="images", **{field: value}) if part is ScoringRequest else part(**{field: value})
    )


@pytest.mark.parametrize(
    ("part", "name", "field", "value", "expected"),
    BAD,
    ids=[f"{p.__name__}.{f}={v!r}" for p, _, f, v, _ in BAD],
)
def test_a_bad_value_names_its_field_and_what_is_allowed(
    part: type, name: str, field: str, value: Any, expected: str
) -> None:
    message = f"{name}={value!r} is invalid; expected {expected}"
    with pytest.raises(InvalidInputError, match=f"^{re.escape(message)}$") as info:
        build(part, field, value)
    assert info.value.exit_code == 2


def test_every_validated_field_is_tested_with_a_bad_value() -> None:
    """A new knob brings its bad values here (names: the next test)."""
    tested = {f"{part.__name__}.{field}" for part, _, field, _, _ in BAD}
    parts = (Location, Retries, Data, Hyper, Gate, Target, ModelRef, Output, Performance, Review)
    leaves = {
        f"{part.__name__}.{f.name}"
        for part in parts
        for f in dataclasses.fields(part)
        if f.name not in ("location", "retries")  # parts of their own, tested on their own
    }
    assert leaves - tested == {"Data.inbox_dataset", "Target.name", "Target.alias"}


@pytest.mark.parametrize(
    ("build_it", "match"),
    [
        (lambda: Data(datasets=("printed@v1",)), "dataset reference 'printed@v1' has an alias"),
        (lambda: Data(datasets=("ok", "")), "dataset reference is empty"),
        (lambda: Data(datasets=("a/b",)), r"dataset name 'a/b' contains '/'"),
        (lambda: Data(datasets=("scans:0",)), r"version '0' in 'scans:0' is not a positive"),
        (lambda: Data(datasets=("a", "b", "a:2")), "dataset a is named twice \\(a and a:2\\)"),
        (lambda: Data(datasets=("a:1", "a:1")), "dataset a is named twice \\(a:1 and a:1\\)"),
        (lambda: Data(inbox="in", datasets=("inbox",)), "dataset inbox is named twice"),
        (lambda: Data(inbox_dataset=""), "dataset name is empty"),
        (lambda: Data(inbox_dataset="../up"), r"dataset name '../up' contains '/'"),
        (lambda: Target(name="my model"), "model name 'my model' contains ' '"),
        (lambda: Target(name=""), "model name is empty"),
        (lambda: Target(alias="-x"), "alias '-x' starts with '-'"),
        (lambda: Target(alias=".."), r"alias '\.\.' is not allowed"),
        (lambda: ModelRef("mnist@champion:3"), "has both '@' and ':'"),
        (lambda: ModelRef("mnist:latest"), "version 'latest' in 'mnist:latest'"),
        (lambda: ModelRef("my model"), "model name 'my model' contains ' '"),
        (lambda: ScoringRequest(""), "path='' is invalid; expected an image file or a folder"),
        (lambda: ScoringRequest(None), "path=None is invalid; expected an image file or a folder"),  # type: ignore[arg-type]
    ],
    ids=[
        "dataset-alias",
        "dataset-empty",
        "dataset-slash",
        "dataset-version-0",
        "dataset-twice",
        "dataset-version-twice",
        "dataset-and-inbox",
        "inbox-dataset-empty",
        "inbox-dataset-climbs",
        "name-space",
        "name-empty",
        "alias-option",
        "alias-dots",
        "ref-both",
        "ref-version",
        "ref-space",
        "input-empty",
        "input-none",
    ],
)
def test_names_and_references_are_checked_when_the_request_is_built(
    build_it: Any, match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match) as info:
        build_it()
    assert info.value.exit_code == 2
    if "path" not in match:
        assert isinstance(info.value, InvalidNameError)


def test_good_values_at_the_edges_are_accepted() -> None:
    Hyper(epochs=1, seed=0, learning_rate=1e30, l2=0, momentum=0, decay=0, limit=1)
    Hyper(learning_rate=1, l2=1, momentum=0.999)  # ints are numbers
    Gate(min_accuracy=0, alpha=0.999, min_dataset_accuracy=1)
    Retries(io_retries=0, io_retry_delay=0)
    Performance(workers=256, batch_size=65536, shard_size=1, max_pixels=1)
    Review(min_confidence=0.0)
    # a list (as JSON or a deployment gives it) becomes a tuple
    assert Data(datasets=["a", "b:2"]).datasets == ("a", "b:2")  # type: ignore[arg-type]


# --- defaults -------------------------------------------------------------------------------

# Every field's default: the settings constant it comes from, or what "not given" means.
DEFAULTS: dict[str, Any] = {
    "Location.registry": None,
    "Location.endpoint_url": None,
    "Location.cache_dir": None,
    "Retries.io_retries": settings.IO_RETRIES,
    "Retries.io_retry_delay": settings.IO_RETRY_DELAY,
    "Data.source": None,
    "Data.download_url": None,
    "Data.datasets": (),
    "Data.data_weight": settings.DATA_WEIGHT,
    "Data.data_share": settings.DATA_SHARE,
    "Data.weighting": settings.DATA_WEIGHTING,
    "Data.inbox": None,
    "Data.inbox_dataset": settings.INBOX_DATASET,
    "Data.skip_unchanged": False,
    "Data.reject": settings.REJECT,
    "Data.negatives_share": settings.NEGATIVES_SHARE,
    "Data.terms": settings.TERMS,
    "Hyper.features": settings.FEATURES,
    "Hyper.epochs": settings.EPOCHS,
    "Hyper.seed": settings.SEED,
    "Hyper.learning_rate": settings.LEARNING_RATE,
    "Hyper.batch_size": settings.BATCH_SIZE,
    "Hyper.l2": settings.L2,
    "Hyper.momentum": settings.MOMENTUM,
    "Hyper.decay": settings.DECAY,
    "Hyper.average": settings.AVERAGE,
    "Hyper.limit": None,
    "Hyper.warm_start": False,
    "Hyper.calibration_images": settings.CALIBRATION_IMAGES,
    "Gate.min_accuracy": settings.MIN_ACCURACY,
    "Gate.alpha": settings.ALPHA,
    "Gate.min_dataset_accuracy": settings.DATASET_MIN_ACCURACY,
    "Gate.margin": settings.MARGIN,
    "Gate.max_reject_rate": settings.MAX_REJECT_RATE,
    "Gate.min_negatives_rejected": settings.MIN_NEGATIVES_REJECTED,
    "Target.location": Location(),
    "Target.name": settings.MODEL_NAME,
    "Target.alias": settings.ALIAS,
    "Target.action": settings.TARGET_ACTION,
    "ModelRef.ref": settings.MODEL_REF,
    "ModelRef.location": Location(),
    "Output.path": None,
    "Output.format": settings.SCORE_FORMAT,
    "Output.profile": settings.PROFILE,
    "Output.probs": False,
    "Performance.workers": None,
    "Performance.batch_size": settings.SCORE_BATCH_SIZE,
    "Performance.shard_size": settings.SHARD_SIZE,
    "Performance.max_pixels": settings.MAX_PIXELS,
    "Performance.retries": Retries(),
    "Review.min_confidence": settings.MIN_CONFIDENCE,
    "Review.queue": None,
    "Review.reject": settings.REJECT,
    "Review.reject_threshold": settings.REJECT_THRESHOLD,
    "TrainingRequest.data": Data(),
    "TrainingRequest.hyper": Hyper(),
    "TrainingRequest.gate": Gate(),
    "TrainingRequest.target": Target(),
    "TrainingRequest.retries": Retries(),
    "ScoringRequest.model": ModelRef(),
    "ScoringRequest.output": Output(),
    "ScoringRequest.performance": Performance(),
    "ScoringRequest.review": Review(),
}


def test_every_default_comes_from_settings() -> None:
    parts = (Location, Retries, Data, Hyper, Gate, Target, ModelRef, Output, Performance, Review)
    built: list[Any] = [p() for p in parts] + [TrainingRequest(), ScoringRequest("images")]
    got = {
        f"{type(part).__name__}.{f.name}": getattr(part, f.name)
        for part in built
        for f in dataclasses.fields(part)
        if f.name != "input"  # ScoringRequest's one required field
    }
    assert got == DEFAULTS  # every field listed (a new knob too), each from settings
    assert Target().champion == settings.MODEL_REF == f"{settings.MODEL_NAME}@{settings.ALIAS}"


def test_the_target_actions_are_the_settings() -> None:
    import typing

    from softmax_core import requests

    assert typing.get_args(requests.Action) == settings.TARGET_ACTIONS
    assert Target().promote and not Target(action="request").promote
    assert settings.TARGET_ACTION in settings.TARGET_ACTIONS


def test_sgd_params_are_what_a_model_file_records() -> None:
    hyper = Hyper(epochs=2, seed=5, learning_rate=0.1, batch_size=64, l2=0, momentum=0.5)
    assert hyper.sgd_params() == {
        "epochs": 2,
        "batch_size": 64,
        "learning_rate": 0.1,
        "momentum": 0.5,
        "decay": settings.DECAY,
        "l2": 0,
        "average": settings.AVERAGE,
        "seed": 5,
    }


# --- resolved(): the environment, at the edge -------------------------------------------------


def test_location_resolved_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Location().registry is None  # building a request reads nothing
    monkeypatch.setenv(settings.ENV_REGISTRY, "s3://bucket/models")
    monkeypatch.setenv(settings.ENV_CACHE, str(tmp_path / "cache"))
    where = Location(endpoint_url="http://127.0.0.1:9000").resolved()
    assert where == Location(
        registry="s3://bucket/models",
        endpoint_url="http://127.0.0.1:9000",  # boto3's own conventions: left alone
        cache_dir=str(tmp_path / "cache"),
    )
    given = Location(registry=str(tmp_path / "reg"), cache_dir=str(tmp_path / "c")).resolved()
    assert given.registry == str(tmp_path / "reg") and given.cache_dir == str(tmp_path / "c")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "reg").exists()  # no I/O


def test_location_resolved_to_the_user_folders_without_environment() -> None:
    where = Location().resolved()
    assert where.registry == str(settings.default_registry_dir())
    assert where.cache_dir == str(settings.default_cache_dir())
    assert where.resolved() == where  # idempotent


def test_training_request_resolved_fills_source_registry_and_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    request = TrainingRequest(hyper=Hyper(epochs=1), target=Target(name="digits"))
    monkeypatch.setenv(settings.ENV_MNIST, str(tmp_path / "mnist"))
    monkeypatch.setenv(settings.ENV_REGISTRY, str(tmp_path / "reg"))
    monkeypatch.setenv(settings.ENV_CACHE, str(tmp_path / "cache"))
    run = request.resolved()
    assert run.data.source == str(tmp_path / "mnist")
    assert run.target.location.registry == str(tmp_path / "reg")
    assert run.target.location.cache_dir == str(tmp_path / "cache")
    assert run.hyper == request.hyper and run.target.name == "digits" and run.gate == request.gate
    assert request.data.source is None and request.target.location == Location()  # unchanged
    explicit = TrainingRequest(data=Data(source="download")).resolved()
    assert explicit.data.source == "download"  # what was given wins over the environment


def test_data_source_stays_unset_without_environment() -> None:
    assert Data().resolved().source is None  # keras's copy, keras, or the download: decided later


def test_scoring_request_resolved_fills_the_models_registry_and_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(settings.ENV_REGISTRY, "s3://bucket")
    monkeypatch.setenv(settings.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(settings.ENV_MNIST, str(tmp_path / "mnist"))  # scoring reads no MNIST
    request = ScoringRequest("images", ModelRef("mnist:3"), Output("scores.csv"))
    run = request.resolved()
    assert run.model == ModelRef("mnist:3", Location("s3://bucket", None, str(tmp_path / "cache")))
    assert (run.input, run.output, run.review) == ("images", request.output, request.review)


def test_an_output_named_dash_is_stdout() -> None:
    """`score -o -`, or a deployment's output "-": the rows go to stdout (None), as for
    most Unix tools; a file named '-' is ./-."""
    assert Output("-") == Output() and Output("-").path is None
    assert Output("./-").path == "./-"


# --- frozen, picklable ------------------------------------------------------------------------


def requests_with_every_part() -> list[Any]:
    where = Location("s3://bucket/p", "http://127.0.0.1:9000", "/tmp/cache")
    training = TrainingRequest(
        data=Data(source="download", datasets=("printed", "scans:2"), weighting="loss", inbox="in"),
        hyper=Hyper(features="deskew", epochs=2, limit=100, warm_start=True),
        gate=Gate(min_accuracy=0.9, alpha=0.01),
        target=Target(location=where, name="digits", alias="prod", action="request"),
        retries=Retries(io_retries=1, io_retry_delay=0.5),
    )
    scoring = ScoringRequest(
        "images",
        ModelRef("digits@prod", where),
        Output("scores.jsonl", "jsonl", probs=True),
        Performance(workers=2, batch_size=8, shard_size=16, retries=Retries(0)),
        Review(0.8, "queue"),
    )
    return [training, scoring]


@pytest.mark.parametrize("request_", requests_with_every_part(), ids=["training", "scoring"])
def test_requests_are_frozen_and_picklable(request_: Any) -> None:
    """Prefect ships a flow's parameters, and scoring its requests' parts, to other processes."""
    assert pickle.loads(pickle.dumps(request_)) == request_
    parts = [request_, *(v for v in vars(request_).values() if dataclasses.is_dataclass(v))]
    for part in parts:
        name = dataclasses.fields(part)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, name, getattr(part, name))
    assert hash(request_) == hash(pickle.loads(pickle.dumps(request_)))  # usable as a key


def test_model_ref_knows_a_file_from_a_registry_reference(tmp_path: Path) -> None:
    assert ModelRef("candidate.npz").is_file and ModelRef("A.NPZ").is_file  # need not exist
    plain = tmp_path / "model"
    plain.write_bytes(b"")
    assert ModelRef(str(plain)).is_file  # an existing file whatever its name
    assert not ModelRef("mnist@champion").is_file and not ModelRef("mnist").is_file


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: TrainingRequest(hyper={"epochs": 2}), "hyper"),  # type: ignore[arg-type]
        (lambda: TrainingRequest(data=None), "data"),  # type: ignore[arg-type]
        (lambda: Target(location="s3://bucket/reg"), "location"),  # type: ignore[arg-type]
        (lambda: Performance(retries=3), "retries"),  # type: ignore[arg-type]
        (lambda: ScoringRequest("x", model="mnist@champion"), "model"),  # type: ignore[arg-type]
    ],
    ids=["dict-for-hyper", "none-for-data", "uri-for-location", "int-for-retries", "str-for-model"],
)
def test_a_part_that_is_not_its_dataclass_is_refused_by_name(
    build: Callable[[], Any], name: str
) -> None:
    """From Python, a nested part given as a plain value fails when the request is built
    (exit 2, naming the part), not later with an AttributeError (exit 70)."""
    with pytest.raises(
        InvalidInputError, match=rf"^{name}=.* is invalid; expected a \w+\(\.\.\.\)$"
    ):
        build()


def test_the_weight_of_users_images_follows_their_share() -> None:
    """Without data_weight, the users' images count as data_share of the MNIST images:
    few labels weigh more each; an explicit weight wins."""
    assert Data().weight_for(164, 60_000) == 37  # 20 a class, 82% in train: ceil(36.6)
    assert Data().weight_for(1_201, 60_000) == 5  # the 1,500-image printed benchmark
    assert Data().weight_for(38, 60_000) == 158
    assert Data().weight_for(100_000, 60_000) == 1  # at least once
    assert Data().weight_for(6_000, 60_000) == 1  # exactly the share: no rounding up
    assert Data().weight_for(100, 60_000) == 60
    assert Data(data_share=0.2).weight_for(164, 60_000) == 74
    assert Data(data_weight=3).weight_for(164, 60_000) == 3


def test_how_many_negatives_go_with_the_mnist_images() -> None:
    assert Data().n_negatives(60_000) == round(settings.NEGATIVES_SHARE * 60_000)
    assert Data(negatives_share=0.05).n_negatives(1_000) == 50
    assert Data(negatives_share=0.0).n_negatives(60_000) == 0
    assert Data(reject=False).n_negatives(60_000) == 0
