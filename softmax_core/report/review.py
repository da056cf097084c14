"""``render_review_sheet``: a contact sheet of scored images for a person to label at a glance.

Each card shows the file name, the predicted digit, the top-3 probabilities (as bars) and
the 28x28 image as the model saw it (after preparation: bright ink on dark). Cards whose
top probability is under ``min_confidence`` are marked "check". One self-contained HTML
page, like the model report.
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
.prob { display: grid; grid-template-columns: 16px 1fr 44px; gap: 6px; width: 100%;
        align-items: center; font-size: 13px; }
.prob span.bar { height: 10px; border-radius: 5px; background: #1f4e79; }
.prob span.track { background: #e5e7eb; border-radius: 5px; }
</style>
"""


@dataclass(frozen=True)
class ReviewItem:
    """One scored image: its file name, the (28, 28) image in [0, 1] as the model saw it,
    and the model's (10,) class probabilities."""

    name: str
    image: NDArray[np.floating]
    probs: NDArray[np.floating]


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
    rendered = [_card(item, min_confidence) for item in items]
    cards = [html for html, _ in rendered]
    unsure = sum(check for _, check in rendered)
    by = f" · scored by {esc(model_ref)}" if model_ref else ""
    header = (
        f"<h1>{esc(title)}</h1><p>{len(cards)} images{by} · images shown as the model saw "
        "them (prepared to 28×28, bright ink on dark)</p>"
        '<div class="kpis">'
        + kpi(str(len(cards)), "images to label")
        + kpi(str(unsure), f"below confidence {min_confidence:g}", "fail" if unsure else "pass")
        + "</div>"
    )
    return document(title, CSS + header, f'<section class="sheet">{"".join(cards)}</section>')


def _card(item: ReviewItem, min_confidence: float) -> tuple[str, bool]:
    """One card's HTML, and whether its top probability is under ``min_confidence``."""
    image = np.asarray(item.image, dtype=np.float32)
    probs = np.asarray(item.probs, dtype=np.float64)
    if image.ndim != 2 or probs.ndim != 1 or probs.size < 1:
        raise InvalidInputError(
            f"{item.name}: image of shape {image.shape} and probabilities of shape "
            f"{probs.shape}; expected a 2-D image and a 1-D probability vector"
        )
    order = np.argsort(-probs, kind="stable")[:TOP]
    best = int(order[0])
    check = bool(probs[best] < min_confidence)
    bars = "".join(
        f'<div class="prob"><b>{label_name(int(k))}</b><span class="track"><span class="bar" '
        f'style="display:block;width:{probs[k] * 100:.1f}%"></span></span>'
        f"<span>{probs[k]:.1%}</span></div>"
        for k in order
    )
    flag = "<small>check</small>" if check else ""
    html = (
        f'<div class="card{" check" if check else ""}">'
        f"{png(figures.tile(image, 'gray', 0.0, 1.0), item.name, IMAGE_PX)}"
        f'<div class="label">{label_name(best)}{flag}</div><div class="name" title="{esc(item.name)}">'
        f"{esc(item.name)}</div>{bars}</div>"
    )
    return html, check
