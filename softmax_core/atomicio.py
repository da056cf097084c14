"""The one way softmax-pipe writes a file: a temporary file in the same folder, fsync, rename.

A reader sees the old content or the new, never half of it; a crash or Ctrl-C leaves at
most a temporary file named ``.~tmp-<name>.<random>`` (``~`` is no registry key character,
so store listings never show one), which :func:`sweep_temp` removes once it is old.

Targets that are not plain files are handled the way a user expects of ``> file``:

- a symlink is followed, and its *target* is replaced (the link stays a link);
- a device, FIFO, socket or pipe (``/dev/null``, a named pipe, ``/dev/stdout`` or
  ``/dev/fd/N`` when they stand for a pipe) is written through, in place: renaming over it
  would replace the device by a regular file;
- so are the process's own descriptors by name (``/dev/stdout``, ``/dev/fd/N``) when the
  shell opened a regular file for them (``> f``, ``>> f``), appending: ``>>`` appends;
- a folder is refused, and so is a name ending in ``/`` (it names a folder, even one
  not made yet: pathlib would drop the slash and write a file of the folder's name).

:func:`check_output` is the one check of every command's output option, before the work
that produces it: a folder is refused, and so is a file the command reads (``train -o``
over its ``--source``, ``report -o`` over the model, ``score -o`` over the model), exit 2.
:func:`prepare_output` runs it, then makes the missing folders and a file in them: a
folder that cannot be made or written is an error at once, not after the work; the
folders it made go again, and the write makes them (:func:`atomic_open`), so a command
that fails leaves no empty folder behind. :func:`folders_undone` does the same for a
command that makes a folder as its output (``registry pull --out DIR/``).

Pure stdlib: every layer may use it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from softmax_core.errors import InvalidInputError, StorageError

TMP_MARK = ".~tmp-"


def temp_path(path: Path) -> Path:
    """The temporary name for ``path``: same folder, hidden, unique."""
    return path.parent / f"{TMP_MARK}{path.name}.{uuid.uuid4().hex[:12]}"


def is_temp_name(name: str) -> bool:
    return name.startswith(TMP_MARK)


def resolve_target(path: str | Path, *, shown: str | None = None) -> tuple[Path, bool]:
    """Where a write to ``path`` lands, and whether it must be written through in place.

    Follows symlinks (a dangling link's target is created). Returns ``(target, in_place)``;
    ``in_place`` is True for an existing device, FIFO, socket or pipe, which is then written
    through ``path`` itself: ``/dev/stdout`` on a pipe resolves to a name like
    ``pipe:[1234]`` that no one can open, while opening ``/dev/stdout`` reaches the pipe.
    A folder is refused (InvalidInputError naming ``shown``, else ``path``), and so is a
    name ending in ``/`` given as a string: it names a folder, made or not.
    """
    if isinstance(path, str) and path.endswith(("/", os.sep)):
        raise InvalidInputError(
            f"{shown or path} names a folder (it ends in '/'); expected a file name"
        )
    path = Path(path)
    try:
        st = os.stat(path)  # follows every link, the kernel's /proc/self/fd/N ones too
        if _own_descriptor(path) and not stat.S_ISDIR(st.st_mode):
            return path, True
    except (FileNotFoundError, NotADirectoryError):
        return _followed(path), False
    except OSError as e:
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"{shown or path} is a folder; expected a file name")
    if not stat.S_ISREG(st.st_mode):
        return path, True
    return _followed(path), False


def _not_a_dash(path: str | Path) -> None:
    if str(path) == "-":  # stdout, for score's rows (softmax_core.requests.Output) only
        raise InvalidInputError(
            "'-' (stdout) is for score's rows only; name a file for this output"
        )


# The process's own descriptors by name: what the shell opened for it (``-o /dev/stdout >
# f``, ``>> f``, ``-o /dev/fd/3 3> f``). Written through, appending, even to a regular file:
# replacing it would not reach the shell's file, and truncating would undo ``>>``.
_OWN = re.compile(r"/dev/(stdout|stderr|fd/\d+)|/proc/self/fd/\d+")


def _own_descriptor(path: Path) -> bool:
    return _OWN.fullmatch(str(path)) is not None


def _followed(path: Path) -> Path:
    """The file a symlink points to (a regular file's or a missing name's), else ``path``."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def writes_in_place(path: str | Path) -> bool:
    """Whether ``path`` is an existing device, FIFO, socket or pipe, or names one of the
    process's own descriptors (written through, in place): no file can be put beside it.
    False for anything else, or what cannot be told."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    if stat.S_ISDIR(st.st_mode):
        return False
    return not stat.S_ISREG(st.st_mode) or _own_descriptor(Path(path))


def check_folder_path(folder: Path, *, what: str = "the folder") -> None:
    """Refuse a file (or a broken symbolic link) where ``folder`` or one of its parents
    should be a folder: an InvalidInputError (exit 2) naming it and ``what`` it was for;
    touches nothing."""
    for existing in (folder, *folder.parents):
        if os.path.lexists(existing):
            under = "" if existing == folder else f" (for {what} {folder})"
            if not os.path.exists(existing):  # mkdir would say "File exists"
                raise InvalidInputError(
                    f"{existing} is a broken symbolic link, not a folder{under}"
                )
            if not os.path.isdir(existing):
                raise InvalidInputError(f"{existing} is a file, not a folder{under}")
            break


def make_folder(folder: Path) -> None:
    """Make ``folder`` and its missing parents (``mkdir -p``), with one line on failure: a
    file in the way is an InvalidInputError (exit 2, :func:`check_folder_path`), a folder
    that cannot be made (no permission, read-only file system) a StorageError naming it
    (exit 4)."""
    check_folder_path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the folder {folder}: {e.strerror or e}") from e


def _missing(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist, deepest first."""
    return list(itertools.takewhile(lambda p: not os.path.lexists(p), (folder, *folder.parents)))


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders ``made`` (deepest first), each only while it is still empty."""
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def folders_undone(folder: Path) -> Iterator[None]:
    """Around a command's work that makes ``folder`` (:func:`make_folder`) before it may
    fail: when the block fails, the folders on the way to ``folder`` that were missing on
    entry are removed again, deepest first, each only while still empty: a failed command
    leaves nothing it made, and nothing else is touched."""
    missing = _missing(folder)
    try:
        yield
    except BaseException:
        _remove_empty(missing)
        raise


Reads = Mapping[str, "str | Path | None"]  # what a command reads, by how a user calls it


def check_output(
    path: str | Path, *, option: str = "", reads: Reads | None = None
) -> tuple[Path, bool]:
    """Refuse, before any work and without touching anything, an output ``path`` that
    cannot be a file written by :func:`atomic_open`; return where it lands and whether it
    is written through in place (:func:`resolve_target`: a device, FIFO or pipe, or a
    descriptor's name, is taken as it is).

    Each refusal is one InvalidInputError (exit 2) naming ``option`` (``--out``): an
    empty name, ``-`` (only score's rows go to stdout), a folder or a name ending in
    ``/``, and a file the command reads, given in ``reads`` as ``{"the model file": path}``
    (None, a registry reference or a missing file is skipped; links and hard links are
    seen through).
    Give ``path`` as the user typed it: a ``Path`` has lost a trailing slash (and an
    empty name, which it reads as ``.``).
    """
    if str(path) == "":  # before Path(''), the current folder: "--out  is a folder"
        raise InvalidInputError(f"{option or 'the output path'} is empty; expected a file name")
    _not_a_dash(path)
    shown = f"{option} {path}" if option else str(path)
    for what, read in (reads or {}).items():
        if read is not None and _same_file(path, read):
            raise InvalidInputError(f"{shown} is {what}; choose another name")
    return resolve_target(path, shown=shown)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either is missing (a new output, a registry reference)
        return False


def prepare_output(path: str | Path, *, option: str = "", reads: Reads | None = None) -> bool:
    """Check, before the work that produces it, that a file can be written at ``path`` as
    :func:`atomic_open` writes it; return whether it is written through in place.

    :func:`check_output` first (exit 2: a folder, ``-``, a file being read); then the
    missing folders on the way are made (:func:`make_folder`) and a temporary file is
    created and removed where the file will be: a folder that cannot be written is a
    StorageError naming ``path`` (exit 4) now rather than after the work. The folders it
    made are removed again (the write makes them): a command whose work then fails
    leaves no empty folder.
    """
    target, in_place = check_output(path, option=option, reads=reads)
    shown = Path(path)
    if in_place:
        return True
    missing = _missing(target.parent)
    try:
        make_folder(target.parent)
        probe = temp_path(target)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as e:
        raise StorageError(f"cannot write {shown}: {e.strerror or e}") from e
    finally:
        _remove_empty(missing)
    return False


def write_temp(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` into a fresh temporary file beside ``path``, fsynced; return its path.

    For callers that finish the write themselves (a hard link for only-if-absent).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing; the content appears there only when the block succeeds.

    ``mode`` is ``"wb"`` or ``"w"`` (text: ``encoding`` defaults to UTF-8). On any
    exception the temporary file is removed and ``path`` is untouched. Missing folders on
    the way are made (:func:`make_folder`). Errors of the file system (full disk,
    read-only folder) are a StorageError naming ``path``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    _not_a_dash(path)
    shown = Path(path)
    target, in_place = resolve_target(shown)
    enc = (encoding or "utf-8") if mode == "w" else None
    nl = newline if mode == "w" else None
    if in_place:  # appending: a regular file behind /dev/stdout may be the shell's ``>>``
        try:
            with open(target, mode.replace("w", "a"), encoding=enc, newline=nl) as stream:
                yield stream
        except OSError as e:
            raise StorageError(f"cannot write {shown}: {e.strerror or e}") from e
        return
    make_folder(target.parent)
    tmp = temp_path(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as e:
        raise StorageError(f"cannot write {shown}: {e.strerror or e}") from e
    try:
        with open(fd, mode, encoding=enc, newline=nl) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as e:
        raise StorageError(f"cannot write {shown}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write all of ``data`` to ``path`` atomically (see :func:`atomic_open`); return ``path``."""
    with atomic_open(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
    return Path(path)


def atomic_save(path: str | Path, save: Callable[[IO[bytes]], Any]) -> Any:
    """Call ``save(stream)`` on a binary stream that becomes ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        return save(f)


def temp_dir(path: Path) -> Path:
    """A fresh temporary folder beside ``path`` (same name pattern), for a whole-folder rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.mkdir()
    return tmp


def sweep_temp(folder: Path, *, older_than: float, recursive: bool = False) -> list[Path]:
    """Delete temporary files and folders (``.~tmp-*``) older than ``older_than`` seconds.

    Temporary names are left by crashed writers only: a live writer renames its own within
    seconds, which is why only old ones go. Returns what was removed.
    """
    now = time.time()
    removed: list[Path] = []
    for dirpath, dirs, files in os.walk(folder):
        for name in [*files, *dirs]:
            if not is_temp_name(name):
                continue
            p = Path(dirpath) / name
            with contextlib.suppress(OSError):
                if now - p.lstat().st_mtime <= older_than:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()
                removed.append(p)
        dirs[:] = [d for d in dirs if recursive and not is_temp_name(d)]
    return removed
