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

Which class serves which URI is decided in :mod:`registry.schemes` (``open_store``): this
base module knows no store class, and the store modules build on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from softmax_core.errors import InvalidInputError, ObjectNotFoundError


@dataclass(frozen=True)
class Identity:
    """Who a store's requests come from, as the store knows them: ``name`` is the STS
    caller ARN (``source="sts"``), else the access key id (``"access-key"``, never its
    secret), or the local user (``"user"``) of a folder registry."""

    name: str
    source: str


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
    # Whether the registry proves this store's conditional writes before its first write
    # (registry.check): a server's implementation, not the kernel's.
    needs_check: bool = True

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag; ObjectNotFoundError when absent."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, last-modified time and ETag, or None when absent."""

    def check_exists(self) -> None:
        """Raise when the store itself is missing (a listing of it would say "empty").

        A bucket that does not exist already fails every request; a folder does not."""
        return None

    def identity(self) -> Identity:
        """Who this store's writes come from (recorded on alias moves and requests)."""
        return Identity("unknown", "unknown")

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
        a store whose client retried the request marks it (``registry.writes``:
        ``mark_after_retry``, read with ``after_retry``), since the object may then be the
        caller's own first attempt, whose answer was lost.
        """

    @abstractmethod
    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` ("" or ending in '/'), in key order, page by page."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, in key order."""
        for info in self.list_info(prefix):
            yield info.key

    @abstractmethod
    def children(self, prefix: str) -> Iterator[str]:
        """Names of the 'folders' directly under ``prefix`` that hold at least one object."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the key; removing an absent key is not an error."""

    def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, str] | None]:
        """``get`` for many keys (None for absent ones), in order; stores may parallelise."""
        out: list[tuple[bytes, str] | None] = []
        for key in keys:
            try:
                out.append(self.get(key))
            except ObjectNotFoundError:
                out.append(None)
        return out

    def url(self, key: str, *, expires: int, content_type: str | None = None) -> str | None:
        """A URL a browser can open the object at, valid ``expires`` seconds where the
        store signs URLs (S3: presigned; a folder: ``file://``, no expiry), or None."""
        return None

    def sweep(self, older_than: float) -> list[str]:
        """Remove debris of crashed writers (temporary files) older than the POSIX time given."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections (optional)."""


def check_conditions(if_none_match: bool, if_match: str | None) -> None:
    if if_none_match and if_match is not None:
        raise InvalidInputError("put: use either if_none_match or if_match, not both")
