"""Which store serves which registry URI: one class per scheme, the map kept here.

``s3://bucket/prefix`` -> :class:`~registry.s3.S3Store`; ``file:///path``, ``file://localhost/path``
or a plain path -> :class:`~registry.local.LocalStore`. As in mlflow's artifact stores, the
base module (:mod:`registry.store`) knows no store class: the stores build on it, and this
module builds on them, so no import goes back up. boto3 itself is imported only when an S3
store makes its client.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import SplitResult, urlsplit
from urllib.request import url2pathname

from registry.local import LocalStore
from registry.s3 import S3Store
from registry.store import Store
from softmax_core.errors import InvalidInputError, InvalidNameError
from softmax_core.urls import redact

Opener = Callable[[str, SplitResult, str | None], Store]  # (uri, its parts, endpoint_url)


def _open_s3(uri: str, parts: SplitResult, endpoint_url: str | None) -> Store:
    extra = [
        what
        for what, there in (
            ("credentials ('@')", "@" in uri),  # '@' is in no bucket nor key
            ("a query ('?…')", "?" in uri),
            ("a fragment ('#…')", "#" in uri),
        )
        if there
    ]
    if extra:
        raise InvalidNameError(
            f"registry URI {redact(uri)!r} has {' and '.join(extra)}; it must be "
            "s3://bucket/prefix (S3 requests are signed with the AWS keys)"
        )
    if not parts.netloc:
        raise InvalidNameError(
            f"registry URI {redact(uri)!r} names no bucket; expected s3://bucket/prefix"
        )
    return S3Store(parts.netloc, parts.path, endpoint_url=endpoint_url)


def _open_file(uri: str, parts: SplitResult, endpoint_url: str | None) -> Store:
    if parts.netloc not in ("", "localhost"):
        raise InvalidNameError(
            f"registry URI {redact(uri)!r} names a host; file URIs must be local "
            "(file:///absolute/path)"
        )
    return LocalStore(url2pathname(parts.path))


SCHEMES: dict[str, Opener] = {"s3": _open_s3, "file": _open_file}


def open_store(uri: str, *, endpoint_url: str | None = None) -> Store:
    """The store a registry URI names (``endpoint_url``: an S3 server other than AWS). A
    URI it refuses (exit 2) is an InvalidInputError whose ``setting`` is the request's
    ``registry`` (an endpoint's, ``endpoint_url``), so that the CLI can name the settings
    file and key that gave it."""
    try:
        return _open(uri, endpoint_url)
    except InvalidInputError as e:
        if e.setting is None:
            e.setting = ("registry", uri)
        raise


def _open(uri: str, endpoint_url: str | None) -> Store:
    if not uri or not uri.strip():
        raise InvalidNameError(
            "registry URI is empty; expected a folder, file:///path or s3://bucket/prefix"
        )
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    opener = SCHEMES.get(scheme)
    if opener is not None:
        return opener(uri, parts, endpoint_url)
    if len(scheme) > 1 and "://" in uri:  # 'C:\\...' on Windows has a 1-letter "scheme"
        raise InvalidNameError(
            f"registry URI scheme {scheme!r} is not supported; use a folder, file:///path or "
            "s3://bucket/prefix"
        )
    return LocalStore(uri)
