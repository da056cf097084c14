"""Small pieces the training flow's tasks share: where the registry is, and who retries what.

Only I/O tasks retry, and only on errors that a second attempt can fix: a download that
failed on the network (``DownloadError``) or a store that failed (``StorageError``, but
not an ``IntegrityError``: bytes that do not match their digest are refused loudly, not
fetched again and again, nor a ``CorruptObjectError``). Everything else (bad input, a missing model, the gate) fails
the task at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softmax_core.errors import (
    CorruptObjectError,
    DownloadError,
    IntegrityError,
    InvalidInputError,
    StorageError,
)

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

    from registry import Registry

DEFAULT_IO_RETRIES = 3
DEFAULT_IO_RETRY_DELAY = 2.0  # seconds before the first retry; doubled for each next one


@dataclass(frozen=True)
class RegistryRef:
    """Where the registry lives: plain values, so tasks can open it wherever they run."""

    uri: str
    endpoint_url: str | None
    cache_dir: Path

    def open(self) -> Registry:
        from registry import Registry

        return Registry.open(self.uri, endpoint_url=self.endpoint_url, cache_dir=self.cache_dir)


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


class RetryOn:
    """A Prefect ``retry_condition_fn``: retry only on the given error classes.

    ``RetryOn(StorageError, unless=(IntegrityError,))`` retries storage failures except
    digest mismatches.
    """

    def __init__(
        self, *kinds: type[BaseException], unless: tuple[type[BaseException], ...] = ()
    ) -> None:
        self.kinds = kinds
        self.unless = unless

    def __call__(self, task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
        exc = exception_of(state)
        return isinstance(exc, self.kinds) and not isinstance(exc, self.unless)

    def __repr__(self) -> str:
        names = ", ".join(k.__name__ for k in self.kinds)
        unless = f" unless {', '.join(k.__name__ for k in self.unless)}" if self.unless else ""
        return f"RetryOn({names}{unless})"


def io_retry_options(retries: int, delay: float) -> dict[str, Any]:
    """``with_options`` keywords for an I/O task: ``retries`` attempts more, exponential delays.

    ``delay`` is the first wait in seconds; each next one doubles (``delay=0``: no wait).
    """
    if not (isinstance(retries, int) and retries >= 0):
        raise InvalidInputError(f"io_retries={retries!r} is invalid; expected an integer >= 0")
    if not delay >= 0:
        raise InvalidInputError(f"io_retry_delay={delay!r} is invalid; expected seconds >= 0")
    delays = [float(delay) * 2**i for i in range(retries)] or [0.0]
    return {"retries": retries, "retry_delay_seconds": delays}


#: ingest retries on network failures of a download only
DOWNLOAD_RETRY = RetryOn(DownloadError)
#: registry pull/publish/promote retry on store failures, never on damaged or mismatched bytes
STORAGE_RETRY = RetryOn(StorageError, unless=(IntegrityError, CorruptObjectError))
