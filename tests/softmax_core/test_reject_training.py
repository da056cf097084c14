"""Training the class "not a digit": 11 classes by default from generated negatives and the
users' not-a-digit images, 10 with ``reject=False``, a warm start from a 10-class model,
and the digits with a page's leftovers (``softmax_core.clutter``) trained beside them: by
the column "not a digit" and by the digits' columns too."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core import clutter, settings, sgd
from softmax_core.clutter import cluttered
from softmax_core.mnist import Dataset
from softmax_core.model import REJECT, decide
from softmax_core.negatives import negatives
from softmax_core.preprocess import Steps
from softmax_core.requests import Data, Hyper
from softmax_core.train import heldout_negatives, holdout_decisions, train
from tests import scoring_data as sd

FEW = Hyper(features="pixels", epochs=2, limit=3000)


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


def test_negatives_keep_their_contract() -> None:
    a = negatives(12, seed=4)
    assert a.shape == (12, 28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, negatives(12, seed=4))
    assert not np.array_equal(a, negatives(12, seed=6))
    assert (a.reshape(12, -1).max(axis=1) > 0).all()  # every one has ink, bright on dark


def test_the_default_model_has_the_class_not_a_digit(ds: Dataset) -> None:
    model = train(ds, FEW)
    assert model.n_classes == 11 and model.can_reject
    n = settings.NEGATIVES_SHARE * 3000
    assert model.info.params["negatives"] == n and model.info.params["negatives_seed"] == 0
    assert (model.info.n_train or 0) > 3000 + n  # MNIST, the negatives, the cluttered digits
    # learned, on a seed it never saw (this small model is unsure: its largest class)
    held = decide(model.predict_proba(heldout_negatives(ds)[:500]), 0.0)
    assert np.mean(held == REJECT) > 0.6
    digits = decide(model.predict_proba(ds.x_test[:1000]), 0.0)
    assert np.mean(digits == REJECT) < 0.05 and np.mean(digits == ds.y_test[:1000]) > 0.8


def test_the_digits_are_read_exactly_as_the_ten_class_model_reads_them(ds: Dataset) -> None:
    """The digits' columns are the --no-reject model's, bit for bit: the class "not a
    digit" is fitted beside them, so a row can change only by being rejected."""
    eleven, ten = train(ds, FEW), train(ds, FEW, data=Data(reject=False))
    np.testing.assert_array_equal(eleven.W[:, :10], ten.W)
    np.testing.assert_array_equal(eleven.b[:10], ten.b)
    assert eleven.info.history == ten.info.history


def smileys(n: int, seed: int) -> np.ndarray:
    """A user's own junk, of a kind the generator does not make: smiley faces, prepared."""
    from PIL import Image, ImageDraw

    from softmax_core.normalize import normalize_stack

    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(n):
        img = Image.new("L", (56, 56), 255)
        d = ImageDraw.Draw(img)
        r, (x, y), w = rng.uniform(16, 24), 28 + rng.uniform(-3, 3, 2), int(rng.integers(2, 5))
        d.ellipse((x - r, y - r, x + r, y + r), outline=0, width=w)
        for dx in (-r / 2.5, r / 2.5):
            d.ellipse((x + dx - 2.5, y - r / 3 - 2.5, x + dx + 2.5, y - r / 3 + 2.5), fill=0)
        d.arc((x - r / 2, y - r / 4, x + r / 2, y + r / 2), 20, 160, fill=0, width=w)
        pages.append(np.asarray(img))
    out, _ = normalize_stack(np.stack(pages))
    return np.rint(out * 255).astype(np.uint8)


def test_no_reject_trains_ten_classes_and_leaves_not_a_digit_images_out(ds: Dataset) -> None:
    junk = smileys(40, seed=1)
    extra = [
        (
            np.concatenate([junk, ds.x_test[:40]]),
            np.concatenate([np.full(40, 10), ds.y_test[:40]]).astype(np.uint8),
        )
    ]
    model = train(ds, FEW, data=Data(reject=False), extra=extra)
    assert model.n_classes == 10 and "negatives" not in model.info.params
    cluttered_digits = math.ceil(settings.CLUTTERED_DIGITS_SHARE * 3000)
    assert model.info.n_train == 3000 + 40 * model.info.params["data_weight"] + cluttered_digits
    # its holdout gate counts the digits only: it cannot say "not a digit"
    (decision,) = holdout_decisions(
        model, [("mine", *extra[0])], champion=None, min_accuracy=0.5, alpha=0.05, margin=0.005
    )
    assert decision.n == 40
    # with the reject option the same not-a-digit images are learned as class 10: the
    # model rejects more of that user's junk than one trained without it
    # (more smileys, unseen: the default threshold)
    eleven, before = train(ds, FEW, extra=extra), train(ds, FEW)
    assert eleven.n_classes == 11
    unseen = smileys(100, seed=2)
    assert np.mean(before.predict(unseen) == REJECT) < 0.2
    assert np.mean(eleven.predict(unseen) == REJECT) > 0.9


def test_a_warm_start_from_a_ten_class_model_starts_from_its_digits(ds: Dataset) -> None:
    ten = train(ds, FEW, data=Data(reject=False))
    still = Hyper(features="pixels", epochs=1, limit=500, learning_rate=1e-7, momentum=0.0)
    eleven = train(ds, still, init=ten)
    assert eleven.n_classes == 11
    np.testing.assert_allclose(eleven.W[:, :10], ten.W, atol=1e-4)
    np.testing.assert_allclose(eleven.W[:, 10], 0, atol=1e-4)
    # and back: an 11-class champion into a --no-reject run keeps its digits' columns
    back = train(ds, still, data=Data(reject=False), init=eleven)
    assert back.n_classes == 10
    np.testing.assert_allclose(back.W, eleven.W[:, :10], atol=1e-4)


def test_cluttered_digits_are_the_digits_with_leftovers(ds: Dataset) -> None:
    x, y = cluttered(ds.x_train[:100], ds.y_train[:100], 50, np.random.default_rng(1))
    assert x.shape == (50, 28, 28) and x.dtype == np.uint8 and y.shape == (50,)
    assert set(y.tolist()) <= set(np.asarray(ds.y_train[:100]).tolist())
    again = cluttered(ds.x_train[:100], ds.y_train[:100], 50, np.random.default_rng(1))
    np.testing.assert_array_equal(x, again[0])
    # something was added: more ink than the digits they came from, on average
    assert x.mean() > np.asarray(ds.x_train[:100]).mean()
    assert cluttered(ds.x_train[:10], ds.y_train[:10], 0, np.random.default_rng(1))[0].shape == (
        0,
        28,
        28,
    )


def test_the_derived_images_are_cached_beside_the_dataset(ds: Dataset) -> None:
    """The negatives and the cluttered digits are made once per dataset cache and recipe:
    a second training reads them (the same model), a damaged file is made again."""
    first = train(ds, FEW)
    derived = sorted((ds.path / "derived").glob("*.npy"))
    names = {p.name.rsplit("-", 1)[0] for p in derived}
    assert {"negatives", "cluttered", "cluttered-labels"} <= names
    again = train(ds, FEW)
    np.testing.assert_array_equal(first.W, again.W)
    victim = next(p for p in derived if p.name.startswith("negatives"))
    victim.write_bytes(victim.read_bytes()[:-8] + b"\0" * 8)  # a damaged cache file
    remade = train(ds, FEW)
    np.testing.assert_array_equal(first.W, remade.W)


def test_the_derived_images_features_are_computed_once(
    ds: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluttered digits' and the negatives' features are cached beside them: a second
    training computes no features at all (MNIST's are cached too); a damaged features file
    is computed again, and the model is the same."""
    first = train(ds, FEW)
    folder = ds.path / "derived" / "features" / Steps.named(FEW.features).key
    assert {p.name.rsplit("-", 1)[0] for p in folder.glob("*.npy")} >= {"negatives", "cluttered"}
    computed: list[int] = []
    real = Steps.features

    def counting(self: Steps, images: Any, *args: Any, **kwargs: Any) -> Any:
        computed.append(len(images))
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(Steps, "features", counting)
    again = train(ds, FEW)
    assert computed == []
    np.testing.assert_array_equal(first.W, again.W)
    for victim in folder.glob("cluttered-*.npy"):
        raw = bytearray(victim.read_bytes())
        raw[-4:] = b"\x00\x00\xc0\x7f"  # a NaN where a feature was
        victim.write_bytes(bytes(raw))
    remade = train(ds, FEW)
    assert computed == [
        math.ceil(max(settings.CLUTTERED_SHARE, settings.CLUTTERED_DIGITS_SHARE) * 3000)
    ]
    np.testing.assert_array_equal(first.W, remade.W)


def test_the_digits_learn_from_the_cluttered_digits_too(
    ds: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digits' fit (the 10-class model's, and so the default's digits) sees
    CLUTTERED_DIGITS_SHARE x the MNIST images of cluttered digits after MNIST's; at 0 it
    sees MNIST alone."""
    seen: list[np.ndarray] = []
    fit = sgd.fit

    def spy(X: Any, y: Any, *args: Any, **kw: Any) -> Any:
        seen.append(np.asarray(y))
        return fit(X, y, *args, **kw)

    monkeypatch.setattr(sgd, "fit", spy)
    share = settings.CLUTTERED_DIGITS_SHARE
    assert share > 0
    ten = train(ds, FEW, data=Data(reject=False))
    extra = math.ceil(share * 3000)
    assert [len(y) for y in seen] == [3000 + extra] and ten.info.n_train == 3000 + extra
    np.testing.assert_array_equal(seen[0][:3000], ds.y_train[:3000])
    # the same images the column "not a digit" learns from, more of them
    from softmax_core.train import cluttered_digits

    _, labels = cluttered_digits(ds, FEW, np.asarray(ds.y_train[:3000]), 3000)
    np.testing.assert_array_equal(seen[0][3000:], labels[:extra])
    seen.clear()
    monkeypatch.setattr(settings, "CLUTTERED_DIGITS_SHARE", 0.0)
    alone = train(ds, FEW, data=Data(reject=False))
    assert [len(y) for y in seen] == [3000] and alone.info.n_train == 3000
    assert not np.array_equal(alone.W, ten.W)


def ink_extent(x: np.ndarray) -> np.ndarray:
    """(n,) the longer side of each image's box of nonzero pixels."""
    rows, cols = x.max(axis=2) > 0, x.max(axis=1) > 0
    height = x.shape[1] - rows.argmax(axis=1) - rows[:, ::-1].argmax(axis=1)
    width = x.shape[2] - cols.argmax(axis=1) - cols[:, ::-1].argmax(axis=1)
    extent: np.ndarray = np.maximum(height, width)
    return extent


def test_reframed_leftovers_make_the_digit_smaller_as_a_page_does(
    ds: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawn on a wider canvas and prepared again, a comb's ticks are part of the ink box:
    ticks and digit together fit the 20-pixel box (the digit smaller); drawn in the
    prepared image they stick out of it."""
    x0, y0 = ds.x_train[:200], ds.y_train[:200]
    monkeypatch.setattr(clutter, "LEFTOVERS", ("tick",))
    monkeypatch.setattr(clutter, "PRINTED", 0.0)
    monkeypatch.setattr(clutter, "REFRAMED", 0.0)
    inside, _ = cluttered(x0, y0, 200, np.random.default_rng(3))
    assert (ink_extent(inside) > 20).mean() > 0.5
    monkeypatch.setattr(clutter, "REFRAMED", 1.0)
    again, _ = cluttered(x0, y0, 200, np.random.default_rng(3))
    assert again.shape == (200, 28, 28) and again.dtype == np.uint8
    assert (ink_extent(again) <= 20).all()
    # every kind of leftover can be drawn on the wider canvas
    for kind in ("frame", "tick", "neighbour", "patch", "specks", "cut"):
        monkeypatch.setattr(clutter, "LEFTOVERS", (kind,))
        x, _ = cluttered(x0, y0, 20, np.random.default_rng(4))
        assert x.shape == (20, 28, 28) and (x.reshape(20, -1).max(axis=1) > 0).all()


def test_a_cut_fades_a_thin_band_across_the_digit(ds: Dataset) -> None:
    """A line's erasure that took the strokes with it: one or two rows or columns across
    the digit fainter, nothing brighter, nothing else touched."""
    from softmax_core.normalize import as_float

    cut_some = 0
    for i in range(30):
        d = as_float(np.asarray(ds.x_train[i])).copy()
        before = d.copy()
        clutter._add(d, "cut", before, np.random.default_rng(i))
        assert (d <= before).all()
        changed = d != before
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        if len(rows):
            cut_some += 1
            assert rows[-1] - rows[0] < 2 or cols[-1] - cols[0] < 2
    assert cut_some >= 25
