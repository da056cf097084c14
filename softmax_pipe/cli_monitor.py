"""CLI: ``softmax-pipe monitor REF``: the profiles of a model's scoring runs, as a table
and an HTML page of trends.

Exit codes: 0 the history was shown (also when it is empty); 2 a bad reference or option,
a model file, or ``--out`` is a folder; 3 the model is not in the registry; 4 the registry
cannot be read, or ``--out`` cannot be written (both checked before the history is read);
77 the store refused to list ``monitoring/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from softmax_core import settings
from softmax_core.words import plural
from softmax_pipe.cli_common import (
    LOCAL_PATH,
    CacheOpt,
    EndpointOpt,
    JsonOpt,
    RegistryOpt,
    err,
    location,
)

if TYPE_CHECKING:
    from softmax_core.monitoring import Profile

MONITOR_HELP = (
    "Show the history of a model's scoring runs, and their drift."
    "\n\n"
    "Every `softmax-pipe score` run (and "
    "batch-scoring flow run) with a registry model stores a profile under monitoring/NAME/ "
    "in the registry. The table gives each run's time, images, failed share (images that "
    "could not be read), rejected share (of the images read), estimated "
    "accuracy (the mean calibrated top probability), the drift tests' p-values (label mix: "
    "chi-square; rejected share: Fisher's exact; confidence: Kolmogorov-Smirnov; against "
    "the model's reference on MNIST test) and whether drift was flagged (a p-value below "
    "the level, Bonferroni over the three). --out writes an HTML page with the trend plots."
    "\n\n"
    "REF is NAME, NAME@ALIAS or NAME:VERSION: the runs of every version of NAME are shown "
    "(the model column says which version scored); REF must exist in the registry (a model "
    "file's runs are not in it: each writes FILE.profile.json beside its --output FILE). A "
    "version's reference profile is MNIST test through it, made by its first scoring run "
    "and stored beside it (monitoring/NAME/references/)."
    "\n\n"
    "Exit codes: 0 shown (an empty history too); 2 a bad reference or option, a model file, "
    "or --out is a folder; 3 no such model or alias; 4 registry storage or network failure, "
    "or --out cannot be written; 77 the store refused the read."
)


def register(app: typer.Typer) -> None:
    """Add ``monitor`` to the main app."""
    app.command("monitor", help=MONITOR_HELP)(monitor)


def monitor(
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME, NAME@ALIAS or NAME:VERSION in the registry.", show_default=False
        ),
    ],
    out: Annotated[
        str | None,  # as typed: a Path would drop the trailing slash of a folder
        typer.Option(
            "--out",
            "-o",
            metavar=LOCAL_PATH,
            help="Write the HTML page with the trend plots here (self-contained, no script); "
            "missing folders are made. Checked before the history is read: a folder (or a "
            "name ending in /) is exit 2, a place that cannot be written exit 4.",
            rich_help_panel="Output",
        ),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option("--last", min=1, help="Only the last N runs.", rich_help_panel="Output"),
    ] = None,
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """See MONITOR_HELP."""
    from registry import Registry, rights
    from registry.monitoring import history
    from softmax_core.errors import InvalidInputError
    from softmax_core.names import parse_ref
    from softmax_core.requests import ModelRef

    if ModelRef(ref).is_file:  # its runs are in no registry (README: Monitoring)
        raise InvalidInputError(
            f"monitor shows the runs of a registry model (REF is NAME, NAME@ALIAS or NAME:N), "
            f"not of a model file: a score run with {ref} writes its profile beside its "
            f"--output (FILE{settings.PROFILE_SUFFIX})"
        )
    name, alias, version = parse_ref(ref)  # exit 2 for a bad name
    where = location(registry, endpoint_url, cache_dir)
    with Registry.at(where) as reg:
        resolved = reg.resolve(ref)  # exit 3 for an unknown model, alias or version
        if out is not None:
            from softmax_core.atomicio import prepare_output

            prepare_output(out, option="--out")  # a folder, or unwritable: before the reads
        with rights.doing(f"reading the monitoring history of {name}", uri=reg.uri):
            found = history(reg.store, name, last=last)
        uri = reg.uri
    if as_json:
        from softmax_pipe.cli_tables import print_json

        print_json([{"run": seq, **p.to_json()} for seq, p in found.profiles])
    else:
        _table(name, found.profiles)
    for key in found.unreadable:
        err(f"skipped an unreadable profile: {key}")
    now = f"; {ref} is {resolved.ref}" if alias is not None or version is None else ""
    runs = len(found.profiles)
    err(f"{runs:,} scoring {plural(runs, 'run')} of {name} in {uri}{now}")
    if out is not None:
        from softmax_core.atomicio import atomic_write
        from softmax_core.report.monitor import render_monitor

        data = render_monitor(name, found.profiles, where=uri).encode("utf-8")
        atomic_write(out, data)
        runs = len(found.profiles)
        err(f"wrote {out} ({len(data) / 1e3:.0f} kB): trends of {runs:,} {plural(runs, 'run')}")


def _table(name: str, runs: tuple[tuple[int, Profile], ...]) -> None:
    """The history as a rich table on stdout: as wide as the terminal when stdout is one
    (rich wraps the cells to fit), otherwise as wide as the table needs, every line ending
    at its last character (the title is printed on its own line: as the table's title
    rich pads it to the table's width)."""
    from rich.console import Console
    from rich.table import Table

    from softmax_core.escaping import printable
    from softmax_core.monitoring import TESTS

    table = Table()
    for header in ("run", "time", "model", "n", "failed", "rejected", "est. acc."):
        left = header in ("time", "model")
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for t in TESTS:
        table.add_column(f"p {t}", justify="right", overflow="fold")
    table.add_column("drift", overflow="fold")  # a narrow terminal: cells wrap, never cut
    for seq, p in runs:
        d = p.drift
        flag = (
            "-"
            if d is None
            else ("not checked" if not d.checked else "DRIFT" if d.flagged else "ok")
        )
        table.add_row(
            str(seq),
            printable(p.created),
            printable(p.model),
            f"{p.total:,}",
            _pct(p.failed_share),
            _pct(p.rejected_share),
            _pct(p.accuracy_estimate),
            *(_p(d.p_value(t) if d is not None else None) for t in TESTS),
            flag,
            style="bold red" if flag == "DRIFT" else None,
        )
    console = Console(highlight=False, markup=False)
    if not console.is_terminal:  # a pipe or a file: the table's own width, not 80 columns
        console.width = Console(width=10_000).measure(table).maximum
    console.print(f"scoring runs of {printable(name)}")
    console.print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
