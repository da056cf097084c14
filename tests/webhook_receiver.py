"""A webhook receiver on loopback for the tests: it checks each POST's signature itself
(HMAC-SHA256 of the raw body, not through ``registry.webhooks``), keeps every attempt, and
can be told to fail the first attempts of each delivery or to answer with a status."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attempt:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool  # the signature header is the HMAC of the body with the secret

    @property
    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """What the server saw; ``fail_first`` attempts of each delivery answer 500,
    ``status`` answers every attempt with that code (e.g. 401)."""

    secret: str
    url: str = ""
    fail_first: int = 0
    status: int | None = None
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliveries(self) -> dict[str, list[Attempt]]:
        """Attempts by delivery id, in arrival order."""
        out: dict[str, list[Attempt]] = {}
        with self.lock:
            for a in self.attempts:
                out.setdefault(a.headers.get("x-softmax-pipe-delivery", ""), []).append(a)
        return out

    def events(self) -> list[dict[str, Any]]:
        """Each delivery's body once (the first attempt of each id), in arrival order."""
        return [tries[0].doc for tries in self.deliveries().values()]

    def _answer(self, attempt: Attempt) -> int:
        with self.lock:
            self.attempts.append(attempt)
            same = [
                a
                for a in self.attempts
                if a.headers.get("x-softmax-pipe-delivery")
                == attempt.headers.get("x-softmax-pipe-delivery")
            ]
        if self.status is not None:
            return self.status
        return 500 if len(same) <= self.fail_first else 204


@contextmanager
def receiver(secret: str, **options: Any) -> Iterator[Receiver]:
    """A receiver listening on a free loopback port at ``/hooks/models``."""
    got = Receiver(secret, **options)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(expected, headers.get("x-softmax-pipe-signature", ""))
            code = got._answer(Attempt(self.path, headers, body, signed))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/models"
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def dead_url() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/T0K3N-in-the-path"
