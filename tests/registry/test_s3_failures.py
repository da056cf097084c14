"""S3 failures a user will meet: dead or hanging endpoint, bad credentials, missing bucket.

Credentials are checked for real: a second moto server, in its own process, runs with
IAM authentication switched on (moto's ``/moto-api/reset-auth``), so SigV4 signatures
and IAM policies are verified the way AWS and MinIO verify them. It runs in its own
process because moto's auth switch is process-global and would also lock the shared
session server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry import Registry
from registry.s3 import S3Store
from softmax_core.errors import StorageError
from tests.registry.helpers import make_model

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


def test_missing_bucket_is_named(s3_env: str, tmp_path: Path) -> None:
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
        assert f"bucket {bucket!r} does not exist at {s3_env}" in str(e.value)


def test_no_credentials_at_all(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # clean_env removed every AWS_* key
    reg = Registry.open("s3://models/p", cache_dir=tmp_path)
    with pytest.raises(StorageError, match=r"no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
        reg.resolve("digits")


# --- a moto server that checks credentials ------------------------------------------------

_SERVER = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


@dataclass(frozen=True)
class AuthS3:
    endpoint: str
    bucket: str
    key_id: str  # allowed s3:* on everything
    secret: str
    weak_key_id: str  # valid credentials, no permissions
    weak_secret: str


@pytest.fixture(scope="module")
def auth_s3() -> Iterator[AuthS3]:
    import boto3

    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        boot: dict[str, Any] = {  # accepted while auth is still off
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "bootstrap",
            "aws_secret_access_key": "bootstrap",
        }
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="publisher")
        key = iam.create_access_key(UserName="publisher")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="publisher", PolicyName="s3", PolicyDocument=json.dumps(policy)
        )
        iam.create_user(UserName="nobody")
        weak = iam.create_access_key(UserName="nobody")["AccessKey"]
        boto3.client("s3", **boot).create_bucket(Bucket="guarded")
        req = urllib.request.Request(  # from now on every request is authenticated
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.load(r)["status"] == "ok"
        yield AuthS3(
            endpoint,
            "guarded",
            key["AccessKeyId"],
            key["SecretAccessKey"],
            weak["AccessKeyId"],
            weak["SecretAccessKey"],
        )
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def use_credentials(mp: pytest.MonkeyPatch, auth: AuthS3, key_id: str, secret: str) -> None:
    mp.setenv("AWS_ENDPOINT_URL", auth.endpoint)
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_ACCESS_KEY_ID", key_id)
    mp.setenv("AWS_SECRET_ACCESS_KEY", secret)


def test_valid_credentials_work(
    auth_s3: AuthS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_credentials(monkeypatch, auth_s3, auth_s3.key_id, auth_s3.secret)
    reg = Registry.open(f"s3://{auth_s3.bucket}/ok", cache_dir=tmp_path)
    m = reg.publish(make_model(1), "digits", alias="champion")
    assert reg.resolve("digits@champion") == m


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("unknown-key", "InvalidAccessKeyId"),
        ("wrong-secret", "SignatureDoesNotMatch"),
        ("no-permission", "AccessDenied"),
    ],
)
def test_wrong_credentials_are_a_clear_error(
    auth_s3: AuthS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    which: str,
    expected: str,
) -> None:
    key_id, secret = {
        "unknown-key": ("AKIAUNKNOWNUNKNOWN00", "whatever-secret-value"),
        "wrong-secret": (auth_s3.key_id, "not-the-right-secret-value"),
        "no-permission": (auth_s3.weak_key_id, auth_s3.weak_secret),
    }[which]
    use_credentials(monkeypatch, auth_s3, key_id, secret)
    reg = Registry.open(f"s3://{auth_s3.bucket}/ok", cache_dir=tmp_path)
    with pytest.raises(StorageError) as e:
        reg.publish(make_model(1), "digits")
    msg = str(e.value)
    assert expected in msg and auth_s3.endpoint in msg
    assert "AWS_ACCESS_KEY_ID" in msg or "policy" in msg  # says what to check
    assert secret not in msg and key_id not in msg  # credentials are never echoed
    assert e.value.exit_code == 4
