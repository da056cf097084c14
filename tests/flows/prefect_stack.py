"""Real processes for the end-to-end deployment test: a Prefect server, workers, ``serve``.

- :class:`ProcessTracker` starts every child in its own session with a unique marker in
  its environment; :meth:`ProcessTracker.stop_all` terminates, then kills, every process
  carrying the marker (flow-run subprocesses start their own sessions, so process groups
  alone would miss them), and :meth:`ProcessTracker.survivors` proves none is left.
- :class:`PrefectServer` runs ``prefect server start`` on 127.0.0.1 and a free port with
  SQLite in a temp dir; the test process talks to it through :meth:`PrefectServer.client`
  (explicit API URL, never the environment, so the session's in-process test server is
  undisturbed).
- :class:`WriteCutProxy` is an S3 endpoint that forwards reads to the S3 server and drops every
  write: the registry becomes unreachable exactly when a run publishes.

Every wait is bounded; a timeout names what was awaited and shows the logs.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import psutil

from tests.s3server import die_with_parent

REPO = Path(__file__).resolve().parents[2]
MARKER = "SOFTMAX_PIPE_E2E_TOKEN"
T = TypeVar("T")


def _from_a_terminal() -> Callable[[], None]:
    """A ``preexec_fn``: the child dies with the test (a test process killed outright leaves
    none behind: :func:`tests.s3server.die_with_parent`) and takes SIGINT as a command
    typed at a terminal does. A test run started in the background of a script (``cmd &``
    without job control, ``nohup``) ignores SIGINT, and children inherit that, so a child
    would ignore the SIGINT that stands for Ctrl-C here. (Two CI runs launched so saw
    ``serve`` log nothing after the SIGINT and "exit 0" 30 s later: it had ignored the
    signal and was killed at the deadline, and the exit code was :meth:`kill_tree`'s
    misreading, since fixed.)"""
    die = die_with_parent()

    def preexec() -> None:
        die()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return preexec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 0.25,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{extra}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return f"--- last lines of {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


class ProcessTracker:
    """Children with a marker in their environment; stopped together, orphans found."""

    def __init__(self, logs: Path) -> None:
        self.token = uuid.uuid4().hex
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        self._files.append(log)
        proc = subprocess.Popen(
            argv,
            env={**env, MARKER: self.token},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_from_a_terminal(),
        )
        self.started[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def marked(self) -> list[psutil.Process]:
        """Every live process whose environment carries this tracker's marker."""
        found = []
        for p in psutil.process_iter(["pid"]):
            try:
                if p.environ().get(MARKER) == self.token and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def tree(self, proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
        """``proc`` and all its descendants, whatever session they started."""
        try:
            root = psutil.Process(proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_tree(self, name: str) -> int:
        """SIGKILL a child and every descendant at once (a machine or container dying)."""
        proc = self.started[name]
        victims = self.tree(proc)
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        # the child is reaped by its Popen, not by psutil: a Popen whose child someone
        # else reaped reports exit 0 (ECHILD), and a killed ``serve`` looked like a clean one
        proc.wait(timeout=10)
        psutil.wait_procs([p for p in victims if p.pid != proc.pid], timeout=10)
        return len(victims)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal one child (its group); wait; kill its tree if it lingers. Its exit code."""
        proc = self.started[name]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_tree(name)
        return proc.returncode

    def stop_all(self, timeout: float = 15.0) -> None:
        """Terminate every marked process and child, then kill what is left."""
        victims = {p.pid: p for p in self.marked()}
        for proc in self.started.values():
            victims.update({p.pid: p for p in self.tree(proc)})
        for p in victims.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        # the started children are reaped by their Popens first (see kill_tree), then the
        # rest by psutil, all within the one ``timeout``
        deadline = time.monotonic() + timeout
        for proc in self.started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        started = {proc.pid for proc in self.started.values()}
        others = [p for pid, p in victims.items() if pid not in started]
        _, alive = psutil.wait_procs(others, timeout=max(deadline - time.monotonic(), 0.1))
        for p in alive + self.marked():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        for proc in self.started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        psutil.wait_procs(alive, timeout=5)
        for f in self._files:
            f.close()

    def survivors(self) -> list[str]:
        """Descriptions of marked processes still alive (should be none after stop_all)."""
        out = []
        for p in self.marked():
            with contextlib.suppress(psutil.Error):
                out.append(f"{p.pid}: {' '.join(p.cmdline())[:200]}")
        return out


def base_env(home: Path) -> dict[str, str]:
    """The environment every child starts from: no PREFECT_*, AWS_* or SOFTMAX_PIPE_* leaks."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "AWS_", "SOFTMAX_PIPE_"))
    }
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(home / "prefect"),
            # room for a busy machine: one API request, and SQLite's wait for its lock
            "PREFECT_API_REQUEST_TIMEOUT": "120",
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            # boto3 must never find the developer's credentials or config.
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


class PrefectServer:
    """``prefect server start`` in a subprocess, SQLite in ``root``; API on a free port.

    ``auth``: ``user:password`` for Prefect's own API auth, as deploy/docker-compose.yml
    turns it on (``PREFECT_SERVER_API_AUTH_STRING`` on the server; every client this
    class sets up sends ``PREFECT_API_AUTH_STRING``)."""

    def __init__(self, tracker: ProcessTracker, root: Path, *, auth: str | None = None) -> None:
        self.tracker = tracker
        self.root = root
        self.auth = auth
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 240.0) -> None:
        import httpx

        home = self.root / "server-home"
        home.mkdir(parents=True, exist_ok=True)
        env = base_env(home)
        env.update(
            {
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
                    f"sqlite+aiosqlite:///{self.root / 'prefect.db'}"
                ),
                "PREFECT_SERVER_UI_ENABLED": "false",
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            }
        )
        if self.auth is not None:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth
        argv = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        proc = self.tracker.start("server", argv, env)

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"prefect server exited with {proc.returncode}\n"
                    + tail(self.tracker.log("server"))
                )
            try:
                return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(
            "the Prefect server to answer /api/health",
            healthy,
            timeout,
            interval=0.5,
            on_timeout=lambda: tail(self.tracker.log("server")),
        )

    def client_env(self, home: Path) -> dict[str, str]:
        env = base_env(home)
        env["PREFECT_API_URL"] = self.api_url
        if self.auth is not None:
            env["PREFECT_API_AUTH_STRING"] = self.auth
        return env

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A sync Prefect client on this server, whatever the test process has configured."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        updates: dict[Any, Any] = {PREFECT_API_URL: self.api_url}
        if self.auth is not None:
            updates[PREFECT_API_AUTH_STRING] = self.auth
        with temporary_settings(updates), get_client(sync_client=True) as client:
            yield client


class WriteCutProxy:
    """An HTTP S3 endpoint in front of an S3 server: reads go through, writes are dropped.

    Every PUT/POST/DELETE is answered by closing the connection without a response, the
    way an endpoint that went away mid-publish looks to boto3.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rstrip("/").split(":")
        self.refused: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _drop(self) -> None:
                proxy.refused.append(f"{self.command} {self.path}")
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_HEAD = _forward
            do_PUT = do_POST = do_DELETE = _drop

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WriteCutProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
