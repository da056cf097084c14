"""Small pieces the flows' tasks share: opening the registry, who retries what, and the
log lines that say what a run prepares (:func:`preparing`).

Only I/O tasks retry, and only on errors that a second attempt can fix: a download that
failed on the network (``DownloadError``) or a store that failed (``StorageError``, but
not an ``IntegrityError``: bytes that do not match their digest are refused loudly, not
fetched again and again, nor a ``CorruptObjectError``). A host name that does not
resolve ("Name or service not known") is not retried either: it will not resolve in
eight seconds. Everything else (bad input, a missing model, the gate) fails the task at
once.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefect.cache_policies import NO_CACHE

from softmax_core.errors import (
    CorruptObjectError,
    DownloadError,
    IntegrityError,
    StorageError,
)

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

    from registry import Registry
    from softmax_core.requests import Location, Retries

# Every task's results stay in memory: datasets and weights pass between tasks as they
# are, never hashed for a cache key or persisted by Prefect.
IN_MEMORY: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}

#: a log record's attribute marking a line that says what a run prepares
PREPARING = "softmax_pipe_preparing"


def preparing(logger: logging.Logger | logging.LoggerAdapter[Any]) -> Callable[[str], None]:
    """``logger.info`` for the lines a task says while it prepares (MNIST parsed, features,
    cluttered digits and non-digits made: a first run's minute before its first epoch),
    marked :data:`PREPARING` so that ``flows.runner`` shows them on stderr, as ``train``
    does, while Prefect's console is kept quiet."""
    return lambda line: logger.info("%s", line, extra={PREPARING: True})


#: what name-resolution failures say when only their text survives (glibc, musl, macOS)
_UNRESOLVED = (
    "Name or service not known",
    "nodename nor servname provided",
    "No address associated with hostname",
    "Temporary failure in name resolution",
    "getaddrinfo failed",
)


def open_registry(location: Location) -> Registry:
    """The registry at ``location`` (resolved from the environment where it is not given),
    its events forwarded to the Prefect API when one is configured (``flows.events``)."""
    from flows.events import registry_listeners
    from registry import Registry

    return Registry.at(location, listeners=registry_listeners())


def exception_of(state: State[Any]) -> BaseException | None:
    """The exception a Failed task state carries, or None."""
    data = state.data
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # a result that cannot be read is not a reason to retry
        return None
    return result if isinstance(result, BaseException) else None


def is_unresolved_host(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it was raised from is a DNS failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or any(t in str(current) for t in _UNRESOLVED):
            return True
        current = current.__cause__ or current.__context__
    return False


class RetryOn:
    """A Prefect ``retry_condition_fn``: retry only on the given error classes.

    ``RetryOn(StorageError, unless=(IntegrityError,))`` retries storage failures except
    digest mismatches; a host name that does not resolve is never retried.
    """

    def __init__(
        self, *kinds: type[BaseException], unless: tuple[type[BaseException], ...] = ()
    ) -> None:
        self.kinds = kinds
        self.unless = unless

    def __call__(self, task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
        exc = exception_of(state)
        return (
            isinstance(exc, self.kinds)
            and not isinstance(exc, self.unless)
            and not is_unresolved_host(exc)
        )

    def __repr__(self) -> str:
        names = ", ".join(k.__name__ for k in self.kinds)
        unless = f" unless {', '.join(k.__name__ for k in self.unless)}" if self.unless else ""
        return f"RetryOn({names}{unless})"


def io_retry_options(retries: Retries) -> dict[str, Any]:
    """``with_options`` keywords for an I/O task: ``io_retries`` attempts more, exponential
    delays: Prefect's ``exponential_backoff(io_retry_delay)``, ``io_retry_delay`` seconds
    before the first retry, doubling for each next one (0: no wait)."""
    from prefect.tasks import exponential_backoff

    return {
        "retries": retries.io_retries,
        "retry_delay_seconds": exponential_backoff(float(retries.io_retry_delay)),
    }


#: ingest retries on network failures of a download only
DOWNLOAD_RETRY = RetryOn(DownloadError)
#: registry pull/publish/promote retry on store failures, never on damaged or mismatched bytes
STORAGE_RETRY = RetryOn(StorageError, unless=(IntegrityError, CorruptObjectError))
