"""A tiny key/value interface with conditional writes, over a local folder or S3.

Every store offers: get (bytes + ETag), head, put (plain, only-if-absent, or only-if the
current ETag matches), list a prefix (paginated), list immediate children, delete.
Keys are validated (``registry.names.validate_key``) before any I/O, so nothing can
escape the store's root.

- :class:`LocalStore`: a folder. Writes go to a temporary file that is renamed into place
  (readers never see half a file). Only-if-absent is ``link(2)``, which like ``O_EXCL``
  fails when the name exists, but publishes a complete file. Compare-and-swap holds an
  exclusive ``flock`` on ``<root>/.~lock`` while it compares and renames. ETag = md5 hex.
- :class:`S3Store`: boto3, ``IfNoneMatch="*"`` / ``IfMatch=etag`` on PutObject (AWS S3,
  MinIO and other S3-compatible servers). Configuration follows boto3: the credential chain,
  profiles, region, ``AWS_ENDPOINT_URL``; bounded retries (``standard`` mode, 3 attempts
  unless ``AWS_MAX_ATTEMPTS`` / ``AWS_RETRY_MODE`` or the profile say otherwise) and short
  connect timeouts, so a dead endpoint fails in seconds. Credentials are never printed.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import logging
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from registry.names import is_valid_key, validate_key, validate_prefix
from softmax_core.errors import (
    InvalidInputError,
    InvalidNameError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_TMP_MARK = ".~tmp-"  # '~' is not a key character: temp files never show up in listings
_LOCK_NAME = ".~lock"


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD tells about one object."""

    key: str
    size: int
    last_modified: float  # POSIX seconds (the server's clock for S3)
    etag: str | None = None


class Store(ABC):
    """Keys -> bytes with conditional writes. Keys are relative to the store's root."""

    uri: str

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag; ObjectNotFoundError when absent."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, last-modified time and ETag, or None when absent."""

    def etag(self, key: str) -> str | None:
        info = self.head(key)
        return info.etag if info else None

    @abstractmethod
    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Write ``data``; return the new ETag.

        ``if_none_match``: only if the key is absent. ``if_match``: only if the key exists
        with this ETag. A failed condition raises PreconditionFailedError and changes nothing;
        its ``after_retry`` attribute is true when the store retried the request, so the
        object may be the caller's own earlier attempt.
        """

    @abstractmethod
    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` ("" or ending in '/'), in key order, page by page."""

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, in key order."""
        for info in self.list_info(prefix):
            yield info.key

    @abstractmethod
    def children(self, prefix: str) -> Iterator[str]:
        """Names of the 'folders' directly under ``prefix`` that hold at least one object."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the key; removing an absent key is not an error."""

    def get_many(self, keys: Sequence[str]) -> builtins.list[tuple[bytes, str] | None]:
        """``get`` for many keys (None for absent ones), in order; stores may parallelise."""
        out: builtins.list[tuple[bytes, str] | None] = []
        for key in keys:
            try:
                out.append(self.get(key))
            except ObjectNotFoundError:
                out.append(None)
        return out

    def sweep(self, older_than: float) -> builtins.list[str]:
        """Remove debris of crashed writers (temporary files) older than the POSIX time given."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections (optional)."""


def _check_conditions(if_none_match: bool, if_match: str | None) -> None:
    if if_none_match and if_match is not None:
        raise InvalidInputError("put: use either if_none_match or if_match, not both")


# --- local folder -------------------------------------------------------------------------


class LocalStore(Store):
    """A folder: atomic renames, ``link(2)`` for only-if-absent, ``flock`` for compare-and-swap."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    # paths ---------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _io_error(self, what: str, key: str, e: OSError) -> StorageError:
        return StorageError(
            f"local registry {self.uri}: cannot {what} {key!r} ({e.strerror or e}); "
            "check that the folder exists, is writable and the disk is not full"
        )

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{key!r} is not in {self.uri}") from None
        except OSError as e:
            raise self._io_error("read", key, e) from e
        return data, hashlib.md5(data, usedforsecurity=False).hexdigest()

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
            st = path.stat()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as e:
            raise self._io_error("read", key, e) from e
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return ObjectInfo(key=key, size=len(data), last_modified=st.st_mtime, etag=etag)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(self._walk(prefix, etags=True))

    def list(self, prefix: str) -> Iterator[str]:
        return iter([info.key for info in self._walk(prefix, etags=False)])

    def _walk(self, prefix: str, *, etags: bool) -> builtins.list[ObjectInfo]:
        """Objects under ``prefix`` sorted by key; ETags (md5 of the content) when asked."""
        validate_prefix(prefix)
        base = self.root.joinpath(*prefix.rstrip("/").split("/")) if prefix else self.root
        found: builtins.list[ObjectInfo] = []
        if not base.is_dir():
            return found
        try:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if _TMP_MARK not in d and d != _LOCK_NAME]
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for fn in filenames:
                    key = fn if rel_dir == "." else f"{rel_dir}/{fn}"
                    if not is_valid_key(key):
                        continue  # temp files, lock file, foreign junk
                    path = os.path.join(dirpath, fn)
                    try:
                        if etags:
                            with open(path, "rb") as f:
                                st = os.fstat(f.fileno())
                                etag: str | None = hashlib.file_digest(f, "md5").hexdigest()
                        else:
                            st, etag = os.stat(path), None
                    except FileNotFoundError:
                        continue  # deleted while we walked
                    found.append(
                        ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime, etag=etag)
                    )
        except OSError as e:
            raise self._io_error("list", prefix, e) from e
        found.sort(key=lambda i: i.key)
        return found

    def children(self, prefix: str) -> Iterator[str]:
        base = (
            self.root.joinpath(*validate_prefix(prefix).rstrip("/").split("/"))
            if prefix
            else self.root
        )
        if not base.is_dir():
            return iter(())
        names = []
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.is_dir() and is_valid_key(entry.name) and self._holds_object(Path(entry.path)):
                names.append(entry.name)
        return iter(names)

    def _holds_object(self, folder: Path) -> bool:
        for dirpath, _dirs, filenames in os.walk(folder):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            if any(is_valid_key(f"{rel}/{fn}") for fn in filenames):
                return True
        return False

    # writes --------------------------------------------------------------------------
    def _write_temp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{_TMP_MARK}{path.name}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        _check_conditions(if_none_match, if_match)
        path = self._path(key)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            tmp = self._write_temp(path, data)
        except OSError as e:
            raise self._io_error("write", key, e) from e
        try:
            if if_none_match:
                self._create_exclusive(tmp, path, key)
            elif if_match is not None:
                with self._lock():
                    try:
                        current = path.read_bytes()
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
            _fsync_dir(path.parent)
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
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise self._io_error("delete", key, e) from e

    def sweep(self, older_than: float) -> builtins.list[str]:
        removed: builtins.list[str] = []
        if not self.root.is_dir():
            return removed
        for dirpath, _dirs, filenames in os.walk(self.root):
            for fn in filenames:
                if not fn.startswith(_TMP_MARK):
                    continue
                p = Path(dirpath) / fn
                with contextlib.suppress(FileNotFoundError):
                    if p.stat().st_mtime < older_than:
                        p.unlink()
                        removed.append(p.relative_to(self.root).as_posix())
        return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on every filesystem; the rename itself is atomic
    finally:
        os.close(fd)


# --- S3 -----------------------------------------------------------------------------------

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key id is unknown to the server",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "InvalidToken": "the session token is invalid",
    "ExpiredToken": "the session token has expired",
    "TokenRefreshRequired": "the session token must be refreshed",
    "InvalidSecurity": "the security token is invalid",
}
_CHECK_CREDENTIALS = (
    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), "
    "or AWS_PROFILE and its entry in the credentials file"
)


def validate_bucket(bucket: str) -> str:
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise InvalidNameError(
            f"S3 bucket name {bucket!r} is not valid: 3-63 characters of lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit"
        )
    return bucket


def redact_url(url: str | None) -> str:
    """An endpoint URL without any user:password part, for messages."""
    if not url:
        return "the default AWS endpoint"
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class S3Store(Store):
    """Objects under ``s3://bucket/prefix/`` through boto3, with S3 conditional writes."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        page_size: int = 1000,
        workers: int = 16,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = validate_bucket(bucket)
        prefix = prefix.strip("/")
        self.prefix = f"{validate_key(prefix)}/" if prefix else ""
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.page_size = page_size
        self.workers = max(1, workers)
        self.client = client or self._make_client(endpoint_url, connect_timeout, read_timeout)
        self.endpoint = redact_url(self.client.meta.endpoint_url)

    def _make_client(
        self, endpoint_url: str | None, connect_timeout: float, read_timeout: float
    ) -> S3Client:
        import boto3
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        try:
            core = botocore.session.get_session()
            retries: dict[str, Any] = {}
            if core.get_config_variable("max_attempts") is None:
                retries["total_max_attempts"] = 3
            if core.get_config_variable("retry_mode") in (None, "legacy"):
                retries["mode"] = "standard"
            config = Config(
                retries=retries,  # type: ignore[arg-type]
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=max(10, self.workers),
            )
            session = boto3.session.Session(botocore_session=core)
            return session.client("s3", endpoint_url=endpoint_url or None, config=config)
        except BotoCoreError as e:
            raise StorageError(
                f"cannot set up the S3 client for {self.uri}: {e}; check AWS_PROFILE, "
                "AWS_DEFAULT_REGION and the AWS config file"
            ) from e
        except ValueError as e:  # e.g. a malformed endpoint URL
            raise StorageError(
                f"cannot set up the S3 client for {self.uri}: {e}; check --endpoint-url / "
                "AWS_ENDPOINT_URL"
            ) from e

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    # error translation -----------------------------------------------------------------
    def _translate(self, e: Exception, op: str, key: str) -> Exception:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        where = self._where(key)
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}: create it "
                    f"(aws s3 mb s3://{self.bucket}) or fix the registry URI / endpoint"
                )
            if code in ("PreconditionFailedError", "ConditionalRequestConflict") or status in (
                412,
                409,
            ):
                lost = PreconditionFailedError(f"{op} {where}: condition failed ({code or status})")
                # After a retried PUT the 412 may answer our own first attempt, which succeeded
                # but whose response was lost: callers then check whether the object is theirs.
                retries = e.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
                lost.after_retry = bool(retries)  # type: ignore[attr-defined]
                return lost
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                if op == "put":  # If-Match on an absent key
                    return PreconditionFailedError(f"{op} {where}: the object does not exist")
                return ObjectNotFoundError(f"{where} does not exist")
            if code in _CREDENTIAL_CODES:
                return StorageError(
                    f"S3 at {self.endpoint} refused the credentials for {op} {where}: "
                    f"{_CREDENTIAL_CODES[code]} ({code}); {_CHECK_CREDENTIALS}"
                )
            if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
                return StorageError(
                    f"S3 at {self.endpoint} denied {op} on {where} (AccessDenied): the "
                    "credentials are valid but not allowed; check the bucket/IAM policy grants "
                    "s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject on "
                    f"s3://{self.bucket}, or {_CHECK_CREDENTIALS}"
                )
            msg = err.get("Message") or ""
            return StorageError(
                f"S3 {op} of {where} at {self.endpoint} failed: {code or status} {msg}".rstrip()
            )
        if isinstance(e, NoCredentialsError | PartialCredentialsError):
            return StorageError(f"no usable AWS credentials for {where}: {_CHECK_CREDENTIALS}")
        if isinstance(
            e,
            EndpointConnectionError
            | ConnectTimeoutError
            | ReadTimeoutError
            | ConnectionClosedError,
        ):
            return StorageError(
                f"cannot reach the S3 endpoint {self.endpoint} for {op} {where} "
                f"({type(e).__name__}, after retries); check --endpoint-url / AWS_ENDPOINT_URL, "
                "that the server is running and reachable, and proxies/firewalls"
            )
        return StorageError(
            f"S3 {op} of {where} at {self.endpoint} failed: {type(e).__name__}: {e}; "
            "check the endpoint and your network"
        )

    def _call(self, op: str, key: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, op, key) from None

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str]:
        from botocore.exceptions import BotoCoreError

        resp = self._call("get", key, self.client.get_object, Bucket=self.bucket, Key=self._k(key))
        try:
            data = resp["Body"].read()
        except (BotoCoreError, OSError) as e:
            raise self._translate(e, "get", key) from None
        return data, str(resp.get("ETag", ""))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self._call(
                "head", key, self.client.head_object, Bucket=self.bucket, Key=self._k(key)
            )
        except ObjectNotFoundError:
            return None
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            last_modified=resp["LastModified"].timestamp(),
            etag=str(resp.get("ETag", "")),
        )

    def _pages(self, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix + validate_prefix(prefix),
            PaginationConfig={"PageSize": self.page_size},
            **extra,
        )
        try:
            yield from pages  # type: ignore[misc]
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, "list", prefix) from None

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        n = len(self.prefix)
        for page in self._pages(prefix):
            for obj in page.get("Contents", ()):
                key = obj["Key"][n:]
                if is_valid_key(key):
                    yield ObjectInfo(
                        key=key,
                        size=int(obj.get("Size", 0)),
                        last_modified=obj["LastModified"].timestamp(),
                        etag=obj.get("ETag"),
                    )

    def children(self, prefix: str) -> Iterator[str]:
        start = len(self.prefix) + len(prefix)
        for page in self._pages(prefix, Delimiter="/"):
            for cp in page.get("CommonPrefixes", ()):
                name = cp["Prefix"][start:].rstrip("/")
                if name and is_valid_key(name) and "/" not in name:
                    yield name

    def get_many(self, keys: Sequence[str]) -> builtins.list[tuple[bytes, str] | None]:
        def one(key: str) -> tuple[bytes, str] | None:
            try:
                return self.get(key)
            except ObjectNotFoundError:
                return None

        if len(keys) <= 1:
            return [one(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(keys))) as pool:
            return builtins.list(pool.map(one, keys))

    # writes --------------------------------------------------------------------------
    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        _check_conditions(if_none_match, if_match)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._k(key),
            "Body": data,
            "ContentType": "application/json"
            if key.endswith(".json")
            else "application/octet-stream",
        }
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        resp = self._call("put", key, self.client.put_object, **kwargs)
        return str(resp.get("ETag", ""))

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._k(key))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


# --- opening a store from a URI -----------------------------------------------------------


def open_store(uri: str, *, endpoint_url: str | None = None) -> Store:
    """``s3://bucket/prefix`` -> S3Store; ``file:///path`` or a plain path -> LocalStore."""
    if not uri or not uri.strip():
        raise InvalidNameError(
            "registry URI is empty; expected a folder, file:///path or s3://bucket/prefix"
        )
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc:
            raise InvalidNameError(
                f"registry URI {uri!r} names no bucket; expected s3://bucket/prefix"
            )
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise InvalidNameError(
                f"registry URI {redact_url(uri)!r} must be s3://bucket/prefix "
                "(no credentials, query or fragment in it)"
            )
        return S3Store(parts.netloc, parts.path, endpoint_url=endpoint_url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidNameError(
                f"registry URI {uri!r} names host {parts.netloc!r}; file URIs must be local "
                "(file:///absolute/path)"
            )
        from urllib.request import url2pathname

        return LocalStore(url2pathname(parts.path))
    if len(scheme) > 1 and "://" in uri:  # 'C:\\...' on Windows has a 1-letter "scheme"
        raise InvalidNameError(
            f"registry URI scheme {scheme!r} is not supported; use a folder, file:///path or "
            "s3://bucket/prefix"
        )
    return LocalStore(uri)
