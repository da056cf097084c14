"""What the training flow reports, pure functions of its results (tested without Prefect).

- ``gate-report`` (markdown artifact): the gate's decision with both accuracies, the
  floor, the margin and the p-values, the next step of a refusal, the metrics and the
  lineage;
- ``per-class`` (table artifact): precision, recall and support of each digit;
- the metrics the manifest records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flows.records import domain_metrics
from softmax_core import gate, settings
from softmax_core.escaping import markdown, markdown_code, markdown_link
from softmax_core.lineage import Lineage
from softmax_core.metrics import EvaluationReport
from softmax_core.model import Model

REPORT_KEY = "gate-report"  # the markdown artifact of every run (a new version links the page)
CONFUSION_KEY = "confusion-matrix"  # the image artifact, where the registry serves HTTP


def per_class_rows(report: EvaluationReport) -> list[dict[str, Any]]:
    """The per-class table artifact: one row per digit."""
    return [
        {
            "class": row.digit,
            "precision": round(row.precision, 4),
            "recall": round(row.recall, 4),
            "support": row.support,
        }
        for row in report.per_class
    ]


def gate_report_markdown(
    report: EvaluationReport,
    decision: gate.GateDecision,
    model: Model,
    lineage: Lineage,
    *,
    page: tuple[str, str] | None = None,
    domains: Sequence[gate.GateDecision] = (),
) -> str:
    """The ``gate-report`` artifact: metrics, the decision and its numbers, the lineage;
    with ``domains`` (each dataset's holdout gate), a table per domain; with ``page`` (a
    published version's ref and its report's URL), a link to the report.

    Every string that is not ours (dataset and model names, paths and other lineage
    values, parameters, messages that quote them) goes through
    :mod:`softmax_core.escaping`: nothing in them can become markdown, HTML or a link."""

    def fmt(x: float | None, spec: str = ".4f") -> str:
        return "—" if x is None else format(x, spec)

    def count(n: int | None) -> str:
        return "—" if n is None else str(n)

    failed = [d for d in (decision, *domains) if not d.passed]
    verdict = (
        "passed"
        if not failed
        else "REFUSED ("
        + ", ".join(
            f"{d.rule} rule" + (f" on {markdown(d.domain)}" if d.domain else "") for d in failed
        )
        + ")"
    )
    champ = markdown(decision.champion or "none")
    p = "—" if decision.p_worse is None else f"{decision.p_worse:.3g}"
    lines = [
        f"# Training pipeline: gate {verdict}",
        "",
        *(markdown(d.message) for d in failed or [decision]),
        *(f"**Next step:** {markdown(a)}" for a in dict.fromkeys(d.advice for d in failed) if a),
        "",
        "## Gate",
        "",
        f"| | challenger | champion ({champ}) |",
        "|---|---|---|",
        f"| test accuracy | {fmt(decision.accuracy)} | {fmt(decision.champion_accuracy)} |",
        f"| test images only this model got right | {count(decision.only_challenger)} "
        f"| {count(decision.only_champion)} |",
        "",
        f"- floor (`min_accuracy`): {decision.min_accuracy:.4f} → "
        f"{'met' if decision.accuracy >= decision.min_accuracy else 'NOT met'}",
        f"- non-inferiority vs champion, margin (`margin`) {100 * decision.margin:g} points: "
        f"worse beyond it with one-sided p = {p} (refused when p < {decision.alpha:g})"
        + (f"; {markdown(decision.comparison)}" if decision.comparison else ""),
    ]
    for f in decision.failures:
        lines.append(
            f"- **failed: {markdown(f.rule)}** by {f.shortfall:.4f}: {markdown(f.message)}"
        )
    if domains:
        lines += ["", *domain_table(decision, domains)]
    info = model.info
    lines += [
        "",
        "## Metrics",
        "",
        f"- test accuracy: {report.accuracy:.4f} on {report.n} images",
        f"- expected calibration error (15 bins): {fmt(report.ece)} with the temperature "
        f"T = {model.temperature:.4f}, {fmt(report.ece_uncalibrated)} without it",
        f"- train accuracy (last epoch): {fmt(info.train_accuracy)}",
        f"- training time: {fmt(info.train_seconds, '.2f')} s",
        f"- preprocessing: {markdown(model.steps.describe())}",
        "- params: " + ", ".join(markdown_code(f"{k}={v}") for k, v in sorted(info.params.items())),
        "",
        "## Lineage",
        "",
        *(f"- {k}: {markdown_code(str(v))}" for k, v in lineage.to_json().items()),
    ]
    if page is not None:
        lines += ["", *_page_link(*page)]
    return "\n".join(lines) + "\n"


def _page_link(ref: str, url: str) -> list[str]:
    expiry = (
        f" (a presigned link: it works for {settings.REPORT_URL_SECONDS / 3600:g} hours; "
        f"{markdown_code(f'softmax-pipe registry show {ref}')} prints a fresh one)"
        if url.startswith(("http://", "https://"))
        else ""
    )
    return [
        "## Report",
        "",
        f"{markdown_link(f'The report of {ref}', url)}{expiry}: pictures of "
        "what it learned, where it errs, how sure it is, against the champion.",
    ]


def domain_table(decision: gate.GateDecision, domains: Sequence[gate.GateDecision]) -> list[str]:
    """The gate per domain, as markdown: MNIST test, then each dataset's holdout, with
    both models' accuracy, the change, what the paired test says, and the floor."""

    def cell(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    lines = [
        "## Gate per domain",
        "",
        "| domain | images | challenger | champion | change (points) | against the champion "
        "| floor | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in (decision, *domains):
        change = "—" if d.difference is None else f"{100 * d.difference:+.2f}"
        floor = (
            f"{d.min_accuracy:.2f}" if d.floor_applies else f"{d.min_accuracy:.2f} (not applied)"
        )
        verdict = "passed" if d.passed else f"REFUSED ({d.rule})"
        lines.append(
            f"| {markdown(d.domain or 'MNIST test')} | {d.n} | {cell(d.accuracy)} | "
            f"{cell(d.champion_accuracy)} | {change} | {markdown(d.comparison or '—')} | "
            f"{floor} | {verdict} |"
        )
    return lines


def published_metrics(
    decision: gate.GateDecision,
    model: Model,
    domains: Sequence[gate.GateDecision] = (),
    report: EvaluationReport | None = None,
) -> dict[str, Any]:
    """The metrics recorded in the manifest (and the published model file): test and train
    accuracy, the calibration error with the model's temperature and without it (from
    ``report``, the test split's), time, the comparison, and each dataset's holdout
    accuracy (``domains``)."""
    calibration = (
        {
            "ece": report.ece,
            "ece_uncalibrated": report.ece_uncalibrated,
            "temperature": model.temperature,
        }
        if report is not None
        else {}
    )
    return {
        "domains": domain_metrics(tuple(domains)),
        "accuracy": decision.accuracy,
        "n_test": decision.n,
        **calibration,
        "train_accuracy": model.info.train_accuracy,
        "train_seconds": model.info.train_seconds,
        "champion": decision.champion,
        "champion_accuracy": decision.champion_accuracy,
        "p_worse": decision.p_worse,
        "margin": decision.margin,
    }
