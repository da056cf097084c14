"""The monitoring page: a model's scoring runs over time, one self-contained HTML page.

Trend plots are inline SVG drawn here (lines and dots on fixed axes; no script, no
matplotlib): the estimated accuracy, the rejected and failed shares and each drift test's p-value
(on a log scale, with the level a test is held to), then a table of every run. Every
string that came from data (model names, inputs, reasons) goes through :func:`esc`, and
every number is formatted by this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from softmax_core.monitoring import TESTS, Profile
from softmax_core.report.page import document, esc, kpi, section, table
from softmax_core.words import plural

WIDTH, HEIGHT = 520, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 30
COLOURS = {"labels": "#1f4e79", "rejected": "#b45309", "confidence": "#7c3aed"}
FAILED_COLOUR = "#b91c1c"
MAX_RUN_LABELS = 10  # run numbers under the x axis, at most (every k-th run is labelled)
FLOOR_P = 1e-12  # p-values below this are drawn at it


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if n <= 1 else span * i / (n - 1))


def label_every(n: int) -> int:
    """The step k between labelled runs: 1, 2, 5, 10, 20, 50, ... the smallest that labels
    at most :data:`MAX_RUN_LABELS` of ``n`` runs."""
    k = 1
    while math.ceil(n / k) > MAX_RUN_LABELS:
        k = k * 5 // 2 if str(k)[0] == "2" else k * 2
    return k


def _y(value: float, low: float, high: float) -> float:
    frac = 0.0 if high <= low else (value - low) / (high - low)
    return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - min(1.0, max(0.0, frac)))


def svg_trend(
    title: str,
    runs: Sequence[int],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    low: float,
    high: float,
    ticks: Sequence[tuple[float, str]],
    rule: tuple[float, str] | None = None,
) -> str:
    """A line chart of ``runs`` (their numbers, oldest first): each series (name, colour,
    one value or None per run) on a y axis from ``low`` to ``high`` with labelled
    ``ticks``; ``rule``: a dashed horizontal line (a threshold) and its label. Runs are
    evenly spaced, oldest on the left; every k-th is labelled with its number
    (:func:`label_every`), and each dot's tooltip names its run."""
    n = len(runs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" class="trend"><title>{esc(title)}</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#fafafa" stroke="#e5e7eb"/>',
    ]
    for value, label in ticks:
        y = _y(value, low, high)
        parts.append(
            f'<line x1="{LEFT - 4}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#6b7280">{esc(label)}</text>'
        )
    if rule is not None:
        y = _y(rule[0], low, high)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#b91c1c" stroke-dasharray="5 4"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#b91c1c">{esc(rule[1])}</text>'
        )
    parts.extend(
        f'<text x="{_x(i, n):.1f}" y="{HEIGHT - 10}" font-size="11" text-anchor="middle" '
        f'fill="#6b7280">{runs[i]}</text>'
        for i in range(0, n, label_every(n))
    )
    for k, (name, colour, values) in enumerate(series):
        radius = 6.0 - 1.5 * k  # the first series' dots are the largest: overlaps stay seen
        points = [
            (_x(i, n), _y(v, low, high), runs[i]) for i, v in enumerate(values) if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{esc(colour)}" stroke-width="2"/>'
            )
        parts.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{esc(colour)}">'
            f"<title>{esc(name)}, run {seq}</title></circle>"
            for x, y, seq in points
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{esc(c)}"></i>{esc(name)}</span>'
        for name, c, _ in series
    )
    return f'<figure class="chart">{"".join(parts)}<figcaption>{legend}</figcaption></figure>'


def _log_p(p: float | None) -> float | None:
    return None if p is None else -math.log10(max(FLOOR_P, p))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _flag(profile: Profile) -> str:
    d = profile.drift
    if d is None:
        return "—"
    if not d.checked:
        return "not checked"
    return "DRIFT" if d.flagged else "ok"


EXTRA_CSS = (
    "<style>.chart{margin:0 0 12px}.chart figcaption{font-size:13px;color:#374151}"
    ".key{margin-right:14px}.key i{display:inline-block;width:12px;height:12px;"
    "border-radius:6px;margin-right:5px;vertical-align:-1px}td.num{white-space:nowrap}</style>"
)


def render_monitor(name: str, runs: Sequence[tuple[int, Profile]], *, where: str) -> str:
    """The page of ``name``'s scoring runs (``(seq, profile)``, oldest first), read from
    ``where`` (the registry)."""
    profiles = [p for _, p in runs]
    flagged = sum(1 for p in profiles if p.drift is not None and p.drift.flagged)
    last = profiles[-1] if profiles else None
    header = (
        f"<h1>Monitoring: {esc(name)}</h1>"
        f"<p>{len(profiles):,} scoring {plural(len(profiles), 'run')} in "
        f"<code>{esc(where)}</code></p>"
        '<div class="kpis">'
        + kpi(str(len(profiles)), "runs")
        + kpi(str(flagged), "runs with drift", "fail" if flagged else "pass")
        + kpi(_pct(last.accuracy_estimate if last else None), "estimated accuracy, last run")
        + kpi(
            _pct(last.failed_share if last else None),
            "failed, last run",
            "" if last is None else "fail" if last.failed else "pass",
        )
        + kpi(_pct(last.rejected_share if last else None), "rejected, last run")
        + "</div>"
    )
    if not profiles:
        body = section("runs", "Runs", "No scoring run has stored a profile yet.", "")
        return document(f"Monitoring: {name}", header, EXTRA_CSS + body)
    threshold = next((p.drift.threshold for p in profiles if p.drift and p.drift.checked), None)
    pct_ticks = [(v, f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    seqs = [seq for seq, _ in runs]
    accuracy = svg_trend(
        "estimated accuracy, rejected and failed share by run",
        seqs,
        [
            ("estimated accuracy", "#15803d", [p.accuracy_estimate for p in profiles]),
            ("rejected share", COLOURS["rejected"], [p.rejected_share for p in profiles]),
            ("failed share", FAILED_COLOUR, [p.failed_share for p in profiles]),
        ],
        low=0.0,
        high=1.0,
        ticks=pct_ticks,
    )
    pvalues = svg_trend(
        "drift p-values by run (log scale)",
        seqs,
        [
            (t, COLOURS[t], [_log_p(p.drift.p_value(t)) if p.drift else None for p in profiles])
            for t in TESTS
        ],
        low=0.0,
        high=12.0,
        ticks=[(k, "≤1e-12" if k == 12 else f"1e-{k}" if k else "1") for k in (0, 3, 6, 9, 12)],
        rule=None if threshold is None else (-math.log10(threshold), f"p = {threshold:.3g}"),
    )
    rows = [
        [
            seq,
            p.created,
            p.model,
            p.input,
            f"{p.total:,}",
            _pct(p.failed_share),
            _pct(p.rejected_share),
            _pct(p.accuracy_estimate),
            *(_p(p.drift.p_value(t) if p.drift else None) for t in TESTS),
            _flag(p),
        ]
        for seq, p in runs
    ]
    headers = ["run", "time", "model", "input", "n", "failed", "rejected", "est. accuracy"]
    headers += [f"p {t}" for t in TESTS] + ["drift"]
    lead = (
        "Each run's profile against the model's reference (MNIST test through it): "
        "the chi-square test of the label mix, Fisher's exact test of the rejected "
        "share and the Kolmogorov-Smirnov test of the confidence; drift when a p-value is "
        "below the level (Bonferroni over the three)."
    )
    body = section(
        "trends",
        "Trends",
        "Runs oldest first, numbered as in the table; failed: images that could not be "
        "read, of all; rejected: of the images read.",
        f'<div class="row"><div>{accuracy}</div><div>{pvalues}</div></div>',
    ) + section("runs", "Runs", esc(lead), table(headers, rows, numeric=[0, 4, 5, 6, 7, 8, 9, 10]))
    return document(f"Monitoring: {name}", header, EXTRA_CSS + body)
