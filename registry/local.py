"""The local-folder store: atomic renames, ``link(2)`` for only-if-absent, ``flock`` for
compare-and-swap (POSIX). Every key stays inside the root: a key whose path passes
through a symbolic link below it is refused, read or write (the root itself may be a link).
Temporary files use :mod:`softmax_core.atomicio`'s mark, which is
no key character, so they never show up in listings. As on S3, a folder lives only while
it holds a key: deleting a folder's last key removes the folder (and its parents, up to
the root, that it leaves empty)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from registry.names import is_valid_key, validate_key, validate_prefix
from registry.store import Identity, ObjectInfo, Store, check_conditions
from softmax_core import settings
from softmax_core.atomicio import TMP_MARK, check_folder_path, fsync_dir, sweep_temp, write_temp
from softmax_core.errors import (
    DataNotFoundError,
    InvalidInputError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)

log = logging.getLogger(__name__)
_TMP_MARK = TMP_MARK
_LOCK_NAME = ".~lock"
_DENIED = (errno.EACCES, errno.EPERM)  # the folder's rights, not its health


class LocalStore(Store):
    """A folder: atomic renames, ``link(2)`` for only-if-absent, ``flock`` for compare-and-swap."""

    # The kernel's link(2) and flock(2), not a server's: not checked before writing
    # (`registry check` still proves a folder when asked, e.g. on a network filesystem).
    needs_check = False

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)
        if self.root.exists() and not self.root.is_dir():  # a usage mistake, not storage's
            what = "a file, not a registry folder" if self.root.is_file() else "not a folder"
            raise InvalidInputError(
                f"local registry {self.uri} is {what}; give a folder, file:///path or "
                "s3://bucket/prefix"
            )
        check_folder_path(self.root, what="the registry")  # a/file/registry

    def check_exists(self) -> None:
        if not self.root.is_dir():
            raise DataNotFoundError(
                f"no registry at {self.uri}: the folder does not exist (publishing creates "
                "it); check --registry / SOFTMAX_PIPE_REGISTRY"
            )

    # paths ---------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self._inside(validate_key(key).split("/"), key)

    def _link_error(self, path: Path, key: str) -> StorageError:
        rel = path.relative_to(self.root).as_posix()
        return StorageError(
            f"local registry {self.uri}: {rel} is a symbolic link, and a registry's "
            f"keys stay inside its folder: {key!r} is neither read nor written "
            f"through it; remove the link ({path}) and check where it pointed"
        )

    def _inside(self, parts: list[str], key: str) -> Path:
        """``root/parts...``, refused when one of its components below the root is a
        symbolic link: whoever may create a folder (a trainer's ``models/<name>/``) could
        otherwise point ``aliases`` elsewhere and have the registry write there. One
        ``lstat`` per existing component; a missing one ends the walk."""
        path = self.root
        for part in parts:
            path = path / part
            try:
                st = os.lstat(path)
            except OSError:  # missing (created as a folder by the write), or reported there
                break
            if stat.S_ISLNK(st.st_mode):
                raise self._link_error(path, key)
        return self.root.joinpath(*parts)

    def url(self, key: str, *, expires: int, content_type: str | None = None) -> str | None:
        return self._path(key).as_uri()

    def identity(self) -> Identity:
        """The local user this process writes as (a folder knows no other identity)."""
        import pwd

        uid = os.geteuid()
        try:
            return Identity(pwd.getpwuid(uid).pw_name, "user")
        except KeyError:
            return Identity(f"uid {uid}", "user")

    def _io_error(self, what: str, key: str, e: OSError) -> StorageError | PermissionDeniedError:
        """An OSError as one of ours: EACCES/EPERM are the folder's rights (exit 77), the
        rest a storage failure (exit 4)."""
        if e.errno in _DENIED:
            hint = f"the folder's owner and mode decide who may {what} it, not a key"
            return PermissionDeniedError(
                f"local registry {self.uri}: this user may not {what} {key!r} "
                f"({e.strerror or e}); {hint}",
                key=key,
                write=what in ("write", "delete"),
                reason=e.strerror or errno.errorcode.get(e.errno or 0, "denied"),
                hint=hint,
            )
        return StorageError(
            f"local registry {self.uri}: cannot {what} {key!r} ({e.strerror or e}); "
            "check that the folder exists, is writable and the disk is not full"
        )

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            data = _read_no_follow(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{key!r} is not in {self.uri}") from None
        except OSError as e:
            raise self._io_error("read", key, e) from e
        return data, hashlib.md5(data, usedforsecurity=False).hexdigest()

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            data = _read_no_follow(path)
            st = path.lstat()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as e:
            raise self._io_error("read", key, e) from e
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return ObjectInfo(key=key, size=len(data), last_modified=st.st_mtime, etag=etag)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(self._walk(prefix, etags=True))

    def list_keys(self, prefix: str) -> Iterator[str]:
        return iter([info.key for info in self._walk(prefix, etags=False)])

    def _walk(self, prefix: str, *, etags: bool) -> list[ObjectInfo]:
        """Objects under ``prefix`` sorted by key; ETags (md5 of the content) when asked."""
        validate_prefix(prefix)
        base = self._inside(prefix.rstrip("/").split("/"), prefix) if prefix else self.root
        found: list[ObjectInfo] = []
        if not base.is_dir():
            return found
        try:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if _TMP_MARK not in d and d != _LOCK_NAME]
                for d in dirnames:  # never skipped: gc would take its objects for gone
                    if os.path.islink(os.path.join(dirpath, d)):
                        raise self._link_error(Path(dirpath, d), prefix)
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for fn in filenames:
                    key = fn if rel_dir == "." else f"{rel_dir}/{fn}"
                    if not is_valid_key(key):
                        continue  # temp files, lock file, foreign junk
                    info = self._listed(Path(dirpath, fn), key, etags=etags)
                    if info is not None:  # None: deleted while we walked
                        found.append(info)
        except OSError as e:
            raise self._io_error("list", prefix, e) from e
        found.sort(key=lambda i: i.key)
        return found

    def _listed(self, path: Path, key: str, *, etags: bool) -> ObjectInfo | None:
        """The listing's record of the object at ``path`` (None: deleted meanwhile); a
        symbolic link is refused, not skipped (gc would take what it hides for gone)."""
        try:
            if etags:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with open(fd, "rb") as f:
                    st = os.fstat(f.fileno())
                    etag: str | None = hashlib.file_digest(f, "md5").hexdigest()
            else:
                st, etag = os.lstat(path), None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._link_error(path, key) from None
            raise
        if stat.S_ISLNK(st.st_mode):
            raise self._link_error(path, key)
        return ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime, etag=etag)

    def children(self, prefix: str) -> Iterator[str]:
        base = (
            self._inside(validate_prefix(prefix).rstrip("/").split("/"), prefix)
            if prefix
            else self.root
        )
        if not base.is_dir():
            return iter(())
        names = []
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.is_symlink() and is_valid_key(entry.name):  # never skipped (gc)
                raise self._link_error(Path(entry.path), f"{prefix}{entry.name}")
            if (
                entry.is_dir(follow_symlinks=False)
                and is_valid_key(entry.name)
                and self._holds_object(Path(entry.path))
            ):
                names.append(entry.name)
        return iter(names)

    def _holds_object(self, folder: Path) -> bool:
        for dirpath, dirs, filenames in os.walk(folder):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in (*dirs, *filenames):  # a link is refused, never taken for empty
                if os.path.islink(os.path.join(dirpath, name)):
                    raise self._link_error(Path(dirpath, name), f"{rel}/{name}")
            if any(is_valid_key(f"{rel}/{fn}") for fn in filenames):
                return True
        return False

    # writes --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            started, said = time.monotonic(), False
            while True:  # every wait bounded: a stuck holder is one line, not a hang
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                if waited >= settings.REGISTRY_LOCK_WAIT:
                    raise StorageError(
                        f"the registry lock {path} stayed held by another process for "
                        f"{waited:.0f} s; try again once the other softmax-pipe command on "
                        f"{self.uri} has ended (a stopped one holds it until it is killed)"
                    )
                if not said and waited >= settings.REGISTRY_LOCK_SAY:
                    log.warning(
                        "waiting for the registry lock held by another softmax-pipe process "
                        "(%s; giving up after %.0f s)",
                        path,
                        settings.REGISTRY_LOCK_WAIT,
                    )
                    said = True
                time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        check_conditions(if_none_match, if_match)
        path = self._path(key)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            try:
                tmp = write_temp(path, data)
            except FileNotFoundError:  # a delete removed the folder, emptied, as we made it
                tmp = write_temp(path, data)
        except OSError as e:
            raise self._io_error("write", key, e) from e
        try:
            if if_none_match:
                self._create_exclusive(tmp, path, key)
            elif if_match is not None:
                with self._lock():
                    try:
                        current = _read_no_follow(path)
                    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                        raise PreconditionFailedError(
                            f"{key!r} does not exist in {self.uri}; cannot replace it"
                        ) from None
                    if hashlib.md5(current, usedforsecurity=False).hexdigest() != if_match:
                        raise PreconditionFailedError(
                            f"{key!r} in {self.uri} changed (ETag differs)"
                        )
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)
            fsync_dir(path.parent)
        except OSError as e:
            raise self._io_error("write", key, e) from e
        finally:
            tmp.unlink(missing_ok=True)
        return etag

    def _create_exclusive(self, tmp: Path, path: Path, key: str) -> None:
        try:
            os.link(tmp, path)  # atomic, fails if the name exists: O_EXCL for a whole file
            return
        except FileExistsError:
            raise PreconditionFailedError(f"{key!r} already exists in {self.uri}") from None
        except OSError as e:
            if e.errno not in (
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
                errno.EXDEV,
                errno.EMLINK,
            ):
                raise
        # Filesystems without hard links: the registry lock makes check-and-rename atomic
        # for every writer that goes through LocalStore.
        with self._lock():
            if path.exists():
                raise PreconditionFailedError(f"{key!r} already exists in {self.uri}")
            os.replace(tmp, path)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise self._io_error("delete", key, e) from e
        self._remove_empty(path.parent)

    def _remove_empty(self, folder: Path) -> None:
        """Remove ``folder`` and its parents below the root while they are empty: a folder
        is no key (S3 keeps none), and `registry check`'s ``checks/<run id>/`` must not
        stay behind. A folder holding anything, a writer's temporary file included, stays;
        a writer whose new folder goes between its ``mkdir`` and its write makes it again
        (:meth:`put`)."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:  # not empty, gone already, or not ours to remove: leave it
                return
            folder = folder.parent

    def sweep(self, older_than: float) -> list[str]:
        """Remove temporary files of crashed writers modified before ``older_than`` (epoch s)."""
        if not self.root.is_dir():
            return []
        age = max(0.0, time.time() - older_than)
        removed = sweep_temp(self.root, older_than=age, recursive=True)
        return [p.relative_to(self.root).as_posix() for p in removed]


def _read_no_follow(path: Path) -> bytes:
    """``path``'s bytes; a symbolic link there (made since :meth:`LocalStore._inside`
    looked) is refused by the kernel (``O_NOFOLLOW``: ELOOP), not followed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as f:
        return f.read()
