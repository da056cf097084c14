"""CLI: ``softmax-pipe report REF``: a model's self-contained HTML report.

REF is a registry reference (``name@alias``, ``name:version``, ``name``) or a model file
(``.npz``). The report compares against ``--against REF``, or, for a registry reference,
against the model's champion alias when it points at another version, and against the
champion it was gated against (its lineage) when the model is the champion. The datasets the
model was trained on (its lineage) and each ``--dataset`` are shown on their holdouts,
with the gate's rules the run used (its manifest), else the settings'. numpy, matplotlib
and the registry are imported inside the command, so ``softmax-pipe --help`` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from softmax_core import settings
from softmax_pipe.cli_common import (
    LOCAL_PATH,
    CacheOpt,
    EndpointOpt,
    RegistryOpt,
    SourceOpt,
    data_reads,
    err,
    location,
)

if TYPE_CHECKING:
    from registry import Registry
    from softmax_core.mnist import Dataset
    from softmax_core.model import Model
    from softmax_core.requests import Gate
    from softmax_core.train import Holdout


def register(app: typer.Typer) -> None:
    """Add ``report`` to the main app."""
    app.command("report")(report)


def report(
    ref: Annotated[
        str,
        typer.Argument(
            help="Registry reference (name@alias, name:version, name) or a model file (.npz)."
        ),
    ],
    out: Annotated[
        str,  # as typed: a Path would drop the trailing slash of a folder
        typer.Option(
            "--out",
            "-o",
            metavar=LOCAL_PATH,
            help="Where to write the HTML page; missing folders are made. Checked before the "
            "report is made: a folder (or a name ending in /) or a file the report reads is "
            "exit 2, a place that cannot be written exit 4.",
        ),
    ] = "report.html",
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Compare with this model (reference or .npz). Default for a registry "
            f"reference: its @{settings.ALIAS} alias, when that is another version; for the "
            "champion itself, the champion it was gated against (its lineage).",
        ),
    ] = None,
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            metavar="NAME[:VERSION]",
            help="Also show this dataset's holdout (repeatable). Default: the datasets the "
            "model was trained on.",
        ),
    ] = None,
    source: SourceOpt = None,
    cache_dir: CacheOpt = None,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Write a model's report: what it learned, where it errs, how sure it is, how it
    trained, against the champion, on your datasets' holdouts, and its lineage, as one
    self-contained HTML page."""
    from softmax_core.atomicio import atomic_write, prepare_output
    from softmax_core.report import render_report

    data_source = settings.Settings.build(source=source, cache_dir=cache_dir)
    # a folder, a file read here, a place that cannot be written: now, not after the work
    reads = {"the model file": ref, "the --against model file": against}
    prepare_output(
        out, option="--out", reads={**reads, **data_reads("the MNIST data", data_source.source)}
    )
    with contextlib.ExitStack() as stack:
        opened: list[Registry] = []

        def reg() -> Registry:
            if not opened:
                from registry import Registry

                where = location(registry, endpoint_url, cache_dir)
                opened.append(stack.enter_context(Registry.at(where)))
            return opened[0]

        manifest, model, title = _load(ref, reg)
        champion = _champion(against, manifest, reg)
        refs = list(dataset or ()) or _trained_on(manifest)
        holdouts = _holdouts(refs, reg) if refs else []
    ds = _test_split(data_source)
    html = render_report(
        model,
        images=ds.x_test,
        labels=ds.y_test,
        title=title,
        manifest=manifest,
        champion=champion.model,
        champion_ref=champion.ref,
        is_champion=champion.is_champion,
        test_digest=ds.digest,
        rules=_rules(manifest),
        holdouts=holdouts,
    )
    data = html.encode("utf-8")
    atomic_write(out, data)
    versus = f" against {champion.ref}" if champion.ref else ""
    err(f"wrote {out} ({len(data) / 1e6:.2f} MB): report of {title}{versus}")
    if open_page:
        import webbrowser

        uri = Path(out).resolve().as_uri()
        if not webbrowser.open(uri):
            err(f"no web browser found to open it (set BROWSER to one); open {uri}")


def _load(ref: str, reg: Callable[[], Registry]) -> tuple[dict[str, Any] | None, Model, str]:
    """``(manifest dict or None, model, title)`` of a model file or a registry reference."""
    from softmax_core.model import Model
    from softmax_core.requests import ModelRef

    if ModelRef(ref).is_file:
        return None, Model.load(ref), Path(ref).name
    manifest, model = reg().load(ref)
    return manifest.to_dict(), model, manifest.ref


@dataclass(frozen=True)
class Against:
    """What a report compares with: a model and its name, or none; ``is_champion`` when
    the model shown is the champion itself and no champion it was gated against is known."""

    ref: str | None = None
    model: Model | None = None
    is_champion: bool = False


def _champion(
    against: str | None, manifest: dict[str, Any] | None, reg: Callable[[], Registry]
) -> Against:
    """The model to compare with: ``--against``, else the champion of a registry model
    when it is another version, else (the model is the champion) the champion it was
    gated against, as its lineage records it (none, without an error, when there is no
    champion)."""
    from softmax_core.errors import ModelNotFoundError
    from softmax_core.lineage import Lineage

    if against is not None:
        _, model, title = _load(against, reg)
        return Against(title, model)
    if manifest is None:
        return Against()
    try:
        champ, model = reg().load(f"{manifest['name']}@{settings.ALIAS}")
    except ModelNotFoundError:
        return Against()
    if champ.version != manifest["version"]:
        return Against(champ.ref, model)
    gated = Lineage.from_json(dict(manifest.get("lineage") or {})).champion
    if not gated or gated == champ.ref:
        return Against(is_champion=True)
    try:
        before, model = reg().load(gated)
    except ModelNotFoundError:
        return Against(is_champion=True)
    return Against(before.ref, model)


def _trained_on(manifest: dict[str, Any] | None) -> list[str]:
    """``name:version`` of each dataset a registry model's lineage records."""
    from softmax_core.lineage import Lineage

    lineage = Lineage.from_json(dict((manifest or {}).get("lineage") or {}))
    return [f"{d.name}:{d.version}" for d in lineage.datasets]


def _holdouts(refs: list[str], reg: Callable[[], Registry]) -> list[Holdout]:
    """Each dataset's holdout split, pulled and verified."""
    out: list[Holdout] = []
    for ref in refs:
        m, data = reg().load_dataset(ref)
        images, labels = data.split("holdout")
        if len(labels):
            out.append((m.name, images, labels))
    return out


def _rules(manifest: dict[str, Any] | None) -> Gate:
    """The gate's rules the run that published the model used (its lineage and metrics),
    else the defaults; the report redraws the gate with them."""
    from softmax_core.requests import Gate

    man = manifest or {}
    gate = dict((man.get("lineage") or {}).get("gate") or {})
    domains = dict((man.get("metrics") or {}).get("domains") or {})
    floors = [d.get("min_accuracy") for d in domains.values() if isinstance(d, dict)]
    used = {k: gate[k] for k in ("min_accuracy", "alpha", "margin") if k in gate}
    if floors and floors[0] is not None:
        used["min_dataset_accuracy"] = floors[0]
    try:
        return Gate(**used)
    except (TypeError, ValueError):  # a manifest of another version: the defaults
        return Gate()


def _test_split(resolved: settings.Settings) -> Dataset:
    """MNIST (the test split is used), through the cache: the one data import here."""
    from softmax_core.mnist import load_mnist

    return load_mnist(resolved.source, cache_dir=resolved.cache_dir, progress=err)
