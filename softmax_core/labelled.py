"""Labelled image folders -> the arrays a dataset version holds; splits; deltas.

A labelled folder follows the convention of Keras's ``image_dataset_from_directory`` and
torchvision's ``ImageFolder``::

    DIR/0/ ... DIR/9/     images of that digit (folders inside a class folder are walked)
    DIR/not-a-digit/      images that are not digits: label 10, the model's "not a digit"
    DIR/unlabelled/       a review queue's images nobody has labelled yet: skipped
    DIR/index.html        a review queue's contact sheet: skipped
    .hidden entries       skipped (.DS_Store, .git)

Anything else is refused by name (a folder ``10`` or ``x``, a file at the top level, a
file that is not an image inside a class folder), before any image is read.

Every image is prepared exactly as ``softmax-pipe score`` prepares it
(:func:`softmax_core.scoring.decode.decode_items`: the MNIST procedure), then kept as
``uint8`` 28×28; a broken image is reported as in scoring and the rest go on, and so
are a blank page and an image of several marks (``not one digit (2 separate marks)``, in
any class folder, ``not-a-digit/`` too: its 28×28 would be one of its marks, and scoring
rejects such an image before the model reads it, so no label teaches anything). Files are
opened as scoring opens them (regular files only, non-blocking: a FIFO or a link to
``/dev/zero`` is a failure row, never a hang). Symlinks: a symlinked image is read when
it resolves inside the labelled folder and is a failure row when it leads out of it (a
labelled inbox others write into cannot pull the operator's other files into a
dataset); symlinked folders inside a class folder are not walked (``linked_folders``).

Splits never leak: an image is in the holdout when the first 8 bytes of the sha256 of its
prepared pixels, read as an integer, fall in the lowest ``HOLDOUT_FRACTION`` of the range.
The split depends on the picture alone, so it never changes as a dataset grows, and the
same picture dropped in twice (under any names) sits in one split.

One picture under two labels is refused: the same file bytes, or other bytes (re-saved,
converted) whose prepared pixels are the same.

Items are keyed by the sha256 of the source file: adding a folder again keeps every item
of the previous version, adds the new files, and gives a file that moved to another class
folder its new label (:func:`merge`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from softmax_core import npzread, settings
from softmax_core.errors import DataFormatError, DataNotFoundError, ImageError, InvalidInputError
from softmax_core.escaping import printable
from softmax_core.images import IMAGE_EXTENSIONS, is_image_name, open_regular

NOT_A_DIGIT = "not-a-digit"  # the class folder of label 10 (softmax_core.model.REJECT)
CLASSES = (*(str(d) for d in range(10)), NOT_A_DIGIT)  # folder names; the index is the label
UNLABELLED = "unlabelled"  # a review queue's folder of images to label (scoring.review)
SHEET = "index.html"
HOLDOUT_FRACTION = 0.2
SPLIT_RULE = "holdout if int(sha256(uint8 28x28 pixels)[:8 bytes]) < 0.2 * 2**64"
PREPARE_CHUNK = 256
_ARRAYS = ("images", "labels", "sha256", "paths")

Progress = Callable[[int, int], None]  # (done, total)


def label_name(label: int) -> str:
    """A label as people read and write it: the digit, or ``not-a-digit`` (label 10, the
    model's "not a digit", named as its class folder); every message, table and page
    that shows a label names it here."""
    return CLASSES[label]


@dataclass(frozen=True)
class Labelled:
    """Labelled digits: ``images (n, 28, 28) uint8``, ``labels (n,) uint8``, and per item
    the source file's ``sha256 (n,) <U64`` and relative ``paths (n,) str``."""

    images: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    sha256: NDArray[np.str_]
    paths: NDArray[np.str_]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def holdout(self) -> NDArray[np.bool_]:
        """(n,) bool: the items of the holdout split (see the module docstring)."""
        return holdout_mask(self.images)

    def split(self, which: str) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """``(images, labels)`` of the ``"train"`` or ``"holdout"`` split."""
        if which not in ("train", "holdout"):
            raise InvalidInputError(f"split {which!r} is unknown; expected 'train' or 'holdout'")
        mask = self.holdout if which == "holdout" else ~self.holdout
        return self.images[mask], self.labels[mask]

    def class_counts(self) -> dict[str, int]:
        """Images per class folder name (``0`` … ``9``; ``not-a-digit`` when it has any)."""
        counts = np.bincount(self.labels, minlength=len(CLASSES))
        return {c: int(counts[k]) for k, c in enumerate(CLASSES) if c != NOT_A_DIGIT or counts[k]}

    def content_digest(self) -> str:
        """sha256 of the sorted ``<file sha256> <label>`` lines: what the data *is*, whatever
        the files are called and in which order they were added."""
        lines = sorted(f"{s} {int(y)}\n" for s, y in zip(self.sha256, self.labels, strict=True))
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    @property
    def nbytes(self) -> int:
        """Bytes of the four arrays: what its blob holds and what loading it allocates."""
        return sum(getattr(self, k).nbytes for k in _ARRAYS)

    def to_bytes(self) -> bytes:
        """An ``.npz`` of the four arrays (no pickles: strings are fixed-width unicode).

        InvalidInputError when they hold over ``settings.MAX_DATASET_BYTES``, the most
        :meth:`from_bytes` reads: a version no one could load is never written."""
        cap = settings.MAX_DATASET_BYTES
        if self.nbytes > cap:
            raise InvalidInputError(
                f"a dataset of {len(self):,} images takes {self.nbytes:,} bytes, over the cap "
                f"of {cap:,} a dataset version may hold; split the images into several "
                "datasets (run --dataset takes several)"
            )
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k) for k in _ARRAYS})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str) -> Labelled:
        """Parse :meth:`to_bytes` output; DataFormatError if malformed. The blob may be
        hostile (anyone who may write datasets wrote it): its arrays' sizes, dtypes and
        shapes are checked from their headers, against ``settings.MAX_DATASET_BYTES``,
        before any is read (:mod:`softmax_core.npzread`), and pickles are refused."""
        arrays = npzread.read_arrays(
            data,
            _ARRAYS,
            origin=origin,
            what="a dataset blob",
            max_bytes=settings.MAX_DATASET_BYTES,
            check=lambda headers: _check_headers(headers, origin),
        )
        top = int(arrays["labels"].max(initial=0))
        if top >= len(CLASSES):
            raise DataFormatError(
                f"{origin} has arrays of unexpected shapes or types (a label {top}; "
                f"expected 0 … {len(CLASSES) - 1})"
            )
        return cls(**arrays)


def _check_headers(headers: Mapping[str, npzread.Header], origin: str) -> None:
    """The arrays :class:`Labelled` holds, from their headers: ``images (n, 28, 28)``
    and ``labels (n,)`` uint8, ``sha256`` and ``paths`` ``(n,)`` unicode."""
    images, labels = headers["images"], headers["labels"]
    n = labels.shape[0] if len(labels.shape) == 1 else -1
    ok = (
        images.dtype == np.uint8
        and images.shape == (n, 28, 28)
        and labels.dtype == np.uint8
        and all(headers[k].dtype.kind == "U" and headers[k].shape == (n,) for k in _ARRAYS[2:])
    )
    if not ok:
        shown = ", ".join(f"{h.name} {h.dtype}{h.shape}" for h in headers.values())
        raise DataFormatError(f"{origin} has arrays of unexpected shapes or types ({shown})")


def picture_digests(images: NDArray[np.uint8]) -> list[bytes]:
    """The sha256 of each picture's prepared pixels ((n, 28, 28) uint8): what the model
    learns from, whatever the file's bytes (compression, metadata, format)."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    return [hashlib.sha256(row.tobytes()).digest() for row in flat]


def holdout_mask(images: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """(n,) bool from (n, 28, 28) uint8 pixels: the split rule, one hash per picture."""
    cut = int(HOLDOUT_FRACTION * 2**64)
    heads = (int.from_bytes(d[:8], "big") for d in picture_digests(images))
    return np.fromiter((h < cut for h in heads), dtype=bool, count=len(images))


def empty() -> Labelled:
    return Labelled(
        images=np.zeros((0, 28, 28), np.uint8),
        labels=np.zeros(0, np.uint8),
        sha256=np.zeros(0, "<U64"),
        paths=np.zeros(0, "<U1"),
    )


# --- reading a folder -------------------------------------------------------------------


@dataclass(frozen=True)
class FolderScan:
    """What a labelled folder holds: ``(relative path, label)`` per image, and what was skipped."""

    files: list[tuple[str, int]]
    empty_classes: list[str]
    unlabelled: list[str]  # images waiting in ``unlabelled/`` (relative paths; images_under)
    linked_folders: list[str] = field(default_factory=list)  # symlinked, not walked


def _walk_class(folder: Path, rel: str, linked: list[str]) -> list[str]:
    """The images under one class folder; symlinked sub-folders are not walked (their
    relative paths are appended to ``linked``)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow symlinked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        sub = Path(dirpath).relative_to(folder)
        linked.extend(
            printable((Path(rel) / sub / d).as_posix())
            for d in dirnames
            if os.path.islink(os.path.join(dirpath, d))
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = (Path(rel) / sub / name).as_posix()
            if not is_image_name(name):
                raise InvalidInputError(
                    f"{printable(path)} is not an image; a class folder holds images only "
                    f"({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            out.append(path)
    return out


def images_under(folder: Path) -> list[Path]:
    """The images under a review queue's folder, as the queue counts them (what it knows it
    holds, its contact sheet, what ``dataset add`` says is still waiting): regular files
    with an image extension, not hidden, symlinks followed, sorted. A folder, a FIFO, a
    dangling symlink or a file that cannot be looked at (``os.path.isfile``) named like an
    image is none: there is no image to label."""
    found = (p for p in folder.rglob("*") if not p.name.startswith(".") and is_image_name(p.name))
    return sorted(p for p in found if os.path.isfile(p))


def scan_folder(root: Path, *, shown: str | None = None) -> FolderScan:
    """The images of a labelled folder, or InvalidInputError naming what does not belong
    (messages name the folder as ``shown``, when it is a copy of one elsewhere)."""
    where = shown or str(root)
    if not root.is_dir():
        wanted = "expected a folder with subfolders 0 … 9"
        if root.exists():  # a file (or a device): bad input, not a missing path
            raise InvalidInputError(f"{where} is not a folder; {wanted}")
        raise DataNotFoundError(f"{where} does not exist; {wanted}")
    files: list[tuple[str, int]] = []
    empty_classes: list[str] = []
    unlabelled: list[str] = []
    classes = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name in CLASSES:
            classes.append(entry.name)
        elif entry.is_dir() and entry.name == UNLABELLED:
            unlabelled = [p.relative_to(root).as_posix() for p in images_under(Path(entry.path))]
        elif entry.is_file() and entry.name == SHEET:
            continue
        else:
            kind = "folder" if entry.is_dir() else "file at the top level"
            raise InvalidInputError(
                f"{where.rstrip('/')}/{printable(entry.name)}: unexpected {kind}; a labelled "
                f"folder holds only class subfolders 0 … 9 and {NOT_A_DIGIT} (and a review "
                f"queue's {UNLABELLED}/ and {SHEET})"
            )
    if not classes:
        raise DataNotFoundError(f"{where} has no class subfolders; {_classes_wanted(root)}")
    linked: list[str] = []
    for c in classes:
        found = _walk_class(root / c, c, linked)
        if not found:
            empty_classes.append(c)
        files.extend((rel, CLASSES.index(c)) for rel in found)
    if not files:
        raise DataNotFoundError(f"{where}: every class subfolder is empty; nothing to add")
    return FolderScan(files, empty_classes, unlabelled, linked)


def _classes_wanted(root: Path) -> str:
    """What a folder without class subfolders should hold; class folders made inside its
    ``unlabelled/`` by mistake are named, with where they belong."""
    queue = root / UNLABELLED
    inside = [c for c in CLASSES if (queue / c).is_dir()] if queue.is_dir() else []
    if not inside:
        return f"expected subfolders 0 … 9 and {NOT_A_DIGIT} holding the images of that class"
    found = ", ".join(f"{UNLABELLED}/{c}/" for c in inside)
    return f"class folders go beside {UNLABELLED}/, not in it: move {found} up one level"


@dataclass(frozen=True)
class FolderData:
    """A labelled folder read: its items, the images that failed and why, what was skipped."""

    data: Labelled
    failures: list[tuple[str, str]]  # (relative path, reason)
    scan: FolderScan
    duplicates: int = 0  # files with the bytes of another file in the folder, same label
    notes: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # file sha256 of unlabelled/'s readable images

    def labelled_copies(self, data: Labelled) -> int:
        """How many images of ``unlabelled/`` ``data`` holds (the same file bytes): copied
        into a class folder (now or before) rather than moved, they are labelled."""
        held = set(data.sha256.tolist())
        return sum(digest in held for digest in self.waiting)


def read_folder(
    root: Path,
    *,
    max_pixels: int = settings.MAX_PIXELS,
    progress: Progress | None = None,
    shown: str | None = None,
) -> FolderData:
    """Scan, hash and prepare every image of a labelled folder (chunks of PREPARE_CHUNK).

    Each file is opened as ``score`` opens it (:func:`softmax_core.images.open_regular`:
    non-blocking, regular files only, at most ``settings.MAX_IMAGE_BYTES``), so a FIFO or
    a link to a device cannot hang the read; a file that cannot be read, and a symlink
    that leads out of ``root``, is a failure row (``failures``: the names shown as
    :func:`~softmax_core.escaping.printable`), as in scoring, and the rest go on; so is
    an image that is not one digit (a blank page; several marks, with scoring's reason).

    InvalidInputError when one picture sits in two class folders (the same file bytes, or
    other bytes whose prepared pixels are the same: what the model learns from), or when
    not a single image could be read.
    """
    from softmax_core.scoring.decode import decode_items, not_one

    scan = scan_folder(root, shown=shown)
    total = len(scan.files)
    kept: dict[str, tuple[str, int]] = {}  # file sha256 -> (rel, label)
    duplicates = 0
    failures: list[tuple[str, str]] = []
    inside = os.path.realpath(root)
    for rel, label in scan.files:
        try:
            digest = _file_digest(inside, root / rel)
        except ImageError as e:
            failures.append((printable(rel), printable(str(e))))
            continue
        if digest in kept:
            other, other_label = kept[digest]
            if other_label != label:
                raise _two_labels((rel, label), (other, other_label))
            duplicates += 1
            continue
        kept[digest] = (rel, label)
    items = [(s, rel, label) for s, (rel, label) in kept.items()]
    images, ok_items = [], []
    for start in range(0, len(items), PREPARE_CHUNK):
        chunk = items[start : start + PREPARE_CHUNK]
        digits, errors, marks = decode_items(  # a labelled image is what its folder says
            [(str(root / rel), None) for _, rel, _ in chunk], max_pixels
        )
        # an image of several marks is not one digit, whatever its folder says (as score
        # rejects it): its 28x28 would be one of its marks, learned under the folder's label
        reasons = [
            not_one(m) if err is None and m > 1 else err
            for err, m in zip(errors, marks, strict=True)
        ]
        one = np.fromiter(
            (r is None for e, r in zip(errors, reasons, strict=True) if e is None), dtype=bool
        )
        images.append(np.rint(np.clip(digits[one], 0.0, 1.0) * 255).astype(np.uint8))
        for item, reason in zip(chunk, reasons, strict=True):
            if reason is not None:
                failures.append((printable(item[1]), printable(reason)))
            else:
                ok_items.append(item)
        if progress is not None:
            progress(min(start + PREPARE_CHUNK, len(items)) + duplicates, total)
    if not ok_items:
        first = f"; the first: {failures[0][0]}: {failures[0][1]}" if failures else ""
        raise InvalidInputError(
            f"none of the {total} images under {shown or root} could be read{first}"
        )
    data = Labelled(
        images=np.concatenate(images),
        labels=np.array([y for _, _, y in ok_items], dtype=np.uint8),
        sha256=np.array([s for s, _, _ in ok_items], dtype="<U64"),
        paths=np.array([r for _, r, _ in ok_items], dtype=np.str_),
    )
    refuse_two_labels(data)  # the same picture in other file bytes (re-saved, converted)
    waiting = []
    for rel in scan.unlabelled:
        with contextlib.suppress(ImageError):  # unreadable: still waiting, as it is
            waiting.append(_file_digest(inside, root / rel))
    return FolderData(data, failures, scan, duplicates, waiting=waiting)


def refuse_two_labels(data: Labelled, *, previous: tuple[str, Labelled] | None = None) -> None:
    """InvalidInputError when one picture (the same prepared pixels) has two labels in
    ``data``. With ``previous`` (a version's reference and items, when ``data`` is
    :func:`merge` of them and a folder: the new items come after them), only a conflict
    with a new item is refused (one the version already held is not this folder's), and
    one with an item the version keeps as it was is said to be in that version."""
    ref, old = previous if previous is not None else ("", empty())
    seen: dict[bytes, int] = {}
    for i, picture in enumerate(picture_digests(data.images)):
        j = seen.setdefault(picture, i)
        if data.labels[j] != data.labels[i] and i >= len(old):
            held = j < len(old) and old.labels[j] == data.labels[j]
            raise _two_labels(
                (str(data.paths[i]), int(data.labels[i])),
                (str(data.paths[j]), int(data.labels[j])),
                held_in=ref if held else None,
            )


def _two_labels(
    item: tuple[str, int], other: tuple[str, int], *, held_in: str | None = None
) -> InvalidInputError:
    """The refusal of one picture under two labels: two ``(relative path, label)``, the
    other one in this folder or held by dataset version ``held_in``."""
    (rel, label), (other_rel, other_label) = item, other
    name, other_name = label_name(label), label_name(other_label)
    if held_in is not None:
        return InvalidInputError(
            f"{printable(rel)} is the same image as {printable(other_rel)} in {held_in}, "
            f"under another label ({name}; {held_in} has it as {other_name}); to relabel it, "
            f"add that file itself (the same bytes) under {name}/, else take {printable(rel)} out"
        )
    return InvalidInputError(
        f"{printable(rel)} and {printable(other_rel)} are the same image under two labels "
        f"({name} and {other_name}); keep it in one class folder"
    )


def _file_digest(inside: str, path: Path) -> str:
    """sha256 of one image file of a labelled folder whose real path is ``inside``;
    ImageError when it cannot be read (see :func:`read_folder`)."""
    fp, _ = open_regular(path, max_bytes=settings.MAX_IMAGE_BYTES)
    with fp:
        if os.path.commonpath([inside, os.path.realpath(path)]) != inside:
            raise ImageError("unreadable", "a symlink out of the labelled folder (not followed)")
        return hashlib.file_digest(fp, "sha256").hexdigest()


# --- versions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Changes:
    """How a new version differs from the previous one (counts of items)."""

    added: int
    relabelled: int
    unchanged: int  # items of the folder already in the previous version, same label
    kept: int  # items of the previous version the folder no longer has (kept: a union)

    def to_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "relabelled": self.relabelled,
            "unchanged": self.unchanged,
            "kept": self.kept,
        }


def merge(previous: Labelled | None, new: Labelled) -> tuple[Labelled, Changes]:
    """The union of ``previous`` and ``new``, keyed by file sha256; ``new``'s label wins."""
    if previous is None or len(previous) == 0:
        return new, Changes(added=len(new), relabelled=0, unchanged=0, kept=0)
    position = {s: i for i, s in enumerate(previous.sha256.tolist())}
    labels = previous.labels.copy()
    paths = previous.paths.tolist()
    fresh: list[int] = []
    relabelled = unchanged = 0
    for j, s in enumerate(new.sha256.tolist()):
        i = position.get(s)
        if i is None:
            fresh.append(j)
        elif labels[i] != new.labels[j]:
            labels[i] = new.labels[j]
            paths[i] = str(new.paths[j])
            relabelled += 1
        else:
            unchanged += 1
    seen = len(new) - len(fresh)
    merged = Labelled(
        images=np.concatenate([previous.images, new.images[fresh]]),
        labels=np.concatenate([labels, new.labels[fresh]]),
        sha256=np.concatenate([previous.sha256, new.sha256[fresh]]),
        paths=np.array(paths + new.paths[fresh].tolist(), dtype=np.str_),
    )
    return merged, Changes(len(fresh), relabelled, unchanged, len(previous) - seen)
