"""What every writer of the registry protocol shares: the time it stamps on a record, how it
backs off after losing a race, and how it tells its own retried write from someone else's.

A conditional write whose first attempt landed but whose answer was lost is retried by the
store's client; the retry's condition then fails (S3 answers 412), although the object is
the caller's own. The store marks such a failure (:func:`mark_after_retry`); the caller
asks :func:`after_retry` and, if so, :func:`is_ours` before counting it as lost.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from registry.store import Store
from softmax_core.errors import ObjectNotFoundError, PreconditionFailedError


def now() -> str:
    """The current UTC time as ISO 8601 with microseconds (``created``, ``moved_at``)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def backoff(attempt: int) -> None:
    """Sleep a random while, growing with ``attempt`` (at most 0.5 s): racers spread out."""
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** min(attempt, 7))))


def mark_after_retry(e: PreconditionFailedError) -> PreconditionFailedError:
    """``e`` marked as the answer to a retried request (the first attempt may have landed)."""
    e.after_retry = True
    return e


def after_retry(e: PreconditionFailedError) -> bool:
    """Whether the store retried the write that ``e`` refused (see :func:`mark_after_retry`)."""
    return e.after_retry


def is_ours(store: Store, key: str, body: bytes) -> bool:
    """Whether ``key`` holds exactly ``body``: every record the protocol writes conditionally
    is unique to its writer (a move id, a creation time), so equal bytes are our write."""
    try:
        current, _ = store.get(key)
    except ObjectNotFoundError:
        return False
    return current == body
