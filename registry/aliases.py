"""Alias moves: promote (or approve a request) and rollback by compare-and-swap, each move
logged once, with who made it (an :class:`~registry.manifest.Actor`) and why.

``aliases/<alias>.json`` is moved by compare-and-swap (read with ETag, write if-match,
create only-if-absent); every move gets the next sequence number and its own write-once
history entry ``aliases/<alias>.log/<seq>.json``. Rollback pops the ``previous`` stack.

- A move that changes nothing (a promote to where the alias already is) writes nothing:
  a read-only or full registry still answers it. A promote to the version the alias
  points to whose manifest now names another blob than the one recorded is a move: it
  pins the new digest (recorded in the history; the rollback list is unchanged).
- A move records the blob digest the version's manifest names (``digest``):
  resolving the alias refuses a manifest rewritten since (``registry.catalog.resolve``),
  so a key that may write ``versions/`` but not ``aliases/`` cannot change what an
  alias serves.
- Before moving past the current record, its history entry is written if a crash (or a
  lost write) left it out, so the log never loses a move.
- A record that reads as absent but whose create is refused again and again is no race:
  a stray key under its name is in the way (:func:`_blocked` names it) after a few tries.
- A write whose answer was lost and whose retry the store refused (``after_retry``)
  counts as ours when the alias, or the new move's history entry, holds our bytes.

Functions over a :class:`~registry.store.Store`; telling listeners is the caller's part
(``registry.core.Registry``), after the move returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from registry import catalog, layout
from registry.manifest import Actor, AliasRecord, RequestRecord
from registry.names import validate_name
from registry.store import Store
from registry.writes import after_retry, backoff, is_ours, now
from softmax_core.errors import (
    CorruptObjectError,
    InvalidNameError,
    ModelNotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)

MAX_CAS_ATTEMPTS = 100
# Reads say absent, and the only-if-absent create is refused, this many times in a row:
# not a race (a racer's record would be read back) but a key in the way.
BLOCKED_AFTER = 3
MAX_PREVIOUS = 100  # alias rollback depth kept in the record; the log keeps everything

Move = Callable[[AliasRecord | None], AliasRecord | None]  # current -> new (None: stay)


@dataclass(frozen=True)
class AliasMove:
    """What a promote did: where the alias points now, and whether this call moved it."""

    record: AliasRecord
    moved: bool  # False: the alias already pointed there; nothing was written


def promote(
    store: Store,
    name: str,
    version: int,
    alias: str,
    *,
    repair: bool = False,
    actor: Actor | None = None,
    comment: str | None = None,
    request: RequestRecord | None = None,
    committed: Callable[[AliasRecord], None] | None = None,
) -> AliasMove:
    """Point ``name@alias`` at ``version`` (compare-and-swap; recorded in the history,
    with ``actor`` and ``comment``; with ``request`` the move is that request's approval,
    action ``approve``). ``committed`` hears of the move as soon as the record is written
    (the alias points there from then on, whatever stops the rest: its history entry).

    ``repair``: if the alias record is damaged (unreadable, or naming a version its
    reader rejects), replace it, compare-and-swap on the damaged bytes, with a record
    whose rollback list starts afresh; its history continues after the last logged move.
    Without it a damaged record raises CorruptObjectError, naming this way out."""
    validate_name("model name", name)
    validate_name("alias", alias)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidNameError(f"version {version!r} is not a positive whole number")
    digest = catalog.manifest(store, name, version).digest  # ModelNotFoundError if absent

    def move(current: AliasRecord | None) -> AliasRecord | None:
        repin = False
        if current is not None and current.version == version:
            if current.digest in (None, digest):
                return None  # already there: nothing to record
            repin = True  # the manifest was rewritten since: pin what it names now
        if current is None:
            previous: tuple[int, ...] = ()
        else:
            previous = current.previous if repin else (*current.previous, current.version)
        return AliasRecord(
            name=name,
            alias=alias,
            version=version,
            previous=previous[-MAX_PREVIOUS:],
            seq=(current.seq + 1) if current else 1,
            moved_at=now(),
            move_id=uuid.uuid4().hex,
            action="promote" if request is None else "approve",
            from_version=current.version if current else None,
            actor=actor,
            comment=comment,
            request=request,
            digest=digest,
        )

    return _move_alias(store, name, alias, move, repair=repair, committed=committed)


def rollback(
    store: Store, name: str, alias: str, *, actor: Actor | None = None, comment: str | None = None
) -> AliasRecord:
    """Move ``name@alias`` back to the version it pointed to before its last move.

    ModelNotFoundError (and nothing written) when it has no earlier version."""
    validate_name("model name", name)
    validate_name("alias", alias)

    def move(current: AliasRecord | None) -> AliasRecord:
        if current is None:
            raise catalog.no_alias(store, name, alias)
        if not current.previous:
            raise ModelNotFoundError(
                f"{name}@{alias} has no earlier version to roll back to "
                f"(it points to {name}:{current.version}, its first target)"
            )
        back = current.previous[-1]
        return AliasRecord(
            name=name,
            alias=alias,
            version=back,
            previous=current.previous[:-1],
            seq=current.seq + 1,
            moved_at=now(),
            move_id=uuid.uuid4().hex,
            action="rollback",
            from_version=current.version,
            actor=actor,
            comment=comment,
            digest=catalog.manifest(store, name, back).digest,
        )

    return _move_alias(store, name, alias, move).record


def _move_alias(
    store: Store,
    name: str,
    alias: str,
    move: Move,
    *,
    repair: bool = False,
    committed: Callable[[AliasRecord], None] | None = None,
) -> AliasMove:
    key = layout.alias_key(name, alias)
    refused_absent = 0  # creates refused in a row while reads said there is no record
    for attempt in range(MAX_CAS_ATTEMPTS):
        current, etag, damaged = _read_current(store, name, alias, repair=repair)
        new = move(current)
        if new is None:
            assert current is not None, "a move from no alias always writes one"
            return AliasMove(current, moved=False)
        if current is not None:
            _ensure_logged(store, current)  # heal a move whose history write was lost
        if damaged:
            new = dataclasses.replace(new, seq=_last_logged_seq(store, name, alias) + 1)
        body = new.to_bytes()
        try:
            if etag is None:
                store.put(key, body, if_none_match=True)
            else:
                store.put(key, body, if_match=etag)
        except PreconditionFailedError as e:
            if not (after_retry(e) and _landed(store, key, new, body)):
                refused_absent = refused_absent + 1 if etag is None else 0
                if refused_absent >= BLOCKED_AFTER:
                    raise _blocked(store, name, alias, refused_absent) from None
                backoff(attempt)
                continue
        if committed is not None:
            committed(new)
        _ensure_logged(store, new)
        return AliasMove(new, moved=True)
    raise StorageError(
        f"could not move {name}@{alias} in {store.uri} after {MAX_CAS_ATTEMPTS} attempts: "
        "too many concurrent moves; try again"
    )


def _blocked(store: Store, name: str, alias: str, times: int) -> StorageError:
    """The error for an alias record that reads as absent but cannot be created: a key
    under its name (``<alias>.json/...``, which a store keeping objects as a tree, as
    SeaweedFS does, cannot hold beside the record) is in the way; it names that key."""
    key = layout.alias_key(name, alias)
    try:
        stray = next(iter(store.list_keys(f"{key}/")), None)
    except (StorageError, PermissionDeniedError):
        stray = None
    where = f"{store.uri}/{key}"
    if stray is not None:
        what = f"a key under that name, {store.uri}/{stray}, blocks it"
        parts = stray[len(key) + 1 :].split("/")[:-1]
        folders = [
            f"{where}/" + "".join(f"{p}/" for p in parts[:n]) for n in range(len(parts), -1, -1)
        ]
        fix = (
            "an admin deletes it, then the folders a store keeping objects as a tree "
            f"(SeaweedFS) keeps for it, deepest first: {', '.join(folders)}"
        )
    else:
        what = "something under that name blocks it"
        fix = (
            f"an admin removes what is under {where}/ (on SeaweedFS: the folders a deleted "
            "key left, each deleted as a key ending in '/', deepest first)"
        )
    return StorageError(
        f"cannot move {name}@{alias} in {store.uri}: {key} reads as absent, yet the store "
        f"refused to create it {times} times in a row, so this is no race: {what}; {fix}, "
        "then move the alias again"
    )


def _read_current(
    store: Store, name: str, alias: str, *, repair: bool
) -> tuple[AliasRecord | None, str | None, bool]:
    """``(record, its ETag, damaged)``: ``(None, None, False)`` when there is no alias yet;
    a damaged record is ``(None, its ETag, True)`` with ``repair``, CorruptObjectError without."""
    key = layout.alias_key(name, alias)
    try:
        data, etag = store.get(key)
    except ObjectNotFoundError:
        return None, None, False
    try:
        return catalog.parse_alias(store, data, name, alias, key), etag, False
    except CorruptObjectError as e:
        if not repair:
            raise CorruptObjectError(
                f"{e}; replace it with `softmax-pipe registry promote "
                f"{name}:VERSION {alias} --repair`"
            ) from None
        return None, etag, True


def _landed(store: Store, key: str, new: AliasRecord, body: bytes) -> bool:
    """Whether our refused retry's first attempt had landed: the alias holds our record, or
    a later mover already moved past it (and wrote its history entry, which holds our bytes:
    every mover logs the record it moves past before its own write)."""
    log_key = layout.alias_log_key(new.name, new.alias, new.seq)
    return is_ours(store, key, body) or is_ours(store, log_key, body)


def _last_logged_seq(store: Store, name: str, alias: str) -> int:
    prefix = layout.alias_log_prefix(name, alias)
    seqs = (layout.number_of(k, prefix) for k in store.list_keys(prefix))
    return max((n for n in seqs if n is not None), default=0)


def _ensure_logged(store: Store, record: AliasRecord) -> None:
    key = layout.alias_log_key(record.name, record.alias, record.seq)
    with contextlib.suppress(PreconditionFailedError):  # already there: written once
        store.put(key, record.to_bytes(), if_none_match=True)
