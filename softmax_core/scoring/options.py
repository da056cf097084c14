"""Scoring options: their checks and the defaults that depend on the machine."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from softmax_core.errors import InvalidInputError

FORMATS = ("csv", "jsonl")


def default_workers() -> int:
    """One decoding process per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def validate_options(
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    max_pixels: int | None = None,
    min_confidence: float | None = None,
    fmt: str | None = None,
) -> None:
    """InvalidInputError (exit 2) naming the first option out of range."""
    checks: list[tuple[str, Any, Callable[[Any], bool], str]] = [
        ("workers", workers, lambda v: isinstance(v, int) and 1 <= v <= 256, "an integer 1..256"),
        (
            "batch_size",
            batch_size,
            lambda v: isinstance(v, int) and 1 <= v <= 65536,
            "an integer 1..65536",
        ),
        ("max_pixels", max_pixels, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("min_confidence", min_confidence, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
        ("format", fmt, lambda v: v in FORMATS, f"one of {', '.join(FORMATS)}"),
    ]
    for name, value, ok, expected in checks:
        if value is not None and not ok(value):
            raise InvalidInputError(f"{name}={value!r} is invalid; expected {expected}")
