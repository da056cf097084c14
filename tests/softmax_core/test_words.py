"""Counts in words: one image, two images, and the verb that goes with them."""

from __future__ import annotations

import pytest

from softmax_core.words import plural


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
