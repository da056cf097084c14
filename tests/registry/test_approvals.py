"""Requests and approvals, on both stores: a trainer asks, an approver moves the alias; the
decision is written once, the history names both, and an alias serves only the manifest
it was moved to."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import Registry, events, layout
from registry.events import RegistryEvent
from registry.manifest import APPROVED, REJECTED, Manifest
from registry.rights import may_write
from registry.store import Store
from softmax_core.errors import (
    IntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)
from tests.registry.helpers import DelegatingStore, make_model


class RoleStore(DelegatingStore):
    """Refuses, as a store's policy would (PermissionDeniedError), every write that
    ``role``'s prefixes do not allow (``registry.rights``): a trainer's or approver's key."""

    def __init__(self, inner: Store, role: str) -> None:
        super().__init__(inner)
        self.role = role

    def _check(self, key: str, op: str) -> None:
        if not may_write(self.role, key):
            raise PermissionDeniedError(
                f"{self.uri}: {self.role} may not {op} {key}", key=key, reason="AccessDenied"
            )

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        self._check(key, "put")
        return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def delete(self, key: str) -> None:
        self._check(key, "delete")
        self.inner.delete(key)


def as_role(reg: Registry, role: str, tmp_path: Path) -> Registry:
    return Registry(RoleStore(reg.store, role), cache_dir=tmp_path / f"cache-{role}")


def published(reg: Registry, *seeds: int) -> list[Manifest]:
    return [reg.publish(make_model(seed, accuracy=0.9 + seed / 100), "digits") for seed in seeds]


# --- the happy path -----------------------------------------------------------------------


def test_a_trainer_requests_an_approver_approves_and_the_history_names_both(
    reg: Registry, tmp_path: Path
) -> None:
    trainer, approver = as_role(reg, "trainer", tmp_path), as_role(reg, "approver", tmp_path)
    published(trainer, 1, 2)
    with pytest.raises(PermissionDeniedError) as denied:
        trainer.promote("digits", 2, "champion")
    line = str(denied.value)
    assert line.startswith(
        f"promoting digits:2 to champion needs write access to models/digits/aliases/ in "
        f"{reg.uri} (denied: AccessDenied); request it with "
        "`softmax-pipe registry request digits:2 champion`, then an approver runs "
        "`softmax-pipe registry approve digits:2 champion`"
    ), line
    assert "\n" not in line and denied.value.exit_code == 77
    assert reg.aliases("digits") == {}  # nothing moved

    done = trainer.request("digits", 2, "champion", by="alice", comment="weekly retrain")
    assert done.created and done.record is not None and done.record.seq == 1
    again = trainer.request("digits", 2, "champion")  # the same open request: not made twice
    assert (again.created, again.record) == (False, done.record)
    (pending,) = approver.requests("digits")
    assert pending.request == done.record and pending.is_open

    approval = approver.approve("digits", 2, "champion", by="bob", comment="checked")
    assert approval.move.moved and approval.request == done.record
    assert reg.resolve("digits@champion").version == 2
    (move,) = reg.history("digits", "champion")
    assert move.action == "approve" and move.comment == "checked"
    assert move.actor is not None and move.actor.by == "bob"
    assert move.request is not None and move.request.requested_by.by == "alice"
    assert move.request.comment == "weekly retrain"
    assert move.actor.identity == reg.store.identity().name  # one key here plays both roles
    assert approver.requests("digits") == []  # closed
    (closed,) = approver.requests("digits", closed=True)
    assert closed.decision is not None and closed.decision.decision == APPROVED
    assert closed.decision.by.by == "bob"


def test_a_request_where_the_alias_already_points_writes_nothing(
    reg: Registry, tmp_path: Path
) -> None:
    published(reg, 1)
    reg.promote("digits", 1, "champion")
    done = reg.request("digits", 1, "champion")
    assert (done.record, done.created) == (None, False)
    assert list(reg.store.list_keys(layout.requests_prefix("digits"))) == []


def test_a_request_needs_the_version(reg: Registry) -> None:
    published(reg, 1)
    with pytest.raises(ModelNotFoundError, match="has no version 7"):
        reg.request("digits", 7, "champion")


def test_approving_without_a_request_says_how_to_open_one(reg: Registry) -> None:
    published(reg, 1, 2)
    reg.request("digits", 2, "staging")
    with pytest.raises(ModelNotFoundError) as e:
        reg.approve("digits", 1, "champion")
    assert str(e.value) == (
        f"no open request to move digits@champion to digits:1 in {reg.uri}; open: "
        "#1 digits:2 -> staging; `softmax-pipe registry request digits:1 champion` opens one"
    )


def test_the_newest_candidate_wins_unless_forced(reg: Registry) -> None:
    published(reg, 1, 2, 3)
    for version in (2, 3):
        reg.request("digits", version, "champion")
    with pytest.raises(InvalidInputError, match=r"digits:2 is no longer the newest candidate"):
        reg.approve("digits", 2, "champion")
    assert reg.aliases("digits") == {}
    forced = reg.approve("digits", 2, "champion", force=True)
    assert forced.move.record.version == 2
    reg.approve("digits", 3, "champion")
    # an older version than the alias's is refused too, unless forced
    reg.request("digits", 1, "champion")
    with pytest.raises(InvalidInputError, match=r"already points to digits:3, newer than"):
        reg.approve("digits", 1, "champion")
    assert [m.version for m in reg.history("digits", "champion")] == [2, 3]


def test_approving_a_newer_version_closes_the_older_requests_as_superseded(
    tmp_path: Path,
) -> None:
    """A trainer asked for digits:1, then digits:2; the approver approves 2. The request
    for 1 can no longer be approved (the alias is past it): it is closed, rejected with a
    comment naming the approved one, as an event too; it used to stay open for good.
    Another alias's request stays open."""
    seen: list[RegistryEvent] = []
    reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[seen.append])
    published(reg, 1, 2)
    for version, alias in ((1, "champion"), (1, "staging"), (2, "champion")):
        reg.request("digits", version, alias)
    done = reg.approve("digits", 2, "champion", by="bob")
    ((older, decision),) = done.superseded
    assert (older.version, older.alias, decision.decision) == (1, "champion", REJECTED)
    assert (
        decision.comment == ("superseded: digits:2 was approved for champion (request #3)")
        and decision.by.by == "bob"
        and decision.superseded_by == 3
    )
    assert [(p.request.version, p.request.alias) for p in reg.requests("digits")] == [
        (1, "staging")
    ]
    assert [e.event for e in seen][-2:] == [events.ALIAS_MOVED, events.ALIAS_REJECTED]
    # closed by the approval of a newer one, not refused by a person (flows.training's
    # "nothing new to learn" skips a run with a refused version's data and code)
    assert not reg.requests("digits", closed=True)[0].refused


def test_a_person_s_rejection_is_refused_whatever_its_comment_says(reg: Registry) -> None:
    """Whether a request was closed as superseded is recorded (``superseded_by``), not read
    from the comment: a rejection whose comment begins "superseded: " was taken for a
    closing by an approval, so a scheduled run asked for the rejected model again. A
    decision an older version wrote (no ``superseded_by``, the comment approve wrote) is
    still told apart."""
    published(reg, 1, 2)
    reg.request("digits", 1, "champion")
    reg.reject("digits", 1, "champion", comment="superseded: by the new scanner, no")
    (closed,) = reg.requests("digits", closed=True)
    assert closed.refused and closed.decision is not None
    assert closed.decision.superseded_by is None
    assert "superseded_by" not in closed.decision.to_dict()
    older = dataclasses.replace(
        closed.decision, comment="superseded: digits:2 was approved for champion (request #2)"
    )
    reg.store.put(layout.decision_key("digits", closed.request.seq), older.to_bytes())
    assert not reg.requests("digits", closed=True)[0].refused


def test_a_rejected_request_cannot_be_approved(reg: Registry) -> None:
    published(reg, 1)
    reg.request("digits", 1, "champion", comment="try it")
    ((req, decision),) = reg.reject("digits", 1, "champion", by="carol", comment="no")
    assert decision.decision == REJECTED and decision.by.by == "carol" and req.seq == 1
    assert reg.requests("digits", closed=True)[0].refused
    with pytest.raises(ModelNotFoundError, match="none is open"):
        reg.approve("digits", 1, "champion")
    with pytest.raises(ModelNotFoundError):
        reg.reject("digits", 1, "champion")
    assert reg.aliases("digits") == {}
    reg.request("digits", 1, "champion")  # asked again: a new request
    assert [p.request.seq for p in reg.requests("digits")] == [2]


def test_a_trainer_cannot_decide_and_an_approver_cannot_publish(
    reg: Registry, tmp_path: Path
) -> None:
    trainer, approver = as_role(reg, "trainer", tmp_path), as_role(reg, "approver", tmp_path)
    published(trainer, 1)
    trainer.request("digits", 1, "champion")
    with pytest.raises(
        PermissionDeniedError,
        match=r"^approving digits:1 for champion needs "
        r"write access to models/digits/decisions/ .*an approver's key",
    ):
        trainer.approve("digits", 1, "champion")
    with pytest.raises(PermissionDeniedError, match=r"^rejecting digits:1 for champion needs"):
        trainer.reject("digits", 1, "champion")
    assert [p.is_open for p in reg.requests("digits", closed=True)] == [True]  # untouched
    with pytest.raises(
        PermissionDeniedError, match=r"^publishing digits needs write access to blobs/ .* a trainer"
    ):
        published(approver, 2)


def test_a_move_that_fails_takes_its_decision_back(reg: Registry, tmp_path: Path) -> None:
    """An approver's key that may write decisions but not this alias (a mistaken policy):
    the approval does not happen, and the request is open again."""

    class DecisionsOnly(RoleStore):
        def _check(self, key: str, op: str) -> None:
            if "/aliases/" in key:
                raise PermissionDeniedError("no aliases here", key=key, reason="AccessDenied")

    published(reg, 1)
    reg.request("digits", 1, "champion")
    half = Registry(DecisionsOnly(reg.store, "approver"), cache_dir=tmp_path / "c")
    with pytest.raises(PermissionDeniedError, match="models/digits/aliases/"):
        half.approve("digits", 1, "champion")
    assert reg.store.head(layout.decision_key("digits", 1)) is None
    (pending,) = reg.requests("digits")
    assert pending.is_open
    assert reg.approve("digits", 1, "champion").move.moved


def test_an_approval_cut_short_is_carried_out_by_the_next_approve(reg: Registry) -> None:
    """A crash between the decision and the move leaves the request approved, the alias
    where it was; approving it again moves the alias, once."""
    published(reg, 1)
    req = reg.request("digits", 1, "champion").record
    assert req is not None
    from registry import approvals

    approvals._decide(reg.store, req, APPROVED, reg.actor("first"), None)  # then "crashed"
    assert reg.requests("digits") == [] and reg.aliases("digits") == {}
    done = reg.approve("digits", 1, "champion", by="second")
    assert done.move.moved and done.move.record.request == req
    with pytest.raises(ModelNotFoundError):  # carried out: nothing left to approve
        reg.approve("digits", 1, "champion")


def test_racing_approve_and_reject_one_decision_stands(reg: Registry) -> None:
    """Eight approvers and eight rejecters at once: exactly one decision is written, and the
    alias moved if and only if it is an approval; every loser changed nothing."""
    published(reg, 1)
    reg.request("digits", 1, "champion")
    start = threading.Barrier(16)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(call: Callable[[], object], won: str) -> None:
        start.wait(timeout=60)
        try:
            call()
            result = won
        except (PreconditionFailedError, ModelNotFoundError):
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [
        threading.Thread(
            target=attempt, args=(lambda: reg.approve("digits", 1, "champion"), "approved")
        )
        for _ in range(8)
    ] + [
        threading.Thread(
            target=attempt, args=(lambda: reg.reject("digits", 1, "champion"), "rejected")
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 16
    (closed,) = reg.requests("digits", closed=True)
    assert closed.decision is not None
    winners = [o for o in outcomes if o != "lost"]
    # the winner, and approvers that came after it and found it carried out (nothing
    # moved twice: the history has at most one move)
    assert closed.decision.decision in winners
    moves = reg.history("digits", "champion") if closed.decision.decision == APPROVED else []
    assert len(moves) == (1 if closed.decision.decision == APPROVED else 0)
    if closed.decision.decision == REJECTED:
        assert reg.aliases("digits") == {}


# --- what an alias serves -----------------------------------------------------------------


def test_an_alias_serves_only_the_manifest_it_was_moved_to(reg: Registry) -> None:
    """A key that may write versions/ rewrites the champion's manifest to name another blob
    (a plain PUT, as a SeaweedFS trainer key may): resolving the alias refuses it loudly."""
    first, second = published(reg, 1, 2)
    reg.promote("digits", 1, "champion")
    assert reg.alias_record("digits", "champion").digest == first.digest
    forged = dataclasses.replace(first, digest=second.digest, size=second.size)
    reg.store.put(layout.manifest_key("digits", 1), forged.to_bytes())
    with pytest.raises(IntegrityError, match=r"the manifest was rewritten after the move"):
        reg.resolve("digits@champion")
    with pytest.raises(IntegrityError):
        reg.load("digits@champion")
    assert reg.resolve("digits:1").digest == second.digest  # by number: what it says now
    reg.promote("digits", 2, "champion")
    assert reg.load("digits@champion")[0].version == 2
    back = reg.rollback("digits", "champion")  # pins what version 1 names now
    assert back.digest == second.digest


def test_promoting_again_pins_a_rewritten_manifest_as_the_refusal_advises(
    reg: Registry,
) -> None:
    """The refusal of a rewritten manifest says to promote the version again: that promote
    is a move (it pinned nothing before: 'already digits:1'), recorded in the history, with
    the rollback list unchanged; a promote after it writes nothing."""
    first, second = published(reg, 1, 2)
    reg.promote("digits", 2, "champion")
    reg.promote("digits", 1, "champion")
    forged = dataclasses.replace(first, digest=second.digest, size=second.size)
    reg.store.put(layout.manifest_key("digits", 1), forged.to_bytes())
    with pytest.raises(IntegrityError, match=r"registry promote digits:1 champion"):
        reg.resolve("digits@champion")
    move = reg.promote("digits", 1, "champion")
    assert move.moved and move.record.digest == second.digest
    assert move.record.previous == (2,) and move.record.from_version == 1
    assert reg.resolve("digits@champion").digest == second.digest
    assert [r.version for r in reg.history("digits", "champion")] == [2, 1, 1]
    assert not reg.promote("digits", 1, "champion").moved
    assert reg.rollback("digits", "champion").version == 2


def test_a_stray_key_under_an_alias_is_named_not_blamed_on_racers(reg: Registry) -> None:
    """A key under the alias record's name (a SeaweedFS trainer key may write
    ``aliases/champion.json/versions/x``; a folder there on a local store) makes every
    create of the record fail while reads say it is absent: after a few attempts (not
    100, then 'too many concurrent moves') the error names the key and who fixes it."""
    published(reg, 1)
    stray = "models/digits/aliases/champion.json/versions/x"
    reg.store.put(stray, b"x")
    creates: list[str] = []
    put = reg.store.put

    def counting(key: str, data: bytes, **kw: object) -> str:
        creates.append(key)
        return put(key, data, **kw)  # type: ignore[arg-type]

    reg.store.put = counting  # type: ignore[method-assign]
    where = f"{reg.uri}/models/digits/aliases/champion.json"
    with pytest.raises(StorageError, match=r"refused to create it 3 times in a row") as e:
        reg.promote("digits", 1, "champion")
    assert f"{where}/versions/x, blocks it; an admin deletes it" in str(e.value)
    assert f"deepest first: {where}/versions/, {where}/, then move" in str(e.value)
    assert creates.count(layout.alias_key("digits", "champion")) == 3
    reg.request("digits", 1, "champion")
    with pytest.raises(StorageError, match=r"champion\.json/versions/x, blocks it"):
        reg.approve("digits", 1, "champion")
    reg.store.delete(stray)  # the admin's fix: on SeaweedFS, the folders too
    client = getattr(reg.store, "client", None)
    if client is not None:
        for folder in (f"{where}/versions/", f"{where}/"):
            bucket, _, folder_key = folder.removeprefix("s3://").partition("/")
            client.delete_object(Bucket=bucket, Key=folder_key)
    assert reg.approve("digits", 1, "champion").move.record.version == 1


def test_records_written_before_pinning_still_resolve(reg: Registry) -> None:
    """An alias record without ``digest`` (written by an earlier softmax-pipe) resolves
    as before."""
    (first,) = published(reg, 1)
    record = reg.promote("digits", 1, "champion").record
    old = {k: v for k, v in record.to_dict().items() if k not in ("digest", "actor", "request")}
    from registry.manifest import dumps

    reg.store.put(layout.alias_key("digits", "champion"), dumps(old))
    assert reg.alias_record("digits", "champion").digest is None
    assert reg.resolve("digits@champion") == first


# --- events -------------------------------------------------------------------------------


def test_requests_approvals_and_rejections_are_events(tmp_path: Path) -> None:
    seen: list[RegistryEvent] = []
    reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[seen.append])
    published(reg, 1, 2)
    reg.request("digits", 1, "champion", by="alice")
    reg.approve("digits", 1, "champion", by="bob")
    reg.request("digits", 2, "champion", comment="next")
    reg.reject("digits", 2, "champion", by="carol", comment="not yet")
    changes = [e.change for e in seen]
    assert [c.kind for c in changes if c is not None] == [
        "publish",
        "publish",
        "request",
        "approve",
        "request",
        "reject",
    ]
    assert [e.event for e in seen[2:]] == [
        events.ALIAS_REQUESTED,
        events.ALIAS_MOVED,
        events.ALIAS_REQUESTED,
        events.ALIAS_REJECTED,
    ]
    request, approve, again, reject = (c for c in changes[2:] if c is not None)
    assert (request.from_version, request.to_version, request.request) == (None, 1, 1)
    assert request.actor is not None and request.actor.by == "alice"
    assert (approve.from_version, approve.to_version, approve.request) == (None, 1, 1)
    assert approve.actor is not None and approve.actor.by == "bob"
    assert (again.from_version, again.to_version, again.comment) == (1, 2, "next")
    assert reject.actor is not None and reject.actor.by == "carol" and reject.comment == "not yet"
    assert seen[3].payload["request"]["requested_by"]["by"] == "alice"  # Prefect's payload


def test_by_and_comment_are_checked_before_anything_is_written(reg: Registry) -> None:
    published(reg, 1)
    for bad in ("", "x" * 201, "line\nbreak", "\x1b[31mred"):
        with pytest.raises(InvalidInputError, match="--by"):
            reg.promote("digits", 1, "champion", by=bad)
    with pytest.raises(InvalidInputError, match="--comment"):
        reg.request("digits", 1, "champion", comment="\x07")
    assert reg.aliases("digits") == {}
    assert list(reg.store.list_keys(layout.requests_prefix("digits"))) == []


def test_requests_of_an_unknown_model_is_not_found(reg: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        reg.requests("nope")
    published(reg, 1)
    assert reg.requests("digits") == []


def test_gc_with_a_key_that_may_not_delete_says_whose_job_it_is(
    reg: Registry, tmp_path: Path
) -> None:
    class NoDeletes(RoleStore):
        def delete(self, key: str) -> None:
            raise PermissionDeniedError("no", key=key, reason="AccessDenied")

    reg.store.put(layout.blob_key("ab" * 32), b"an orphan")
    keeper = Registry(NoDeletes(reg.store, "trainer"), cache_dir=tmp_path / "c")
    with pytest.raises(PermissionDeniedError) as e:
        keeper.gc(grace_seconds=0)
    assert str(e.value) == (
        f"collecting unreferenced blobs needs write access to blobs/ in {reg.uri} (denied: "
        "AccessDenied); gc deletes blobs: run it with a key that may delete under blobs/ "
        "(an admin's)"
    )
