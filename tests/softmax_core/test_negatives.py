"""softmax_core.negatives: the "not a digit" pages are seeded, of every kind, free of digit
glyphs, and prepared exactly as scoring prepares a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from softmax_core import negatives as ng
from softmax_core.errors import InvalidInputError
from softmax_core.scoring.decode import STACK_MAX_PIXELS, decode_items

N = 42  # six of each kind


def test_same_seed_same_bytes_and_another_seed_other_bytes() -> None:
    a, b = ng.pages(N, seed=3), ng.pages(N, seed=3)
    assert [p.tobytes() for p in a] == [p.tobytes() for p in b]
    assert [p.shape for p in a] == [p.shape for p in b]
    assert ng.negatives(N, seed=3).tobytes() == ng.negatives(N, seed=3).tobytes()
    c = ng.pages(N, seed=4)
    assert sum(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c, strict=True)) == 0


def test_pages_are_grey_pages_of_varied_sizes_with_dark_ink_on_light_paper() -> None:
    made = ng.pages(N, seed=5)
    assert len(made) == N
    for p in made:
        assert p.dtype == np.uint8 and p.ndim == 2
        assert ng.SIDE_RANGE[0] <= min(p.shape) and max(p.shape) in ng.SIDES
        ring = np.concatenate([p[0], p[-1], p[:, 0], p[:, -1]])
        paper = float(np.median(ring))
        assert paper > 0.6 * 255, "the paper is light"
        assert float(p.min()) < paper - 60, "the ink is dark on it"
    assert len({p.shape for p in made}) > 10, "sizes vary"
    assert {max(p.shape) for p in made} >= {ng.SIDES[0], ng.SIDES[-1]}, "from end to end"
    assert any(p.shape[0] > p.shape[1] for p in made) and any(
        p.shape[0] < p.shape[1] for p in made
    ), "tall pages and wide ones"


def test_pages_come_in_a_few_dozen_shapes_so_that_they_are_prepared_as_stacks() -> None:
    shapes = {p.shape for p in ng.pages(500, seed=6)}
    assert len(shapes) <= 2 * len(ng.SIDES) * len(ng.SHORTS)


def test_negatives_are_what_the_model_sees() -> None:
    x = ng.negatives(N, seed=5)
    assert x.shape == (N, 28, 28) and x.dtype == np.uint8
    inked = x.reshape(N, -1).max(axis=1)
    assert (inked > 0).mean() > 0.95, "nearly every page keeps ink"
    # stretched to the full range before the fit, whose resize can lower a thin stroke's or
    # a grain's peak (about 87% of pages reach 255, 97% reach 200)
    assert (inked >= 200).mean() > 0.9, "the ink is stretched to the full range"
    assert ng.negatives(0, seed=5).shape == (0, 28, 28)


def test_every_kind_at_its_share() -> None:
    plan = ng._plan(1000, 7)
    counts = {k: plan.count(k) for k in ng.KINDS}
    assert counts == {k: round(1000 * s) for k, s in ng.KINDS.items()}
    assert abs(sum(ng.KINDS.values()) - 1) < 1e-9
    assert set(ng._plan(len(ng.KINDS), 7)) == set(ng.KINDS), "a few pages still hold every kind"
    assert ng._plan(1000, 7) != ng._plan(1000, 8), "the order is shuffled by the seed"


@pytest.mark.parametrize("kind", list(ng.KINDS))
def test_each_kind_draws_ink_that_survives_the_preparation(kind: str) -> None:
    pages = [ng._page(kind, 11, i) for i in range(12)]
    ink = [int((p < np.median(p) - 60).sum()) for p in pages]
    assert min(ink) > 0, f"{kind}: every page has ink"
    prepared = ng._prepare(pages)
    assert (prepared.reshape(12, -1).max(axis=1) > 0).sum() >= 11, (
        f"{kind}: found by the preparation"
    )


def test_no_digit_glyphs() -> None:
    assert not set(ng.LETTERS) & ng.DIGIT_LIKE
    assert not any(c.isdigit() for c in ng.LETTERS)
    assert set("0123456789OolI|SsZzBgq") <= ng.DIGIT_LIKE
    rng = np.random.default_rng(0)
    drawn = "".join(ng._text(rng) for _ in range(2000))
    assert set(drawn) == set(ng.LETTERS), "every character drawn comes from LETTERS"
    # side by side: no 1, 4 or 7 (a bar or a corner beside a digit is a form's leftover frame)
    assert not set(ng.SIDE_BY_SIDE_DIGITS) & set("147")
    for d in ng.SIDE_BY_SIDE_DIGITS:
        assert ng._skeleton(d)
    with pytest.raises(ValueError, match="no skeleton"):
        ng._skeleton("1")


def test_every_face_draws_every_letter() -> None:
    """A face without a glyph draws an empty box (.notdef): a frame, the worst negative."""
    from fontTools.ttLib import TTFont

    faces = ng._faces()
    assert [f.name for f in faces] == list(ng.FACES)
    for face in faces:
        cmap = TTFont(str(face), lazy=True).getBestCmap()
        missing = [c for c in ng.LETTERS if ord(c) not in cmap]
        assert not missing, f"{face.name} lacks {missing}"


def test_prepared_output_equals_scoring_the_pages_as_files(tmp_path: Path) -> None:
    """The pages saved as PNG files and read by the scoring workers' own decode (stacked by
    shape, as ``negatives`` stacks them: every page is small enough) give the same bytes as
    ``negatives``."""
    n = 60
    made = ng.pages(n, seed=9)
    assert all(p.size <= STACK_MAX_PIXELS for p in made)
    paths = []
    for i, p in enumerate(made):
        path = tmp_path / f"{i:03d}.png"
        Image.fromarray(p, mode="L").save(path)
        paths.append(str(path))
    digits, errors, _ = decode_items([(p, None) for p in paths])
    ok = np.array([e is None for e in errors])
    assert all(e is None or e.startswith("blank") for e in errors)
    expected = np.zeros((n, 28, 28), np.uint8)
    expected[ok] = np.rint(digits * 255).astype(np.uint8)
    assert np.array_equal(ng.negatives(n, seed=9), expected)


def test_chunks_do_not_change_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = ng.negatives(30, seed=2)
    monkeypatch.setattr(ng, "CHUNK", 7)
    assert np.array_equal(ng.negatives(30, seed=2), whole)


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (3, -1), (2.5, 0), (True, 0), (3, "1")], ids=str)
def test_bad_arguments_are_refused(n: object, seed: object) -> None:
    with pytest.raises(InvalidInputError):
        ng.negatives(n, seed=seed)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ng.pages(n, seed=seed)  # type: ignore[arg-type]
