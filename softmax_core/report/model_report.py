"""``render_report``: one model (and optionally its champion) on labelled test images, as
one self-contained HTML page. See :mod:`softmax_core.report`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import gate
from softmax_core.calibration import Calibration
from softmax_core.labelled import label_name
from softmax_core.metrics import mcnemar_exact
from softmax_core.model import Model
from softmax_core.report import analysis, figures
from softmax_core.report.page import (
    definitions,
    document,
    esc,
    kpi,
    png,
    section,
    table,
    tiles,
)
from softmax_core.requests import Gate
from softmax_core.train import Holdout, digits_only, holdout_decisions

STRIP = 6  # misclassified images shown per confused pair
TEMPLATE_PX = 150  # display size of a weight template (CSS px; drawn from 28x28 pixels)
DIGIT_PX = 64  # display size of a misclassified test image
HOLDOUT_STRIP = 12  # holdout images read wrong shown per dataset


def render_report(
    model: Model,
    *,
    images: NDArray[np.generic],
    labels: Any,
    title: str | None = None,
    manifest: dict[str, Any] | None = None,
    champion: Model | None = None,
    champion_ref: str | None = None,
    is_champion: bool = False,
    domains: Sequence[str] | NDArray[Any] | None = None,
    test_digest: str | None = None,
    rules: Gate | None = None,
    holdouts: Sequence[Holdout] = (),
) -> str:
    """The model report as one HTML string (UTF-8 text, pictures inline).

    Args:
        model: the model shown (the challenger when ``champion`` is given).
        images: (n, 28, 28) test images, uint8 0..255 or float in [0, 1], as stored
            (each model applies its own feature steps).
        labels: (n,) their digits 0..9.
        title: the heading, e.g. ``mnist:7`` (default: the manifest's ``name:version``).
        manifest: the registry manifest as a dict (``Manifest.to_dict()``), for lineage.
        champion: a model to compare against on the same images; ``champion_ref`` names it.
        is_champion: without ``champion``, the model shown is the champion itself.
        domains: (n,) a domain label per image, for per-domain accuracy deltas.
        test_digest: the digest of the test data, shown in the lineage.
        rules: the gate's floors, margin and alpha (default: the settings').
        holdouts: ``(dataset, images (m, 28, 28), labels (m,))``: the holdout split of
            each user dataset, shown with both models' accuracy and the gate on it.

    Raises:
        InvalidInputError: labels that do not match the images, or features that do not
        match the model.
    """
    ev = analysis.evaluate(model, images, labels)
    y = np.asarray(labels).astype(np.int64)
    champ = analysis.evaluate(champion, images, y) if champion is not None else None
    rules = rules or Gate()
    decision = gate.decide(
        y,
        ev.pred,
        min_accuracy=rules.min_accuracy,
        champion_pred=None if champ is None else champ.pred,
        champion=champion_ref if champ is not None else None,
        alpha=rules.alpha,
        margin=rules.margin,
    )
    held = holdout_decisions(
        model,
        holdouts,
        champion=champion.evolve(ref=champion_ref) if champion and champion_ref else champion,
        min_accuracy=rules.min_dataset_accuracy,
        alpha=rules.alpha,
        margin=rules.margin,
    )
    rel = analysis.reliability(ev.probs, ev.correct)
    rel_before = analysis.reliability(ev.uncalibrated, ev.correct)
    name = title or _ref(manifest) or "model"
    header = _header(name, model, manifest, ev, rel.ece, [decision, *held])
    body = "".join(
        [
            _learned(model),
            _errors(ev, images, y),
            _calibration(rel, rel_before, model.calibration),
            _training(model),
            _against(ev, champ, y, decision, domains, is_champion=is_champion),
            _your_data(model, holdouts, held),
            _lineage(model, manifest, test_digest),
        ]
    )
    return document(f"{name} — model report", header, body)


def confusion_picture(model: Model, *, images: NDArray[np.generic], labels: Any) -> bytes:
    """The report's confusion-matrix heat map alone, as PNG bytes (for an image artifact)."""
    return figures.confusion_heatmap(analysis.evaluate(model, images, labels).confusion)


def _ref(manifest: dict[str, Any] | None) -> str | None:
    if not manifest or "name" not in manifest or "version" not in manifest:
        return None
    return f"{manifest['name']}:{manifest['version']}"


def _header(
    name: str,
    model: Model,
    manifest: dict[str, Any] | None,
    ev: analysis.Evaluation,
    ece: float,
    decisions: Sequence[gate.GateDecision],
) -> str:
    created = (manifest or {}).get("created") or model.info.created
    steps = " → ".join(s.name for s in model.steps)
    failed = [d for d in decisions if not d.passed]
    verdict = (
        "passed"
        if not failed
        else "refused ("
        + ", ".join(f"{d.rule}" + (f" on {d.domain}" if d.domain else "") for d in failed)
        + ")"
    )
    held = [
        kpi(
            f"{d.accuracy:.4f}",
            f"{d.domain} holdout ({d.n} images)"
            + (f", champion {d.champion_accuracy:.4f}" if d.champion_accuracy is not None else ""),
        )
        for d in decisions
        if d.domain
    ]
    return (
        f"<h1>Model report: {esc(name)}</h1>"
        f"<p>created {esc(created)} · features: {esc(steps)} "
        f"({model.W.shape[0]} per image) · {ev.correct.size} test images</p>"
        '<div class="kpis">'
        + kpi(f"{ev.accuracy:.4f}", "test accuracy")
        + kpi(f"{ece:.4f}", "expected calibration error")
        + kpi(str(int((~ev.correct).sum())), "test images wrong")
        + "".join(held)
        + kpi(verdict, "gate decision", "fail" if failed else "pass")
        + "</div>"
    )


def _learned(model: Model) -> str:
    W = np.asarray(model.W[:, : analysis.N_CLASSES], dtype=np.float32)  # the digits
    terms = model.quadratic
    beside = (
        ""
        if terms is None
        else f" Beside these weights each digit weighs {terms.w.shape[0]} second-order terms "
        f"of the features (products along the digits' {terms.q} leading directions), not "
        "drawn here."
    )
    if model.steps.hog is None:  # pixels (scaled, perhaps deskewed): 28x28 templates
        lead = (
            "Each digit's 784 weights drawn as a 28×28 image: a pixel's score for the digit is "
            "its ink times the weight. <b>Red</b> pixels are evidence <i>for</i> the digit, "
            "<b>blue</b> ones <i>against</i> it, white ones do not matter." + beside
        )
        vmax = float(np.abs(W).max()) or 1.0
        grid = tiles(
            (
                (
                    figures.tile(W[:, k].reshape(28, 28), figures.DIVERGING, -vmax, vmax),
                    f"<b>{k}</b>",
                )
                for k in range(analysis.N_CLASSES)
            ),
            TEMPLATE_PX,
            "five",
        )
        legend = f'<div class="legend">against −{vmax:.2f} <i></i> +{vmax:.2f} for</div>'
        return section("learned", "What the model learned", lead, grid + legend)
    layout = analysis.hog_layout(model.steps)
    assert layout is not None  # the steps end in hog: pixels were drawn above
    lead = (
        f"The model sees oriented-gradient histograms: the image is cut into "
        f"{layout.cells_y}×{layout.cells_x} cells of {layout.cell}×{layout.cell} pixels, "
        f"each with {layout.bins} orientation bins. For each digit, every cell shows the "
        "bins with <b>positive</b> weight as lines along the edge direction "
        "(perpendicular to the gradient); longer, brighter lines weigh more. The picture is "
        "the outline of strokes the digit responds to; negative weights are not drawn." + beside
    )
    return section(
        "learned", "What the model learned", lead, png(figures.hog_glyphs(W, layout), "HOG glyphs")
    )


def _strip(pixels: NDArray[np.generic], idx: Any, captions: list[str]) -> str:
    """Images ``pixels[i]`` (28x28, as stored) for ``i`` in ``idx``, side by side, each with
    its caption."""
    return tiles(
        (
            (figures.tile(pixels[i], "gray_r", 0, float(pixels[i].max()) or 1.0), caption)
            for i, caption in zip(idx, captions, strict=True)
        ),
        DIGIT_PX,
    )


def _errors(ev: analysis.Evaluation, images: NDArray[np.generic], y: NDArray[np.int64]) -> str:
    pixels = np.asarray(images)
    rows = []
    for true, pred, count in analysis.confused_pairs(ev.confusion):
        idx = analysis.examples(ev, y, true, pred, STRIP)
        strip = _strip(pixels, idx, [f"p={ev.probs[i, pred]:.2f}" for i in idx])
        rows.append(
            f'<div class="pair"><strong>true {label_name(true)} → predicted {label_name(pred)} '
            f'<span class="note">({count} images)</span></strong>{strip}</div>'
        )
    strips = "".join(rows) or '<p class="note">No test image was misclassified.</p>'
    lead = (
        "Left: the confusion matrix (rows: the true digit, columns: the prediction; the diagonal "
        "counts the right answers, red cells the mistakes, darker is more). Right: real test "
        "images from the three most confused pairs, as stored, the most confidently wrong first "
        "(p is the probability the model gave the wrong digit)."
    )
    body = (
        f'<div class="row"><div>{png(figures.confusion_heatmap(ev.confusion), "confusion matrix")}</div>'
        f"<div>{strips}</div></div>"
    )
    return section("errors", "Where it errs", lead, body)


def _calibration(
    rel: analysis.Reliability, before: analysis.Reliability, calibration: Calibration | None
) -> str:
    """The reliability diagram and its table before calibration (``T = 1``) and after (the
    model's temperature), one above the other; one diagram when the model has none."""
    temperature = 1.0 if calibration is None else calibration.temperature
    images = 0 if calibration is None else calibration.images
    calibrated = calibration is not None
    lead = (
        "The test images grouped by the model's confidence (its top probability), in "
        f"{len(rel.count)} equal-width bins. A calibrated model is right 90% of the time "
        "when it says 0.9: its bars reach the diagonal. The expected calibration error, the "
        f"count-weighted gap, is <b>{rel.ece:.4f}</b>"
        + (
            f" with the model's temperature <b>T = {temperature:.4f}</b>, against "
            f"<b>{before.ece:.4f}</b> without it (T = 1). The logits are divided by T, "
            "which changes no prediction, only how sure each one is; T was fitted on the "
            f"last {images:,} images of the training split, scored by a model trained "
            "without them (never on these test images)."
            if calibrated
            else ". The model has no temperature (T = 1): its probabilities are as trained."
        )
    )
    panels = [(before, "before calibration (T = 1)"), (rel, f"after (T = {temperature:.4f})")]
    shown = panels if calibrated else [(rel, "")]
    body = "".join(
        f'<div class="row"><div>{png(figures.reliability_diagram(r, title), "reliability diagram " + title)}</div>'
        f"<div>{_reliability_table(r, title)}</div></div>"
        for r, title in shown
    )
    return section("calibration", "How sure it is", lead, body)


def _reliability_table(rel: analysis.Reliability, title: str) -> str:
    rows = [
        (f"{lo:.2f}–{hi:.2f}", int(n), _fmt(c), _fmt(a))
        for lo, hi, n, c, a in zip(
            rel.edges[:-1], rel.edges[1:], rel.count, rel.confidence, rel.accuracy, strict=True
        )
        if n
    ]
    heading = f"<h3>{esc(title)}</h3>" if title else ""
    return heading + table(["confidence", "images", "mean confidence", "accuracy"], rows, (1, 2, 3))


def _fmt(x: float) -> str:
    return "—" if np.isnan(x) else f"{x:.4f}"


def _training(model: Model) -> str:
    history = [dataclasses.asdict(h) for h in model.info.history]
    if not history:
        return section(
            "training", "How it trained", "The model file records no training history.", ""
        )
    lead = (
        "Mean training loss and training accuracy per epoch (measured on the minibatches "
        "while training, so slightly below the final model's)."
    )
    return section(
        "training", "How it trained", lead, png(figures.training_curves(history), "training curves")
    )


def _against(
    ev: analysis.Evaluation,
    champ: analysis.Evaluation | None,
    y: NDArray[np.int64],
    decision: gate.GateDecision,
    domains: Sequence[str] | NDArray[Any] | None,
    *,
    is_champion: bool = False,
) -> str:
    state = "pass" if decision.passed else "fail"
    verdict = f'<p class="verdict {state}">{esc(decision.message)}</p>'
    if champ is None:
        lead = (
            "This model is the champion, and no champion it was gated against is recorded: "
            "only the accuracy floor applies."
            if is_champion
            else "No champion to compare against: only the accuracy floor applies."
        )
        return section("champion", "Against the champion", lead, verdict)
    test = mcnemar_exact(y, ev.pred, champ.pred)
    both_right = int(np.sum(ev.correct & champ.correct))
    both_wrong = int(np.sum(~ev.correct & ~champ.correct))
    mcnemar = table(
        ["", "champion right", "champion wrong"],
        [
            ("this model right", both_right, test.only_a),
            ("this model wrong", test.only_b, both_wrong),
        ],
        (1, 2),
    )
    deltas = ev.per_class_accuracy - champ.per_class_accuracy
    per_class = table(
        ["digit", "this model", "champion", "change (points)"],
        [
            (k, _fmt(a), _fmt(b), f"{d * 100:+.2f}")
            for k, (a, b, d) in enumerate(
                zip(ev.per_class_accuracy, champ.per_class_accuracy, deltas, strict=True)
            )
        ],
        (1, 2, 3),
    )
    lead = (
        f"Both models on the same {y.size} test images ({esc(decision.champion or 'the champion')}: "
        f"{champ.accuracy:.4f}, this model: {ev.accuracy:.4f}). McNemar's exact test looks only "
        f"at the images one model got right and the other wrong: p = <b>{test.p_value:.3g}</b> "
        "(two-sided). The gate asks a one-sided question of the same images: is this model "
        f"worse than the champion by more than {100 * decision.margin:g} points? It refuses "
        f"the model when p = <b>{decision.p_worse or 0.0:.3g}</b> is under "
        f"{decision.alpha:g}."
    )
    body = (
        verdict
        + f'<div class="row"><div>{png(figures.class_deltas(deltas), "accuracy change per digit")}'
        f"<h3>McNemar's table</h3>{mcnemar}</div><div>{per_class}{_domains(ev, champ, domains)}</div></div>"
    )
    return section("champion", "Against the champion", lead, body)


def _domains(
    ev: analysis.Evaluation,
    champ: analysis.Evaluation,
    domains: Sequence[str] | NDArray[Any] | None,
) -> str:
    if domains is None:
        return ""
    ours = analysis.domain_accuracy(ev.correct, domains)
    theirs = analysis.domain_accuracy(champ.correct, domains)
    rows = [
        (d, n, f"{a:.4f}", f"{theirs[d][0]:.4f}", f"{(a - theirs[d][0]) * 100:+.2f}")
        for d, (a, n) in ours.items()
    ]
    return "<h3>Per domain</h3>" + table(
        ["domain", "images", "this model", "champion", "change (points)"], rows, (1, 2, 3, 4)
    )


def _your_data(
    model: Model, holdouts: Sequence[Holdout], decisions: Sequence[gate.GateDecision]
) -> str:
    """Each user dataset's holdout: both models' accuracy, the gate's verdict on that
    domain, and the holdout images this model reads wrong."""
    if not decisions:
        return ""
    rows = [
        (
            d.domain,
            d.n,
            f"{d.accuracy:.4f}",
            _fmt(d.champion_accuracy if d.champion_accuracy is not None else float("nan")),
            "—" if d.difference is None else f"{100 * d.difference:+.2f}",
            d.comparison or "—",
            f"{d.min_accuracy:.2f}"
            if d.floor_applies
            else f"not applied (< {gate.floor_min_images(d.min_accuracy)} images)",
            "passed" if d.passed else f"refused ({d.rule})",
        )
        for d in decisions
    ]
    head = table(
        [
            "dataset",
            "holdout images",
            "this model",
            "champion",
            "change (points)",
            "against the champion",
            "floor",
            "gate",
        ],
        rows,
        (1, 2, 3, 4),
    )
    verdicts = "".join(
        f'<p class="verdict {"pass" if d.passed else "fail"}">{esc(d.message)}</p>'
        + (f'<p class="note">next step: {esc(d.advice)}</p>' if d.advice else "")
        for d in decisions
    )
    strips = []
    by_name = {name: (images, labels) for name, images, labels in holdouts}
    for d in decisions:
        images, labels = by_name[str(d.domain)]
        if not model.can_reject:  # measured on the digits, as the gate measured it
            images, labels = digits_only(images, labels)
        pred = model.predict(images)
        wrong = np.flatnonzero(pred != np.asarray(labels))[:HOLDOUT_STRIP]
        if wrong.size:
            captions = [f"{label_name(int(labels[i]))} → {label_name(int(pred[i]))}" for i in wrong]
            strip = _strip(np.asarray(images), wrong, captions)
            strips.append(
                f'<div class="pair"><strong>{esc(d.domain)}: read wrong '
                f'<span class="note">(true → predicted)</span></strong>{strip}</div>'
            )
    lead = (
        "Each of your labelled datasets keeps a holdout, images no model trained on: this "
        "model and the champion on them, and the gate on that domain (it passes when this "
        "model is better, or not shown worse by more than the margin; the floor counts "
        "only on a holdout large enough to measure it)."
    )
    return section("your-data", "On your data", lead, head + verdicts + "".join(strips))


def _lineage(model: Model, manifest: dict[str, Any] | None, test_digest: str | None) -> str:
    info, man = model.info, manifest or {}
    lineage = dict(man.get("lineage") or {})
    lineage.pop("gate", None)  # the gate's decision at publish time: shown above, recomputed
    source = lineage.pop("data_source", None) or info.data_source
    digest = lineage.pop("data_digest", None) or man.get("data_digest") or info.data_digest
    code = lineage.pop("code_version", None) or man.get("code_version") or info.code_version
    items: list[tuple[str, Any]] = [
        ("version", _ref(man)),
        ("blob digest", man.get("digest")),
        ("published", man.get("created")),
        ("trained", info.created),
        ("training data digest", digest),
        ("training data source", source),
        ("test data digest", test_digest),
        ("dataset", lineage.pop("dataset", None) or info.extra.get("dataset")),
        ("code version", code),
        ("flow run", _flow_run(lineage)),
        ("feature steps", model.steps.to_json()),
        ("params", man.get("params") or info.params),
    ]
    items += sorted(lineage.items())
    lead = "Where this model came from: the data, the code and the run that made it."
    return section(
        "lineage", "Lineage", lead, definitions((k, v) for k, v in items if v is not None)
    )


def _flow_run(lineage: dict[str, Any]) -> str | None:
    run_id, run_name = lineage.pop("flow_run_id", None), lineage.pop("flow_run_name", None)
    flow = lineage.pop("flow", None)
    if run_id is None and run_name is None:
        return None
    return " ".join(str(p) for p in (flow, run_name, f"({run_id})" if run_id else None) if p)
