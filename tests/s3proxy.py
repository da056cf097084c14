"""An S3 endpoint that ignores conditional writes, for the tests: a loopback proxy in front
of a real S3 server (SeaweedFS) that drops ``If-None-Match`` and/or ``If-Match`` from every
request, as Garage does and as SeaweedFS, RustFS and versitygw's POSIX backend did before
their fixes (issue 25).

SigV4 signs every request header but ``User-Agent``, ``Expect``, ``Transfer-Encoding`` and
``X-Amzn-Trace-Id``, so a header cannot simply be taken out of a signed request: the
server would find the signature wrong. The proxy is therefore a gateway with its own key
(as real gateways are): it takes the client's request whatever its signature, drops the
conditional headers, and signs what is left again with its key, keeping the client's
``X-Amz-Content-SHA256`` (over plain HTTP botocore hashes the whole payload, so the body
goes on unchanged). Answers come back as the server gave them.

    with StrippingProxy(upstream=server.endpoint, identity=S3_ADMIN) as proxy:
        ...  # talk S3 to proxy.endpoint with any key

With ``strip=()`` it changes nothing; ``delay`` then makes it a server farther away
(benchmarks/s3.py: what read-ahead buys when each request takes a round trip).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.s3server import S3_REGION, S3Identity

CONDITIONAL = ("If-None-Match", "If-Match")
# Set again by the signer (or by http.client), never passed on as the client sent them.
_RESIGNED = {"authorization", "x-amz-date", "x-amz-security-token", "host", "content-length"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class StrippingProxy:
    """A loopback HTTP server passing S3 requests to ``upstream`` without ``strip``."""

    def __init__(
        self,
        upstream: str,
        identity: S3Identity,
        *,
        strip: Iterable[str] = CONDITIONAL,
        delay: float = 0.0,
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.identity = identity
        self.strip = {h.lower() for h in strip}
        self.delay = delay  # seconds added to every request: a server farther away
        self.stripped: list[str] = []  # "<METHOD> <path>: <header>", for the tests to see
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StrippingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, answer = proxy.forward(
                    self.command, self.path, list(self.headers.items()), body
                )
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request, without the stripped headers, signed again, sent upstream."""
        if self.delay:
            time.sleep(self.delay)
        kept: dict[str, str] = {}
        for name, value in headers:
            low = name.lower()
            if low in self.strip:
                with self._lock:
                    self.stripped.append(f"{method} {path}: {name}")
            elif low not in _RESIGNED and low not in _HOP_BY_HOP:
                kept[name] = value
        url = f"{self.upstream.scheme}://{self.upstream.netloc}{path}"
        request = AWSRequest(method=method, url=url, data=body, headers=kept)
        creds = Credentials(self.identity.access_key, self.identity.secret_key)
        _AsSent(creds, "s3", S3_REGION).add_auth(request)
        conn = http.client.HTTPConnection(self.upstream.netloc, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=dict(request.headers.items()))
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


class _AsSent(SigV4Auth):
    """SigV4 over the path exactly as the client encoded it (S3 does not normalise paths),
    with the client's own payload hash (its ``X-Amz-Content-SHA256``, kept)."""

    def _normalize_url_path(self, path: str) -> str:
        return path
