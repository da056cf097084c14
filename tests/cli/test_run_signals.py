"""``softmax-pipe run`` with no Prefect server configured, stopped the ways people stop it.

Issue 27: a SIGKILLed run left its temporary Prefect server running (item 7), and a
Ctrl-C to the process group (a terminal, ``timeout``, a container stop) a few seconds in
took minutes and exited 4, "Prefect API failed" (item 8): the signal stopped the server
too, and the run retried the dead API. The installed console script runs in a session
of its own (as a shell job would be its own process group); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.flows.prefect_stack import wait_until
from tests.flows.test_runner import _healthy, _port, _server, _training, _user_env

SCRIPT = Path(sys.executable).parent / "softmax-pipe"
STARTUP = 240  # seconds a busy 2-core box may take to start the temporary server


def _start_run(mnist_dir: Path, cache: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A run long enough to be stopped while it trains (50 epochs: a minute or more)."""
    args = [str(SCRIPT), "run", "--source", str(mnist_dir), "--cache-dir", str(cache)]
    args += ["--registry", str(tmp_path / "reg"), "--epochs", "50", "--retry-delay", "0"]
    with (tmp_path / "run.log").open("wb") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=_user_env(tmp_path),
            cwd=tmp_path, start_new_session=True,
        )  # fmt: skip


def _children(cli: psutil.Process) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = cli.children(recursive=True)
        return children
    except psutil.NoSuchProcess:
        return []


def _wait_for(moment: str, cli: psutil.Process, log: Path) -> int:
    """Block until the run reaches ``moment``; the server's port."""
    port = _port(wait_until("the temporary server's process", lambda: _server(cli), STARTUP))
    if moment == "starting":
        return port  # its process exists; it does not answer yet (it takes seconds)
    wait_until("the server's /api/health", lambda: _healthy(port), STARTUP,
               on_timeout=log.read_text)  # fmt: skip
    if moment == "setting up":
        time.sleep(2.0)  # the flow run being created and its first task starting
    elif moment == "training":
        wait_until("the flow run to be Running", lambda: _training(port), STARTUP,
                   on_timeout=log.read_text)  # fmt: skip
    return port


def _stop(proc: subprocess.Popen[bytes], descendants: list[psutil.Process]) -> None:
    """Clean up whatever a failed test left: the run's session, and each process it had
    started (an orphan left by the bug is in another session, no longer our descendant)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for p in descendants:  # psutil checks the creation time: never a reused pid
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("moment", ["healthy", "training"])
def test_a_sigkilled_run_leaves_no_temporary_server(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, moment: str
) -> None:
    """SIGKILL to the CLI alone (no exit handler runs): its server and the server's guard
    are gone within seconds, and nothing answers on the server's port."""
    proc = _start_run(mnist_dir, session_cache, tmp_path)
    cli = psutil.Process(proc.pid)
    descendants: list[psutil.Process] = []
    try:
        port = _wait_for(moment, cli, tmp_path / "run.log")
        descendants = cli.children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        _, alive = psutil.wait_procs(descendants, timeout=30)
        assert not alive, [p.cmdline()[:4] for p in alive]
        assert not _healthy(port)
    finally:
        _stop(proc, descendants)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sig", "moment"),
    [
        (signal.SIGINT, "starting"),
        (signal.SIGINT, "setting up"),
        (signal.SIGTERM, "setting up"),
        (signal.SIGINT, "training"),
        (signal.SIGTERM, "training"),
    ],
    ids=["SIGINT-starting", "SIGINT-setting-up", "SIGTERM-setting-up", "SIGINT-training",
         "SIGTERM-training"],
)  # fmt: skip
@pytest.mark.slow
def test_a_signal_to_the_process_group_ends_the_run_with_130(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, sig: signal.Signals, moment: str
) -> None:
    """Ctrl-C at a terminal (SIGINT to the group) or ``timeout`` / a container stop
    (SIGTERM): exit 130 with "interrupted", within the bound, no Prefect API failure, no
    process of the run left behind."""
    proc = _start_run(mnist_dir, session_cache, tmp_path)
    cli = psutil.Process(proc.pid)
    log = tmp_path / "run.log"
    descendants: list[psutil.Process] = []
    try:
        port = _wait_for(moment, cli, log)
        descendants = cli.children(recursive=True)
        os.killpg(proc.pid, sig)
        try:
            code = proc.wait(timeout=90)  # the deadline is 15 s; this bounds a busy box
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 90 s after {sig.name} to the group:\n{log.read_text()}")
        out = log.read_text()
        assert code == 130, out
        assert out.rstrip().splitlines()[-1].startswith("interrupted"), out
        assert "Prefect API" not in out and "Traceback" not in out, out
        _, alive = psutil.wait_procs(descendants, timeout=30)
        assert not alive, [p.cmdline()[:4] for p in alive]
        assert not _healthy(port)
    finally:
        _stop(proc, descendants or _children(cli))
