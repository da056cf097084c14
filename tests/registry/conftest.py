"""Fixtures for the registry contract suite: every test here runs on both stores.

``local``: a folder under tmp_path. ``s3``: ``s3://<fresh bucket>/team/models`` on the
session's SeaweedFS server (tests/conftest.py: a real S3 server on loopback, the real boto3
client, settings via AWS_* env).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import Registry, open_store
from tests.registry.helpers import CountingStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "s3"])
def registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/team/models"


@pytest.fixture
def reg(registry_uri: str, tmp_path: Path) -> Iterator[Registry]:
    r = Registry.open(registry_uri, cache_dir=tmp_path / "cache")
    yield r
    r.close()


@pytest.fixture
def counted(registry_uri: str, tmp_path: Path) -> tuple[Registry, CountingStore]:
    store = CountingStore(open_store(registry_uri))
    return Registry(store, cache_dir=tmp_path / "cache-counted"), store


def start_worker(*args: str) -> subprocess.Popen[str]:
    """``python -m tests.registry.worker ARGS`` with this process's environment (AWS_* incl.)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.registry.worker", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != expected:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"worker said {line!r}, expected {expected!r}; stderr:\n{err}")
