"""Names, references and store keys: validated before any request is sent.

Model names and aliases use letters, digits, ``-``, ``_`` and ``.``; they are never empty,
never ``.`` or ``..``, never contain ``..`` or a slash, and are at most 128 characters.
Store keys are ``/``-separated segments drawn from the same alphabet, so no key can climb
out of the registry's prefix (no ``..`` segment, no leading ``/``, no empty segment).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from softmax_core.errors import InvalidNameError

MAX_NAME = 128
MAX_KEY = 1024
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
_VERSION_RE = re.compile(r"[0-9]{1,12}")


def validate_name(kind: str, value: str) -> str:
    """Return ``value`` if it is an acceptable model name or alias, else raise InvalidNameError.

    ``kind`` ("model name", "alias") only shapes the message.
    """
    if not isinstance(value, str) or not value:
        raise InvalidNameError(f"{kind} is empty; expected letters, digits, '-', '_' or '.'")
    if len(value) > MAX_NAME:
        raise InvalidNameError(
            f"{kind} {value[:40]!r}... is {len(value)} characters long; at most {MAX_NAME} allowed"
        )
    if not _NAME_RE.fullmatch(value):
        bad = sorted({c for c in value if not _NAME_RE.fullmatch(c)})
        raise InvalidNameError(
            f"{kind} {value!r} contains {''.join(bad)!r}; "
            "only letters, digits, '-', '_' and '.' are allowed (no slash, no spaces)"
        )
    if value.startswith("-"):
        raise InvalidNameError(
            f"{kind} {value!r} starts with '-', which a command line reads as an option; "
            "start it with a letter or digit"
        )
    if value in (".", "..") or ".." in value:
        raise InvalidNameError(f"{kind} {value!r} is not allowed: it must not be or contain '..'")
    return value


def parse_version(text: str, *, ref: str | None = None) -> int:
    """A version number: a positive decimal integer."""
    origin = f" in {ref!r}" if ref is not None else ""
    if not _VERSION_RE.fullmatch(text) or int(text) < 1:
        raise InvalidNameError(
            f"version {text!r}{origin} is not a positive whole number (1, 2, ...)"
        )
    return int(text)


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """Split a model reference into ``(name, alias, version)``, validating every part.

    ``name@alias`` -> (name, alias, None); ``name:7`` -> (name, None, 7);
    ``name`` -> (name, None, None), meaning the newest version.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidNameError(
            "model reference is empty; expected NAME, NAME:VERSION or NAME@ALIAS"
        )
    if "@" in ref and ":" in ref:
        raise InvalidNameError(
            f"model reference {ref!r} has both '@' and ':'; use NAME:VERSION or NAME@ALIAS"
        )
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return validate_name("model name", name), validate_name("alias", alias), None
    if ":" in ref:
        name, _, version = ref.partition(":")
        return validate_name("model name", name), None, parse_version(version, ref=ref)
    return validate_name("model name", ref), None, None


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


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid model name (folders that are not are skipped)."""
    try:
        validate_name("name", value)
    except InvalidNameError:
        return False
    return True


def span_of(numbers: Sequence[int]) -> str:
    """Version numbers as a message says them: ``versions 1..7``, or listed."""
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    if numbers[-1] - numbers[0] + 1 == len(numbers):
        return f"versions {numbers[0]}..{numbers[-1]}"
    return "versions " + ", ".join(map(str, numbers[:20])) + (" ..." if len(numbers) > 20 else "")


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """``name`` (its newest version) or ``name:version`` -> ``(name, version or None)``."""
    if not isinstance(ref, str) or not ref:
        raise InvalidNameError("dataset reference is empty; expected NAME or NAME:VERSION")
    if "@" in ref:
        raise InvalidNameError(
            f"dataset reference {ref!r} has an alias; datasets have versions only "
            "(NAME or NAME:VERSION)"
        )
    name, colon, version = ref.partition(":")
    validate_name("dataset name", name)
    return name, parse_version(version, ref=ref) if colon else None
