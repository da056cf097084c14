"""Alias moves: promote and rollback by compare-and-swap, each move logged once."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from registry import layout
from registry.events import RegistryEvent, alias_moved
from registry.manifest import AliasRecord, Manifest
from registry.names import validate_name
from registry.store import Store
from softmax_core.errors import (
    CorruptObjectError,
    InvalidNameError,
    ModelNotFoundError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)

MAX_CAS_ATTEMPTS = 100
MAX_PREVIOUS = 100  # alias rollback depth kept in the record; the log keeps everything


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** min(attempt, 7))))


def after_retry(e: PreconditionFailedError) -> bool:
    return bool(getattr(e, "after_retry", False))


class AliasMoves:
    """The alias half of :class:`registry.core.Registry` (a mixin over its store)."""

    store: Store
    uri: str

    if TYPE_CHECKING:

        def _is_ours(self, key: str, body: bytes) -> bool: ...
        def _parse_alias(self, data: bytes, name: str, alias: str, key: str) -> AliasRecord: ...
        def _no_alias(self, name: str, alias: str) -> ModelNotFoundError: ...
        def _no_version(self, name: str, version: int) -> ModelNotFoundError: ...
        def manifest(self, name: str, version: int) -> Manifest: ...
        def _emit(self, event: RegistryEvent) -> None: ...

    # --- aliases ----------------------------------------------------------------------
    def promote(self, name: str, version: int, alias: str, *, repair: bool = False) -> AliasRecord:
        """Point ``name@alias`` at ``version`` (compare-and-swap; recorded in the history).

        ``repair``: if the alias record is damaged (unreadable, or naming a version its
        reader rejects), replace it, compare-and-swap on the damaged bytes, with a record
        whose rollback list starts afresh; its history continues after the last logged move.
        Without it a damaged record raises CorruptObjectError, naming this way out."""
        validate_name("model name", name)
        validate_name("alias", alias)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidNameError(f"version {version!r} is not a positive whole number")
        if self.store.head(layout.manifest_key(name, version)) is None:
            raise self._no_version(name, version)

        def move(current: AliasRecord | None) -> AliasRecord | None:
            if current is not None and current.version == version:
                return None  # already there: nothing to record
            previous = (*current.previous, current.version) if current else ()
            return AliasRecord(
                name=name,
                alias=alias,
                version=version,
                previous=previous[-MAX_PREVIOUS:],
                seq=(current.seq + 1) if current else 1,
                moved_at=now(),
                move_id=uuid.uuid4().hex,
                action="promote",
                from_version=current.version if current else None,
            )

        return self._move_alias(name, alias, move, repair=repair)

    def rollback(self, name: str, alias: str) -> AliasRecord:
        """Move ``name@alias`` back to the version it pointed to before its last move."""
        validate_name("model name", name)
        validate_name("alias", alias)

        def move(current: AliasRecord | None) -> AliasRecord | None:
            if current is None:
                raise self._no_alias(name, alias)
            if not current.previous:
                raise ModelNotFoundError(
                    f"{name}@{alias} has no earlier version to roll back to "
                    f"(it points to {name}:{current.version}, its first target)"
                )
            return AliasRecord(
                name=name,
                alias=alias,
                version=current.previous[-1],
                previous=current.previous[:-1],
                seq=current.seq + 1,
                moved_at=now(),
                move_id=uuid.uuid4().hex,
                action="rollback",
                from_version=current.version,
            )

        return self._move_alias(name, alias, move)

    def _move_alias(self, name: str, alias: str, move: Any, *, repair: bool = False) -> AliasRecord:
        key = layout.alias_key(name, alias)
        for attempt in range(MAX_CAS_ATTEMPTS):
            damaged = False
            try:
                data, etag = self.store.get(key)
                current: AliasRecord | None = self._parse_alias(data, name, alias, key)
            except ObjectNotFoundError:
                current, etag = None, None
            except CorruptObjectError as e:
                if not repair:
                    raise CorruptObjectError(
                        f"{e}; replace it with `softmax-pipe registry promote "
                        f"{name}:VERSION {alias} --repair`"
                    ) from None
                current, damaged = None, True
            if current is not None:
                self._ensure_logged(current)  # heal a move whose history write was lost
            new = move(current)
            if new is None:
                assert current is not None
                return current
            if damaged:
                new = dataclasses.replace(new, seq=self._last_logged_seq(name, alias) + 1)
            body = new.to_bytes()
            try:
                if etag is None:
                    self.store.put(key, body, if_none_match=True)
                else:
                    self.store.put(key, body, if_match=etag)
            except PreconditionFailedError as e:
                if not (after_retry(e) and self._is_ours(key, body)):
                    backoff(attempt)
                    continue
            self._ensure_logged(new)
            self._emit(alias_moved(self.uri, new))
            result: AliasRecord = new
            return result
        raise StorageError(
            f"could not move {name}@{alias} in {self.uri} after {MAX_CAS_ATTEMPTS} attempts: "
            "too many concurrent moves; try again"
        )

    def _last_logged_seq(self, name: str, alias: str) -> int:
        prefix = layout.alias_log_prefix(name, alias)
        seqs = (layout.number_of(k, prefix) for k in self.store.list_keys(prefix))
        return max((n for n in seqs if n is not None), default=0)

    def _ensure_logged(self, record: AliasRecord) -> None:
        key = layout.alias_log_key(record.name, record.alias, record.seq)
        with contextlib.suppress(
            PreconditionFailedError
        ):  # already there: written once, by CAS order
            self.store.put(key, record.to_bytes(), if_none_match=True)
