"""Counts in words: one image, two images, and the verb that goes with them; confidences
that never read higher than they are."""

from __future__ import annotations

import numpy as np
import pytest

from softmax_core.words import cut, cut_percent, plural


@pytest.mark.parametrize(
    ("n", "args", "word"),
    [
        (1, ("image",), "image"),
        (0, ("image",), "images"),
        (2, ("image",), "images"),
        (1_500, ("byte",), "bytes"),
        (1, ("was", "were"), "was"),
        (3, ("was", "were"), "were"),
        (
            1,
            ("file that is not an image", "files that are not images"),
            "file that is not an image",
        ),
        (
            7,
            ("file that is not an image", "files that are not images"),
            "files that are not images",
        ),
    ],
)
def test_the_word_for_n_things(n: int, args: tuple[str, ...], word: str) -> None:
    assert plural(n, *args) == word


@pytest.mark.parametrize(
    ("value", "places", "text", "percent"),
    [
        (0.949573, 2, "0.94", "94.9%"),  # rounded: 0.95 and 95.0%, at a 0.95 threshold
        (float(np.float32(0.95)), 2, "0.94", "94.9%"),  # a float32 under 0.95 is under it
        (0.9999, 2, "0.99", "99.9%"),
        (1.0, 2, "1.00", "100.0%"),
        (0.5, 2, "0.50", "50.0%"),
        (0.0, 2, "0.00", "0.0%"),
        (1e-12, 2, "0.00", "0.0%"),
        (0.41, 3, "0.409", "40.9%"),  # 0.41 is 0.40999... in binary: never more than it is
    ],
)
def test_cut_never_says_more_than_the_value(
    value: float, places: int, text: str, percent: str
) -> None:
    assert cut(value, places) == text
    assert cut_percent(value) == percent
    assert float(cut(value, places)) <= value and float(percent[:-1]) / 100 <= value
