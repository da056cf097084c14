"""Promotion requests and their decisions: a trainer asks, an approver moves the alias.

::

    models/<name>/requests/<seq:012d>.json    a RequestRecord, written once (a trainer's
                                              key may); its number claimed as versions are
                                              (``registry.claim``)
    models/<name>/decisions/<seq:012d>.json   its Decision, written once (an approver's
                                              key): the first approve or reject stands

request
    needs the version to exist; an open request for the same version and alias is
    returned, not repeated; an alias already there needs none (nothing is written).
approve
    refuses, unless forced, a version that is no longer the newest candidate: another
    open request for the alias names a newer version, or the alias already points past
    it. Open requests for older versions of the alias are closed as rejected, their
    comment naming the approved one (``superseded: ...``). It writes the decision only-if-absent (an approve or reject that got there first
    stands, and this one changes nothing), then moves the alias by compare-and-swap as
    promote does, the request recorded in the move. A move that fails takes the decision
    back (the request is open again); one cut short by a crash leaves the request
    approved, and the next approve of it carries the move out.
reject
    writes the decision ``rejected`` for the open requests of that version and alias.

Functions over a :class:`~registry.store.Store`; telling listeners is the caller's part.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from registry import aliases, catalog, layout
from registry.aliases import AliasMove
from registry.claim import claim_next
from registry.manifest import APPROVED, REJECTED, Actor, Decision, RequestRecord
from registry.names import validate_name
from registry.store import Store
from registry.writes import after_retry, is_ours, now
from softmax_core.errors import (
    CorruptObjectError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    PreconditionFailedError,
    SoftmaxPipeError,
)

MAX_NAME = 200  # characters of a --by name
MAX_COMMENT = 2000
SUPERSEDED = "superseded: "  # how approve's comment on the older requests it closes begins
# the whole comment approve wrote before decisions named the approved request
# (``Decision.superseded_by``): how an older registry's closed requests are told apart
_OLD_SUPERSEDED = re.compile(re.escape(SUPERSEDED) + r".+:\d+ was approved for .+ \(request #\d+\)")


@dataclass(frozen=True)
class Pending:
    """A request and its decision (None while it is open)."""

    request: RequestRecord
    decision: Decision | None

    @property
    def is_open(self) -> bool:
        return self.decision is None

    @property
    def refused(self) -> bool:
        """Rejected by an approver (not closed as superseded by a newer version's approval)."""
        d = self.decision
        if d is None or d.decision != REJECTED:
            return False
        if d.superseded_by is not None:
            return False
        return not _OLD_SUPERSEDED.fullmatch(d.comment or "")  # a person's comment may say so


@dataclass(frozen=True)
class Requested:
    """What a request did: ``record`` is the request (None when the alias already points
    there); ``created`` False when the same request was already open."""

    record: RequestRecord | None
    created: bool


@dataclass(frozen=True)
class Approval:
    """What an approve did: the request it carried out, the alias move (``moved`` is
    False when the alias already pointed there) and the open requests it closed as
    superseded (older versions for the same alias, rejected with a comment saying so)."""

    request: RequestRecord
    move: AliasMove
    superseded: tuple[tuple[RequestRecord, Decision], ...] = ()


def check_note(what: str, value: str | None, limit: int) -> str | None:
    """A ``--by`` name or a ``--comment``: None, or printable text of at most ``limit``
    characters (no control characters: they would reach terminals and logs)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be non-empty text")
    if len(value) > limit:
        raise InvalidInputError(f"{what} is {len(value)} characters long; at most {limit}")
    if any(not c.isprintable() for c in value):
        raise InvalidInputError(f"{what} may not hold control characters (newlines, escapes)")
    return value


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidNameError(f"version {version!r} is not a positive whole number")


# --- reading ------------------------------------------------------------------------------


def request_numbers(store: Store, name: str) -> list[int]:
    prefix = layout.requests_prefix(name)
    nums = (layout.number_of(k, prefix) for k in store.list_keys(prefix))
    return sorted(n for n in nums if n is not None and n >= 1)


def requests(store: Store, name: str) -> list[Pending]:
    """Every request of ``name`` with its decision, oldest first (two listings, then the
    records read in parallel); ModelNotFoundError for a model with no version."""
    validate_name("model name", name)
    numbers = request_numbers(store, name)
    if not numbers and not catalog.version_numbers(store, name):
        raise catalog.no_model(store, name)
    prefix = layout.decisions_prefix(name)
    listed = (layout.number_of(k, prefix) for k in store.list_keys(prefix))
    decided = sorted(set(numbers) & {n for n in listed if n is not None})
    got = store.get_many(
        [layout.request_key(name, n) for n in numbers]
        + [layout.decision_key(name, n) for n in decided]
    )
    records = {
        n: _parse_request(store, name, n, doc[0])
        for n, doc in zip(numbers, got[: len(numbers)], strict=True)
        if doc is not None
    }
    decisions = {
        n: _parse_decision(store, name, n, doc[0])
        for n, doc in zip(decided, got[len(numbers) :], strict=True)
        if doc is not None
    }
    return [Pending(records[n], decisions.get(n)) for n in sorted(records)]


def open_requests(store: Store, name: str) -> list[Pending]:
    """The requests of ``name`` no one has approved or rejected, oldest first."""
    return [p for p in requests(store, name) if p.is_open]


def _parse_request(store: Store, name: str, seq: int, data: bytes) -> RequestRecord:
    origin = f"{store.uri}/{layout.request_key(name, seq)}"
    rec = RequestRecord.from_bytes(data, origin=origin)
    if rec.name != name or rec.seq != seq:
        raise CorruptObjectError(f"{origin} claims to be request {rec.seq} of {rec.name!r}")
    return rec


def _parse_decision(store: Store, name: str, seq: int, data: bytes) -> Decision:
    origin = f"{store.uri}/{layout.decision_key(name, seq)}"
    dec = Decision.from_bytes(data, origin=origin)
    if dec.name != name or dec.seq != seq:
        raise CorruptObjectError(f"{origin} claims to decide request {dec.seq} of {dec.name!r}")
    return dec


# --- writing ------------------------------------------------------------------------------


def request(
    store: Store,
    name: str,
    version: int,
    alias: str,
    *,
    actor: Actor,
    comment: str | None = None,
    committed: Callable[[RequestRecord], None] | None = None,
) -> Requested:
    """Ask that ``name@alias`` move to ``version`` (see :class:`Requested`); ``committed``
    hears of a new request as soon as its record is written."""
    validate_name("model name", name)
    validate_name("alias", alias)
    _check_version(version)
    comment = check_note("--comment", comment, MAX_COMMENT)
    if store.head(layout.manifest_key(name, version)) is None:
        raise catalog.no_version(store, name, version)
    with contextlib.suppress(ModelNotFoundError, CorruptObjectError):
        if catalog.alias_record(store, name, alias).version == version:
            return Requested(None, created=False)
    for pending in open_requests(store, name):
        if (pending.request.version, pending.request.alias) == (version, alias):
            return Requested(pending.request, created=False)
    request_id = uuid.uuid4().hex
    record = claim_next(
        store,
        what=f"a request of {name!r}",
        numbers=lambda: request_numbers(store, name),
        key_of=lambda n: layout.request_key(name, n),
        make=lambda n: RequestRecord(
            name=name,
            alias=alias,
            version=version,
            seq=n,
            requested_by=actor,
            requested_at=now(),
            comment=comment,
            request_id=request_id,
        ),
    )
    if committed is not None:
        committed(record)
    return Requested(record, created=True)


def approve(
    store: Store,
    name: str,
    version: int,
    alias: str,
    *,
    actor: Actor,
    comment: str | None = None,
    force: bool = False,
) -> Approval:
    """Carry out the open request to move ``name@alias`` to ``version`` (see the module
    docstring): ModelNotFoundError when there is none, InvalidInputError when the version
    is no longer the newest candidate and not ``force``."""
    validate_name("model name", name)
    validate_name("alias", alias)
    _check_version(version)
    comment = check_note("--comment", comment, MAX_COMMENT)
    every = requests(store, name)
    mine = [p for p in every if (p.request.version, p.request.alias) == (version, alias)]
    waiting = [p for p in mine if p.is_open]
    if not waiting:
        waiting = [p for p in mine if _approved_not_moved(store, p)]
        if not waiting:
            raise _no_request(store, name, version, alias, every)
    target = waiting[-1]
    if not force:
        _check_newest(store, name, version, alias, every)
    decided = _decide(store, target.request, APPROVED, actor, comment) if target.is_open else None
    try:
        move = aliases.promote(
            store, name, version, alias, actor=actor, comment=comment, request=target.request
        )
    except SoftmaxPipeError:
        if decided is not None:  # open again: the approval did not happen
            with contextlib.suppress(SoftmaxPipeError):
                store.delete(layout.decision_key(name, target.request.seq))
        raise
    for other in waiting[:-1]:  # the same request made twice (a race): close it too
        if other.is_open:
            with contextlib.suppress(SoftmaxPipeError):
                _decide(store, other.request, APPROVED, actor, comment)
    why = f"{SUPERSEDED}{name}:{version} was approved for {alias} (request #{target.request.seq})"
    superseded = []
    for older in every:  # behind the alias now: an approve would refuse them; close them
        if older.is_open and older.request.alias == alias and older.request.version < version:
            with contextlib.suppress(SoftmaxPipeError):
                closed = _decide(
                    store, older.request, REJECTED, actor, why, superseded_by=target.request.seq
                )
                superseded.append((older.request, closed))
    return Approval(target.request, move, tuple(superseded))


def reject(
    store: Store,
    name: str,
    version: int,
    alias: str,
    *,
    actor: Actor,
    comment: str | None = None,
) -> list[tuple[RequestRecord, Decision]]:
    """Close the open requests to move ``name@alias`` to ``version`` as rejected; return
    them with their decisions (ModelNotFoundError when none is open)."""
    validate_name("model name", name)
    validate_name("alias", alias)
    _check_version(version)
    comment = check_note("--comment", comment, MAX_COMMENT)
    every = requests(store, name)
    waiting = [
        p for p in every if p.is_open and (p.request.version, p.request.alias) == (version, alias)
    ]
    if not waiting:
        raise _no_request(store, name, version, alias, every)
    return [(p.request, _decide(store, p.request, REJECTED, actor, comment)) for p in waiting]


def _decide(
    store: Store,
    req: RequestRecord,
    decision: str,
    actor: Actor,
    comment: str | None,
    *,
    superseded_by: int | None = None,
) -> Decision:
    """Write the decision on ``req`` only-if-absent and return it; a decision someone else
    wrote first raises PreconditionFailedError naming it."""
    doc = Decision(
        name=req.name,
        seq=req.seq,
        decision=decision,
        by=actor,
        at=now(),
        comment=comment,
        decision_id=uuid.uuid4().hex,
        superseded_by=superseded_by,
    )
    key = layout.decision_key(req.name, req.seq)
    body = doc.to_bytes()
    try:
        store.put(key, body, if_none_match=True)
        return doc
    except PreconditionFailedError as e:
        if after_retry(e) and is_ours(store, key, body):
            return doc
        rival = _parse_decision(store, req.name, req.seq, store.get(key)[0])
        raise PreconditionFailedError(
            f"request #{req.seq} ({req.ref} -> {req.alias}) was {rival.decision} by "
            f"{rival.by} at {rival.at} meanwhile; nothing changed"
        ) from None


def _approved_not_moved(store: Store, pending: Pending) -> bool:
    """An approved request whose move never happened (a crash between the two writes)."""
    return pending.request.seq in not_carried_out(store, pending.request.name, [pending])


def not_carried_out(store: Store, name: str, every: list[Pending]) -> set[int]:
    """The numbers of the requests of ``name`` among ``every`` that were approved but whose
    alias move never happened (a crash between the decision and the move): approving one
    again carries it out. Reads each alias's history once."""
    approved = [p for p in every if p.decision is not None and p.decision.decision == APPROVED]
    moved: dict[str, set[int]] = {}
    for alias in sorted({p.request.alias for p in approved}):
        try:
            moves = catalog.history(store, name, alias)
        except ModelNotFoundError:
            moves = []
        moved[alias] = {m.request.seq for m in moves if m.request is not None}
    return {p.request.seq for p in approved if p.request.seq not in moved[p.request.alias]}


def _check_newest(store: Store, name: str, version: int, alias: str, every: list[Pending]) -> None:
    newer = [
        p for p in every if p.is_open and p.request.alias == alias and p.request.version > version
    ]
    if newer:
        n = newer[-1].request
        raise InvalidInputError(
            f"{name}:{version} is no longer the newest candidate for {name}@{alias}: request "
            f"#{n.seq} asks for {n.ref} (by {n.requested_by}, {n.requested_at[:19]}); approve "
            "that one, reject this one, or add --force"
        )
    with contextlib.suppress(ModelNotFoundError, CorruptObjectError):
        current = catalog.alias_record(store, name, alias).version
        if current > version:
            raise InvalidInputError(
                f"{name}@{alias} already points to {name}:{current}, newer than "
                f"{name}:{version}; add --force to move it back"
            )


def _no_request(
    store: Store, name: str, version: int, alias: str, every: list[Pending]
) -> ModelNotFoundError:
    waiting = [p.request for p in every if p.is_open]
    shown = (
        "; open: " + ", ".join(f"#{r.seq} {r.ref} -> {r.alias}" for r in waiting[-5:])
        if waiting
        else "; none is open"
    )
    return ModelNotFoundError(
        f"no open request to move {name}@{alias} to {name}:{version} in {store.uri}{shown}; "
        f"`softmax-pipe registry request {name}:{version} {alias}` opens one"
    )
