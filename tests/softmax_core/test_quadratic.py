"""The second-order terms (softmax_core.quadratic): fitted on digits, weighed by every class,
kept in the model file (format model@2) and checked when read; model@1 files whose "not a
digit" alone weighed them read as before."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core import quadratic
from softmax_core.errors import DataFormatError, InvalidInputError
from softmax_core.mnist import Dataset
from softmax_core.model import FORMAT, FORMAT_LINEAR, REJECT, Model
from softmax_core.preprocess import Steps
from softmax_core.requests import Data, Hyper
from softmax_core.train import train
from tests import scoring_data as sd

PIXELS = Steps.named("pixels")


def digits_like(n: int = 600, d: int = 784, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 5)) @ rng.random((5, d)) / 5).astype(np.float32)


def eleven(terms: quadratic.Quadratic | None, seed: int = 1) -> Model:
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.1, (784, 11)).astype(np.float32)
    return Model(W=W, b=np.zeros(11, np.float32), steps=PIXELS, quadratic=terms)


def test_the_terms_are_the_pairwise_products_along_the_digits_leading_directions() -> None:
    X = digits_like()
    terms = quadratic.fit(X, 4, 11)
    assert (terms.d, terms.q, terms.k) == (784, 4, 11) and terms.w.shape == (10, 11)
    assert not terms.w.any()
    t = terms.terms(X)
    assert t.shape == (600, quadratic.n_terms(4)) and t.dtype == np.float32
    z = (X - terms.mean) @ terms.basis
    np.testing.assert_allclose(t[:, 1], z[:, 0] * z[:, 1], rtol=1e-5)  # (0, 0), (0, 1), ...
    # scaled to the features' size, so one learning rate suits both
    ratio = (t.astype(np.float64) ** 2).sum(1).mean() / (X.astype(np.float64) ** 2).sum(1).mean()
    assert ratio == pytest.approx(1.0, rel=1e-3)
    again = quadratic.fit(X, 4, 10)
    np.testing.assert_array_equal(terms.basis, again.basis)
    with pytest.raises(InvalidInputError, match="cannot fit 785 directions"):
        quadratic.fit(X, 785, 10)


def weights(q: int, k: int) -> np.ndarray:
    return np.linspace(-1, 1, quadratic.n_terms(q) * k).astype(np.float32).reshape(-1, k)


def test_the_terms_move_every_logit_by_its_own_weights() -> None:
    X = digits_like(50, seed=3)
    terms = quadratic.fit(digits_like(), 4, 11).with_weights(weights(4, 11))
    plain, curved = eleven(None).logits(X), eleven(terms).logits(X)
    np.testing.assert_allclose(curved - plain, terms.terms(X) @ terms.w, rtol=1e-4, atol=1e-5)
    assert (np.abs(curved - plain).max(axis=0) > 0.01).all()  # each class's own
    # dropping "not a digit" drops its weights and keeps the digits' over the same terms
    ten = eleven(terms).with_classes(10)
    assert ten.quadratic is not None and ten.quadratic.k == 10
    np.testing.assert_array_equal(ten.quadratic.w, terms.w[:, :REJECT])
    np.testing.assert_array_equal(ten.logits(X), curved[:, :REJECT])
    # ... and adding it back gives it zero weights, the digits' as they were
    back = ten.with_classes(11)
    assert back.quadratic is not None and not back.quadratic.w[:, REJECT].any()
    with pytest.raises(InvalidInputError, match="for 11 classes; expected its 784 features and 10"):
        Model(
            W=np.zeros((784, 10), np.float32),
            b=np.zeros(10, np.float32),
            steps=PIXELS,
            quadratic=terms,
        )


def test_the_terms_are_kept_in_the_model_file(tmp_path: Path) -> None:
    terms = quadratic.fit(digits_like(), 3, 11).with_weights(weights(3, 11))
    model = eleven(terms)
    back = Model.load(model.save(tmp_path / "m.npz"))
    assert back.quadratic is not None
    for a, b in (
        (back.quadratic.mean, terms.mean),
        (back.quadratic.basis, terms.basis),
        (back.quadratic.w, terms.w),
    ):
        np.testing.assert_array_equal(a, b)
    X = digits_like(20, seed=5)
    np.testing.assert_array_equal(back.logits(X), model.logits(X))
    meta = json.loads(str(np.load(tmp_path / "m.npz")["meta"]))
    assert meta["terms"] == {"method": "quadratic", "directions": 3}
    assert meta["format"] == FORMAT == "softmax-pipe/model@2"  # a model@1 reader refuses it
    assert "terms" not in back.info.extra  # not carried as an unknown key
    # a 10-class model keeps its terms too
    ten = Model.load(model.with_classes(10).save(tmp_path / "ten.npz"))
    np.testing.assert_array_equal(ten.logits(X), model.logits(X)[:, :REJECT])
    # without terms: no arrays and no key, format model@1, as before
    plain = eleven(None).save(tmp_path / "plain.npz")
    assert set(np.load(plain).files) == {"W", "b", "meta"}
    plain_meta = json.loads(str(np.load(plain)["meta"]))
    assert "terms" not in plain_meta and plain_meta["format"] == FORMAT_LINEAR


def test_a_model_at_1_file_with_terms_for_not_a_digit_alone_reads_as_it_did() -> None:
    """The files of the versions before the digits weighed the terms: "reject_terms" and
    Q_w (e,), added to the logit of "not a digit" only."""
    rng = np.random.default_rng(7)
    W = rng.normal(0, 0.1, (784, 11)).astype(np.float32)
    b = rng.normal(0, 0.1, 11).astype(np.float32)
    terms = quadratic.fit(digits_like(), 3, 1)
    q_w = rng.normal(0, 0.5, 6).astype(np.float32)
    meta = {
        "format": FORMAT_LINEAR,
        "preprocessing": {"steps": PIXELS.to_json()},
        "reject_terms": {"method": "quadratic", "directions": 3},
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        W=W,
        b=b,
        meta=np.array(json.dumps(meta)),
        Q_mean=terms.mean,
        Q_basis=terms.basis,
        Q_w=q_w,
    )
    model = Model.from_bytes(buf.getvalue())
    X = digits_like(30, seed=9)
    expected = X @ W + b
    expected[:, REJECT] += terms.terms(X) @ q_w
    np.testing.assert_allclose(model.logits(X), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.logits(X)[:, :REJECT], (X @ W + b)[:, :REJECT])


def _npz(
    k: int = 11, spec: Any = None, fmt: str = FORMAT, key: str = "terms", **arrays: Any
) -> bytes:
    q = 2
    parts = {
        "W": np.zeros((784, k), np.float32),
        "b": np.zeros(k, np.float32),
        "meta": np.array(
            json.dumps({"format": fmt, key: spec or {"method": "quadratic", "directions": q}})
        ),
        "Q_mean": np.zeros(784, np.float32),
        "Q_basis": np.zeros((784, q), np.float32),
        "Q_w": np.zeros((3, k) if key == "terms" else 3, np.float32),
        **arrays,
    }
    buf = io.BytesIO()
    np.savez(buf, **{name: a for name, a in parts.items() if a is not None})
    return buf.getvalue()


@pytest.mark.parametrize(
    ("npz", "match"),
    [
        (lambda: _npz(spec={"method": "cubic", "directions": 2}), "terms .* is invalid"),
        (lambda: _npz(spec={"method": "quadratic", "directions": 9999}), "is invalid"),
        (lambda: _npz(Q_w=None), r"without the arrays \['Q_w'\]"),
        (lambda: _npz(Q_w=np.zeros(3, np.float32)), r"expected \(784,\), \(784, 2\), \(3, 11\)"),
        (lambda: _npz(Q_basis=np.full((784, 2), np.nan, np.float32)), "non-finite"),
        (lambda: _npz(Q_mean=np.zeros(784, np.float64)), "non-float32"),
        (lambda: _npz(Q_w=np.full((3, 11), 1e30, np.float32)), "huge"),
        (
            lambda: _npz(fmt=FORMAT_LINEAR, key="reject_terms", Q_w=np.zeros((3, 11), np.float32)),
            r"reject_terms have .* expected \(784,\), \(784, 2\), \(3,\)",
        ),
        (
            lambda: _npz(k=10, fmt=FORMAT_LINEAR, key="reject_terms"),
            "second-order terms in a 10-class",
        ),
        (lambda: _npz(fmt=FORMAT_LINEAR), "'terms' in a model of format 'softmax-pipe/model@1'"),
        (lambda: _npz(key="reject_terms"), "'reject_terms' in a model of format .*model@2"),
        (lambda: _npz(fmt="softmax-pipe/model@3"), "unsupported model format"),
    ],
    ids=[
        "method",
        "directions",
        "missing",
        "shape",
        "nan",
        "float64",
        "huge",
        "at-1-shape",
        "at-1-ten-class",
        "terms-at-1",
        "reject-terms-at-2",
        "format",
    ],
)
def test_bad_terms_in_a_file_are_one_clear_error(npz: Any, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        Model.from_bytes(npz())


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


def test_training_fits_the_terms_and_a_warm_start_keeps_its_own(ds: Dataset) -> None:
    few = Hyper(features="pixels", epochs=2, limit=3000)
    model = train(ds, few)
    terms = model.quadratic
    assert terms is not None and terms.q == 30 and terms.k == 11
    assert (np.abs(terms.w).max(axis=0) > 0).all()  # every class weighs them
    assert model.info.params["terms"] == 30
    # they are part of what it learned: without them it rejects differently
    held = ds.x_test[:300]
    assert not np.array_equal(
        model.predict_proba(held), model.evolve(quadratic=None).predict_proba(held)
    )
    # a warm start continues over the champion's own directions (its weights mean nothing
    # over others), from its weights
    short = Hyper(features="pixels", epochs=1, limit=500)
    again = train(ds, short, init=model)
    assert again.quadratic is not None
    np.testing.assert_array_equal(again.quadratic.basis, terms.basis)
    np.testing.assert_array_equal(again.quadratic.mean, terms.mean)
    cold = train(ds, short)
    assert cold.quadratic is not None
    gap = np.abs(again.quadratic.w - terms.w).mean()
    assert gap < np.abs(cold.quadratic.w - terms.w).mean()
    # a --no-reject model weighs them too, over its ten classes
    ten = train(ds, few, data=Data(reject=False)).quadratic
    assert ten is not None and ten.k == 10 and np.abs(ten.w).max() > 0


def test_terms_zero_trains_a_linear_model(ds: Dataset) -> None:
    few = Hyper(features="pixels", epochs=1, limit=1000)
    linear = train(ds, few, data=Data(terms=0))
    assert linear.can_reject and linear.quadratic is None
    assert linear.info.params["terms"] == 0
    with pytest.raises(InvalidInputError, match="terms"):
        Data(terms=65)
