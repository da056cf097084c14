"""Users' images and rows on S3: the object-store side of ``score s3://...``, of
``dataset add s3://...`` and of the retrain inbox. boto3 is here (softmax_core reads what
it is handed); every S3 error goes through the one translation of ``registry.s3``.

- :class:`ObjectSource`: the images under ``s3://bucket/prefix/`` (or one object), listed
  folder by folder with ``Delimiter='/'`` and walked in the order a folder of the same
  files is walked (``softmax_core.scoring.walk_order``), so the rows come out in the same
  order. Objects whose listed size is 0 or over ``settings.MAX_IMAGE_BYTES`` are error
  rows before any download.
- :class:`ObjectReader`: what a worker opens a batch with: ``GetObject`` per key, refused
  by its ``Content-Length`` when over the cap before the body is read, a few ahead in
  threads. It pickles without a client or credentials: each process (a pool worker, a
  Dask worker on another machine) makes its own client from its own environment (boto3's
  usual variables and files) and keeps it (:func:`connection`).
- :func:`object_sink`: the rows go to a local temporary file, then to a temporary key
  beside the target, copied into place server-side, and the temporary key is deleted:
  the target appears whole or not at all.
- :func:`mirror_labelled`: a labelled prefix (class folders ``0/`` ... ``9/``) copied
  into a local temporary folder, which ``softmax_core.labelled.read_folder`` then reads
  exactly as a folder (its rules, its failure rows): labelled data is small.

Addresses are ``s3://bucket/key``; the endpoint is the registry's (``--endpoint-url``,
``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO
from urllib.parse import urlsplit

from registry.s3 import S3Store, validate_bucket
from softmax_core import labelled, settings
from softmax_core.atomicio import TMP_MARK
from softmax_core.errors import (
    DataNotFoundError,
    ImageError,
    InvalidInputError,
    InvalidNameError,
    ObjectNotFoundError,
    StorageError,
)
from softmax_core.escaping import printable, unambiguous
from softmax_core.images import is_image_name
from softmax_core.requests import ScoringRequest
from softmax_core.scoring import EntryKind, Item, Sink, ext_label, is_uri, walk_order
from softmax_core.urls import redact

READ_AHEAD = 8  # objects fetched at once by one reader (threads): hides the request latency
_NOT_FOUND = ("NoSuchKey", "404", "NotFound")
_DENIED = ("AccessDenied", "403", "Forbidden")


@dataclass(frozen=True)
class ObjectURI:
    """``s3://bucket/key``: the bucket and the key (``""`` for the whole bucket)."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, what: str) -> ObjectURI:
        parts = urlsplit(uri)
        if parts.scheme.lower() != "s3":
            raise InvalidInputError(
                f"{what} {redact(uri)!r}: only s3://bucket/key addresses are supported, "
                "besides local paths"
            )
        refused = InvalidInputError(
            f"{what} {redact(uri)!r} must be s3://bucket/key (no credentials, query or fragment)"
        )
        if not parts.netloc or "@" in parts.netloc or parts.query or parts.fragment:
            raise refused
        try:
            validate_bucket(parts.netloc)
        except InvalidNameError as e:
            if "@" in uri:  # s3://user:pa/ss@bucket/...: the "bucket" is part of a password
                raise refused from None
            raise InvalidInputError(f"{what} {printable(uri)}: {e}") from None
        return cls(parts.netloc, parts.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# --- one client per process -------------------------------------------------------------

_CONNECTIONS: dict[tuple[int, str, str | None, str], S3Store] = {}
_CONNECTIONS_LOCK = threading.Lock()
# The variables that choose boto3's credentials and endpoint: a client is made again when
# one of them changes (a test switching keys; never in a worker's life).
_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
)


def _environment() -> str:
    joined = "\0".join(os.environ.get(v, "") for v in _CREDENTIAL_VARS)
    return hashlib.sha256(joined.encode()).hexdigest()


def connection(bucket: str, endpoint_url: str | None) -> S3Store:
    """This process's client for ``bucket`` (made once, from this process's environment;
    a forked child makes its own: a connection pool must not cross a fork)."""
    key = (os.getpid(), bucket, endpoint_url, _environment())
    with _CONNECTIONS_LOCK:
        store = _CONNECTIONS.get(key)
        if store is None:
            store = _CONNECTIONS[key] = S3Store(bucket, "", endpoint_url=endpoint_url)
        return store


def _code(e: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        return str(e.response.get("Error", {}).get("Code", ""))
    return ""


def _no_bucket(store: S3Store) -> DataNotFoundError:
    return DataNotFoundError(
        f"bucket {store.bucket!r} does not exist at {store.endpoint}; check the s3:// "
        "address and --endpoint-url / AWS_ENDPOINT_URL"
    )


def _head_bucket(store: S3Store) -> None:
    """DataNotFoundError (exit 3) when the bucket is missing (a HEAD's 404 has no code)."""
    try:
        _request(store, "head", "", store.client.head_bucket, Bucket=store.bucket)
    except ObjectNotFoundError:
        raise _no_bucket(store) from None


def _request(store: S3Store, op: str, key: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """One S3 call; a missing bucket is DataNotFoundError (exit 3), the rest as the store
    says (``S3Store.translate``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as e:
        if _code(e) == "NoSuchBucket":
            raise _no_bucket(store) from None
        raise store.translate(e, op, key) from None


# --- reading ----------------------------------------------------------------------------


def _size_error(size: int, max_bytes: int) -> ImageError | None:
    """Why an object of ``size`` bytes is an error row without being downloaded (the
    reasons a local file of that size gets: ``softmax_core.images``)."""
    if size == 0:
        return ImageError("empty file", "0 bytes")
    if size > max_bytes:
        return ImageError("over size cap", f"{size:,} bytes, over the cap of {max_bytes:,}")
    return None


def _size_problem(size: int, max_bytes: int) -> str | None:
    error = _size_error(size, max_bytes)
    return None if error is None else str(error)


@dataclass(frozen=True)
class ObjectReader:
    """Opens a batch's object keys for decoding (``softmax_core.scoring.decode.Reader``).

    Holds the bucket, the endpoint and the byte cap, never a client or a credential."""

    bucket: str
    endpoint_url: str | None = None
    max_bytes: int = settings.MAX_IMAGE_BYTES
    ahead: int = READ_AHEAD

    def open_all(self, paths: Sequence[str]) -> Iterator[IO[bytes] | ImageError]:
        store = connection(self.bucket, self.endpoint_url)
        if self.ahead <= 1 or len(paths) <= 1:
            for key in paths:
                yield self._fetch(store, key)
            return
        with ThreadPoolExecutor(max_workers=self.ahead) as pool:
            window: collections.deque[Future[IO[bytes] | ImageError]] = collections.deque()
            keys = iter(paths)
            for key in keys:
                window.append(pool.submit(self._fetch, store, key))
                if len(window) >= self.ahead:
                    break
            while window:
                done = window.popleft().result()
                nxt = next(keys, None)
                if nxt is not None:
                    window.append(pool.submit(self._fetch, store, nxt))
                yield done

    def _fetch(self, store: S3Store, key: str) -> IO[bytes] | ImageError:
        """One object's bytes (its Content-Length checked before the body is read)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = store.client.get_object(Bucket=self.bucket, Key=key)
            body = resp["Body"]
            try:
                error = _size_error(int(resp.get("ContentLength", -1)), self.max_bytes)
                if error is not None:
                    return error  # refused by its length: the body is not read
                data = body.read(self.max_bytes + 1)
            finally:
                body.close()
            return _size_error(len(data), self.max_bytes) or io.BytesIO(data)
        except (ClientError, BotoCoreError) as e:
            code = _code(e)
            if code in _NOT_FOUND:
                return ImageError("unreadable", "the object is gone (deleted since it was listed)")
            if code in _DENIED:
                return ImageError("unreadable", "access denied")
            raise store.translate(e, "get", key) from None


class ObjectSource:
    """The images under an ``s3://`` address, as scoring walks them
    (``softmax_core.scoring.Source``): the object itself when the address names one, else
    everything under it as a folder (``s3://bucket/prefix`` and ``.../prefix/`` alike).

    Raises DataNotFoundError (exit 3) for a missing bucket, InvalidInputError (exit 2) for
    an address that is not ``s3://bucket/...``; an empty prefix yields nothing (the caller
    says "no images")."""

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        max_bytes: int = settings.MAX_IMAGE_BYTES,
    ) -> None:
        self.uri = uri
        self.address = ObjectURI.parse(uri, "input")
        self.endpoint_url = endpoint_url
        self.max_bytes = max_bytes
        self.reader: ObjectReader = ObjectReader(self.address.bucket, endpoint_url, max_bytes)
        self.skipped = 0
        self.skipped_by_ext: collections.Counter[str] = collections.Counter()
        self.loops = 0
        store = self._store()
        key = self.address.key
        self.single: tuple[str, int] | None = None
        if key and not key.endswith("/"):
            head = self._head(store, key)
            if head is not None:
                self.single = (key, head)
        self.prefix = "" if not key else key if key.endswith("/") else key + "/"
        if self.single is None and not key:
            _head_bucket(store)

    def _store(self) -> S3Store:
        return connection(self.address.bucket, self.endpoint_url)

    def _head(self, store: S3Store, key: str) -> int | None:
        try:
            resp = _request(
                store, "head", key, store.client.head_object, Bucket=self.address.bucket, Key=key
            )
        except ObjectNotFoundError:
            return None
        return int(resp.get("ContentLength", 0))

    def __iter__(self) -> Iterator[Item]:
        self.skipped, self.loops = 0, 0
        self.skipped_by_ext = collections.Counter()
        if self.single is not None:
            key, size = self.single
            yield Item(
                unambiguous(key.rsplit("/", 1)[-1]), key, _size_problem(size, self.max_bytes)
            )
            return
        store = self._store()
        stack = [(self.prefix, "", iter(self._level(store, self.prefix)))]
        while stack:
            folder, rel_prefix, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            name, kind, size = entry
            rel = rel_prefix + unambiguous(name)
            if kind == EntryKind.FOLDER:
                sub = folder + name + "/"
                stack.append((sub, rel + "/", iter(self._level(store, sub))))
            else:
                yield Item(rel, folder + name, _size_problem(size, self.max_bytes))

    def _level(self, store: S3Store, prefix: str) -> list[tuple[str, EntryKind, int]]:
        """One "folder": its images and sub-folders sorted by name (the others counted as
        skipped), from a delimiter listing (every page of it)."""
        out: list[tuple[str, EntryKind, int]] = []
        skipped: list[str] = []
        paginator = store.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.address.bucket,
            Prefix=prefix,
            Delimiter="/",
            PaginationConfig={"PageSize": store.page_size},
        )
        for page in _request(store, "list", prefix, lambda: list(pages)):
            for cp in page.get("CommonPrefixes", ()):
                name = cp["Prefix"][len(prefix) :].removesuffix("/")
                if name.startswith("."):
                    skipped.append(ext_label(name))
                elif name:
                    out.append((name, EntryKind.FOLDER, 0))
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(prefix) :]
                if not name:
                    continue  # the "folder" object itself
                if name.startswith(".") or not is_image_name(name):
                    skipped.append(ext_label(name))
                else:
                    out.append((name, EntryKind.IMAGE, int(obj.get("Size", 0))))
        self.skipped += len(skipped)
        self.skipped_by_ext.update(skipped)
        out.sort(key=lambda e: walk_order(e[0]))
        return out


# --- writing ----------------------------------------------------------------------------

_CONTENT_TYPES = {".csv": "text/csv; charset=utf-8", ".jsonl": "application/jsonl"}


def check_output(uri: str, *, endpoint_url: str | None, input_uri: str | None = None) -> None:
    """Fail before any work when ``--output`` cannot be an object, or is one of the images
    being scored (exit 2): a missing bucket, a key ending in '/'."""
    target = ObjectURI.parse(uri, "--output")
    if not target.key or target.key.endswith("/"):
        raise InvalidInputError(f"--output {printable(uri)}: expected s3://bucket/key, a file name")
    if input_uri is not None and is_uri(input_uri):
        source = ObjectURI.parse(input_uri, "input")
        inside = not source.key or target.key.startswith(source.key.rstrip("/") + "/")
        if source.bucket == target.bucket and (
            target.key == source.key or (inside and is_image_name(target.key))
        ):
            raise InvalidInputError(
                f"--output {printable(uri)} is one of the images being scored; choose another key"
            )
    store = connection(target.bucket, endpoint_url)
    try:
        _head_bucket(store)
    except DataNotFoundError:
        raise InvalidInputError(
            f"--output {printable(uri)}: bucket {target.bucket!r} does not exist at "
            f"{store.endpoint}; create it first"
        ) from None
    except StorageError:
        pass  # a key may write objects without the right to look at the bucket: try


def check_listable(uri: str, what: str, *, endpoint_url: str | None) -> None:
    """Fail now unless this key may list the prefix ``uri`` (one request, at most one key
    returned): a missing bucket is DataNotFoundError (exit 3), a refusal
    PermissionDeniedError (exit 77), an unreachable endpoint StorageError (exit 4). An
    empty prefix passes: there is nothing in it yet."""
    address = ObjectURI.parse(uri, what)
    store = connection(address.bucket, endpoint_url)
    _request(
        store,
        "list",
        address.key,
        store.client.list_objects_v2,
        Bucket=address.bucket,
        Prefix=address.key,
        MaxKeys=1,
    )


def check_writable(uri: str, *, endpoint_url: str | None, input_uri: str | None = None) -> None:
    """:func:`check_output`, then one write where :func:`write_object` writes first (an
    empty ``<key>.~tmp-<random>``, deleted at once): a key that may not write there fails
    now, PermissionDeniedError (exit 77), not at the first run."""
    check_output(uri, endpoint_url=endpoint_url, input_uri=input_uri)
    target = ObjectURI.parse(uri, "--output")
    store = connection(target.bucket, endpoint_url)
    temp = f"{target.key}{TMP_MARK}{uuid.uuid4().hex}"
    _request(store, "put", temp, store.client.put_object, Bucket=target.bucket, Key=temp, Body=b"")
    with contextlib.suppress(StorageError, DataNotFoundError):
        _request(store, "delete", temp, store.client.delete_object, Bucket=target.bucket, Key=temp)


def object_sink(uri: str, *, endpoint_url: str | None) -> Sink:
    """Where rows go when ``--output`` is an object (``softmax_core.scoring.Sink``): see
    :func:`write_object`."""
    target = ObjectURI.parse(uri, "--output")
    return lambda: write_object(target, endpoint_url=endpoint_url)


@contextlib.contextmanager
def write_object(target: ObjectURI, *, endpoint_url: str | None) -> Iterator[TextIO]:
    """A text stream that becomes the object ``target`` only when the block succeeds.

    The rows go to a local temporary file; then up to ``<key>.~tmp-<random>`` (multipart
    when large), copied into place server-side (one atomic write of the target), and the
    temporary key is deleted, whatever happened. An error or interrupt before the copy
    leaves the target as it was."""
    store = connection(target.bucket, endpoint_url)
    suffix = os.path.splitext(target.key)[1].lower()
    content_type = _CONTENT_TYPES.get(suffix, "text/plain; charset=utf-8")
    with tempfile.TemporaryFile("w+b") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield text
        text.flush()
        text.detach()
        raw.seek(0)
        temp = f"{target.key}{TMP_MARK}{uuid.uuid4().hex}"
        try:
            _request(
                store,
                "put",
                temp,
                store.client.upload_fileobj,
                Fileobj=raw,
                Bucket=target.bucket,
                Key=temp,
                ExtraArgs={"ContentType": content_type},
            )
            _request(
                store,
                "copy",
                target.key,
                store.client.copy,
                CopySource={"Bucket": target.bucket, "Key": temp},
                Bucket=target.bucket,
                Key=target.key,
                ExtraArgs={"ContentType": content_type, "MetadataDirective": "REPLACE"},
            )
        finally:
            with contextlib.suppress(StorageError, DataNotFoundError):
                _request(
                    store,
                    "delete",
                    temp,
                    store.client.delete_object,
                    Bucket=target.bucket,
                    Key=temp,
                )


# --- labelled data ----------------------------------------------------------------------


def _safe_parts(rel: str) -> list[str] | None:
    """The components of a key relative to a labelled prefix, or None when it cannot be a
    path inside a folder (empty, '.' or '..' components, a NUL)."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        return None
    return parts


def _read_by_folder(parts: list[str]) -> bool:
    """Whether ``read_folder`` reads this file's bytes (an image in a class folder, no
    hidden component): the others only need their name to be there."""
    return (
        len(parts) >= 2
        and parts[0] in labelled.CLASSES
        and not any(p.startswith(".") for p in parts)
        and is_image_name(parts[-1])
    )


def mirror_labelled(
    uri: str, dest: Path, *, endpoint_url: str | None, max_bytes: int = settings.MAX_IMAGE_BYTES
) -> list[tuple[str, str]]:
    """Copy the labelled prefix ``uri`` into the empty folder ``dest``; return the objects
    that could not be copied as ``(relative key, reason)`` failure rows.

    Only what ``read_folder`` reads is downloaded (images in class folders, in threads);
    anything else becomes an empty file of its name, so the folder's rules refuse or skip
    it by name exactly as on disk. An object over ``max_bytes`` (by its listed size) is
    not downloaded: a sparse file of its size stands in, and is refused as over the cap.
    A key that cannot be a path inside the folder is a failure row."""
    address = ObjectURI.parse(uri, "labelled folder")
    prefix = address.key.rstrip("/") + "/" if address.key else ""
    store = connection(address.bucket, endpoint_url)
    paginator = store.client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=address.bucket, Prefix=prefix)
    objects = [
        (obj["Key"][len(prefix) :], int(obj.get("Size", 0)))
        for page in _request(store, "list", prefix, lambda: list(pages))
        for obj in page.get("Contents", ())
        if not obj["Key"].endswith("/")
    ]
    if not objects:
        raise DataNotFoundError(
            f"{printable(uri)}: no objects; expected a labelled folder with class folders 0 … 9"
        )
    failures, fetch = _lay_out(objects, dest, max_bytes)
    return failures + _download(store, address.bucket, prefix, fetch)


def _lay_out(
    objects: list[tuple[str, int]], dest: Path, max_bytes: int
) -> tuple[list[tuple[str, str]], list[tuple[str, Path]]]:
    """Every listed object's file under ``dest`` (empty, or sparse when over the cap):
    (failure rows, the (relative key, path) pairs to download)."""
    failures: list[tuple[str, str]] = []
    fetch: list[tuple[str, Path]] = []
    for rel, size in objects:
        parts = _safe_parts(rel)
        if parts is None:
            failures.append((printable(rel), "unreadable: a key that is not a path"))
            continue
        path = dest.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                if _read_by_folder(parts) and size > max_bytes:
                    f.truncate(size)  # sparse: nothing downloaded, refused by its size
                elif _read_by_folder(parts):
                    fetch.append((rel, path))
        except OSError as e:
            failures.append((printable(rel), f"unreadable: {e.strerror or e}"))
    return failures, fetch


def _download(
    store: S3Store, bucket: str, prefix: str, fetch: list[tuple[str, Path]]
) -> list[tuple[str, str]]:
    """Download each ``prefix + rel`` to its path, in threads; failure rows of those gone."""

    def one(rel: str, path: Path) -> str | None:
        key = prefix + rel
        try:
            resp = _request(store, "get", key, store.client.get_object, Bucket=bucket, Key=key)
        except ObjectNotFoundError:
            path.unlink(missing_ok=True)
            return "unreadable: the object is gone (deleted since it was listed)"
        with resp["Body"] as body, open(path, "wb") as f:
            while chunk := body.read(1 << 20):
                f.write(chunk)
        return None

    with ThreadPoolExecutor(max_workers=store.workers) as pool:
        done = list(pool.map(lambda job: one(*job), fetch))
    return [(printable(rel), why) for (rel, _), why in zip(fetch, done, strict=True) if why]


def read_labelled(
    uri: str,
    *,
    endpoint_url: str | None,
    progress: labelled.Progress | None = None,
) -> labelled.FolderData:
    """A labelled ``s3://`` prefix read as ``read_folder`` reads a folder (through a local
    temporary copy, removed afterwards); messages name the ``s3://`` address."""
    with tempfile.TemporaryDirectory(prefix="softmax-pipe-labelled-") as tmp:
        failures = mirror_labelled(uri, Path(tmp), endpoint_url=endpoint_url)
        read = labelled.read_folder(Path(tmp), progress=progress, shown=uri)
    if not failures:
        return read
    return dataclasses.replace(read, failures=[*failures, *read.failures])


# --- a scoring request's ends -----------------------------------------------------------


def scoring_io(request: ScoringRequest) -> tuple[ObjectSource | None, Sink | None]:
    """The source and the sink of ``request`` where its input or its output is on S3 (None
    where it is local), on the model's registry endpoint. Checked now, before any work:
    a missing input bucket (exit 3), an output that cannot be an object or would
    overwrite an image being scored (exit 2)."""
    endpoint = request.model.location.endpoint_url
    source = ObjectSource(request.input, endpoint_url=endpoint) if is_uri(request.input) else None
    return source, output_sink(request)


def output_sink(request: ScoringRequest) -> Sink | None:
    """The sink of ``request`` when its output is an ``s3://`` object (checked now, see
    :func:`check_output`), else None."""
    out = request.output.path
    if out is None or not is_uri(out):
        return None
    endpoint = request.model.location.endpoint_url
    check_output(out, endpoint_url=endpoint, input_uri=request.input)
    return object_sink(out, endpoint_url=endpoint)
