"""softmax_core.model: the one model type. Its shapes, prediction, and its file: round trip,
no pickles, old files read as before, clear errors for anything else."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from softmax_core.errors import DataFormatError, DataNotFoundError, ImageError, InvalidInputError
from softmax_core.images import read_digit
from softmax_core.model import FORMAT, FORMAT_LINEAR, INPUT_SCHEMA, REJECT, Model, ModelInfo, decide
from softmax_core.preprocess import Steps
from softmax_core.sgd import EpochStats
from softmax_core.softmax import softmax

HISTORY = (
    EpochStats(epoch=1, epochs=2, loss=0.9, accuracy=0.7, learning_rate=0.5),
    EpochStats(epoch=2, epochs=2, loss=0.4, accuracy=0.9, learning_rate=0.25),
)


def make(features: str = "deskew", **info: Any) -> Model:
    steps = Steps.named(features)
    rng = np.random.default_rng(0)
    return Model(
        W=rng.normal(size=(steps.n_features, 10)).astype(np.float32),
        b=rng.normal(size=10).astype(np.float32),
        steps=steps,
        info=ModelInfo(params={"seed": 1}, **info),
    )


def npz(meta: Any, W: Any = None, b: Any = None) -> bytes:
    """Model file bytes written by hand (another writer, an older version, or a hostile one)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float32) if W is None else W,
        b=np.zeros(10, np.float32) if b is None else b,
        meta=np.array(json.dumps(meta)),
    )
    return buf.getvalue()


def meta_of(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        doc: dict[str, Any] = json.loads(str(z["meta"][()]))
    return doc


def digits(n: int = 5) -> np.ndarray:
    """n 28×28 uint8 images with a bright stroke somewhere."""
    rng = np.random.default_rng(4)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(6, 16, 2)
        images[i, r : r + 10, c : c + 3] = 255
    return images


# --- the model in memory -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "W", "b"),
    [
        ("pixels", (392, 10), (10,)),  # hog's width under pixel steps
        ("hog", (784, 10), (10,)),  # pixels' width under hog steps
        ("pixels", (784, 9), (10,)),
        ("pixels", (784, 10), (9,)),
        ("pixels", (784,), (10,)),
        ("pixels", (784, 12), (12,)),
        ("pixels", (784, 11), (10,)),
    ],
    ids=["392-for-pixels", "784-for-hog", "9-classes", "9-biases", "1-D", "12-classes", "11-vs-10"],
)
def test_weights_of_the_wrong_shape_are_refused(
    features: str, W: tuple[int, ...], b: tuple[int, ...]
) -> None:
    steps = Steps.named(features)
    d = steps.n_features
    with pytest.raises(
        InvalidInputError, match=rf"expected float32 W \({d}, k\) and b \(k,\) with k 10 or 11"
    ):
        Model(W=np.zeros(W, np.float32), b=np.zeros(b, np.float32), steps=steps, ref="m.npz")


@pytest.mark.parametrize("which", ["W", "b"])
def test_weights_must_be_float32(which: str) -> None:
    arrays = {"W": np.zeros((784, 10), np.float32), "b": np.zeros(10, np.float32)}
    arrays[which] = arrays[which].astype(np.float64)
    with pytest.raises(InvalidInputError, match=r"model m\.npz has .*float64.*expected float32"):
        Model(arrays["W"], arrays["b"], steps=Steps.named("pixels"), ref="m.npz")


def test_a_model_is_frozen_and_evolves_into_a_copy() -> None:
    model = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.ref = "other"  # type: ignore[misc]
    named = model.evolve(ref="mnist:3")
    assert named.ref == "mnist:3" and model.ref == "<model>"
    assert named.W is model.W and named.steps == model.steps and named.info == model.info
    with pytest.raises(InvalidInputError, match="expected float32 W"):  # checked again
        model.evolve(W=np.zeros((392, 10), np.float32))


def test_prediction_is_softmax_of_the_steps_features() -> None:
    model = make()
    images = digits()
    X = model.steps.features(images)
    np.testing.assert_array_equal(model.features(images), X)
    np.testing.assert_array_equal(model.logits(X), X @ model.W + model.b)
    proba = model.predict_proba(images)
    assert proba.shape == (5, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, softmax(X @ model.W + model.b), rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    pred = model.predict(images)
    assert pred.dtype == np.int64 and pred.shape == (5,)
    np.testing.assert_array_equal(pred, np.argmax(proba, axis=1))
    np.testing.assert_array_equal(model.predict_features(X), pred)
    np.testing.assert_array_equal(model.predict(images.reshape(5, 784)), pred)  # flat input


def test_prediction_checks_the_width_and_the_image_shape() -> None:
    model = make().evolve(ref="m.npz")
    with pytest.raises(InvalidInputError, match=r"model m\.npz expects 784 features, got shape"):
        model.logits(np.zeros((2, 3), np.float32))
    with pytest.raises(InvalidInputError, match=r"\(2, 27, 27\)"):
        model.predict(np.zeros((2, 27, 27), np.uint8))


def test_predict_files_prepares_each_file_as_score_does(tmp_path: Path) -> None:
    model = make()
    paths = []
    for i, d in enumerate(digits()):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(255 - d).save(paths[-1])  # dark ink on white, as on paper
    expected = model.predict(np.stack([read_digit(p) for p in paths]))
    np.testing.assert_array_equal(model.predict_files(paths), expected)
    empty = model.predict_files([])
    assert empty.shape == (0,) and empty.dtype == np.int64
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError, match=r"^not an image: .*notes\.png: no image format"):
        model.predict_files([paths[0], tmp_path / "notes.png"])
    probs = model.predict_proba_files(paths)
    assert probs.shape == (len(paths), 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        probs, model.predict_proba(np.stack([read_digit(p) for p in paths]))
    )
    np.testing.assert_array_equal(probs.argmax(axis=1), expected)
    assert model.predict_proba_files([]).shape == (0, 10)
    with pytest.raises(ImageError, match=r"notes\.png"):
        model.predict_proba_files([tmp_path / "notes.png"])


def test_a_model_pickles() -> None:
    """Flows ship the model to their tasks, and scoring to its worker processes."""
    model = make().evolve(ref="mnist:3")
    back = pickle.loads(pickle.dumps(model))
    assert back.ref == "mnist:3" and back.steps == model.steps and back.info == model.info
    np.testing.assert_array_equal(back.predict(digits()), model.predict(digits()))


# --- the file -------------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    model = make(created="2026-01-02T03:04:05+00:00", n_train=600, history=HISTORY)
    path = model.save(tmp_path / "sub" / "m.npz")
    back = Model.load(path)
    assert back.W.tobytes() == model.W.tobytes() and back.b.tobytes() == model.b.tobytes()
    assert back.steps == Steps.named("deskew") and back.steps.to_json() == ["scale", "deskew"]
    assert back.info == model.info and back.info.params == {"seed": 1}
    assert back.info.history == HISTORY
    assert back.ref == str(path)
    meta = meta_of(path)
    assert meta["format"] == FORMAT_LINEAR and meta["preprocessing"] == {
        "steps": ["scale", "deskew"]
    }
    assert meta["input_schema"] == INPUT_SCHEMA and meta["n_train"] == 600
    assert list(tmp_path.glob("sub/.*tmp")) == []  # no temp file left behind


def test_the_file_records_when_it_was_written_unless_the_model_knows() -> None:
    made = Model.from_bytes(make().to_bytes())
    assert made.info.created is not None and made.info.created.endswith("+00:00")
    assert Model.from_bytes(make(created="then").to_bytes()).info.created == "then"


def test_from_bytes_names_the_model_by_its_ref_or_origin() -> None:
    data = make().to_bytes()
    assert Model.from_bytes(data, origin="blob of mnist:3").ref == "blob of mnist:3"
    assert Model.from_bytes(data, origin="blob", ref="mnist:3").ref == "mnist:3"


def test_a_hog_model_file_round_trips_with_its_parameters(tmp_path: Path) -> None:
    model = make("hog")
    back = Model.load(model.save(tmp_path / "hog.npz"))
    assert back.W.shape == (392, 10) and back.steps == Steps.named("hog")
    assert meta_of(tmp_path / "hog.npz")["preprocessing"] == {
        "steps": [
            "scale",
            "deskew",
            {"step": "hog", "cell": 4, "bins": 8, "signed": True, "norm": "sqrt"},
        ]
    }


def test_a_file_whose_weights_do_not_fit_its_steps_is_refused() -> None:
    hog = {"format": FORMAT_LINEAR, "preprocessing": {"steps": Steps.named("hog").to_json()}}
    with pytest.raises(DataFormatError, match=r"m\.npz: .*expected float32 W \(392, k\)"):
        Model.from_bytes(npz(hog), origin="m.npz")


def test_an_old_model_file_loads_and_keeps_every_key(tmp_path: Path) -> None:
    """A file as the previous version wrote it (history as dicts, keys this version does not
    type, such as ``registry``) loads, predicts as before, and is written back with every
    key it had."""
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(784, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32)
    old = {
        "format": FORMAT_LINEAR,
        "created": "2025-11-30T10:00:00+00:00",
        "preprocessing": {"steps": ["scale", "deskew"]},
        "input_schema": INPUT_SCHEMA,
        "params": {"epochs": 2, "seed": 0, "features": "deskew", "limit": None},
        "n_train": 60000,
        "data_digest": "ab" * 32,
        "data_source": "idx:/data/mnist",
        "warm_start": None,
        "history": [dataclasses.asdict(h) for h in HISTORY],
        "train_accuracy": 0.9,
        "metrics": {"accuracy": 0.97},
        "code_version": "c0ffee1",
        "registry": "mnist:1",
        "dataset": "mnist-train:3",
    }
    model = Model.from_bytes(npz(old, W, b), origin="old.npz")
    assert model.info.history == HISTORY and model.info.code_version == "c0ffee1"
    assert model.info.extra == {"registry": "mnist:1", "dataset": "mnist-train:3"}
    images = digits()
    X = Steps.named("deskew").features(images)
    np.testing.assert_array_equal(model.predict(images), np.argmax(X @ W + b, axis=1))
    again = meta_of(model.save(tmp_path / "again.npz"))
    assert {k: again.get(k) for k in old} == old


def test_a_file_without_steps_predates_them_and_is_pixels() -> None:
    model = Model.from_bytes(npz({"format": FORMAT}))
    assert model.steps == Steps.named("pixels") and model.info == ModelInfo()


def test_object_arrays_are_never_unpickled() -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float32),
        b=np.zeros(10, np.float32),
        meta=np.array([{"format": FORMAT}], dtype=object),
    )
    with pytest.raises(DataFormatError, match="holds Python objects"):
        Model.from_bytes(buf.getvalue(), origin="evil.npz")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a zip archive"),
        (b"hello, not a zip", "not a zip archive"),
    ],
)
def test_garbage_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        Model.from_bytes(data, origin="x.npz")


def test_wrong_format_and_missing_arrays() -> None:
    buf = io.BytesIO()
    np.savez(buf, W=np.zeros((784, 10), np.float32))
    with pytest.raises(DataFormatError, match="missing arrays"):
        Model.from_bytes(buf.getvalue())
    with pytest.raises(DataFormatError, match="unsupported model format"):
        Model.from_bytes(npz({"format": "other@9"}))
    with pytest.raises(DataFormatError, match="expected float32"):
        Model.from_bytes(npz({"format": FORMAT}, W=np.zeros((784, 10), np.float64)))


def test_unknown_preprocessing_is_refused() -> None:
    meta = {"format": FORMAT, "preprocessing": {"steps": ["scale", "sharpen"]}}
    with pytest.raises(DataFormatError, match=r"m\.npz: unknown preprocessing step 'sharpen'"):
        Model.from_bytes(npz(meta), origin="m.npz")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        Model.load(tmp_path / "nope.npz")


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path: Path) -> None:
    path = make().save(tmp_path / "m.npz")
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["W", "b", "meta"]


# --- ModelInfo --------------------------------------------------------------------------------


def test_model_info_round_trips_and_keeps_unknown_keys() -> None:
    info = ModelInfo(
        created="2026-01-02T03:04:05+00:00",
        params={"epochs": 2},
        n_train=10,
        data_digest="cd" * 32,
        history=HISTORY,
        train_accuracy=1,  # an int is a number too
        metrics={"accuracy": 0.5},
        extra={"registry": "mnist:2", "note": {"by": "a newer writer"}},
    )
    doc = info.to_json()
    assert doc["registry"] == "mnist:2" and doc["note"] == {"by": "a newer writer"}
    assert doc["history"][0] == dataclasses.asdict(HISTORY[0]) and "extra" not in doc
    assert json.loads(json.dumps(doc)) == doc  # JSON as it is
    assert ModelInfo.from_json(doc, "m.npz") == info
    # the file's own keys are not info, known or unknown
    framed = {"format": FORMAT, "preprocessing": {}, "input_schema": {}, **doc}
    assert ModelInfo.from_json(framed, "m.npz") == info


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("created", 20260102, "str"),
        ("n_train", "600", "int"),
        ("n_train", True, "int"),
        ("data_digest", 7, "str"),
        ("data_source", ["idx"], "str"),
        ("warm_start", 3, "str"),
        ("train_accuracy", "0.9", "int or float"),
        ("train_seconds", False, "int or float"),
        ("code_version", 1.5, "str"),
        ("params", [1, 2], "an object"),
        ("metrics", "0.97", "an object"),
        ("history", {"epoch": 1}, "a list"),
    ],
)
def test_model_info_refuses_a_field_of_the_wrong_type(key: str, value: Any, kind: str) -> None:
    with pytest.raises(DataFormatError, match=f"^m.npz: meta {key} must be {kind}$"):
        ModelInfo.from_json({key: value}, "m.npz")
    with pytest.raises(DataFormatError, match=f"meta {key} must be {kind}"):  # through a file
        Model.from_bytes(npz({"format": FORMAT, key: value}), origin="m.npz")


def test_damaged_history_entries_are_left_out() -> None:
    good = dataclasses.asdict(HISTORY[0])
    history = [good, {**good, "loss": "high"}, {"epoch": 2}, "epoch 3", {**good, "epoch": True}]
    assert ModelInfo.from_json({"history": history}, "m.npz").history == (HISTORY[0],)


# --- the class "not a digit" ----------------------------------------------------------------


def eleven(features: str = "pixels") -> Model:
    steps = Steps.named(features)
    rng = np.random.default_rng(11)
    return Model(
        W=rng.normal(size=(steps.n_features, 11)).astype(np.float32),
        b=rng.normal(size=11).astype(np.float32),
        steps=steps,
    )


def test_an_eleven_class_model_predicts_eleven_probabilities_and_round_trips(
    tmp_path: Path,
) -> None:
    model = eleven()
    assert model.n_classes == 11 and model.can_reject and not make().can_reject
    probs = model.predict_proba(digits())
    assert probs.shape == (5, 11)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    path = model.save(tmp_path / "m.npz")
    assert meta_of(path)["input_schema"]["classes"] == 11
    again = Model.load(path)
    np.testing.assert_array_equal(again.W, model.W)
    np.testing.assert_array_equal(again.predict_proba(digits()), probs)
    assert Model.load(make().save(tmp_path / "ten.npz")).n_classes == 10
    assert meta_of(tmp_path / "ten.npz")["input_schema"] == INPUT_SCHEMA


def test_with_classes_adds_a_zero_not_a_digit_column_and_keeps_the_digits() -> None:
    ten = make()
    upgraded = ten.with_classes(11)
    assert upgraded.W.shape == (ten.W.shape[0], 11) and upgraded.b.shape == (11,)
    np.testing.assert_array_equal(upgraded.W[:, :10], ten.W)
    np.testing.assert_array_equal(upgraded.b[:10], ten.b)
    assert not upgraded.W[:, 10].any() and upgraded.b[10] == 0
    # the digits it reads are the same (the new class starts where no digit wins for sure)
    assert upgraded.with_classes(11) is upgraded and ten.with_classes(10) is ten
    back = upgraded.with_classes(10)
    np.testing.assert_array_equal(back.W, ten.W)
    with pytest.raises(InvalidInputError, match="10 or 11 classes, not 12"):
        ten.with_classes(12)


def test_decide_rejects_where_not_a_digit_is_the_largest_and_over_the_threshold() -> None:
    probs = np.array(
        [
            [0.9, 0.05, 0, 0, 0, 0, 0, 0, 0, 0, 0.05],  # a 0
            [0.1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.9],  # not a digit, sure
            [0.3, 0.0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.4],  # not a digit, the largest but unsure
            [0.0, 0.6, 0, 0, 0, 0, 0, 0, 0, 0, 0.4],  # a 1, though 0.4 not a digit
        ],
        np.float32,
    )
    np.testing.assert_array_equal(decide(probs, 0.0), [0, REJECT, REJECT, 1])
    np.testing.assert_array_equal(decide(probs, 0.5), [0, REJECT, 0, 1])
    np.testing.assert_array_equal(decide(probs, None), [0, 0, 0, 1])  # rejection off
    np.testing.assert_array_equal(decide(probs[:, :10], 0.0), [0, 0, 0, 1])  # 10 classes
