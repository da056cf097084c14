"""What the registry tells others: one event per publish, alias move, request and rejection.

The registry knows nothing of Prefect: it calls its listeners (any callables taking a
:class:`RegistryEvent`) after an operation has succeeded. ``flows.events`` supplies the
listeners: one forwards them to a Prefect API as Prefect events, so automations can react
(deploy/prefect.yaml re-scores the inbox when the champion moves); another posts them,
signed, to webhooks (``registry.webhooks``). Each event also carries :class:`Change`,
the same facts as a typed record (what webhooks send).

Events, in Prefect's shape (``event``, ``resource`` with ``prefect.resource.id``, ``payload``):

``softmax-pipe.model.published``
    resource ``softmax-pipe.registry.<uri>.model.<name>``; payload: the manifest's
    essentials (version, ref, digest, created, data digest, metrics, features, code version).
``softmax-pipe.alias.moved``
    resource ``softmax-pipe.registry.<uri>.model.<name>.alias.<alias>``; payload: ``from``
    and ``to`` versions (``from`` is null for a new alias), the action (promote, approve,
    rollback), the move's sequence number and time, who moved it (``actor``), their
    comment, and for an approval the request it carried out.
``softmax-pipe.alias.requested`` / ``softmax-pipe.alias.rejected``
    the same resource; payload: the request (version, number, who asked, when, why) and,
    for a rejection, who rejected it and why.

``softmax-pipe.scoring.drift``
    a scoring run whose profile differs significantly from the model's reference
    (``registry.monitoring``); resource ``softmax-pipe.registry.<uri>.model.<name>`` (a
    model file's: ``softmax-pipe.model-file.<path>``); payload: the model, the input, the
    run's time and counts, the rejected share, the accuracy estimate, each test's p-value,
    the level they were held to and where the profile was written. Prefect only (no
    :class:`Change`: webhooks carry registry changes).

Every resource also carries the labels ``softmax-pipe.registry``, ``softmax-pipe.model``
(and ``softmax-pipe.alias``), which Prefect triggers can match on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from registry.manifest import Actor, AliasRecord, Manifest, RequestRecord
from softmax_core.monitoring import Profile

log = logging.getLogger(__name__)

MODEL_PUBLISHED = "softmax-pipe.model.published"
ALIAS_MOVED = "softmax-pipe.alias.moved"
ALIAS_REQUESTED = "softmax-pipe.alias.requested"
ALIAS_REJECTED = "softmax-pipe.alias.rejected"
SCORING_DRIFT = "softmax-pipe.scoring.drift"


@dataclass(frozen=True)
class Change:
    """What happened, typed: ``kind`` is publish, request, approve, reject, promote or
    rollback; ``version`` the version concerned; ``from_version``/``to_version`` an
    alias's move (None where there is none); ``at`` the registry's time of it (UTC ISO
    8601); ``request`` the request's number for request, approve and reject."""

    kind: str
    registry: str
    model: str
    version: int | None
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: Actor | None
    at: str
    comment: str | None = None
    request: int | None = None


@dataclass(frozen=True)
class RegistryEvent:
    event: str
    resource: dict[str, str]
    payload: dict[str, Any] = field(default_factory=dict)
    change: Change | None = None


Listener = Callable[[RegistryEvent], None]


def _resource(uri: str, name: str, alias: str | None = None) -> dict[str, str]:
    rid = f"softmax-pipe.registry.{uri}.model.{name}"
    labels = {"softmax-pipe.registry": uri, "softmax-pipe.model": name}
    if alias is not None:
        rid += f".alias.{alias}"
        labels["softmax-pipe.alias"] = alias
    shown = f"{name}@{alias}" if alias is not None else name
    return {"prefect.resource.id": rid, "prefect.resource.name": shown, **labels}


def _who(actor: Actor | None) -> dict[str, Any] | None:
    return None if actor is None else asdict(actor)


def published(uri: str, manifest: Manifest, actor: Actor | None = None) -> RegistryEvent:
    return RegistryEvent(
        MODEL_PUBLISHED,
        _resource(uri, manifest.name),
        {
            "registry": uri,
            "name": manifest.name,
            "version": manifest.version,
            "ref": manifest.ref,
            "digest": manifest.digest,
            "created": manifest.created,
            "data_digest": manifest.data_digest,
            "metrics": manifest.metrics,
            "features": manifest.params.get("features"),
            "code_version": manifest.code_version,
            "actor": _who(actor),
        },
        Change(
            kind="publish",
            registry=uri,
            model=manifest.name,
            version=manifest.version,
            alias=None,
            from_version=None,
            to_version=None,
            actor=actor,
            at=manifest.created,
        ),
    )


def alias_moved(uri: str, record: AliasRecord) -> RegistryEvent:
    req = record.request
    return RegistryEvent(
        ALIAS_MOVED,
        _resource(uri, record.name, record.alias),
        {
            "registry": uri,
            "name": record.name,
            "alias": record.alias,
            "ref": record.ref,
            "from": record.from_version,
            "to": record.version,
            "action": record.action,
            "seq": record.seq,
            "moved_at": record.moved_at,
            "actor": _who(record.actor),
            "comment": record.comment,
            "request": None if req is None else req.to_dict(),
        },
        Change(
            kind=record.action,
            registry=uri,
            model=record.name,
            version=record.version,
            alias=record.alias,
            from_version=record.from_version,
            to_version=record.version,
            actor=record.actor,
            at=record.moved_at,
            comment=record.comment,
            request=None if req is None else req.seq,
        ),
    )


def requested(uri: str, req: RequestRecord, current: int | None) -> RegistryEvent:
    """A request to move ``name@alias`` (now at ``current``) to ``req.version``."""
    return RegistryEvent(
        ALIAS_REQUESTED,
        _resource(uri, req.name, req.alias),
        {"registry": uri, "from": current, "to": req.version, **req.to_dict()},
        Change(
            kind="request",
            registry=uri,
            model=req.name,
            version=req.version,
            alias=req.alias,
            from_version=current,
            to_version=req.version,
            actor=req.requested_by,
            at=req.requested_at,
            comment=req.comment,
            request=req.seq,
        ),
    )


def rejected(
    uri: str, req: RequestRecord, actor: Actor, at: str, comment: str | None
) -> RegistryEvent:
    return RegistryEvent(
        ALIAS_REJECTED,
        _resource(uri, req.name, req.alias),
        {
            "registry": uri,
            "request": req.to_dict(),
            "actor": _who(actor),
            "comment": comment,
            "rejected_at": at,
        },
        Change(
            kind="reject",
            registry=uri,
            model=req.name,
            version=req.version,
            alias=req.alias,
            from_version=None,
            to_version=None,
            actor=actor,
            at=at,
            comment=comment,
            request=req.seq,
        ),
    )


def scoring_drift(uri: str | None, profile: Profile, places: Sequence[str]) -> RegistryEvent:
    """Drift flagged on a scoring run with a registry version (``uri``) or a model file."""
    drift = profile.drift
    if uri is not None:
        resource = _resource(uri, profile.model.partition(":")[0])
    else:
        resource = {
            "prefect.resource.id": f"softmax-pipe.model-file.{profile.model}",
            "prefect.resource.name": profile.model,
        }
    return RegistryEvent(
        SCORING_DRIFT,
        resource,
        {
            "registry": uri,
            "model": profile.model,
            "input": profile.input,
            "created": profile.created,
            "images": profile.total,
            "ok": profile.ok,
            "rejected": profile.rejected,
            "failed": profile.failed,
            "rejected_share": profile.rejected_share,
            "accuracy_estimate": profile.accuracy_estimate,
            "p_values": {} if drift is None else {t.name: t.p_value for t in drift.tests},
            "threshold": None if drift is None else drift.threshold,
            "profile": list(places),
        },
    )


def notify(listeners: Iterable[Listener], event: RegistryEvent) -> None:
    """Call every listener; one that raises is logged and skipped: telling others never
    fails the operation that already succeeded."""
    for listener in listeners:
        try:
            listener(event)
        except Exception as e:
            log.warning("could not send registry event %s: %s", event.event, e)
