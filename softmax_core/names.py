"""Names and references: model and dataset names, aliases, ``name@alias`` and ``name:7``.

Checked where a request is built, before anything is read or sent. Names and aliases use
letters, digits, ``-``, ``_`` and ``.``; they are never empty, never ``.`` or ``..``,
never contain ``..`` or a slash, never start with ``-`` (a command line would read an
option), and are at most 128 characters. So a name can always be a store key's segment
and never climb out of its prefix (``registry.names`` checks whole keys).
"""

from __future__ import annotations

import re

from softmax_core.errors import InvalidNameError

MAX_NAME = 128
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
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


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid model name (folders that are not are skipped)."""
    try:
        validate_name("name", value)
    except InvalidNameError:
        return False
    return True


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
