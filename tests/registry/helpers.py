"""Shared by the registry tests and their worker processes: small models, store wrappers."""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from registry.store import Identity, ObjectInfo, Store
from registry.writes import mark_after_retry
from softmax_core.errors import PreconditionFailedError, StorageError
from softmax_core.model import Model, ModelInfo
from softmax_core.preprocess import Steps


def make_model(seed: int, *, accuracy: float = 0.9) -> Model:
    """A small but real model: random float32 weights, the info training would record."""
    rng = np.random.default_rng(seed)
    return Model(
        W=rng.normal(scale=0.01, size=(784, 10)).astype(np.float32),
        b=rng.normal(scale=0.01, size=10).astype(np.float32),
        steps=Steps.parse(["scale"]),
        info=ModelInfo(
            created="2026-01-01T00:00:00+00:00",
            params={"seed": seed, "lr": 0.1, "epochs": 3},
            metrics={"accuracy": accuracy},
            data_digest="d" * 64,
            data_source="test",
            code_version="test",
        ),
    )


class CountingStore(Store):
    """Wraps a store and counts calls per method (and the keys read), to check request budgets."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.calls: Counter[str] = Counter()
        self.keys_read: builtins.list[str] = []

    def reset(self) -> None:
        self.calls.clear()
        self.keys_read.clear()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def get(self, key: str) -> tuple[bytes, str]:
        self.calls["get"] += 1
        self.keys_read.append(key)
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        self.calls["head"] += 1
        return self.inner.head(key)

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        self.calls["put"] += 1
        return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        self.calls["list"] += 1
        return self.inner.list_info(prefix)

    def children(self, prefix: str) -> Iterator[str]:
        self.calls["list"] += 1
        return self.inner.children(prefix)

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self.inner.delete(key)

    def get_many(self, keys: Sequence[str]) -> builtins.list[tuple[bytes, str] | None]:
        self.calls["get"] += len(keys)
        self.keys_read.extend(keys)
        return self.inner.get_many(keys)

    def sweep(self, older_than: float) -> builtins.list[str]:
        return self.inner.sweep(older_than)


def count_http(client: Any) -> builtins.list[str]:
    """Record every HTTP request a boto3 client sends (method + URL), via botocore events."""
    sent: builtins.list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        sent.append(f"{request.method} {request.url}")

    client.meta.events.register("before-send.s3", before_send)
    return sent


class DelegatingStore(Store):
    """A store that hands every call to ``inner``: the base of the wrappers below, which
    change one behaviour of whatever store they wrap (so one test runs on both stores)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.uri = inner.uri

    def get(self, key: str) -> tuple[bytes, str]:
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def check_exists(self) -> None:
        self.inner.check_exists()

    def identity(self) -> Identity:
        return self.inner.identity()

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_info(prefix)

    def list_keys(self, prefix: str) -> Iterator[str]:
        return self.inner.list_keys(prefix)

    def children(self, prefix: str) -> Iterator[str]:
        return self.inner.children(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def get_many(self, keys: Sequence[str]) -> builtins.list[tuple[bytes, str] | None]:
        return self.inner.get_many(keys)

    def url(self, key: str, *, expires: int, content_type: str | None = None) -> str | None:
        return self.inner.url(key, expires=expires, content_type=content_type)

    def sweep(self, older_than: float) -> builtins.list[str]:
        return self.inner.sweep(older_than)

    def close(self) -> None:
        self.inner.close()


class LostAnswerStore(DelegatingStore):
    """Every conditional write lands, but its answer is "lost": the write is sent again, as
    a client's retry would, and the inner store's refusal of that retry is raised, marked
    ``after_retry`` (what S3Store raises for a 412 that answers a retried PutObject)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.lost: builtins.list[str] = []  # keys whose answer was lost
        self.between: tuple[str, Callable[[], object]] | None = None

    def meanwhile(self, key: str, other: Callable[[], object]) -> None:
        """Run ``other`` (another writer) once, between the first attempt at ``key`` and
        its retry."""
        self.between = (key, other)

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        etag = self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)
        if not (if_none_match or if_match is not None):
            return etag
        if self.between is not None and self.between[0] == key:
            other, self.between = self.between[1], None
            other()
        try:  # the retry: its condition no longer holds, since the first attempt landed
            return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)
        except PreconditionFailedError as e:
            self.lost.append(key)
            raise mark_after_retry(e) from None


class Interloper(DelegatingStore):
    """Before the first conditional write of ``key`` after ``arm(key, competitor)``,
    ``competitor`` runs (another writer getting there first); a refusal of that write is
    raised marked ``after_retry``, so the caller must tell from the stored bytes that the
    object is not its own."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.armed: tuple[str, Callable[[], object]] | None = None
        self.refused: builtins.list[str] = []

    def arm(self, key: str, competitor: Callable[[], object]) -> None:
        self.armed = (key, competitor)

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        conditional = if_none_match or if_match is not None
        if self.armed is None or self.armed[0] != key or not conditional:
            return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)
        competitor, self.armed = self.armed[1], None
        competitor()
        try:
            return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)
        except PreconditionFailedError as e:
            self.refused.append(key)
            raise mark_after_retry(e) from None


class ReadOnlyStore(DelegatingStore):
    """Refuses every write, as a read-only folder or a reader's credentials do; counts the
    writes attempted."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.attempts: builtins.list[str] = []

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        self.attempts.append(key)
        raise StorageError(f"{self.uri} is read-only: cannot write {key!r}")

    def delete(self, key: str) -> None:
        self.attempts.append(key)
        raise StorageError(f"{self.uri} is read-only: cannot delete {key!r}")
