"""Counts in words: the one way a line a person reads says "1 image" and "2 images"; and a
confidence that never reads higher than it is.

Pure, the standard library only: every layer may use it.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal


def plural(n: int, word: str, words: str | None = None) -> str:
    """``word`` for one thing, else ``words`` (by default ``word`` + "s"): the word only,
    so that the line formats the number as it formats its others::

        f"failed {n:,} {plural(n, 'image')}"  # failed 1 image / failed 1,500 images
        f"the other {k} {plural(k, 'was', 'were')} scored"

    Zero takes the plural ("0 images"), as in English."""
    return word if n == 1 else (words if words is not None else f"{word}s")


def cut(value: float, places: int) -> str:
    """``value`` (not negative) with ``places`` decimals, cut rather than rounded: the text
    never says more than the value, so a confidence under a threshold never reads as at it
    (0.949573 is ``0.94`` where ``f"{0.949573:.2f}"`` says ``0.95``; ``cut(1.0, 2)`` is
    ``1.00``). Exact: the float's own binary value is cut, in decimal."""
    return f"{Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):f}"


def cut_percent(value: float, places: int = 1) -> str:
    """``value`` (a share, not negative) as a percent with ``places`` decimals, cut as
    :func:`cut` cuts: 0.949573 is ``94.9%`` (``f"{0.949573:.1%}"`` says ``95.0%``)."""
    share = Decimal(value).quantize(Decimal(1).scaleb(-places - 2), rounding=ROUND_DOWN)
    return f"{share.scaleb(2):f}%"
