"""Store keys, validated before any request is sent; names and references are
:mod:`softmax_core.names`' (re-exported here for the registry's modules).

Store keys are ``/``-separated segments drawn from the names' alphabet, so no key can
climb out of the registry's prefix (no ``..`` segment, no leading ``/``, no empty segment).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from softmax_core.errors import InvalidNameError
from softmax_core.names import (
    is_name,
    parse_dataset_ref,
    parse_ref,
    parse_version,
    validate_name,
)

__all__ = [
    "is_name",
    "is_valid_key",
    "parse_dataset_ref",
    "parse_ref",
    "parse_version",
    "span_of",
    "validate_key",
    "validate_name",
    "validate_prefix",
]

MAX_KEY = 1024
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe store key, else raise InvalidNameError."""
    if not isinstance(key, str) or not key:
        raise InvalidNameError("store key is empty")
    if len(key) > MAX_KEY:
        raise InvalidNameError(f"store key {key[:60]!r}... is longer than {MAX_KEY} characters")
    if key.startswith("/"):
        raise InvalidNameError(f"store key {key!r} must be relative (no leading '/')")
    for segment in key.split("/"):
        _check_segment(segment, key)
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: ``""`` (everything) or a valid key followed by ``/``."""
    if prefix == "":
        return prefix
    if not prefix.endswith("/"):
        raise InvalidNameError(f"listing prefix {prefix!r} must be empty or end with '/'")
    validate_key(prefix[:-1])
    return prefix


def is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidNameError:
        return False
    return True


def _check_segment(segment: str, key: str) -> None:
    if segment == "":
        raise InvalidNameError(f"store key {key!r} has an empty segment ('//' or a trailing '/')")
    if segment in (".", ".."):
        raise InvalidNameError(f"store key {key!r} has a {segment!r} segment; not allowed")
    if not _SEGMENT_RE.fullmatch(segment):
        raise InvalidNameError(
            f"store key {key!r}: segment {segment!r} may only use letters, digits, '-', '_', '.'"
        )


def span_of(numbers: Sequence[int]) -> str:
    """Version numbers as a message says them: ``versions 1..7``, or listed."""
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    if numbers[-1] - numbers[0] + 1 == len(numbers):
        return f"versions {numbers[0]}..{numbers[-1]}"
    return "versions " + ", ".join(map(str, numbers[:20])) + (" ..." if len(numbers) > 20 else "")
