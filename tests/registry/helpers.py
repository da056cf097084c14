"""Shared by the registry tests and their worker processes: small models, a counting store."""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from registry.store import ObjectInfo, Store
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
