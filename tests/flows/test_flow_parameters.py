"""What a deployment's run dialog shows and what Prefect validates: each flow takes the
parts of one request (``softmax_core.requests``) as its parameters, so its parameter
schema is that request's tree, nested dicts of parameters become the request, and a bad
nested value is refused naming the field. No Prefect server is needed: this is the flow
object's own schema.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from flows.scoring import batch_scoring
from flows.training import training_pipeline
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
    parts,
)

#: the issue's bound on a flow's top-level parameters (it had 25 before the requests)
MAX_PARAMETERS = 5

TRAINING = TrainingRequest(
    data=Data(source="/data/mnist", datasets=("printed:2",), data_weight=3, weighting="loss"),
    hyper=Hyper(features="deskew", epochs=2, seed=7, limit=1000, warm_start=True),
    gate=Gate(min_accuracy=0.9, alpha=0.01, min_dataset_accuracy=0.8),
    target=Target(
        location=Location(registry="s3://models/reg", endpoint_url="http://127.0.0.1:9000"),
        name="digits",
        alias="staging",
        action="request",
    ),
    retries=Retries(io_retries=1, io_retry_delay=0.5),
)
SCORING = ScoringRequest(
    input="/srv/inbox",
    model=ModelRef("digits@staging", Location(registry="/srv/registry")),
    output=Output(path="/srv/outbox/scores.jsonl", format="jsonl", probs=True),
    performance=Performance(workers=2, batch_size=64, shard_size=512, max_pixels=10**6),
    review=Review(min_confidence=0.6),
)


def _as_parameters(request: TrainingRequest | ScoringRequest) -> dict[str, Any]:
    """A deployment's parameters for ``request``: its parts, as JSON (no tuples)."""
    doc: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(request)))
    return doc


def _refusal(flow: Any, doc: dict[str, Any]) -> str:
    with pytest.raises(ParameterTypeError) as e:
        flow.validate_parameters(doc)
    return str(e.value)


# --- the training flow ---------------------------------------------------------------------


def test_training_flow_takes_the_requests_parts_and_its_schema_is_the_requests_tree() -> None:
    schema = training_pipeline.parameters
    assert list(schema.properties) == [f.name for f in dataclasses.fields(TrainingRequest)]
    assert list(schema.properties) == ["data", "hyper", "gate", "target", "retries"]
    assert len(schema.properties) <= MAX_PARAMETERS
    assert schema == parameter_schema(training_pipeline.fn)  # what a deployment records
    assert schema.required == []  # a run with no parameters is the default request
    for position, (name, part) in enumerate(parts(TrainingRequest()).items()):
        prop = schema.properties[name]
        assert prop["$ref"] == f"#/definitions/{type(part).__name__}"
        assert prop["position"] == position
        default = json.loads(json.dumps(dataclasses.asdict(part)))
        assert prop["default"] == default

    definitions = schema.definitions
    assert {"Data", "Hyper", "Gate", "Target", "Retries", "Location"} <= set(definitions)
    for part in (Data, Hyper, Gate, Target, Retries, Location):
        fields = [f.name for f in dataclasses.fields(part)]
        assert list(definitions[part.__name__]["properties"]) == fields, part.__name__
    hyper = definitions["Hyper"]["properties"]
    assert hyper["epochs"]["type"] == "integer" and hyper["epochs"]["default"] == Hyper().epochs
    assert hyper["features"]["enum"] == ["pixels", "deskew", "hog"]  # a choice in the form
    assert definitions["Data"]["properties"]["weighting"]["enum"] == [
        "jitter",
        "oversample",
        "loss",
    ]


def test_training_parameters_as_json_build_the_request() -> None:
    validated = training_pipeline.validate_parameters(_as_parameters(TRAINING))
    assert TrainingRequest(**validated) == TRAINING
    assert isinstance(validated["hyper"], Hyper)
    partial = training_pipeline.validate_parameters({"hyper": {"epochs": 2}})
    # a run that overrides one part: that part's other fields and the other parts, defaults
    assert TrainingRequest(**partial) == TrainingRequest(hyper=Hyper(epochs=2))


@pytest.mark.parametrize(
    ("part", "field", "value", "line"),
    [
        ("hyper", "epochs", 0, "hyper: Value error, epochs=0 is invalid; expected an integer >= 1"),
        ("hyper", "momentum", 1.0, "hyper: Value error, momentum=1.0 is invalid"),
        (
            "hyper",
            "features",
            "sift",
            "hyper.features: Input should be 'pixels', 'deskew' or 'hog'",
        ),
        ("gate", "min_accuracy", 1.5, "gate: Value error, min_accuracy=1.5 is invalid"),
        ("data", "data_weight", 0, "data: Value error, data_weight=0 is invalid"),
        (
            "data",
            "weighting",
            "both",
            "data.weighting: Input should be 'jitter', 'oversample' or 'loss'",
        ),
        ("target", "name", "../evil", "target: Value error, model name '../evil' contains '/'"),
        ("target", "alias", "a/b", "target: Value error, alias 'a/b'"),
        ("retries", "io_retries", -1, "retries: Value error, io_retries=-1 is invalid"),
    ],
)
def test_a_bad_nested_training_value_is_refused_naming_the_field(
    part: str, field: str, value: Any, line: str
) -> None:
    doc = _as_parameters(TRAINING)
    doc[part][field] = value
    refused = _refusal(training_pipeline, doc)
    assert f" - {line}" in refused, refused
    assert refused.count("\n - ") == 1, refused  # that field only


def test_an_unknown_training_field_is_refused_not_ignored() -> None:
    doc = _as_parameters(TRAINING)
    doc["hyper"]["epoch"] = 3  # a typo in a deployment's parameters
    refused = _refusal(training_pipeline, doc)
    assert "hyper.epoch" in refused and "Unexpected keyword argument" in refused


# --- the scoring flow ----------------------------------------------------------------------


def test_scoring_flow_takes_the_requests_parts_and_its_schema_is_the_requests_tree() -> None:
    schema = batch_scoring.parameters
    assert list(schema.properties) == ["input", "model", "output", "performance", "review"]
    assert len(schema.properties) <= MAX_PARAMETERS
    assert schema == parameter_schema(batch_scoring.fn)
    assert schema.required == ["input"]  # the folder to score has no default
    assert schema.properties["model"]["$ref"] == "#/definitions/ModelRef"

    definitions = schema.definitions
    for part in (ModelRef, Output, Performance, Review, Location, Retries):
        fields = [f.name for f in dataclasses.fields(part)]
        assert list(definitions[part.__name__]["properties"]) == fields, part.__name__
    assert definitions["Output"]["properties"]["format"]["enum"] == ["csv", "jsonl"]


def test_scoring_parameters_as_json_build_the_request() -> None:
    validated = batch_scoring.validate_parameters(_as_parameters(SCORING))
    assert ScoringRequest(**validated) == SCORING
    partial = batch_scoring.validate_parameters({"input": "/srv/inbox"})
    assert ScoringRequest(**partial) == ScoringRequest("/srv/inbox")


@pytest.mark.parametrize(
    ("part", "field", "value", "line"),
    [
        ("performance", "batch_size", 0, "performance: Value error, batch_size=0 is invalid"),
        ("performance", "workers", 0, "performance: Value error, workers=0 is invalid"),
        ("performance", "shard_size", 0, "performance: Value error, shard_size=0 is invalid"),
        ("output", "format", "xml", "output.format: Input should be 'csv' or 'jsonl'"),
        ("review", "min_confidence", 2.0, "review: Value error, min_confidence=2.0 is invalid"),
        ("model", "ref", "a/b@c", "model: Value error, model name 'a/b'"),
    ],
)
def test_a_bad_nested_scoring_value_is_refused_naming_the_field(
    part: str, field: str, value: Any, line: str
) -> None:
    doc = _as_parameters(SCORING)
    doc[part][field] = value
    refused = _refusal(batch_scoring, doc)
    assert f" - {line}" in refused, refused
    assert refused.count("\n - ") == 1, refused


def test_a_scoring_request_without_input_is_refused() -> None:
    refused = _refusal(batch_scoring, {"model": {"ref": "mnist@champion"}})
    assert " - input: Field required" in refused, refused
