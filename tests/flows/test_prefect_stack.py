"""The e2e harness's process tracker reports what happened to the processes it stops.

Two CI runs, launched from a script in the background (SIGINT ignored, as a shell does for
``cmd &``), saw ``serve`` ignore the test's SIGINT and be killed at the deadline, reported
as exit 0: psutil had reaped the killed child, and Popen reads that as 0.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flows.prefect_stack import ProcessTracker, wait_until

READY = "import signal, sys, time\n{setup}\nprint('ready', flush=True)\ntime.sleep(60)\n"


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[ProcessTracker]:
    t = ProcessTracker(tmp_path / "logs")
    yield t
    t.stop_all(timeout=5)


def _start(tracker: ProcessTracker, name: str, setup: str = "") -> None:
    tracker.start(name, [sys.executable, "-c", READY.format(setup=setup)], env={})
    wait_until(f"{name} to start", lambda: "ready" in tracker.log(name).read_text(), 60)


def test_a_child_takes_sigint_even_when_the_tests_ignore_it(tracker: ProcessTracker) -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under `cmd &` or nohup
    try:
        _start(tracker, "child")
    finally:
        signal.signal(signal.SIGINT, before)
    code = tracker.stop("child", signal.SIGINT, timeout=30)
    assert code == -signal.SIGINT and "KeyboardInterrupt" in tracker.log("child").read_text()


def test_a_child_killed_at_the_deadline_reports_it(tracker: ProcessTracker) -> None:
    _start(tracker, "deaf", "signal.signal(signal.SIGINT, signal.SIG_IGN)")
    assert tracker.stop("deaf", signal.SIGINT, timeout=1) == -signal.SIGKILL


def test_stop_all_reports_how_each_child_ended(tmp_path: Path) -> None:
    tracker = ProcessTracker(tmp_path / "logs")
    _start(tracker, "polite")
    _start(tracker, "deaf", "signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    tracker.stop_all(timeout=2)
    codes = {name: proc.returncode for name, proc in tracker.started.items()}
    assert codes == {"polite": -signal.SIGTERM, "deaf": -signal.SIGKILL}
    assert tracker.survivors() == []
