"""Self-contained HTML: one page, inline CSS, pictures as ``data:`` URIs, no script, no
network font (system font stack). Every text that came from data goes through :func:`esc`.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #fff; --bg: #f3f4f6;
        --ok: #15803d; --bad: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 30px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
.kpis { display: flex; flex-wrap: wrap; gap: 14px; margin: 20px 0 8px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
       padding: 12px 18px; min-width: 160px; }
.kpi b { display: block; font-size: 26px; }
.kpi span { color: var(--muted); font-size: 14px; }
.pass b { color: var(--ok); } .fail b { color: var(--bad); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 14px;
          padding: 18px 24px 22px; margin: 22px 0; }
section h2 { font-size: 22px; margin: 0 0 6px; }
section p.lead { margin: 0 0 12px; color: #374151; max-width: 80ch; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.row > div { flex: 1 1 440px; min-width: 0; }
img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 10px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px; text-align: left;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
.verdict { font-size: 18px; font-weight: 600; padding: 10px 14px; border-radius: 10px; }
.verdict.pass { background: #dcfce7; color: var(--ok); }
.verdict.fail { background: #fee2e2; color: var(--bad); }
.note { color: var(--muted); font-size: 14px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px 14px; }
.tile { margin: 0; text-align: center; font-size: 13px; color: #374151; }
.tile img { image-rendering: pixelated; border: 1px solid var(--line); border-radius: 4px; }
.tile figcaption b { font-size: 18px; color: var(--ink); }
.tiles.five { display: grid; grid-template-columns: repeat(5, max-content); gap: 12px 22px; }
.pair { margin: 4px 0 16px; }
.pair > strong { display: block; font-size: 17px; margin-bottom: 6px; }
.legend { display: flex; align-items: center; gap: 10px; font-size: 14px; color: #374151;
          margin-top: 10px; }
.legend i { width: 240px; height: 14px; border-radius: 7px; display: inline-block;
            background: linear-gradient(90deg, #2166ac, #f7f7f7, #b2182b); }
"""


def esc(value: Any) -> str:
    """Text for HTML: escaped, None shown as a dash."""
    return "—" if value is None else html.escape(str(value), quote=True)


def png(data: bytes, alt: str, width: int | None = None) -> str:
    """An ``<img>`` with the PNG inline as a data URI (``width``: display width in CSS px)."""
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    size = f' width="{width}" height="{width}"' if width else ""
    return f'<img src="{uri}" alt="{esc(alt)}"{size}>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    """A ``<table>``; columns listed in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def tiles(items: Iterable[tuple[bytes, str]], width: int, css: str = "") -> str:
    """Small square images side by side, each with a caption (HTML allowed) under it;
    ``css``: an extra class (``five``: five to a row)."""
    cells = "".join(
        f'<figure class="tile">{png(data, "image", width)}<figcaption>{caption}</figcaption></figure>'
        for data, caption in items
    )
    return f'<div class="tiles {esc(css)}">{cells}</div>'


def code_value(value: Any) -> str:
    """A lineage value: a dict or list as compact JSON, anything else as text, in ``<code>``."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    return f"<code>{esc(value)}</code>"


def definitions(items: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table (values in ``<code>``)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{code_value(v)}</td></tr>" for k, v in items)
    return f"<table><tbody>{rows}</tbody></table>"


def section(anchor: str, title: str, lead: str, body: str) -> str:
    """One card: a heading, a sentence of explanation (HTML allowed), the content."""
    return (
        f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>'
        f'<p class="lead">{lead}</p>{body}</section>'
    )


def kpi(value: str, label: str, state: str = "") -> str:
    """A headline number in the page header; ``state`` ``pass``/``fail`` colours it."""
    return f'<div class="kpi {esc(state)}"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def document(title: str, header: str, body: str) -> str:
    """The whole page: ``<!doctype html>`` with the CSS inline."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main><header>{header}</header>{body}</main></body></html>\n"
    )
