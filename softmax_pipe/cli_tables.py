"""Tables for people and JSON for machines: how ``softmax-pipe registry`` prints."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from softmax_pipe.cli_common import err

if TYPE_CHECKING:
    from registry import Manifest


def print_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=False))


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def metric(m: Manifest, key: str = "accuracy") -> str:
    value = m.metrics.get(key)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def models_table(
    found: list[tuple[str, list[int], dict[str, int]]], *, as_json: bool, where: str
) -> None:
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "latest": nums[-1] if nums else None,
                    "versions": len(nums),
                    "aliases": al,
                }
                for name, nums, al in found
            ]
        )
        return
    if not found:
        err(f"no models in {where}")
        return
    table(
        ["NAME", "LATEST", "VERSIONS", "ALIASES"],
        [
            [
                name,
                str(nums[-1]) if nums else "-",
                str(len(nums)),
                ", ".join(f"{a}={v}" for a, v in al.items()) or "-",
            ]
            for name, nums, al in found
        ],
    )
