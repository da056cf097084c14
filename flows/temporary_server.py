"""The temporary Prefect server of a CLI run, and how a run ends on Ctrl-C or SIGTERM.

Without ``PREFECT_API_URL``, Prefect starts a local server on first use (its
``SubprocessASGIServer``: ``python -m uvicorn ... prefect.server.api.server:create_app``)
and stops it at exit (``atexit``). Left as it is, that server

- is in the CLI's process group, so Ctrl-C at a terminal, ``timeout`` or any signal to
  the group stops it too, while the run still needs it to record that it was
  interrupted: Prefect then retried the dead API for minutes and the CLI exited 4;
- outlives a CLI killed with SIGKILL (no ``atexit`` runs), still answering ``/health``.

:func:`start_server` starts that same server (Prefect's class, command, settings and the
very instance Prefect's clients use, so nothing else changes), with two differences:

- it runs in a session of its own (``start_new_session``): a signal to the CLI's group
  does not reach it, and the CLI stops it on its way out, as before;
- a guard process watches it: a few lines of Python (no imports beyond the standard
  library's ``os``), in a session of its own too, that waits for the CLI to end (its
  parent changes) and then stops the server as Prefect's ``stop`` does (SIGTERM, 5 s,
  SIGKILL), or exits when the server ends first. On Linux it holds a pidfd of the server,
  so it can never signal another process that reused the pid.

:class:`Interrupts` is the other half, for the CLI's main thread: SIGINT and SIGTERM
raise ``KeyboardInterrupt`` (Prefect's flow engine marks the run crashed, the CLI exits
130), except inside :meth:`Interrupts.deferred` (starting the server and its guard: an
interrupt there could leave the pair half made), where it is raised on the way out. The
first interrupt also arms a deadline: should the run still not have ended
:data:`INTERRUPT_DEADLINE` seconds later (an API that went away with the signal, and a
client retrying it), or at a second interrupt, the temporary server is stopped and the
process exits 130 at once: no worse than a SIGKILL, which the registry is built to survive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from softmax_core.errors import EXIT_INTERRUPTED

#: seconds between the first interrupt and a forced exit, should the run not end by then
INTERRUPT_DEADLINE = 15.0
#: seconds the guard waits between looks at its parent and the server
GUARD_POLL = 0.2

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PATCHED = "subprocess"  # the name Prefect's server module starts the server through

# The guard: argv = server pid, CLI pid, seconds between looks. Runs with -I -S (no site
# packages, no environment variables read).
GUARD = """
import os, select, signal, sys, time
server, parent, poll = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
try:
    fd = os.pidfd_open(server)
except (AttributeError, OSError):
    fd = None
def ended(wait):
    if fd is not None:
        return bool(select.select([fd], [], [], wait)[0])
    time.sleep(wait)
    try:
        os.kill(server, 0)
    except ProcessLookupError:
        return True
    return False
def send(sig):
    try:
        signal.pidfd_send_signal(fd, sig) if fd is not None else os.kill(server, sig)
    except OSError:
        pass
while os.getppid() == parent:
    if ended(poll):
        sys.exit(0)
if not ended(0):
    send(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while not ended(0.1) and time.monotonic() < deadline:
        pass
    if not ended(0):
        send(signal.SIGKILL)
"""


def start_guard(server_pid: int) -> subprocess.Popen[bytes]:
    """The process that stops ``server_pid`` once this process is gone (see the module)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            GUARD,
            str(server_pid),
            str(os.getpid()),
            str(GUARD_POLL),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class _OwnSession:
    """What Prefect's server module sees as ``subprocess`` while it starts the server:
    the real module, except that ``Popen`` starts the process in a session of its own
    and starts its guard (both with interrupts deferred)."""

    def __init__(self, real: Any, interrupts: Interrupts | None) -> None:
        self._real = real
        self._interrupts = interrupts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:
        deferred = self._interrupts.deferred() if self._interrupts else contextlib.nullcontext()
        proc = None
        try:
            with deferred:
                proc = self._real.Popen(*args, **{**kwargs, "start_new_session": True})
                _STARTED.append(proc)
                start_guard(proc.pid)
        except KeyboardInterrupt:  # Prefect never gets this process: stop it here
            if proc is not None:
                _stop(proc)
            raise
        return proc


def start_server(interrupts: Interrupts | None = None) -> Any:
    """Start Prefect's temporary server now (the instance its clients use), in a session of
    its own and guarded; Prefect's own errors (a start that times out) pass through."""
    from prefect.server.api import server as prefect_server

    instance = prefect_server.SubprocessASGIServer()
    if instance.running:
        return instance
    real = getattr(prefect_server, _PATCHED)
    setattr(prefect_server, _PATCHED, _OwnSession(real, interrupts))
    try:
        instance.start()
    finally:
        setattr(prefect_server, _PATCHED, real)
    return instance


#: every server process started here: an interrupt during a start (or a restart on a port
#: taken meanwhile) leaves Prefect without the process it was starting
_STARTED: list[subprocess.Popen[Any]] = []


def stop_server() -> None:
    """Stop Prefect's temporary server if this process started one (Prefect's ``stop``),
    and any other server process started here that still runs (SIGTERM, 5 s, SIGKILL)."""
    from prefect.server.api import server as prefect_server

    instance = prefect_server.SubprocessASGIServer._instances.get(None)
    if instance is not None and instance.server_process is not None:
        instance.stop()
    while _STARTED:
        _stop(_STARTED.pop())


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, 5 s, SIGKILL, as Prefect's ``stop`` (nothing if it has ended)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Interrupts:
    """SIGINT and SIGTERM as ``KeyboardInterrupt`` in the main thread, with a deadline
    (see the module docstring); a context manager that restores the previous handlers.

    ``say`` prints the one line of a forced exit; ``deadline`` is in seconds. Outside the
    main thread it does nothing (signals only reach Python handlers there)."""

    def __init__(self, say: Callable[[str], None], deadline: float = INTERRUPT_DEADLINE) -> None:
        self.say = say
        self.deadline = deadline
        self.received: int | None = None  # the first signal's number
        self._pending = False
        self._deferring = 0
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        """Restore the handlers. An armed deadline stays armed: the process is on its way
        out, and Prefect's exit handlers (flushing logs to the API) are bounded by it too."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self._force_exit()  # a second Ctrl-C: do not wait any longer
        self.received = signum
        self._timer = threading.Timer(self.deadline, self._force_exit)
        self._timer.daemon = True
        self._timer.start()
        if self._deferring:
            self._pending = True
            return
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """An interrupt inside the block is raised when the block ends."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self._pending and not self._deferring:
            self._pending = False
            raise KeyboardInterrupt(f"signal {signal.Signals(self.received or 2).name}")

    def _force_exit(self) -> None:
        """The deadline passed (or a second interrupt): stop the server, exit 130 now."""
        with contextlib.suppress(Exception):
            self.say("interrupted: not waiting for Prefect any longer")
            stop_server()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(EXIT_INTERRUPTED)
