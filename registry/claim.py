"""Claiming the next version number of a model or a dataset: written once for both.

List the versions, write ``<n>.json`` only-if-absent; on a conflict try ``n + 1`` (after a
few, list again and back off; bounded). A write whose response was lost and that is
retried finds its own bytes there, which counts as claimed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from registry.store import Store
from registry.writes import after_retry, backoff, is_ours
from softmax_core.errors import PreconditionFailedError, StorageError

MAX_CLAIM_ATTEMPTS = 100


class _Document(Protocol):
    def to_bytes(self) -> bytes: ...


D = TypeVar("D", bound=_Document)


def claim_next(
    store: Store,
    *,
    what: str,
    numbers: Callable[[], list[int]],
    key_of: Callable[[int], str],
    make: Callable[[int], D],
) -> D:
    """Write ``make(n)`` at ``key_of(n)`` for the first free ``n`` after ``numbers()``."""
    found = numbers()
    n = (found[-1] if found else 0) + 1
    for attempt in range(MAX_CLAIM_ATTEMPTS):
        doc = make(n)
        body = doc.to_bytes()
        key = key_of(n)
        try:
            store.put(key, body, if_none_match=True)
            return doc
        except PreconditionFailedError as e:
            if after_retry(e) and is_ours(store, key, body):  # our write, response lost
                return doc
        if attempt < 4:
            n += 1  # someone took n: the next number is the likely winner
        else:  # far behind (or a crowd): look again, and spread out
            found = numbers()
            n = max(n + 1, (found[-1] if found else 0) + 1)
            backoff(attempt)
    raise StorageError(
        f"could not claim a version of {what} in {store.uri} after {MAX_CLAIM_ATTEMPTS} "
        "attempts: too many concurrent publishers; try again"
    )
