"""flows.temporary_server.Interrupts in a real process: signals, deferral, the deadline.

(The temporary server and its guard are tested end to end in tests/cli/test_run_signals.py.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

# Interrupted, then stuck (as a client retrying an API that went away): the deadline ends it.
STUCK = """
import sys, time
from flows.temporary_server import Interrupts
with Interrupts(lambda line: print(line, file=sys.stderr, flush=True), deadline=1.0):
    try:
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("caught", flush=True)
        time.sleep(60)  # stuck: only the deadline (or a second signal) ends this
"""

# An interrupt inside deferred() is raised when the block ends, not inside it.
DEFERRED = """
import os, signal, sys, time
from flows.temporary_server import Interrupts
with Interrupts(print, deadline=30.0) as interrupts:
    try:
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            print("block finished", flush=True)
    except KeyboardInterrupt as e:
        print("raised after the block:", e, flush=True)
        sys.exit(0)
"""


def _start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_run_stuck_after_an_interrupt_exits_130_at_the_deadline(sig: signal.Signals) -> None:
    proc = _start(STUCK)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)  # 1 s deadline; the 60 s sleep never ends it
    assert proc.returncode == 130, err
    assert out == "caught\n" and "interrupted: not waiting for Prefect any longer" in err


def test_a_second_interrupt_exits_130_at_once() -> None:
    proc = _start(STUCK.replace("deadline=1.0", "deadline=600.0"))
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None and proc.stdout.readline() == "caught\n"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - started < 30


def test_an_interrupt_while_deferred_is_raised_when_the_block_ends() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["block finished", "raised after the block: signal SIGTERM"]


# An interrupt while the server's process is being started: Prefect never gets the process
# (the interrupt is raised inside its Popen), so the wrapper stops it before raising.
STARTING = """
import os, signal, subprocess, sys
from flows import temporary_server as ts
with ts.Interrupts(print, deadline=30.0) as interrupts:
    real, started = subprocess.Popen, []
    def popen(*args, **kwargs):
        started.append(real(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGINT)  # arrives while deferred, after the start
        return started[-1]
    wrapper = ts._OwnSession(type("M", (), {"Popen": staticmethod(popen)})(), interrupts)
    try:
        wrapper.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    except KeyboardInterrupt:
        print("still running" if started[0].poll() is None else "stopped")
        started[0].kill()
        sys.exit(0)
"""


def test_an_interrupt_during_the_start_stops_the_started_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STARTING], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "stopped", done.stdout
