"""Manifests and alias records are strict JSON: whole numbers, their schema, no NaN."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.manifest import ALIAS_SCHEMA, MANIFEST_SCHEMA, AliasRecord, Manifest, dumps
from softmax_core.errors import CorruptObjectError


def _manifest(**over: Any) -> bytes:
    doc = {
        "schema": MANIFEST_SCHEMA,
        "name": "m",
        "version": 3,
        "digest": "a" * 64,
        "created": "2026-12-02T00:00:00+00:00",
        "size": 10,
        **over,
    }
    return json.dumps(doc).encode()


def _alias(**over: Any) -> bytes:
    doc = {
        "schema": ALIAS_SCHEMA,
        "name": "m",
        "alias": "champion",
        "version": 2,
        "previous": [1],
        "seq": 2,
        "moved_at": "2026-12-02T00:00:00+00:00",
        "move_id": "x",
        "action": "promote",
        "from_version": 1,
        **over,
    }
    return json.dumps(doc).encode()


def test_good_records_parse() -> None:
    assert Manifest.from_bytes(_manifest()).version == 3
    assert AliasRecord.from_bytes(_alias()).previous == (1,)


@pytest.mark.parametrize(
    "bad",
    [{"version": 2.9}, {"version": "3"}, {"version": True}, {"size": 1e999}, {"size": -1}],
    ids=["fractional", "string", "bool", "huge", "negative"],
)
def test_manifest_numbers_must_be_whole(bad: dict[str, Any]) -> None:
    with pytest.raises(CorruptObjectError, match="not a valid manifest"):
        Manifest.from_bytes(_manifest(**bad))


@pytest.mark.parametrize(
    "bad",
    [{"version": 2.9}, {"version": 1e999}, {"previous": [-1]}, {"seq": 0}],
    ids=["fractional", "huge", "negative-previous", "zero-seq"],
)
def test_alias_numbers_must_be_whole_and_positive(bad: dict[str, Any]) -> None:
    with pytest.raises(CorruptObjectError, match="alias record"):
        AliasRecord.from_bytes(_alias(**bad))


def test_the_schema_is_checked() -> None:
    with pytest.raises(CorruptObjectError, match="schema"):
        Manifest.from_bytes(_manifest(schema="someone-else/manifest@9"))
    with pytest.raises(CorruptObjectError, match="schema"):
        AliasRecord.from_bytes(_alias(schema=None))


def test_nan_metrics_are_written_as_null() -> None:
    text = dumps({"metrics": {"accuracy": float("nan"), "loss": float("inf"), "n": 3}}).decode()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["metrics"] == {"accuracy": None, "loss": None, "n": 3}
