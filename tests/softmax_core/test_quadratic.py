"""The second-order terms of "not a digit" (softmax_core.quadratic): fitted on digits, added
to that logit only, kept in the model file and checked when read."""

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
from softmax_core.model import FORMAT, REJECT, Model
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
    terms = quadratic.fit(X, 4)
    assert (terms.d, terms.q) == (784, 4) and terms.w.shape == (10,) and not terms.w.any()
    t = terms.terms(X)
    assert t.shape == (600, quadratic.n_terms(4)) and t.dtype == np.float32
    z = (X - terms.mean) @ terms.basis
    np.testing.assert_allclose(t[:, 1], z[:, 0] * z[:, 1], rtol=1e-5)  # (0, 0), (0, 1), ...
    # scaled to the features' size, so one learning rate suits both
    ratio = (t.astype(np.float64) ** 2).sum(1).mean() / (X.astype(np.float64) ** 2).sum(1).mean()
    assert ratio == pytest.approx(1.0, rel=1e-3)
    again = quadratic.fit(X, 4)
    np.testing.assert_array_equal(terms.basis, again.basis)
    with pytest.raises(InvalidInputError, match="cannot fit 785 directions"):
        quadratic.fit(X, 785)


def test_the_terms_move_the_logit_of_not_a_digit_only() -> None:
    X = digits_like(50, seed=3)
    fitted = quadratic.fit(digits_like(), 4)
    terms = fitted.with_weights(np.linspace(-1, 1, 10).astype(np.float32))
    plain, curved = eleven(None).logits(X), eleven(terms).logits(X)
    np.testing.assert_array_equal(curved[:, :REJECT], plain[:, :REJECT])
    np.testing.assert_allclose(
        curved[:, REJECT] - plain[:, REJECT], terms.logit(X), rtol=1e-4, atol=1e-5
    )
    assert np.abs(terms.logit(X)).max() > 0.01
    # a 10-class model has no such logit; one that drops it drops its terms
    assert eleven(terms).with_classes(10).quadratic is None
    with pytest.raises(InvalidInputError, match="only an 11-class model"):
        Model(
            W=np.zeros((784, 10), np.float32),
            b=np.zeros(10, np.float32),
            steps=PIXELS,
            quadratic=terms,
        )


def test_the_terms_are_kept_in_the_model_file(tmp_path: Path) -> None:
    terms = quadratic.fit(digits_like(), 3).with_weights(np.arange(6, dtype=np.float32))
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
    assert meta["reject_terms"] == {"method": "quadratic", "directions": 3}
    assert "reject_terms" not in back.info.extra  # not carried as an unknown key
    # without terms: no arrays and no key, as before
    plain = eleven(None).save(tmp_path / "plain.npz")
    assert set(np.load(plain).files) == {"W", "b", "meta"}
    assert "reject_terms" not in json.loads(str(np.load(plain)["meta"]))


def _npz(k: int = 11, spec: Any = None, **arrays: Any) -> bytes:
    q = 2
    parts = {
        "W": np.zeros((784, k), np.float32),
        "b": np.zeros(k, np.float32),
        "meta": np.array(
            json.dumps(
                {"format": FORMAT, "reject_terms": spec or {"method": "quadratic", "directions": q}}
            )
        ),
        "Q_mean": np.zeros(784, np.float32),
        "Q_basis": np.zeros((784, q), np.float32),
        "Q_w": np.zeros(3, np.float32),
        **arrays,
    }
    buf = io.BytesIO()
    np.savez(buf, **{name: a for name, a in parts.items() if a is not None})
    return buf.getvalue()


@pytest.mark.parametrize(
    ("npz", "match"),
    [
        (lambda: _npz(spec={"method": "cubic", "directions": 2}), "reject_terms .* is invalid"),
        (lambda: _npz(spec={"method": "quadratic", "directions": 9999}), "is invalid"),
        (lambda: _npz(Q_w=None), r"without the arrays \['Q_w'\]"),
        (lambda: _npz(Q_w=np.zeros(4, np.float32)), r"expected \(784,\), \(784, 2\), \(3,\)"),
        (lambda: _npz(Q_basis=np.full((784, 2), np.nan, np.float32)), "non-finite"),
        (lambda: _npz(Q_mean=np.zeros(784, np.float64)), "non-float32"),
        (lambda: _npz(Q_w=np.full(3, 1e30, np.float32)), "huge"),
        (lambda: _npz(k=10, b=np.zeros(10, np.float32)), "second-order terms in a 10-class"),
    ],
    ids=["method", "directions", "missing", "shape", "nan", "float64", "huge", "ten-class"],
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
    assert terms is not None and terms.q == 30 and np.abs(terms.w).max() > 0
    assert model.info.params["reject_terms"] == 30
    # they are part of what it learned: without them it rejects differently
    held = ds.x_test[:300]
    assert not np.array_equal(
        model.predict_proba(held), model.evolve(quadratic=None).predict_proba(held)
    )
    # a warm start continues over the champion's own directions (its weights mean nothing
    # over others); a --no-reject model has none
    again = train(ds, Hyper(features="pixels", epochs=1, limit=500), init=model)
    assert again.quadratic is not None
    np.testing.assert_array_equal(again.quadratic.basis, terms.basis)
    np.testing.assert_array_equal(again.quadratic.mean, terms.mean)
    assert train(ds, few, data=Data(reject=False)).quadratic is None


def test_reject_terms_zero_trains_a_linear_column(ds: Dataset) -> None:
    few = Hyper(features="pixels", epochs=1, limit=1000)
    linear = train(ds, few, data=Data(reject_terms=0))
    assert linear.can_reject and linear.quadratic is None
    assert linear.info.params["reject_terms"] == 0
    with pytest.raises(InvalidInputError, match="reject_terms"):
        Data(reject_terms=65)
