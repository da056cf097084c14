"""CLI: ``softmax-pipe registry ...``: list, inspect, publish, promote, roll back, pull, gc.

Tables for people on stdout, ``--json`` for machines. Exit codes: 0 ok, 2 bad name or
reference, 3 unknown model / version / alias, 4 storage or network failure (the message
names the endpoint or folder and what to check), including a blob whose sha256 is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from softmax_pipe.cli_common import CacheOpt, EndpointOpt, JsonOpt, RegistryOpt, err, errors_to_exit

if TYPE_CHECKING:
    from registry import AliasRecord, Manifest, Registry

registry_app = typer.Typer(
    name="registry",
    help="Versioned model storage on a local folder or S3/MinIO.\n\n"
    "REF is NAME (newest version), NAME:VERSION or NAME@ALIAS. "
    "Exit codes: 0 ok, 2 bad name, 3 not found, 4 storage/network failure.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``registry`` command group to the main app."""
    app.add_typer(registry_app, name="registry")


def _open(registry: str | None, endpoint_url: str | None, cache_dir: str | None) -> Registry:
    from registry import Registry
    from softmax_core.settings import Settings

    settings = Settings.build(registry=registry, cache_dir=cache_dir)
    if settings.registry_is_default:
        err(f"using the default local registry at {settings.registry}")
    return Registry.open(settings.registry, endpoint_url=endpoint_url, cache_dir=settings.cache_dir)


def _print_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=False))


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _metric(m: Manifest, key: str = "accuracy") -> str:
    value = m.metrics.get(key)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _alias_line(rec: AliasRecord) -> str:
    was = f" (was {rec.name}:{rec.from_version})" if rec.from_version is not None else ""
    return f"{rec.name}@{rec.alias} -> {rec.name}:{rec.version}{was}"


@registry_app.command("list")
@errors_to_exit
def list_models(
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the models: newest version, number of versions, aliases."""
    with _open(registry, endpoint_url, cache_dir) as reg:
        found = [(name, reg.version_numbers(name), reg.aliases(name)) for name in reg.models()]
    if as_json:
        _print_json(
            [
                {
                    "name": name,
                    "latest": nums[-1] if nums else None,
                    "versions": len(nums),
                    "aliases": al,
                }
                for name, nums, al in found
            ]
        )
        return
    if not found:
        err(f"no models in {reg.uri}")
        return
    _table(
        ["NAME", "LATEST", "VERSIONS", "ALIASES"],
        [
            [
                name,
                str(nums[-1]) if nums else "-",
                str(len(nums)),
                ", ".join(f"{a}={v}" for a, v in al.items()) or "-",
            ]
            for name, nums, al in found
        ],
    )


@registry_app.command("versions")
@errors_to_exit
def versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List every version of NAME (JSON: an array of manifests)."""
    from registry import validate_name

    validate_name("model name", name)
    with _open(registry, endpoint_url, cache_dir) as reg:
        manifests = reg.versions(name)
        aliases = reg.aliases(name)
    if as_json:
        _print_json([m.to_dict() for m in manifests])
        return
    by_version: dict[int, list[str]] = {}
    for alias, v in aliases.items():
        by_version.setdefault(v, []).append(alias)
    _table(
        ["VERSION", "CREATED", "DIGEST", "ACCURACY", "ALIASES"],
        [
            [
                str(m.version),
                m.created[:19].replace("T", " "),
                m.digest[:12],
                _metric(m),
                ", ".join(by_version.get(m.version, [])) or "-",
            ]
            for m in manifests
        ],
    )


@registry_app.command("show")
@errors_to_exit
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the manifest REF resolves to."""
    from registry import parse_ref

    parse_ref(ref)
    with _open(registry, endpoint_url, cache_dir) as reg:
        m = reg.resolve(ref)
    if as_json:
        _print_json(m.to_dict())
        return
    typer.echo(f"{m.ref}  (from {ref})")
    for key in ("digest", "size", "created", "model_created", "data_digest", "code_version"):
        typer.echo(f"  {key + ':':15} {getattr(m, key)}")
    for key in ("metrics", "params", "preprocessing", "lineage"):
        typer.echo(f"  {key + ':':15} {json.dumps(getattr(m, key), sort_keys=True)}")
    typer.echo(f"  {'blob:':15} {m.blob_key}")


@registry_app.command("publish")
@errors_to_exit
def publish(
    model_file: Annotated[Path, typer.Argument(help="The model file (.npz) to publish.")],
    name: Annotated[str, typer.Option("--name", help="Model name to publish under.")],
    alias: Annotated[
        str | None, typer.Option("--alias", help="Also point this alias at the new version.")
    ] = None,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish MODEL_FILE as the next version of NAME."""
    from registry import validate_name

    validate_name("model name", name)  # refuse before opening anything
    if alias is not None:
        validate_name("alias", alias)
    with _open(registry, endpoint_url, cache_dir) as reg:
        m = reg.publish(model_file, name, alias=alias)
        where = reg.uri
    if as_json:
        _print_json({**m.to_dict(), "alias": alias})
        return
    typer.echo(f"published {m.ref}  sha256:{m.digest}  to {where}")
    if alias is not None:
        typer.echo(f"{m.name}@{alias} -> {m.ref}")


@registry_app.command("promote")
@errors_to_exit
def promote(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to promote.")],
    alias: Annotated[str, typer.Argument(help="Alias to point at it, e.g. champion.")],
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point ALIAS at NAME:VERSION (compare-and-swap; recorded in the alias history)."""
    from registry import parse_ref, validate_name
    from softmax_core.errors import InvalidNameError

    name, at, version = parse_ref(ref)
    if version is None or at is not None:
        raise InvalidNameError(f"promote needs NAME:VERSION, got {ref!r}")
    validate_name("alias", alias)
    with _open(registry, endpoint_url, cache_dir) as reg:
        rec = reg.promote(name, version, alias)
    if as_json:
        _print_json(rec.to_dict())
        return
    typer.echo(_alias_line(rec))


@registry_app.command("rollback")
@errors_to_exit
def rollback(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS to move back to its previous version.")],
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move NAME@ALIAS back to the version it pointed to before its last move."""
    from registry import parse_ref
    from softmax_core.errors import InvalidNameError

    name, alias, _ = parse_ref(ref)
    if alias is None:
        raise InvalidNameError(f"rollback needs NAME@ALIAS, got {ref!r}")
    with _open(registry, endpoint_url, cache_dir) as reg:
        rec = reg.rollback(name, alias)
    if as_json:
        _print_json(rec.to_dict())
        return
    typer.echo(_alias_line(rec))


@registry_app.command("history")
@errors_to_exit
def history(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS.")],
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every move of NAME@ALIAS, oldest first."""
    from registry import parse_ref
    from softmax_core.errors import InvalidNameError

    name, alias, _ = parse_ref(ref)
    if alias is None:
        raise InvalidNameError(f"history needs NAME@ALIAS, got {ref!r}")
    with _open(registry, endpoint_url, cache_dir) as reg:
        records = reg.history(name, alias)
    if as_json:
        _print_json([r.to_dict() for r in records])
        return
    _table(
        ["SEQ", "MOVED", "ACTION", "VERSION", "FROM"],
        [
            [
                str(r.seq),
                r.moved_at[:19].replace("T", " "),
                r.action,
                str(r.version),
                "-" if r.from_version is None else str(r.from_version),
            ]
            for r in records
        ],
    )


@registry_app.command("pull")
@errors_to_exit
def pull(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the model file here (a file, or an existing folder)."),
    ] = None,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download REF into the local cache (sha256-verified) and optionally copy it to --out."""
    from registry import parse_ref

    parse_ref(ref)
    with _open(registry, endpoint_url, cache_dir) as reg:
        result = reg.fetch(ref)
    path = result.path
    if out is not None:
        target = (
            out / f"{result.manifest.name}-{result.manifest.version}.npz" if out.is_dir() else out
        )
        _copy(path, target)
        path = target
    if as_json:
        _print_json(
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
    typer.echo(f"{result.manifest.ref} -> {path} ({how})")


def _copy(src: Path, dst: Path) -> None:
    import os
    import shutil
    import tempfile

    from softmax_core.errors import InvalidInputError

    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as e:
        raise InvalidInputError(f"cannot write {dst}: {e.strerror or e}") from e


@registry_app.command("gc")
@errors_to_exit
def gc(
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            help="Only delete unreferenced blobs older than this many seconds.",
            min=0,
        ),
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
    registry: RegistryOpt = None,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete blobs no version refers to (after a grace period; never by age alone)."""
    with _open(registry, endpoint_url, cache_dir) as reg:
        keys = reg.gc(grace_seconds=grace, dry_run=dry_run)
    if as_json:
        _print_json({"dry_run": dry_run, "deleted": [] if dry_run else keys, "unreferenced": keys})
        return
    verb = "would delete" if dry_run else "deleted"
    for key in keys:
        typer.echo(f"{verb} {key}")
    typer.echo(f"{verb} {len(keys)} unreferenced blob(s)")
