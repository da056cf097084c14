"""CLI: ``softmax-pipe dataset ...``: labelled image folders as versioned datasets.

``add`` reads a folder of class subfolders ``0`` … ``9`` (a review queue is one), prepares
every image as ``score`` does, and stores a new version when anything changed. Exit codes:
0 ok, 1 some images could not be read (the rest were added), 2 a folder that is not a
labelled folder or a bad name, 3 unknown dataset or version, 4 storage failure (a blob
whose sha256 is wrong included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from softmax_core.words import plural
from softmax_pipe.cli_common import ImageProgress, JsonOpt, echo, err
from softmax_pipe.cli_registry import pull_target, pulling_to, uses_registry, write_copy
from softmax_pipe.cli_tables import print_json, table

if TYPE_CHECKING:
    from registry import AddResult, DatasetManifest, Registry
    from softmax_core.labelled import FolderData

dataset_app = typer.Typer(
    name="dataset",
    help="Labelled image folders (subfolders 0 … 9, not-a-digit) as versioned datasets in the registry.\n\n"
    "REF is NAME (newest version) or NAME:VERSION. Train on one with "
    "`softmax-pipe run --dataset NAME`. "
    "Exit codes: 0 ok, 1 some images unreadable, 2 bad folder or name, 3 not found, "
    "4 storage failure.",
    no_args_is_help=True,
)

RefArg = Annotated[str, typer.Argument(help="NAME (the newest version) or NAME:VERSION.")]


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` command group to the main app."""
    app.add_typer(dataset_app, name="dataset")


def _classes(m: DatasetManifest) -> str:
    return " ".join(f"{c}:{n}" for c, n in sorted(m.classes.items()))


@dataset_app.command("add")
@uses_registry
def add(
    reg: Registry,
    folder: Annotated[
        str,
        typer.Argument(
            help="A folder of class subfolders 0 … 9 and not-a-digit (a review queue too), or an "
            "s3://bucket/prefix/ laid out as one (on the registry's endpoint).",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The dataset's name in the registry.")],
    as_json: JsonOpt = False,
) -> None:
    """Add a labelled folder to dataset NAME: a new version when anything changed.

    The new version is the union of the previous one and the folder; an image moved to
    another class folder takes its new label. An unchanged folder makes no new version.
    Each image's split (train or 20% holdout) follows from its pixels' sha256."""
    from softmax_core.errors import PartialFailure

    with ImageProgress("reading") as bar:
        added, read = reg.add_folder(name, folder, progress=bar.update)
    m, c = added.manifest, added.changes
    copies = read.labelled_copies(added.data)  # in unlabelled/ and labelled: not waiting
    waiting = len(read.scan.unlabelled) - copies
    for rel, reason in read.failures:
        err(f"error: {rel}: {reason}", style="bold red")
    if as_json:
        print_json(
            {
                **m.to_dict(),
                "created": added.created,
                "read": len(read.data),
                "failed": [{"path": p, "reason": r} for p, r in read.failures],
                "empty_classes": read.scan.empty_classes,
                "duplicates": read.duplicates,
                "still_unlabelled": waiting,
            }
        )
    elif added.created:
        typer.echo(
            f"added {m.ref} to {reg.uri}: {m.count} {plural(m.count, 'image')} ({m.train} train, "
            f"{m.holdout} holdout)"
        )
        typer.echo(
            f"  {c.added} new, {c.relabelled} relabelled, {c.unchanged} unchanged, "
            f"{c.kept} kept from {name}:{m.previous}"
            if m.previous
            else f"  {c.added} new"
        )
        typer.echo(f"  classes {_classes(m)}")
    else:
        n = len(read.data)
        typer.echo(f"unchanged: {m.ref} already holds all {n} {plural(n, 'image')}; no new version")
    _notes(read, added, copies, waiting)
    if read.failures:
        failed, total = len(read.failures), len(read.scan.files)
        k = total - failed
        rest = (
            f"the other {k:,} {plural(k, 'was', 'were')} added"
            if added.created
            else f"the dataset is unchanged ({m.ref} holds the other {k:,})"
        )
        raise PartialFailure(
            f"{failed} of {total} {plural(total, 'image')} could not be read and "
            f"{plural(failed, 'was', 'were')} left out; {rest}"
        )


def _notes(read: FolderData, added: AddResult, copies: int, waiting: int) -> None:
    if read.scan.empty_classes:
        err(f"note: empty class folders: {', '.join(read.scan.empty_classes)}")
    if read.duplicates:
        n = read.duplicates
        what = plural(n, "file repeats", "files repeat")
        err(f"note: {n} {what} another file's bytes; each counted once")
    if copies:
        err(
            f"note: {copies} {plural(copies, 'image')} in unlabelled/ {plural(copies, 'is', 'are')} "
            f"in {added.manifest.ref} already (labelled copies); delete "
            f"{plural(copies, 'it', 'them')} from unlabelled/"
        )
    if waiting:
        err(
            f"note: {waiting} {plural(waiting, 'image')} still in unlabelled/ "
            f"{plural(waiting, 'was', 'were')} not added"
        )
    if read.scan.linked_folders:
        err(f"note: symlinked folders are not walked: {', '.join(read.scan.linked_folders)}")


@dataset_app.command("list")
@uses_registry
def list_datasets(reg: Registry, as_json: JsonOpt = False) -> None:
    """List the datasets: newest version, its images, its train/holdout split."""
    newest = [reg.resolve_dataset(n) for n in reg.datasets()]
    if as_json:
        print_json([m.to_dict() for m in newest])
        return
    if not newest:
        err(f"no datasets in {reg.uri}")
        return
    table(
        ["NAME", "LATEST", "IMAGES", "TRAIN", "HOLDOUT", "CREATED"],
        [
            [m.name, str(m.version), str(m.count), str(m.train), str(m.holdout), m.created]
            for m in newest
        ],
    )


@dataset_app.command("versions")
@uses_registry
def versions(
    reg: Registry,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    as_json: JsonOpt = False,
) -> None:
    """Every version of a dataset with its counts and what changed."""
    found = reg.dataset_versions(name)
    if as_json:
        print_json([m.to_dict() for m in found])
        return
    table(
        ["VERSION", "IMAGES", "TRAIN", "HOLDOUT", "ADDED", "RELABELLED", "CREATED"],
        [
            [
                str(m.version),
                str(m.count),
                str(m.train),
                str(m.holdout),
                str(m.changes.get("added", 0)),
                str(m.changes.get("relabelled", 0)),
                m.created,
            ]
            for m in found
        ],
    )


@dataset_app.command("show")
@uses_registry
def show(reg: Registry, ref: RefArg, as_json: JsonOpt = False) -> None:
    """One dataset version: blob, counts per class and split, changes, split rule."""
    m = reg.resolve_dataset(ref)
    if as_json:
        print_json(m.to_dict())
        return
    typer.echo(f"{m.ref}  ({reg.uri})")
    for key, value in (
        ("created", m.created),
        ("blob", f"{m.blob_key} ({m.size} bytes)"),
        ("images", f"{m.count} ({m.train} train, {m.holdout} holdout)"),
        ("classes", _classes(m)),
        ("changes", ", ".join(f"{k} {v}" for k, v in m.changes.items())),
        ("previous", m.previous if m.previous else "-"),
        ("split", m.split),
        ("content", m.content),
        ("code", m.code_version or "-"),
    ):
        typer.echo(f"  {key:<9}{value}")


@dataset_app.command("pull")
@uses_registry
def pull(
    reg: Registry,
    ref: RefArg,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Write the dataset's .npz here (images, labels, sha256, paths; no pickles): "
            "a file name, or a folder (existing, or ending in '/') to hold NAME-VERSION.npz.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a dataset version into the local cache (sha256-verified); copy it to --out."""
    with pulling_to(out):
        m, data = reg.load_dataset(ref)
        path = reg.blob_cache_path(m.digest)
        if out is not None:
            target = pull_target(out, m.name, m.version)
            write_copy(path, target)
            path = target
    if as_json:
        print_json({"ref": m.ref, "digest": m.digest, "path": str(path), "count": len(data)})
        return
    echo(f"{m.ref} -> {path} ({len(data)} {plural(len(data), 'image')}, sha256 verified)")
