"""The S3 store: boto3, ``IfNoneMatch="*"`` / ``IfMatch=etag`` on PutObject, and the
translation of botocore's errors into ours (credentials are never part of a message):
AccessDenied (403) is a :class:`~softmax_core.errors.PermissionDeniedError` (exit 77),
the rest of what the server or the network says a :class:`StorageError` or finer.

Who the store knows the caller as (:meth:`S3Store.identity`): the ARN STS
``GetCallerIdentity`` answers at the same endpoint (AWS; SeaweedFS with STS configured),
else the access key id, never its secret."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from registry.names import is_valid_key, validate_key, validate_prefix
from registry.store import Identity, ObjectInfo, Store, check_conditions
from registry.writes import mark_after_retry
from softmax_core import urls
from softmax_core.errors import (
    InvalidInputError,
    InvalidNameError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key id is unknown to the server",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "InvalidToken": "the session token is invalid",
    "ExpiredToken": "the session token has expired",
    "TokenRefreshRequired": "the session token must be refreshed",
    "InvalidSecurity": "the security token is invalid",
}
_WRITES = ("put", "delete")
_DENIED_CODES = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled")
STS_TIMEOUT = 3.0  # seconds for the one GetCallerIdentity request (no retries: a fallback exists)
_IDENTITIES: dict[tuple[str, str], Identity] = {}  # (endpoint, key id) -> who, per process
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


def check_endpoint(url: str) -> None:
    """An S3 endpoint URL is ``http(s)://host[:port]`` (a trailing ``/`` allowed), without
    credentials (requests are signed with the AWS keys), path, query or fragment (botocore
    would send a query, a token say, and echo it in its errors); else InvalidInputError
    (exit 2), the URL redacted, whose ``setting`` is the request's ``endpoint_url``."""
    what = "S3 endpoint URL (--endpoint-url, AWS_ENDPOINT_URL)"
    urls.check_url(url, what, bare=True, setting="endpoint_url")


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
        self.endpoint_url = endpoint_url  # as given (None: boto3's own), for other buckets
        if endpoint_url:
            check_endpoint(endpoint_url)
        if client is None:
            client = self._make_client(endpoint_url, connect_timeout, read_timeout)
            check_endpoint(client.meta.endpoint_url)  # boto3's own: from a profile, say
        self.client = client
        self.endpoint = urls.redact(client.meta.endpoint_url)
        self._identity: Identity | None = None

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
                signature_version="s3v4",  # presigned URLs too (botocore's default: SigV2)
            )
            session = boto3.session.Session(botocore_session=core)
            return session.client("s3", endpoint_url=endpoint_url or None, config=config)
        except BotoCoreError as e:
            raise StorageError(
                f"cannot set up the S3 client for {self.uri}: {e}; check AWS_PROFILE, "
                "AWS_DEFAULT_REGION and the AWS config file"
            ) from e
        except ValueError as e:  # botocore's "Invalid endpoint: <the whole URL>": not shown
            given = repr(urls.redact(endpoint_url)) if endpoint_url else "of the AWS config"
            raise InvalidInputError(  # the endpoint's fault, not the registry URI's
                f"cannot set up the S3 client for {self.uri}: botocore refused the endpoint "
                f"URL {given}; check --endpoint-url / AWS_ENDPOINT_URL",
                setting=("endpoint_url", endpoint_url),
            ) from e

    def _object_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _url_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    # error translation -----------------------------------------------------------------
    def _translate(self, e: Exception, op: str, key: str) -> Exception:
        """A botocore exception as one of ours, naming the object, endpoint and the fix."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        url = self._url_of(key)
        if isinstance(e, ClientError):
            return self._translate_response(e.response, op, url, key)
        if isinstance(e, NoCredentialsError | PartialCredentialsError):
            return StorageError(f"no usable AWS credentials for {url}: {_CHECK_CREDENTIALS}")
        if isinstance(
            e,
            EndpointConnectionError
            | ConnectTimeoutError
            | ReadTimeoutError
            | ConnectionClosedError,
        ):
            return StorageError(
                f"cannot reach the S3 endpoint {self.endpoint} for {op} {url} "
                f"({type(e).__name__}, after retries); check --endpoint-url / AWS_ENDPOINT_URL, "
                "that the server is running and reachable, and proxies/firewalls"
            )
        return StorageError(
            f"S3 {op} of {url} at {self.endpoint} failed: {type(e).__name__}: {e}; "
            "check the endpoint and your network"
        )

    def _translate_response(self, response: Any, op: str, url: str, key: str) -> Exception:
        """An S3 error response (a ClientError's) as one of ours."""
        err = response.get("Error", {})
        code = str(err.get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return StorageError(
                f"bucket {self.bucket!r} does not exist at {self.endpoint}: create it "
                f"(aws s3 mb s3://{self.bucket}) or fix the registry URI / endpoint"
            )
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (412, 409):
            lost = PreconditionFailedError(f"{op} {url}: condition failed ({code or status})")
            # After a retried PUT the 412 may answer our own first attempt, which succeeded
            # but whose response was lost: callers then check whether the object is theirs.
            retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            return mark_after_retry(lost) if retries else lost
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            if op == "put":  # If-Match on an absent key
                return PreconditionFailedError(f"{op} {url}: the object does not exist")
            return ObjectNotFoundError(f"{url} does not exist")
        if code in _CREDENTIAL_CODES:
            return StorageError(
                f"S3 at {self.endpoint} refused the credentials for {op} {url}: "
                f"{_CREDENTIAL_CODES[code]} ({code}); {_CHECK_CREDENTIALS}"
            )
        if code in _DENIED_CODES or status == 403:
            return PermissionDeniedError(
                f"S3 at {self.endpoint} denied {op} on {url} ({code or status}): this key "
                "is not allowed to; the bucket or IAM policy decides what each key may "
                "read and write",
                key=key,
                write=op in _WRITES,
                reason=code or str(status),
            )
        msg = err.get("Message") or ""
        return StorageError(
            f"S3 {op} of {url} at {self.endpoint} failed: {code or status} {msg}".rstrip()
        )

    def translate(self, e: Exception, op: str, key: str) -> Exception:
        """A botocore exception about any ``key`` of this bucket (the registry's, or a
        user's image: ``registry.objects``) as one of ours."""
        return self._translate(e, op, key)

    def _call(self, op: str, key: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, op, key) from None

    # who ---------------------------------------------------------------------------
    def identity(self) -> Identity:
        """The caller as the server knows it: STS ``GetCallerIdentity``'s ARN at the
        store's endpoint (AWS; SeaweedFS with STS configured), else the access key id of
        boto3's credential chain, never the secret. Asked once per endpoint and key in a
        process (a flow's tasks each open a store)."""
        if self._identity is None:
            self._identity = self._ask_identity()
        return self._identity

    def _ask_identity(self) -> Identity:
        import boto3
        import botocore.session
        from botocore.exceptions import BotoCoreError

        try:
            session = boto3.session.Session(botocore_session=botocore.session.get_session())
            credentials = session.get_credentials()
        except BotoCoreError:
            return Identity("unknown", "unknown")
        key_id = credentials.access_key if credentials is not None else None
        if not key_id:
            return Identity("anonymous", "access-key")
        asked = (str(self.client.meta.endpoint_url), str(key_id))
        if asked not in _IDENTITIES:
            arn = self._caller_arn(session)
            _IDENTITIES[asked] = (
                Identity(arn, "sts") if arn else Identity(str(key_id), "access-key")
            )
        return _IDENTITIES[asked]

    def _caller_arn(self, session: Any) -> str | None:
        """STS GetCallerIdentity's ARN at the store's endpoint, or None (one attempt)."""
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            sts = session.client(
                "sts",
                endpoint_url=self.endpoint_url or None,
                config=Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=STS_TIMEOUT,
                    read_timeout=STS_TIMEOUT,
                ),
            )
            try:
                arn = sts.get_caller_identity().get("Arn")
            finally:
                sts.close()
        except (BotoCoreError, ClientError, ValueError) as e:  # no STS here: the key id
            log.debug("no STS caller identity at %s: %s", self.endpoint, type(e).__name__)
            return None
        return str(arn) if arn else None

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str]:
        from botocore.exceptions import BotoCoreError

        resp = self._call(
            "get", key, self.client.get_object, Bucket=self.bucket, Key=self._object_key(key)
        )
        try:
            data = resp["Body"].read()
        except (BotoCoreError, OSError) as e:
            raise self._translate(e, "get", key) from None
        return data, str(resp.get("ETag", ""))

    def url(self, key: str, *, expires: int, content_type: str | None = None) -> str | None:
        """A presigned GET (signed here, no request made); ``content_type`` is what S3
        answers with (``response-content-type``), so a browser shows a page, not a file."""
        params = {"Bucket": self.bucket, "Key": self._object_key(key)}
        if content_type is not None:
            params["ResponseContentType"] = content_type
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=int(expires)
        )
        return url

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self._call(
                "head", key, self.client.head_object, Bucket=self.bucket, Key=self._object_key(key)
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

    def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, str] | None]:
        def one(key: str) -> tuple[bytes, str] | None:
            try:
                return self.get(key)
            except ObjectNotFoundError:
                return None

        if len(keys) <= 1:
            return [one(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(keys))) as pool:
            return list(pool.map(one, keys))

    # writes --------------------------------------------------------------------------
    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        check_conditions(if_none_match, if_match)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._object_key(key),
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
        self._call(
            "delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._object_key(key)
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
