"""Shared fixtures: a scrubbed environment, real MNIST, temporary cache and registry, a
Prefect test server, a registry with a champion (the flow and CLI tests), S3 on moto.

Real MNIST comes from ``$SOFTMAX_PIPE_MNIST`` (set by .ci/run) or ``../shared/data/mnist``.
When it is missing the tests that need it fail, never skip.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
_MNIST_FROM_ENV = os.environ.get("SOFTMAX_PIPE_MNIST")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No AWS_* or SOFTMAX_PIPE_* leaks in from the developer's shell; caches go to temp."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "SOFTMAX_PIPE_")):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    # keras's cache (~/.keras/datasets): a developer's mnist.npz would change the default source.
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
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
    """Prefect state goes to a temp PREFECT_HOME; no telemetry (there is no internet); keras
    runs on JAX.

    Prefect's own timeouts get the room ``softmax-pipe run`` gives them (flows.runner),
    so that the suite holds on a machine whose cores are busy (``.ci/run --contention``).
    """
    import tempfile

    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="softmax-pipe-prefect-")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("KERAS_BACKEND", "jax")  # keras 3 on JAX (CPU), as .[keras] installs
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


# --- S3 on loopback: moto's real HTTP S3 API, driven by the real boto3 client -------------

S3_TEST_KEY = "testing-key-id"
S3_TEST_SECRET = "testing-secret"
S3_REGION = "us-east-1"


class AtomicConditionalWrites:
    """WSGI middleware: requests with If-None-Match / If-Match run one at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if "HTTP_IF_NONE_MATCH" not in environ and "HTTP_IF_MATCH" not in environ:
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 over real HTTP on 127.0.0.1 (free port) for the session; yields its URL.

    moto (5.2) evaluates ``If-None-Match`` / ``If-Match`` on PutObject by looking the key
    up and then writing it, with no lock in between, so two concurrent conditional PUTs
    of one key can both succeed (seen about once in 200 sixteen-way races). AWS S3 and
    MinIO check and write atomically, and the registry protocol relies on that, so the
    server is moto's own WSGI app behind a lock held only for conditional requests.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = AtomicConditionalWrites(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server through its own environment conventions."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_TEST_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_TEST_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    return moto_endpoint


@pytest.fixture
def s3_bucket(s3_env: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the moto server; returns its name."""
    import re
    import uuid

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_env, region_name=S3_REGION).create_bucket(Bucket=bucket)
    return bucket
