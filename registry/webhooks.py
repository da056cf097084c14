"""Signed outbound webhooks: each registry event POSTed as JSON to the URLs configured.

A :class:`Webhooks` is a registry listener (``registry.events``): after a publish,
request, approve, reject, promote or rollback has succeeded, it queues one delivery per
URL and returns at once; background threads (one per URL, so each receiver gets its
events in order) do the sending. The body, compact JSON in UTF-8::

    {"type": "promote", "event": "softmax-pipe.alias.moved", "delivery": "<32 hex>",
     "sent_at": "<UTC ISO 8601>", "registry": "s3://bucket/reg", "model": "mnist",
     "version": 3, "alias": "champion", "from": 2, "to": 3, "at": "<when it happened>",
     "actor": {"identity": "arn:...", "source": "sts", "by": "alice"},
     "comment": null, "request": null}

``type`` is publish, request, approve, reject, promote or rollback; ``from``/``to`` are an
alias's versions (null for a publish), ``request`` the request's number. Headers:
``X-Softmax-Pipe-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the
secret>``, ``X-Softmax-Pipe-Event`` (the type) and ``X-Softmax-Pipe-Delivery`` (the id).
A receiver recomputes the HMAC over the raw bytes (:func:`verify`), refuses a
``sent_at`` older than a few minutes (a replay) and keeps each delivery id once: a
retry sends the very same body.

Delivery: retried with backoff (0.5 s, doubling, jittered) on a network error, a 5xx, 408
or 429, for at most ``retry_seconds`` after the event; any other answer but a 2xx is
final (redirects are not followed). A delivery that fails is a warning: one line per
URL for a run of failures, naming the host only (a webhook URL's path may hold a token),
never the secret. Telling others never fails or slows the registry operation:
:meth:`Webhooks.flush` waits, bounded, for what is in flight; the CLI calls it after its
output, and at interpreter exit it runs once more so a flow run's process delivers
before it ends.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from registry.events import RegistryEvent
from softmax_core import settings
from softmax_core.urls import redact, url_problem

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Softmax-Pipe-Signature"
EVENT_HEADER = "X-Softmax-Pipe-Event"
DELIVERY_HEADER = "X-Softmax-Pipe-Delivery"
FIRST_DELAY = 0.5  # seconds before the first retry; doubled for each next one
_RETRIED_STATUS = {408, 429}


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``body``'s signature with ``secret`` (constant-time compare):
    what a receiver written in Python calls on the raw request body."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def body_of(event: RegistryEvent, delivery: str, sent_at: str) -> bytes:
    """The JSON a webhook receives for ``event`` (see the module docstring)."""
    change = event.change
    if change is None:
        raise ValueError(f"event {event.event} carries no change to send")
    doc = {
        "type": change.kind,
        "event": event.event,
        "delivery": delivery,
        "sent_at": sent_at,
        "registry": change.registry,
        "model": change.model,
        "version": change.version,
        "alias": change.alias,
        "from": change.from_version,
        "to": change.to_version,
        "at": change.at,
        "actor": None if change.actor is None else asdict(change.actor),
        "comment": change.comment,
        "request": change.request,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def shown(url: str) -> str:
    """A URL as messages show it: scheme, host and port only (paths hold tokens, and no
    credential is shown, however malformed the URL: :func:`softmax_core.urls.redact`)."""
    return redact(url, path=False)


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one URL: the exact bytes every attempt sends."""

    url: str
    kind: str
    what: str  # for messages: "promote mnist@champion -> mnist:3"
    delivery: str
    body: bytes
    deadline: float  # time.monotonic() after which it is given up


@dataclass
class _Line:
    """One URL's queue and sending thread."""

    queue: queue.Queue[Delivery]
    thread: threading.Thread


class Webhooks:
    """A registry listener that POSTs each event, signed, to ``urls`` (module docstring).

    ``retry_seconds``: how long a delivery is retried after its event; ``attempt_seconds``:
    the timeout of one POST. ``delivered`` and ``failed`` count deliveries so far.
    """

    def __init__(
        self,
        urls: Sequence[str],
        secret: str | None,
        *,
        retry_seconds: float = settings.WEBHOOK_RETRY_SECONDS,
        attempt_seconds: float = settings.WEBHOOK_ATTEMPT_SECONDS,
    ) -> None:
        problems = {u: url_problem(u, credentials=True) for u in urls}
        bad = [u for u, problem in problems.items() if problem is not None]
        for url in bad:
            log.warning(
                "webhook URL %r skipped (%s): it %s",
                shown(url),
                settings.ENV_WEBHOOK_URL,
                problems[url],
            )
        self.urls = tuple(u for u in urls if u not in bad)
        self._secret = secret
        if self.urls and not secret:
            log.warning(
                "%s is not set: webhooks go out unsigned, and receivers cannot tell them "
                "from forgeries",
                settings.ENV_WEBHOOK_SECRET,
            )
        self.retry_seconds = retry_seconds
        self.attempt_seconds = attempt_seconds
        self.delivered = 0
        self.failed = 0
        self._lines: dict[str, _Line] = {}
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        atexit.register(self.flush)

    def __repr__(self) -> str:  # no secret, no URL paths
        return f"Webhooks({', '.join(shown(u) for u in self.urls)})"

    # --- the listener -----------------------------------------------------------------
    def __call__(self, event: RegistryEvent) -> None:
        """Queue ``event`` for every URL and return (never blocks on the network)."""
        change = event.change
        if change is None:
            return
        # to the microsecond, as ``at`` is: cut to the millisecond, an event sent within
        # the millisecond it happened was stamped as sent before it
        sent_at = datetime.now(UTC).isoformat()
        version = f"{change.model}:{change.version}"
        what = f"{change.kind} " + (
            version if change.alias is None else f"{change.model}@{change.alias} -> {version}"
        )
        deadline = time.monotonic() + self.retry_seconds
        for url in self.urls:
            delivery = uuid.uuid4().hex
            job = Delivery(
                url, change.kind, what, delivery, body_of(event, delivery, sent_at), deadline
            )
            with self._lock:
                self._pending += 1
                line = self._lines.get(url) or self._start(url)
            line.queue.put(job)

    def _start(self, url: str) -> _Line:
        """A sending thread for ``url`` (called with the lock held)."""
        line = _Line(queue.Queue(), threading.Thread(target=self._send_all, args=(url,)))
        line.thread.name = f"webhook {shown(url)}"
        line.thread.daemon = True  # never keeps a process alive past flush's bound
        self._lines[url] = line
        line.thread.start()
        return line

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery is delivered or given up, at most ``timeout``
        seconds (default: the retry time plus one attempt); True when none is left."""
        limit = self.retry_seconds + self.attempt_seconds + 1.0 if timeout is None else timeout
        end = time.monotonic() + limit
        with self._idle:
            while self._pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # --- the sending threads ------------------------------------------------------------
    def _send_all(self, url: str) -> None:
        import httpx

        line = self._lines[url]
        failures: list[tuple[Delivery, str]] = []
        with httpx.Client(follow_redirects=False) as client:
            while True:
                job = line.queue.get()
                failing = bool(failures) and time.monotonic() >= job.deadline
                try:
                    why = (
                        "not tried: the receiver was failing"
                        if failing
                        else self._send(client, job)
                    )
                except Exception as e:  # a bug here must not kill the thread: say it
                    why = f"{type(e).__name__}: {e}"
                if why is not None:
                    failures.append((job, why))
                if failures and line.queue.empty():
                    self._warn(url, failures)
                    failures = []
                with self._idle:
                    self._pending -= 1
                    self.delivered += why is None
                    self.failed += why is not None
                    self._idle.notify_all()

    def _send(self, client: httpx.Client, job: Delivery) -> str | None:
        """Deliver ``job`` (retried until its deadline); None, or why it failed."""
        import httpx

        headers = {
            "Content-Type": "application/json",
            "User-Agent": "softmax-pipe-webhooks",
            EVENT_HEADER: job.kind,
            DELIVERY_HEADER: job.delivery,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, job.body)
        started, delay, attempts = time.monotonic(), FIRST_DELAY, 0
        while True:
            attempts += 1
            budget = max(0.1, min(self.attempt_seconds, job.deadline - time.monotonic()))
            try:
                answer = client.post(job.url, content=job.body, headers=headers, timeout=budget)
                if 200 <= answer.status_code < 300:
                    return None
                why = f"HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code not in _RETRIED_STATUS:
                    return f"{why}, not retried"
            except httpx.HTTPError as e:
                why = f"{type(e).__name__}: {str(e).replace(job.url, shown(job.url))}"
            wait = delay * random.uniform(0.8, 1.2)
            delay *= 2
            if time.monotonic() + wait >= job.deadline:
                took = time.monotonic() - started
                return f"{why}; {attempts} attempt(s) in {took:.1f} s"
            time.sleep(wait)

    @staticmethod
    def _warn(url: str, failures: list[tuple[Delivery, str]]) -> None:
        first, why = failures[0]
        more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
        log.warning(
            "webhook %s: could not deliver %s%s (%s); the registry change itself is done",
            shown(url),
            first.what,
            more,
            why,
        )


_SHARED: dict[tuple[tuple[str, ...], str | None], Webhooks] = {}
_SHARED_LOCK = threading.Lock()


def shared(config: settings.WebhookSettings) -> Webhooks | None:
    """One :class:`Webhooks` per process for ``config`` (None when it names no URL): every
    registry a process opens, in any task of a flow run, shares its sending threads."""
    if not config.urls:
        return None
    key = (config.urls, config.secret)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Webhooks(config.urls, config.secret)
        return _SHARED[key]
