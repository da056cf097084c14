"""S3 failures a user will meet: dead or hanging endpoint, bad credentials, missing bucket.

Credentials are checked for real: the session's SeaweedFS server verifies SigV4 signatures
and each key's rights (tests/conftest.py: ``S3_IDENTITIES``), as AWS does.
"""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from registry import Registry
from registry.s3 import S3Store, check_endpoint
from registry.schemes import open_store
from softmax_core.errors import InvalidInputError, PermissionDeniedError, StorageError
from tests.cli_invoke import invoke
from tests.conftest import S3_NOBODY, S3_USER, use_s3_identity
from tests.registry.helpers import make_model
from tests.s3server import S3Identity

pytestmark = pytest.mark.timeout(120)


def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_endpoint_down_is_a_clear_storage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # boto3's own setting is honoured
    endpoint = f"http://127.0.0.1:{closed_port()}"
    reg = Registry.open("s3://models/team", endpoint_url=endpoint, cache_dir=tmp_path)
    assert reg.store.client.meta.config.retries["total_max_attempts"] == 2  # type: ignore[attr-defined]
    with pytest.raises(StorageError) as e:
        reg.resolve("digits@champion")
    msg = str(e.value)
    assert f"cannot reach the S3 endpoint {endpoint}" in msg
    assert "AWS_ENDPOINT_URL" in msg and "check" in msg
    assert e.value.exit_code == 4


ENDPOINT_SECRET = "EndpointPw"


@pytest.mark.parametrize(
    "endpoint",
    [
        f"http://s3user:{ENDPOINT_SECRET}/x@127.0.0.1:1/",  # urlsplit: port "EndpointPw"
        f"http://s3user:{ENDPOINT_SECRET}@bad_host name:1/",  # botocore: "Invalid endpoint"
        f"http://s3user:{ENDPOINT_SECRET}@127.0.0.1:1/",  # S3 requests are signed instead
        f"http://s3user:1/{ENDPOINT_SECRET}@127.0.0.1:1/",  # parses, to the wrong host
        f"http://s3user:{ENDPOINT_SECRET}#x@127.0.0.1:1/",
        f"http://127.0.0.1:1/?X-Amz-Security-Token={ENDPOINT_SECRET}",  # botocore echoed it
        f"http://127.0.0.1:1#{ENDPOINT_SECRET}",
    ],
)
def test_a_malformed_endpoint_or_one_with_a_password_is_refused_without_showing_it(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Exit 2, one line, before any request, the URL shown without its password: given
    (--endpoint-url, AWS_ENDPOINT_URL) or found by boto3 itself (AWS_ENDPOINT_URL_S3)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with pytest.raises(InvalidInputError) as e:
        S3Store("models", endpoint_url=endpoint)
    assert ENDPOINT_SECRET not in str(e.value) and e.value.exit_code == 2
    args = ("registry", "list", "--registry", "s3://models/team", "--cache-dir", tmp_path)
    for given in (("--endpoint-url", endpoint), ()):
        if not given:
            monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        code, out, err = invoke(*args, *given)
        assert (code, out) == (2, "") and err.startswith("error: S3 endpoint URL ")
        assert ENDPOINT_SECRET not in err and len(err.splitlines()) == 1
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    with pytest.raises(InvalidInputError) as e:
        S3Store("models")
    assert ENDPOINT_SECRET not in str(e.value)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("http://127.0.0.1:1/path", "'http://127.0.0.1:1/path' has a path;"),
        ("http://127.0.0.1:1/?t=x", "'http://127.0.0.1:1/?…' has a query ('?…');"),
        ("http://127.0.0.1:1/p#x", "'http://127.0.0.1:1/p#…' has a path and a fragment ('#…');"),
    ],
)
def test_an_endpoint_is_a_host_and_port_only(given: str, said: str, tmp_path: Path) -> None:
    """README: an endpoint URL is http(s)://host[:port]. A path was sent on (and refused
    as AccessDenied, exit 77), a query too (and echoed by botocore's errors, exit 4): now
    refused before any request, one line, exit 2; a bare trailing '/' is fine."""
    args = ("registry", "list", "--registry", "s3://models/team", "--cache-dir", tmp_path)
    code, out, err = invoke(*args, "--endpoint-url", given)
    assert (code, out) == (2, ""), err
    assert err == (
        f"error: S3 endpoint URL (--endpoint-url, AWS_ENDPOINT_URL) {said} it must be "
        "http(s)://host[:port], nothing after\n"
    )
    check_endpoint("http://127.0.0.1:1/")


@pytest.mark.parametrize(
    ("uri", "said"),
    [("s3://models/reg#frag", "a fragment ('#…')"), ("s3://models/reg?x=1", "a query ('?…')")],
)
def test_a_registry_uri_with_a_query_or_fragment_says_which(uri: str, said: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"has {said}; it must be s3://")):
        open_store(uri)


def test_default_retries_are_bounded_and_standard(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    store = S3Store("models", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    cfg = store.client.meta.config
    assert cfg.retries == {"total_max_attempts": 3, "mode": "standard"}  # type: ignore[attr-defined]
    assert cfg.connect_timeout <= 5 and cfg.read_timeout <= 10  # type: ignore[attr-defined]


def test_the_readme_states_the_timeouts_the_client_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "3 attempts × 10 s" for a hung endpoint is what the client is given."""
    import inspect
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    said = re.search(r"Connections time out after (\d+) s and reads after (\d+) s", readme)
    hung = re.search(r"(\d+) attempts × (\d+) s plus backoff", readme)
    assert said and hung
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    cfg = S3Store("models", endpoint_url="http://127.0.0.1:9").client.meta.config
    defaults = inspect.signature(S3Store).parameters
    assert float(said[1]) == defaults["connect_timeout"].default == cfg.connect_timeout  # type: ignore[attr-defined]
    assert float(said[2]) == defaults["read_timeout"].default == cfg.read_timeout  # type: ignore[attr-defined]
    assert float(hung[2]) == cfg.read_timeout  # type: ignore[attr-defined]
    assert int(hung[1]) == cfg.retries["total_max_attempts"]  # type: ignore[attr-defined]


def test_hanging_endpoint_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections but never answers: the read timeout ends it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = S3Store("models", endpoint_url=endpoint, read_timeout=0.5, connect_timeout=0.5)
        with pytest.raises(StorageError, match=r"cannot reach the S3 endpoint .*ReadTimeout"):
            store.get("x.json")


def test_missing_bucket_is_named(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A key that cannot create buckets (S3_USER), so the PUT of a publish cannot make the
    bucket appear. The server answers NoSuchBucket as AWS does (tests/s3server.py turns
    SeaweedFS's autoCreateBucket off; with it on, an admin's PUT would create the bucket
    and this key's PUT would be AccessDenied: either way this test fails, never passes
    by accident)."""
    use_s3_identity(monkeypatch, S3_USER, s3_endpoint)
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    reg = Registry.open(f"s3://{bucket}/p", cache_dir=tmp_path)
    for call in (
        lambda: reg.resolve("digits"),
        lambda: reg.models(),
        lambda: reg.publish(make_model(1), "digits"),
        lambda: reg.resolve("digits@champion"),
    ):
        with pytest.raises(StorageError) as e:
            call()
        assert f"bucket {bucket!r} does not exist at {s3_endpoint}" in str(e.value)


def test_no_credentials_at_all(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # clean_env removed every AWS_* key
    reg = Registry.open("s3://models/p", cache_dir=tmp_path)
    with pytest.raises(StorageError, match=r"no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
        reg.resolve("digits")


def test_valid_credentials_work(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_s3_identity(monkeypatch, S3_USER, s3_endpoint)
    reg = Registry.open(f"s3://{s3_bucket}/ok", cache_dir=tmp_path)
    m = reg.publish(make_model(1), "digits", alias="champion")
    assert reg.resolve("digits@champion") == m


@pytest.mark.parametrize(
    ("which", "expected", "exit_code"),
    [
        ("unknown-key", "InvalidAccessKeyId", 4),
        ("wrong-secret", "SignatureDoesNotMatch", 4),
        ("no-permission", "AccessDenied", 77),  # valid key, no right: PermissionDeniedError
    ],
)
def test_wrong_credentials_are_a_clear_error(
    s3_endpoint: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    which: str,
    expected: str,
    exit_code: int,
) -> None:
    identity = {
        "unknown-key": S3Identity("unknown", ()),  # a key the server was never given
        "wrong-secret": replace(S3_USER, secret_key="not-the-right-secret-value"),
        "no-permission": S3_NOBODY,
    }[which]
    use_s3_identity(monkeypatch, identity, s3_endpoint)
    reg = Registry.open(f"s3://{s3_bucket}/ok", cache_dir=tmp_path)
    with pytest.raises((StorageError, PermissionDeniedError)) as e:
        reg.publish(make_model(1), "digits")
    msg = str(e.value)
    assert expected in msg
    if exit_code == 77:  # the operation, the prefix it needed and who holds it
        assert msg.startswith(f"publishing digits needs write access to blobs/ in {reg.uri} ")
        assert "the key of a trainer" in msg
    else:
        assert s3_endpoint in msg and "AWS_ACCESS_KEY_ID" in msg  # says what to check
    # credentials are never echoed
    assert identity.secret_key not in msg and identity.access_key not in msg
    assert e.value.exit_code == exit_code
