"""Counts in words: the one way a line a person reads says "1 image" and "2 images".

Pure, no imports: every layer may use it.
"""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """``word`` for one thing, else ``words`` (by default ``word`` + "s"): the word only,
    so that the line formats the number as it formats its others::

        f"failed {n:,} {plural(n, 'image')}"  # failed 1 image / failed 1,500 images
        f"the other {k} {plural(k, 'was', 'were')} scored"

    Zero takes the plural ("0 images"), as in English."""
    return word if n == 1 else (words if words is not None else f"{word}s")
