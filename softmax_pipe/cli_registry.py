"""CLI: ``softmax-pipe registry ...``: list, inspect, publish, promote, roll back, pull, gc;
request a move, list requests, approve or reject them.

Tables for people on stdout, ``--json`` for machines. Exit codes: 0 ok, 2 bad name or
reference, 3 unknown model / version / alias / request, 4 storage or network failure (the
message names the endpoint or folder and what to check), including a blob whose sha256
is wrong, 77 the store refused this key a write (the line names the operation, the
prefix and who may: a trainer's key requests, an approver's approves).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from softmax_core import settings
from softmax_core.errors import CorruptObjectError, InvalidInputError, PartialFailure
from softmax_core.words import plural
from softmax_pipe.cli_common import (
    WORDS,
    CacheOpt,
    EndpointOpt,
    JsonOpt,
    RegistryOpt,
    echo,
    err,
    location,
)
from softmax_pipe.cli_tables import metric, models_table, print_json, table

if TYPE_CHECKING:
    from registry import AliasRecord, Registry
    from registry.approvals import Pending
    from registry.manifest import Actor, RequestRecord

registry_app = typer.Typer(
    name="registry",
    help="Versioned model storage on a local folder or S3/MinIO.\n\n"
    "REF is NAME (newest version), NAME:VERSION or NAME@ALIAS. "
    "Exit codes: 0 ok, 2 bad name, 3 not found, 4 storage/network failure, "
    "77 the store refused this key (a trainer's key requests, an approver's approves).",
    no_args_is_help=True,
)


ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Your name, recorded beside the identity the store knows you by "
        "(STS caller ARN, else the access key id; a folder: the local user).",
        metavar=WORDS,
    ),
]
CommentOpt = Annotated[
    str | None,
    typer.Option("--comment", help="Why: recorded in the request or the history.", metavar=WORDS),
]


def register(app: typer.Typer) -> None:
    """Add the ``registry`` command group to the main app."""
    app.add_typer(registry_app, name="registry")


def _evaluated(annotation: Any, fn: Callable[..., None]) -> Any:
    """A string annotation (``from __future__ import annotations``) as its object."""
    return eval(annotation, fn.__globals__) if isinstance(annotation, str) else annotation


def uses_registry(fn: Callable[..., None]) -> Callable[..., None]:
    """The registry, opened once per invocation, as the command's ``reg`` argument.

    Adds ``--registry``, ``--endpoint-url`` and ``--cache-dir`` to the command (declared
    once, here) and closes the registry when the command returns.
    """
    params = [
        p.replace(annotation=_evaluated(p.annotation, fn))
        for p in inspect.signature(fn).parameters.values()
        if p.name != "reg"
    ]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
        for name, ann in (
            ("registry", RegistryOpt),
            ("endpoint_url", EndpointOpt),
            ("cache_dir", CacheOpt),
        )
    ]

    @functools.wraps(fn)
    def command(**kwargs: Any) -> None:
        from registry import Registry

        where = location(*(kwargs.pop(k) for k in ("registry", "endpoint_url", "cache_dir")))
        from flows.events import flush, registry_listeners

        listeners = registry_listeners()
        with Registry.at(where, listeners=listeners) as reg:
            fn(reg=reg, **kwargs)
        flush(listeners)  # after the work and its output: a slow API never holds them

    command.__signature__ = inspect.Signature(params + extra)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params + extra}
    del command.__wrapped__  # typer must see this signature, not fn's
    return command


def _alias_ref(ref: str, command: str) -> tuple[str, str]:
    """NAME@ALIAS, or a usage error naming the command."""
    from registry import parse_ref
    from softmax_core.errors import InvalidNameError

    name, alias, _ = parse_ref(ref)
    if alias is None:
        raise InvalidNameError(f"{command} needs NAME@ALIAS, got {ref!r}")
    return name, alias


def _alias_line(rec: AliasRecord) -> str:
    was = f" (was {rec.name}:{rec.from_version})" if rec.from_version is not None else ""
    return f"{rec.name}@{rec.alias} -> {rec.name}:{rec.version}{was}"


def _version_ref(ref: str, command: str) -> tuple[str, int]:
    """NAME:VERSION, or a usage error naming the command."""
    from registry import parse_ref
    from softmax_core.errors import InvalidNameError

    name, at, version = parse_ref(ref)
    if version is None or at is not None:
        raise InvalidNameError(f"{command} needs NAME:VERSION, got {ref!r}")
    return name, version


def _who(actor: Actor | None) -> str:
    """An actor for a table cell (escaped: names come from records anyone may write)."""
    from softmax_core.escaping import printable

    return "-" if actor is None else printable(str(actor))


def _request_line(req: RequestRecord) -> str:
    return f"#{req.seq} {req.name}@{req.alias} -> {req.ref}"


@registry_app.command("list")
@uses_registry
def list_models(
    reg: Registry,
    as_json: JsonOpt = False,
) -> None:
    """List the models: newest version, number of versions, aliases.

    A model whose records cannot be read (a damaged alias file) is named on stderr and the
    others are still listed; the command then exits 1."""
    found, damaged = [], []
    for name in reg.models():
        try:
            found.append((name, reg.version_numbers(name), reg.aliases(name)))
        except CorruptObjectError as e:
            damaged.append(f"{name}: {e}")
    models_table(found, as_json=as_json, where=reg.uri)
    if damaged:
        for line in damaged:
            err(f"error: {line}", style="bold red")
        raise PartialFailure(
            f"{len(damaged)} of {len(found) + len(damaged)} models could not be read; "
            "repair an alias with `softmax-pipe registry promote NAME:VERSION ALIAS --repair`"
        )


@registry_app.command("versions")
@uses_registry
def versions(
    reg: Registry,
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonOpt = False,
) -> None:
    """List every version of NAME (JSON: an array of manifests)."""
    from registry import validate_name

    validate_name("model name", name)
    manifests = reg.versions(name)
    aliases = reg.aliases(name)
    if as_json:
        print_json([m.to_dict() for m in manifests])
        return
    by_version: dict[int, list[str]] = {}
    for alias, v in aliases.items():
        by_version.setdefault(v, []).append(alias)
    table(
        ["VERSION", "CREATED", "DIGEST", "ACCURACY", "ALIASES"],
        [
            [
                str(m.version),
                m.created[:19].replace("T", " "),
                m.digest[:12],
                metric(m),
                ", ".join(by_version.get(m.version, [])) or "-",
            ]
            for m in manifests
        ],
    )


@registry_app.command("show")
@uses_registry
def show(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    as_json: JsonOpt = False,
) -> None:
    """Show the manifest REF resolves to."""
    from registry import parse_ref

    parse_ref(ref)
    m = reg.resolve(ref)
    report = reg.report_url(m.name, m.version)
    if as_json:
        print_json({**m.to_dict(), "report": report})
        return
    typer.echo(f"{m.ref}  (from {ref})")
    for key in ("digest", "size", "created", "model_created", "data_digest", "code_version"):
        typer.echo(f"  {key + ':':15} {getattr(m, key)}")
    for key in ("metrics", "params", "preprocessing", "lineage"):
        typer.echo(f"  {key + ':':15} {json.dumps(getattr(m, key), sort_keys=True)}")
    typer.echo(f"  {'blob:':15} {m.blob_key}")
    typer.echo(f"  {'report:':15} {report or 'none (draw one: softmax-pipe report ' + m.ref + ')'}")


@registry_app.command("publish")
@uses_registry
def publish(
    reg: Registry,
    model_file: Annotated[Path, typer.Argument(help="The model file (.npz) to publish.")],
    name: Annotated[str, typer.Option("--name", help="Model name to publish under.")],
    alias: Annotated[
        str | None, typer.Option("--alias", help="Also point this alias at the new version.")
    ] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish MODEL_FILE as the next version of NAME."""
    from registry import validate_name

    validate_name("model name", name)  # refuse before opening anything
    if alias is not None:
        validate_name("alias", alias)
    m = reg.publish(model_file, name, by=by)
    if alias is not None:
        _promote_published(reg, m.ref, name, m.version, alias, by)
    where = reg.uri
    if as_json:
        print_json({**m.to_dict(), "alias": alias})
        return
    typer.echo(f"published {m.ref}  sha256:{m.digest}  to {where}")
    if alias is not None:
        typer.echo(f"{m.name}@{alias} -> {m.ref}")


def _promote_published(
    reg: Registry, ref: str, name: str, version: int, alias: str, by: str | None
) -> None:
    """Move ``alias`` to a version just published; a failure says the version exists."""
    from softmax_core.errors import SoftmaxPipeError

    try:
        reg.promote(name, version, alias, by=by)
    except SoftmaxPipeError as e:  # same class, same exit code; the line says both
        e.args = (f"published {ref}, but moving {name}@{alias} failed: {e}",)
        raise


@registry_app.command("promote")
@uses_registry
def promote(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to promote.")],
    alias: Annotated[str, typer.Argument(help="Alias to point at it, e.g. champion.")],
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Replace a damaged alias record (one its reader rejects); its rollback "
            "list starts afresh, its history goes on.",
        ),
    ] = False,
    by: ByOpt = None,
    comment: CommentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point ALIAS at NAME:VERSION (compare-and-swap; recorded in the alias history with
    who did it).

    If it already points there, says so and writes nothing (--json: "moved": false). A
    key that may not write aliases exits 77: request the move instead
    (`softmax-pipe registry request NAME:VERSION ALIAS`)."""
    from registry import validate_name

    name, version = _version_ref(ref, "promote")
    validate_name("alias", alias)
    move = reg.promote(name, version, alias, repair=repair, by=by, comment=comment)
    if as_json:
        print_json({**move.record.to_dict(), "moved": move.moved})
        return
    if not move.moved:
        typer.echo(f"{name}@{alias} is already {name}:{version}")
        return
    typer.echo(_alias_line(move.record))


@registry_app.command("rollback")
@uses_registry
def rollback(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS to move back to its previous version.")],
    by: ByOpt = None,
    comment: CommentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move NAME@ALIAS back to the version it pointed to before its last move."""
    name, alias = _alias_ref(ref, "rollback")
    rec = reg.rollback(name, alias, by=by, comment=comment)
    if as_json:
        print_json(rec.to_dict())
        return
    typer.echo(_alias_line(rec))


@registry_app.command("history")
@uses_registry
def history(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS.")],
    as_json: JsonOpt = False,
) -> None:
    """Every move of NAME@ALIAS, oldest first: who made it and, for an approval, who
    asked (--json: the records, with `actor`, `comment` and `request`)."""
    from softmax_core.escaping import printable

    name, alias = _alias_ref(ref, "history")
    records = reg.history(name, alias)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table(
        ["SEQ", "MOVED", "ACTION", "VERSION", "FROM", "BY", "REQUESTED BY", "COMMENT"],
        [
            [
                str(r.seq),
                r.moved_at[:19].replace("T", " "),
                r.action,
                str(r.version),
                "-" if r.from_version is None else str(r.from_version),
                _who(r.actor),
                "-" if r.request is None else _who(r.request.requested_by),
                printable(r.comment or (r.request.comment if r.request else None) or "-"),
            ]
            for r in records
        ],
    )


@registry_app.command("request")
@uses_registry
def request(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to move ALIAS to.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion.")],
    by: ByOpt = None,
    comment: CommentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask an approver to move ALIAS to NAME:VERSION: what a trainer's key, which may not
    write aliases, does instead of promote. The same open request is not made twice."""
    from registry import validate_name

    name, version = _version_ref(ref, "request")
    validate_name("alias", alias)
    done = reg.request(name, version, alias, by=by, comment=comment)
    if as_json:
        doc = None if done.record is None else done.record.to_dict()
        print_json({"request": doc, "created": done.created})
        return
    if done.record is None:
        typer.echo(f"{name}@{alias} is already {name}:{version}; nothing to request")
        return
    said = "requested" if done.created else "already requested"
    typer.echo(
        f"{said} {_request_line(done.record)}; an approver runs "
        f"`softmax-pipe registry approve {name}:{version} {alias}`"
    )


@registry_app.command("requests")
@uses_registry
def requests(
    reg: Registry,
    name: Annotated[str, typer.Argument(help="Model name.")],
    closed: Annotated[
        bool, typer.Option("--all", help="Also the approved and rejected ones.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The open requests of NAME, oldest first, with the gate's figures of each version:
    test accuracy, the champion's at the time, the gate's p that it is worse beyond the
    margin."""
    from registry import validate_name
    from softmax_core.escaping import printable

    validate_name("model name", name)
    pending = reg.requests(name, closed=closed)
    manifests = {p.request.version: reg.manifest(name, p.request.version) for p in pending}
    undone = reg.not_carried_out(name, pending) if closed else set()
    if as_json:
        print_json(
            [
                {
                    **p.request.to_dict(),
                    "decision": None if p.decision is None else p.decision.to_dict(),
                    "carried_out": p.request.seq not in undone,
                    "metrics": manifests[p.request.version].metrics,
                }
                for p in pending
            ]
        )
        return
    if not pending:
        err(f"no {'' if closed else 'open '}requests for {name} in {reg.uri}")
        return
    headers = ["#", "VERSION", "ALIAS", "ACCURACY", "CHAMPION", "P", "REQUESTED", "BY"]
    table(
        [*headers, "STATE", "COMMENT"],
        [
            [
                str(p.request.seq),
                str(p.request.version),
                p.request.alias,
                metric(manifests[p.request.version]),
                _champion(manifests[p.request.version].metrics),
                _p_value(manifests[p.request.version].metrics),
                p.request.requested_at[:16].replace("T", " "),
                _who(p.request.requested_by),
                _state(p, p.request.seq in undone),
                printable(_comments(p)),
            ]
            for p in pending
        ],
    )


def _state(pending: Pending, undone: bool) -> str:
    """A request's STATE: open, or its decision and by whom; an approval whose alias move
    never happened (a crash between the two writes) says so, and what to do."""
    if pending.decision is None:
        return "open"
    said = f"{pending.decision.decision} by {_who(pending.decision.by)}"
    return f"{said}, not carried out (approve again)" if undone else said


def _comments(p: Pending) -> str:
    """The request's comment and its decision's (``superseded: mnist:3 was approved ...``,
    a rejection's reason), or ``-``."""
    said = [p.request.comment, p.decision.comment if p.decision else None]
    return " / ".join(c for c in said if c) or "-"


def _champion(metrics: dict[str, Any]) -> str:
    value, ref = metrics.get("champion_accuracy"), metrics.get("champion")
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.4f}" + (f" ({ref})" if isinstance(ref, str) else "")


def _p_value(metrics: dict[str, Any]) -> str:
    """The gate's p-value that the version is worse than the champion beyond the margin
    (``flows.report.published_metrics``)."""
    value = metrics.get("p_worse")
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


@registry_app.command("approve")
@uses_registry
def approve(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION the request asks for.")],
    alias: Annotated[str, typer.Argument(help="The alias it asks to move.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Approve although the version is no longer the newest candidate (a newer "
            "version is requested, or the alias already points past it).",
        ),
    ] = False,
    by: ByOpt = None,
    comment: CommentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the open request to move ALIAS to NAME:VERSION and move it (compare-and-swap,
    as promote does; the history records who asked and who approved). Needs an approver's
    key: one that may write aliases."""
    from registry import validate_name

    name, version = _version_ref(ref, "approve")
    validate_name("alias", alias)
    done = reg.approve(name, version, alias, by=by, comment=comment, force=force)
    move = done.move
    if as_json:
        print_json(
            {
                **move.record.to_dict(),
                "moved": move.moved,
                "approved": done.request.seq,
                "superseded": [r.seq for r, _ in done.superseded],
            }
        )
        return
    req = done.request
    asked = f"requested by {_who(req.requested_by)}"
    if not move.moved:
        typer.echo(f"approved {_request_line(req)} ({asked}); it already pointed there")
    else:
        typer.echo(f"approved {_request_line(req)} ({asked}): {_alias_line(move.record)}")
    for older, _ in done.superseded:
        typer.echo(f"closed {_request_line(older)} as superseded")


@registry_app.command("reject")
@uses_registry
def reject(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION the request asks for.")],
    alias: Annotated[str, typer.Argument(help="The alias it asks to move.")],
    by: ByOpt = None,
    comment: CommentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the open request to move ALIAS to NAME:VERSION (the alias stays)."""
    from registry import validate_name

    name, version = _version_ref(ref, "reject")
    validate_name("alias", alias)
    done = reg.reject(name, version, alias, by=by, comment=comment)
    if as_json:
        print_json([{**req.to_dict(), "decision": dec.to_dict()} for req, dec in done])
        return
    for req, _ in done:
        typer.echo(f"rejected {_request_line(req)} (requested by {_who(req.requested_by)})")


@registry_app.command("pull")
@uses_registry
def pull(
    reg: Registry,
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Write the model file here: a file name, or a folder (an existing one, or "
            "any path ending in '/') to hold NAME-VERSION.npz.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download REF into the local cache (sha256-verified) and optionally copy it to --out."""
    from registry import parse_ref

    parse_ref(ref)
    with pulling_to(out):
        result = reg.fetch(ref)
        path = result.path
        if out is not None:
            target = pull_target(out, result.manifest.name, result.manifest.version)
            write_copy(path, target)
            path = target
    if as_json:
        print_json(
            {
                "ref": result.manifest.ref,
                "digest": result.manifest.digest,
                "path": str(path),
                "cache": str(result.path),
                "cached": result.cached,
            }
        )
        return
    how = "from the cache" if result.cached else "downloaded, sha256 verified"
    echo(f"{result.manifest.ref} -> {path} ({how})")


def write_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically; missing folders are made (exit 4 when one cannot
    be, exit 2 when a file is in the way), as for every command's output."""
    from softmax_core.atomicio import atomic_write, prepare_output

    prepare_output(dst)
    atomic_write(dst, src.read_bytes())


def _is_folder(out: str) -> bool:
    """``--out`` names a folder: an existing one, or a name ending in a slash (not ``''``,
    which pathlib reads as the current folder: :func:`prepare_output` refuses it)."""
    return out.endswith(("/", "\\")) or (out != "" and Path(out).is_dir())


@contextmanager
def pulling_to(out: str | None) -> Iterator[None]:
    """Around a pull and its copy to ``--out``: before the download, the folder is made, a
    file's folders too (:func:`softmax_core.atomicio.prepare_output`: exit 2 or 4 in one
    line); a pull that fails takes away the folders it made
    (:func:`softmax_core.atomicio.folders_undone`)."""
    from softmax_core.atomicio import folders_undone, make_folder, prepare_output

    if out is None:
        yield
        return
    folder = Path(out) if _is_folder(out) else Path(out).parent
    with folders_undone(folder):
        if _is_folder(out):
            make_folder(folder)
        else:
            prepare_output(out, option="--out")
        yield


def pull_target(out: str, name: str, version: int) -> Path:
    """``--out``: a file name, or a folder (existing, or written with a trailing slash)."""
    from softmax_core.atomicio import make_folder

    target = Path(out)
    if _is_folder(out):
        make_folder(target)
        return target / f"{name}-{version}.npz"
    return target


@registry_app.command("gc")
@uses_registry
def gc(
    reg: Registry,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            help="Only delete unreferenced blobs older than this many seconds.",
            min=0,
        ),
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help=f"Allow --grace under {settings.GC_MIN_GRACE:g} s."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete blobs no version refers to (after a grace period; never by age alone)."""
    if grace < settings.GC_MIN_GRACE and not (force or dry_run):
        raise InvalidInputError(
            f"--grace {grace:g} is under {settings.GC_MIN_GRACE:g} s: the blob of a publish or "
            "dataset add under way would be deleted for good; add --force if none is running"
        )
    keys = reg.gc(grace_seconds=grace, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "deleted": [] if dry_run else keys, "unreferenced": keys})
        return
    verb = "would delete" if dry_run else "deleted"
    for key in keys:
        echo(f"{verb} {key}")
    typer.echo(f"{verb} {len(keys)} unreferenced {plural(len(keys), 'blob')}")


@registry_app.command("check")
@uses_registry
def check(
    reg: Registry,
    racers: Annotated[
        int,
        typer.Option(help="Writers racing each conditional write.", min=2, max=64),
    ] = settings.STORE_CHECK_RACERS,
    as_json: JsonOpt = False,
) -> None:
    """Prove the store's conditional writes before trusting it with the registry.

    In a scratch prefix (checks/, removed afterwards): racing only-if-absent writes
    (exactly one may win), racing compare-and-swap updates (none may be lost), and a
    retried write whose answer was lost (refused, and recognised as ours). An S3 registry
    runs the same check once before its first write; a store that fails is refused for
    writing (exit 4) and can still be read."""
    from softmax_core.errors import StorageError

    result = reg.check(racers=racers)
    if as_json:
        print_json(
            {
                "registry": result.uri,
                "passed": result.ok,
                "seconds": round(result.seconds, 3),
                "probes": [
                    {"name": p.name, "passed": p.ok, "seen": p.seen, "why": p.why}
                    for p in result.probes
                ],
                "leftovers": list(result.leftovers),
            }
        )
    else:
        for probe in result.probes:
            echo(probe.line())
        typer.echo(f"checked {reg.uri} in {result.seconds:.1f} s")
    for key in result.leftovers:
        err(f"warning: could not delete the check's scratch key {key}")
    if not result.ok:
        raise StorageError(result.failure())
