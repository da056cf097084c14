"""Discovery: the image files under a path, walked in a deterministic order.

The order is that of the relative paths' components (within each folder, entries sorted
by name, sub-folders visited where they sort): :func:`walk_order` says it for any
listing, so that an object store's prefix (``registry.objects``) is scored in the order
its copy on disk would be.
"""

from __future__ import annotations

import collections
import enum
import errno
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

from softmax_core import images
from softmax_core.errors import DataNotFoundError, InvalidInputError
from softmax_core.escaping import unambiguous
from softmax_core.scoring.decode import Reader
from softmax_core.words import plural

_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` (an object store's address), not a local path."""
    return bool(_URI_RE.match(text))


def walk_order(rel: str) -> list[str]:
    """The sort key of a ``/``-separated relative path in the walk's order: its components
    (``a/b.png`` comes before ``a.png``, as folder ``a`` sorts before file ``a.png``)."""
    return rel.split("/")


class Item(NamedTuple):
    """One file to score: its output name, its path, and a reason when it cannot be read.

    ``rel`` is the path relative to the root as :func:`softmax_core.escaping.unambiguous`
    shows it (bytes that are not UTF-8, control characters and backslashes escaped, so
    two files never share a row's name): what every row, summary line and terminal
    shows. ``path`` is the real one, to open."""

    rel: str
    path: str
    problem: str | None = None


class Source(Protocol):
    """What scoring walks: :class:`Discovery` (a local path) or an object store's prefix
    (``registry.objects.ObjectSource``). Iterating it yields the items in the walk's order
    and fills in what was skipped; ``reader`` opens the items (None: local files)."""

    skipped: int
    skipped_by_ext: collections.Counter[str]
    loops: int

    @property
    def reader(self) -> Reader | None: ...

    def __iter__(self) -> Iterator[Item]: ...


class Discovery:
    """The image files under a path, in a deterministic order; iterate it (once or more).

    A folder is walked recursively; within each folder, entries are sorted by name and
    sub-folders are visited where they sort, so the order is that of the relative paths'
    components. Symlinked folders are followed, each real folder at most once: a link to a
    folder the walk reaches under its own name (inside PATH, through no hidden folder) is
    skipped wherever it sorts, and so is a second link to a folder already walked or a
    loop (each counted in ``loops``). Files whose extension (any case) is not in
    ``softmax_core.images.IMAGE_EXTENSIONS`` are counted in ``skipped`` (by extension in
    ``skipped_by_ext``; hidden files and folders, ``.*``, as :data:`HIDDEN`). A file
    named explicitly as PATH is scored whatever its extension.

    Raises DataNotFoundError (exit 3) when the path does not exist and InvalidInputError
    (exit 2) when it is neither a file nor a folder. Hidden files (``.*``) are skipped.
    """

    reader: Reader | None = None  # local files: opened where they are

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            raise DataNotFoundError(
                f"{self.root} does not exist; expected an image file or a folder of images"
            ) from None
        except OSError as e:
            raise InvalidInputError(f"{self.root} cannot be read: {e.strerror or e}") from None
        self.is_dir = stat.S_ISDIR(st.st_mode)
        if not self.is_dir and not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(
                f"{self.root} is not a regular file or a folder; expected an image or a folder"
            )
        self.skipped = 0
        self.skipped_by_ext: collections.Counter[str] = collections.Counter()
        self.loops = 0

    def __iter__(self) -> Iterator[Item]:
        self.skipped, self.loops = 0, 0
        self.skipped_by_ext = collections.Counter()
        if not self.is_dir:
            yield Item(unambiguous(self.root.name), str(self.root))
            return
        yield from self._walk()

    def _walk(self) -> Iterator[Item]:
        root = str(self.root)
        real_root = os.path.realpath(root)
        st = os.stat(root)
        seen = {(st.st_dev, st.st_ino)}
        # A stack of (folder path, prefix, iterator over its sorted entries): no recursion,
        # so deep trees cannot overflow; each open folder holds only its names.
        listing, problem = self._list(root)
        if problem is not None:
            raise InvalidInputError(f"{self.root}: {problem}")
        # Folder paths end with a separator, so a child's path is a concatenation.
        stack: list[tuple[str, str, Iterator[tuple[str, EntryKind]]]] = [
            (os.path.join(root, ""), "", iter(listing))
        ]
        while stack:
            folder, prefix, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            name, kind = entry
            path = folder + name
            rel = prefix + unambiguous(name)
            if kind in (EntryKind.FOLDER, EntryKind.FOLDER_LINK):
                try:
                    sub = os.stat(path)
                except OSError as e:
                    yield Item(rel + "/", path, f"unreadable folder: {e.strerror or e}")
                    continue
                key = (sub.st_dev, sub.st_ino)
                if key in seen or (kind == EntryKind.FOLDER_LINK and _walked(path, real_root)):
                    self.loops += 1
                    continue
                seen.add(key)
                listing, problem = self._list(path)
                if problem is not None:
                    yield Item(rel + "/", path, problem)
                    continue
                stack.append((path + os.sep, rel + "/", iter(listing)))
            else:
                yield Item(rel, path, _KIND_PROBLEMS.get(kind))

    def _list(self, folder: str) -> tuple[list[tuple[str, EntryKind]], str | None]:
        """Sorted (name, kind) pairs of a folder's images and sub-folders (other files are
        counted as skipped here, not kept), or a reason it cannot be listed."""
        out: list[tuple[str, EntryKind]] = []
        skipped: list[str] = []
        try:
            with os.scandir(folder) as it:
                for e in it:
                    kind = _kind_of(e)
                    if kind == EntryKind.SKIP:
                        skipped.append(ext_label(e.name))
                    else:
                        out.append((e.name, kind))
        except OSError as e:
            return [], f"unreadable folder: {e.strerror or e}"
        self.skipped += len(skipped)
        self.skipped_by_ext.update(skipped)
        out.sort()
        return out, None


def _walked(link: str, real_root: str) -> bool:
    """Whether the folder ``link`` names is one the walk reaches under its own name: inside
    the root (``real_root``, resolved), through no hidden folder (those are skipped)."""
    rel = os.path.relpath(os.path.realpath(link), real_root)
    parts = rel.split(os.sep)
    return rel == os.curdir or (parts[0] != os.pardir and not any(p[:1] == "." for p in parts))


class EntryKind(enum.Enum):
    """What a folder entry is, for the walk."""

    IMAGE = "image"
    FOLDER = "folder"
    FOLDER_LINK = "symlinked folder"
    SKIP = "skip"  # not an image by its extension, or a hidden file
    NOT_REGULAR = "not regular"
    BROKEN_LINK = "broken link"
    LOOPED_LINK = "looped link"


_KIND_PROBLEMS = {
    EntryKind.NOT_REGULAR: "unreadable: not a regular file",
    EntryKind.BROKEN_LINK: f"unreadable: {images.BROKEN_LINK}",
    EntryKind.LOOPED_LINK: f"unreadable: {images.LOOPED_LINK}",
}


def _kind_of(entry: os.DirEntry[str]) -> EntryKind:
    """Classify a folder entry, with no system call for plain files and folders."""
    try:
        if entry.name.startswith("."):
            return EntryKind.SKIP  # hidden: AppleDouble "._x.png", editors' temporary files
        if entry.is_dir():
            return EntryKind.FOLDER_LINK if entry.is_symlink() else EntryKind.FOLDER
        if not images.is_image_name(entry.name):
            return EntryKind.SKIP
        if entry.is_file():
            return EntryKind.IMAGE
        if entry.is_symlink():
            os.stat(entry.path)  # a missing or looping target raises
        return EntryKind.NOT_REGULAR
    except OSError as e:
        if not images.is_image_name(entry.name):
            return EntryKind.SKIP
        if e.errno == errno.ENOENT:
            return EntryKind.BROKEN_LINK
        return EntryKind.LOOPED_LINK if e.errno == errno.ELOOP else EntryKind.NOT_REGULAR


HIDDEN = "(hidden)"  # how hidden files and folders are counted in ``skipped_by_ext``


def ext_label(name: str) -> str:
    """How a skipped file is counted in ``skipped_by_ext``: :data:`HIDDEN` for a hidden
    one (``.DS_Store``, ``._x.jpg``, ``.git``), else its extension, lower case."""
    if name.startswith("."):
        return HIDDEN
    ext = os.path.splitext(name)[1].lower()
    return ext if ext and len(ext) <= 12 else "(none)" if not ext else "(other)"


def skipped_words(skipped: int, skipped_by_ext: Mapping[str, int]) -> tuple[str, str]:
    """The ``skipped`` files in words, the hidden ones (``skipped_by_ext[HIDDEN]``) apart,
    each "" when there are none: ``("2 hidden files", "1 file that is not an image
    (.txt 1)")``."""
    hidden = skipped_by_ext.get(HIDDEN, 0)
    others = sorted(
        ((e, c) for e, c in skipped_by_ext.items() if e != HIDDEN and c),
        key=lambda ec: (-ec[1], ec[0]),
    )
    n = skipped - hidden
    kinds = ", ".join(f"{e} {c:,}" for e, c in others[:8])
    what = plural(n, "file that is not an image", "files that are not images")
    return (
        f"{hidden:,} hidden {plural(hidden, 'file')}" if hidden else "",
        f"{n:,} {what} ({kinds})" if n else "",
    )


def no_images_error(root: str | Path, skipped_by_ext: Mapping[str, int]) -> DataNotFoundError:
    """Exit 3: PATH holds no image file at all."""
    exts = ", ".join(sorted(e.lstrip(".") for e in images.IMAGE_EXTENSIONS))
    hidden = skipped_by_ext.get(HIDDEN, 0)
    others = sum(skipped_by_ext.values()) - hidden
    said = [f"{hidden:,} hidden {plural(hidden, 'file')}"] if hidden else []
    said += [f"{others:,} other {plural(others, 'file')}"] if others or not hidden else []
    return DataNotFoundError(
        f"no images in {root}: {' and '.join(said)} skipped; image extensions are {exts} (any case)"
    )


def count_images(path: str | Path) -> int:
    """How many rows ``score_path`` will write (a walk without decoding; for progress bars)."""
    return sum(1 for _ in Discovery(path))
