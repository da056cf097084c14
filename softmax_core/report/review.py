"""``render_review_sheet``: a contact sheet of scored images for a person to label at a glance.

Each card shows the file name, what the image's score row says (its digit, or
``rejected``; its confidence and status, and a rejected row's reason), the top-3
probabilities (as bars; each percent cut, never rounded up: 94.9% for 0.949573, under a
threshold of 0.95) and the 28x28 image as the model saw it (after preparation: bright ink
on dark). Cards the scoring counted below ``min_confidence`` are marked
"check". One self-contained HTML page, like the model report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from softmax_core import settings
from softmax_core.errors import InvalidInputError
from softmax_core.labelled import label_name
from softmax_core.report import figures
from softmax_core.report.page import document, esc, kpi, png
from softmax_core.words import cut_percent

IMAGE_PX = 140  # display size of each 28x28 image (CSS px)
TOP = 3

CSS = """
<style>
.sheet { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 12px;
        display: flex; flex-direction: column; align-items: center; gap: 6px; }
.card.check { border: 2px solid #f59e0b; }
.card img { image-rendering: pixelated; border-radius: 6px; }
.card .name { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; color: var(--muted);
              max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card .label { font-size: 30px; font-weight: 700; line-height: 1; }
.card .label small { font-size: 13px; font-weight: 600; color: #b45309; margin-left: 6px; }
.card .row { font-size: 13px; color: var(--muted); text-align: center; }
.prob { display: grid; grid-template-columns: 16px 1fr 44px; gap: 6px; width: 100%;
        align-items: center; font-size: 13px; }
.prob span.bar { height: 10px; border-radius: 5px; background: #1f4e79; }
.prob span.track { background: #e5e7eb; border-radius: 5px; }
</style>
"""


@dataclass(frozen=True)
class ReviewItem:
    """One scored image: its file name, the (28, 28) image in [0, 1] as the model saw it,
    the model's class probabilities, and what its score row says
    (``softmax_core.scoring.ScoredBatch``): ``label`` (-1: none, a rejected row),
    ``confidence`` (NaN: none), ``status`` (``ok``, ``rejected``), a rejected row's
    ``reason``, and whether the run counts it ``unsure`` (below its confidence line)."""

    name: str
    image: NDArray[np.floating]
    probs: NDArray[np.floating]
    label: int
    confidence: float
    status: str
    unsure: bool
    reason: str = ""


def render_review_sheet(
    items: Iterable[ReviewItem],
    *,
    title: str = "Review queue",
    model_ref: str | None = None,
    min_confidence: float = settings.MIN_CONFIDENCE,
) -> str:
    """The contact sheet as one HTML string; ``model_ref`` names the model that scored it.

    Raises InvalidInputError for an image that is not 2-D or probabilities that are not
    a 1-D vector.
    """
    items = list(items)
    cards = [_card(item) for item in items]
    unsure = sum(item.unsure for item in items)
    rejected = sum(item.status == "rejected" for item in items)
    by = f" · scored by {esc(model_ref)}" if model_ref else ""
    header = (
        f"<h1>{esc(title)}</h1><p>{len(cards)} images{by} · images shown as the model saw "
        "them (prepared to 28×28, bright ink on dark)</p>"
        '<div class="kpis">'
        + kpi(str(len(cards)), "images to label")
        + kpi(str(unsure), f"below confidence {min_confidence:g}", "fail" if unsure else "pass")
        + (kpi(str(rejected), "rejected") if rejected else "")
        + "</div>"
    )
    return document(title, CSS + header, f'<section class="sheet">{"".join(cards)}</section>')


def _card(item: ReviewItem) -> str:
    """One card's HTML: what the item's row says, the top probabilities, the image."""
    image = np.asarray(item.image, dtype=np.float32)
    probs = np.asarray(item.probs, dtype=np.float64)
    if image.ndim != 2 or probs.ndim != 1 or probs.size < 1:
        raise InvalidInputError(
            f"{item.name}: image of shape {image.shape} and probabilities of shape "
            f"{probs.shape}; expected a 2-D image and a 1-D probability vector"
        )
    order = np.argsort(-probs, kind="stable")[:TOP]
    bars = "".join(
        f'<div class="prob"><b>{label_name(int(k))}</b><span class="track"><span class="bar" '
        f'style="display:block;width:{probs[k] * 100:.1f}%"></span></span>'
        f"<span>{cut_percent(float(probs[k]))}</span></div>"
        for k in order
    )
    flag = "<small>check</small>" if item.unsure else ""
    said = label_name(item.label) if item.label >= 0 else esc(item.status)
    c = item.confidence
    row = f"confidence {c:.6f}" if c == c else "no confidence"  # NaN: none, as in the row
    row += f" · {esc(item.status)}" + (f": {esc(item.reason)}" if item.reason else "")
    return (
        f'<div class="card{" check" if item.unsure else ""}">'
        f"{png(figures.tile(image, 'gray', 0.0, 1.0), item.name, IMAGE_PX)}"
        f'<div class="label">{said}{flag}</div><div class="row">{row}</div>'
        f'<div class="name" title="{esc(item.name)}">{esc(item.name)}</div>{bars}</div>'
    )
