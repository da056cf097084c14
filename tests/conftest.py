"""Shared fixtures: a scrubbed environment, real MNIST, temporary cache and registry, a
Prefect test server, a registry with a champion (the flow and CLI tests), a real S3 server
(SeaweedFS on loopback, one per session: tests/s3server.py).

Real MNIST comes from ``$SOFTMAX_PIPE_MNIST`` (set by .ci/run) or ``../shared/data/mnist``.
When it is missing the tests that need it fail, never skip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import S3Identity, SeaweedFS, admin_identity, scoped_identity

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
_MNIST_FROM_ENV = os.environ.get("SOFTMAX_PIPE_MNIST")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No AWS_* or SOFTMAX_PIPE_* leaks in from the developer's shell, nor their settings
    file (~/.config/softmax-pipe/config.toml); caches go to temp."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "SOFTMAX_PIPE_")):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    # keras's cache (~/.keras/datasets): a developer's mnist.npz would change the default source.
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
    # The check an S3 registry gets before its first write takes seconds on SeaweedFS (its
    # racing conditional PUTs queue on a lock): each test's fresh bucket would pay it.
    # Tests of the check itself (tests/registry/test_check.py) turn it back on; processes
    # started with a clean environment (CLI subprocesses, the e2e workers) run it.
    monkeypatch.setenv("SOFTMAX_PIPE_STORE_CHECK", "0")
    # boto3 must never find the developer's credentials or config.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST IDX folder. Missing data is a failure, not a skip."""
    path = Path(_MNIST_FROM_ENV) if _MNIST_FROM_ENV else DEFAULT_MNIST
    names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        pytest.fail(f"real MNIST missing at {path}: {missing} (set SOFTMAX_PIPE_MNIST)")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset cache for the whole session, so real MNIST is parsed once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    d.mkdir()
    return d


def pytest_configure(config: pytest.Config) -> None:
    """Prefect state goes to a temp PREFECT_HOME; no telemetry (there is no internet). No
    KERAS_BACKEND: the keras source chooses its backend itself, as in a user's shell.

    Prefect's own timeouts get the room ``softmax-pipe run`` gives them (flows.runner),
    so that the suite holds on a machine whose cores are busy (``.ci/run --contention``).
    """
    import tempfile

    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="softmax-pipe-prefect-")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
    os.environ.setdefault("PREFECT_API_REQUEST_TIMEOUT", "120")
    os.environ.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "60")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session; request it where needed."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.runner import SERVER_STARTUP_TIMEOUT

    with prefect_test_harness(server_startup_timeout=SERVER_STARTUP_TIMEOUT):
        yield


# --- a champion, shared by the flow and CLI tests ---------------------------------------------


@pytest.fixture(scope="session")
def champion_registry(
    prefect_harness: None,
    mnist_dir: Path,
    session_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A local registry holding one good model, mnist:1, promoted to mnist@champion: a
    training run with the default request (trained once per session; never change it,
    take a copy with ``with_champion``)."""
    from tests.training_runs import run_training_flow, training_request

    reg = tmp_path_factory.mktemp("champion-registry") / "reg"
    state = run_training_flow(training_request(mnist_dir, session_cache, reg))
    assert state.is_completed(), state.message
    return reg


@pytest.fixture
def with_champion(champion_registry: Path, tmp_path: Path) -> Path:
    """A private copy of the champion registry for one test to change."""
    import shutil

    reg = tmp_path / "reg"
    shutil.copytree(champion_registry, reg)
    return reg


# --- S3 on loopback: SeaweedFS, a real S3 server, driven by the real boto3 client ----------

S3_TEST_KEY = "testing-key-id"
S3_TEST_SECRET = "testing-secret"
# The session server's keys. Another key is one more entry here (or a SeaweedFS of its own,
# started by the tests that need other rights: tests.s3server.SeaweedFS).
S3_ADMIN = admin_identity(access_key=S3_TEST_KEY, secret_key=S3_TEST_SECRET)
# every bucket's objects, but no Admin: it cannot create a bucket, as an AWS user without
# s3:CreateBucket cannot
S3_USER = S3Identity("user", ("Read", "Write", "List", "Tagging"))
S3_NOBODY = S3Identity("nobody", ("Read:no-such-bucket",))  # a valid key allowed nothing here
# The bucket the scoped key is for: one fixed name, as in a deployment (see scoped_identity);
# the scoped_bucket fixture makes it anew for each test.
SCOPED_BUCKET = "scoped-registry"
# may read and list SCOPED_BUCKET and write only blobs and model versions under reg/
S3_SCOPED = scoped_identity(
    "scoped", SCOPED_BUCKET, write=("reg/blobs/*", "reg/models/*/versions/*")
)


def deploy_identity(role: str) -> S3Identity:
    """A key with the rights deploy/seaweedfs/identities.json gives ``role`` (its keys new)."""
    import json

    spec = json.loads((REPO / "deploy" / "seaweedfs" / "identities.json").read_text())
    (entry,) = [e for e in spec["identities"] if e["name"] == role]
    return S3Identity(f"deploy-{role}", tuple(entry["actions"]))


# the compose deployment's worker, a trainer: reads softmax-models, writes under registry/
# what a trainer makes (never an alias); and its approver, who moves aliases
S3_DEPLOY_WORKER = deploy_identity("worker")
S3_DEPLOY_APPROVER = deploy_identity("approver")
S3_IDENTITIES = (S3_ADMIN, S3_USER, S3_NOBODY, S3_SCOPED, S3_DEPLOY_WORKER, S3_DEPLOY_APPROVER)
_STARTED: list[SeaweedFS] = []  # for the summary line


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS (``weed server -s3``) on free loopback ports for the session, with the
    keys of :data:`S3_IDENTITIES`; killed at the end (and with this process if it dies)."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), S3_IDENTITIES) as server:
        _STARTED.append(server)
        yield server


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: SeaweedFS) -> str:
    """The session S3 server's URL (``http://127.0.0.1:PORT``)."""
    return s3_server.endpoint


def use_s3_identity(monkeypatch: pytest.MonkeyPatch, identity: S3Identity, endpoint: str) -> None:
    """Point boto3 at ``endpoint`` with ``identity``'s key, through its own variables."""
    for key, value in identity.env(endpoint).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the S3 server with the admin key; returns the endpoint."""
    use_s3_identity(monkeypatch, S3_ADMIN, s3_endpoint)
    return s3_endpoint


@pytest.fixture
def s3_bucket(s3_env: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the S3 server, named after the test; returns its name."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    client = S3_ADMIN.client(s3_env)
    try:
        client.create_bucket(Bucket=bucket)
    finally:
        client.close()
    return bucket


@pytest.fixture
def scoped_bucket(s3_endpoint: str) -> str:
    """:data:`SCOPED_BUCKET`, deleted (with everything in it) and made again: empty."""
    client = S3_ADMIN.client(s3_endpoint)
    try:
        with contextlib.suppress(client.exceptions.NoSuchBucket):
            client.delete_bucket(Bucket=SCOPED_BUCKET)  # the server empties it first
        client.create_bucket(Bucket=SCOPED_BUCKET)
    finally:
        client.close()
    return SCOPED_BUCKET


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long the S3 server took to start (measured, never asserted on)."""
    for server in _STARTED:
        terminalreporter.write_line(
            f"S3 server: SeaweedFS ({server.endpoint}) ready in {server.startup_seconds:.1f} s"
        )
