"""The report's pictures, drawn with matplotlib (Agg, no pyplot) and returned as PNG bytes.

matplotlib is imported inside :func:`_figure` only, so importing this module is cheap and
the CLI's start-up never loads it. Every function takes numbers from
:mod:`softmax_core.report.analysis` and returns ``bytes`` of one PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.report.analysis import N_CLASSES, HogLayout, Reliability

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
DIVERGING = "RdBu_r"  # red: evidence for the digit, blue: against
INK = "#1f4e79"
_MARGINS = {"left": 0.1, "right": 0.97, "bottom": 0.12, "top": 0.9}


def _figure(width: float, height: float, **margins: float) -> Figure:
    """A standalone Agg figure (no pyplot state, no GUI backend) of width x height inches,
    with fixed ``margins`` (``subplots_adjust`` fractions: fast, unlike a layout engine)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(**{**_MARGINS, **margins})
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def tile(image: NDArray[np.floating], cmap: str, vmin: float, vmax: float) -> bytes:
    """One small image (e.g. 28x28) as a PNG at its own resolution, coloured by ``cmap``
    (the page scales it up with crisp pixels)."""
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, np.asarray(image, dtype=np.float32), cmap=cmap, vmin=vmin, vmax=vmax, format="png")
    return buf.getvalue()


def hog_glyphs(W: NDArray[np.floating], layout: HogLayout) -> bytes:
    """Per digit, each cell's positive weights drawn as line glyphs along the edge direction.

    A line at angle theta + 90 degrees (the edge, perpendicular to the gradient of bin
    theta) is drawn in each cell, as long and as bright as the weight; negative weights
    are left out.
    """
    from matplotlib.collections import LineCollection

    fig = _figure(10, 4.6, left=0.01, right=0.99, bottom=0.01, top=0.93, wspace=0.08, hspace=0.15)
    axes = fig.subplots(2, 5)
    cy, cx, nb = layout.cells_y, layout.cells_x, layout.bins
    grid = W.reshape(cy, cx, nb, N_CLASSES)
    scale = float(np.clip(grid, 0, None).max()) or 1.0
    theta = (np.arange(nb) + 0.5) * layout.span / nb + np.pi / 2
    dx, dy = np.cos(theta) * 0.48, np.sin(theta) * 0.48
    rows, cols, bins = np.meshgrid(np.arange(cy), np.arange(cx), np.arange(nb), indexing="ij")
    for k, ax in enumerate(axes.flat):
        w = np.clip(grid[..., k], 0, None) / scale
        keep = w > 0.05
        r, c, b, s = rows[keep], cols[keep], bins[keep], w[keep]
        segs = np.stack(
            [
                np.stack([c - dx[b] * s, r - dy[b] * s], -1),
                np.stack([c + dx[b] * s, r + dy[b] * s], -1),
            ],
            axis=1,
        )
        colours = np.column_stack([np.full((s.size, 3), 1.0), np.clip(s * 1.5, 0.15, 1.0)])
        ax.add_collection(LineCollection(list(segs), colors=colours, linewidths=0.6 + 2.4 * s))
        ax.set_xlim(-0.5, cx - 0.5)
        ax.set_ylim(cy - 0.5, -0.5)
        ax.set_facecolor("#111827")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(k), fontsize=15, fontweight="bold")
    return _png(fig)


def confusion_heatmap(confusion: NDArray[np.integer]) -> bytes:
    """Confusion matrix with counts written in: mistakes in reds (share of the true digit),
    the diagonal in green."""
    fig = _figure(5.6, 5.2, left=0.12, right=0.98, bottom=0.11, top=0.98)
    ax = fig.subplots()
    c = np.asarray(confusion, dtype=np.int64)
    share = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
    diag = np.eye(c.shape[0], dtype=bool)
    off = np.where(diag, 0.0, share)
    peak = max(float(off.max()), 1e-9)
    ax.imshow(np.ma.masked_where(diag, off), cmap="Reds", vmin=0, vmax=peak)
    ax.imshow(np.ma.masked_where(~diag, share), cmap="Greens", vmin=0, vmax=1.6)
    for (i, j), n in np.ndenumerate(c):
        dark = diag[i, j] or off[i, j] > 0.55 * peak
        ax.text(
            j,
            i,
            str(n),
            ha="center",
            va="center",
            fontsize=9,
            color="white" if dark else "#111",
            fontweight="bold" if diag[i, j] else "normal",
        )
    names = [str(k) for k in range(min(c.shape[1], N_CLASSES))] + ["none"] * (
        c.shape[1] > N_CLASSES
    )
    ax.set_xticks(range(c.shape[1]), names)  # "none": rejected as not a digit
    ax.set_yticks(range(c.shape[0]), names[: c.shape[0]])
    ax.set_xlabel("predicted digit", fontsize=11)
    ax.set_ylabel("true digit", fontsize=11)
    return _png(fig)


def reliability_diagram(rel: Reliability, title: str = "") -> bytes:
    """Bars of accuracy per confidence bin against the diagonal, with counts underneath;
    ``title`` (e.g. "before calibration") goes before the ECE."""
    fig = _figure(5.6, 5.2, left=0.13, right=0.97, bottom=0.1, top=0.93, hspace=0.08)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    centres = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = float(rel.edges[1] - rel.edges[0])
    filled = rel.count > 0
    top.bar(centres[filled], rel.accuracy[filled], width=width * 0.9, color=INK, label="accuracy")
    top.plot(
        centres[filled],
        rel.confidence[filled],
        "D",
        color="#f59e0b",
        markersize=7,
        label="mean confidence",
    )
    top.plot([0, 1], [0, 1], "--", color="#6b7280", label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}: ECE = {rel.ece:.4f}" if title else f"ECE = {rel.ece:.4f}", fontsize=12)
    top.legend(loc="upper left", fontsize=9, framealpha=0.95)
    bottom.bar(centres, rel.count, width=width * 0.9, color="#9ca3af")
    bottom.set_yscale("log")
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_xlim(0, 1)
    return _png(fig)


def training_curves(history: Sequence[dict[str, Any]]) -> bytes:
    """Loss and training accuracy per epoch, side by side."""
    fig = _figure(10, 3.2, left=0.07, right=0.98, bottom=0.16, top=0.88, wspace=0.2)
    left, right = fig.subplots(1, 2)
    epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    for ax, key, colour in ((left, "loss", "#b91c1c"), (right, "accuracy", INK)):
        values = [float(h[key]) if h.get(key) is not None else np.nan for h in history]
        ax.plot(epochs, values, "o-", color=colour, linewidth=2)
        ax.set_xlabel("epoch")
        ax.set_title(f"training {key}", fontsize=12)
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
    return _png(fig)


def class_deltas(deltas: NDArray[np.floating]) -> bytes:
    """Per-digit accuracy change against the champion, in percentage points."""
    fig = _figure(5.6, 3.2, left=0.14, right=0.97, bottom=0.16, top=0.95)
    ax = fig.subplots()
    points = np.nan_to_num(np.asarray(deltas, dtype=np.float64)) * 100
    colours = ["#15803d" if d >= 0 else "#b91c1c" for d in points]
    ax.bar(range(len(points)), points, color=colours)
    ax.axhline(0, color="#111", linewidth=0.8)
    ax.set_xticks(range(len(points)))
    ax.set_xlabel("digit")
    ax.set_ylabel("accuracy change (points)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
