"""What the registry tells others: one event per publish and one per alias move.

The registry knows nothing of Prefect: it calls its listeners (any callables taking a
:class:`RegistryEvent`) after an operation has succeeded. ``flows.events`` supplies the
listener that forwards them to a Prefect API as Prefect events, so automations can
react (deploy/prefect.yaml re-scores the inbox when the champion moves).

Events, in Prefect's shape (``event``, ``resource`` with ``prefect.resource.id``, ``payload``):

``softmax-pipe.model.published``
    resource ``softmax-pipe.registry.<uri>.model.<name>``; payload: the manifest's
    essentials (version, ref, digest, created, data digest, metrics, features, code version).
``softmax-pipe.alias.moved``
    resource ``softmax-pipe.registry.<uri>.model.<name>.alias.<alias>``; payload: ``from``
    and ``to`` versions (``from`` is null for a new alias), the action (promote,
    rollback), the move's sequence number and time.

Every resource also carries the labels ``softmax-pipe.registry``, ``softmax-pipe.model``
(and ``softmax-pipe.alias``), which Prefect triggers can match on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from registry.manifest import AliasRecord, Manifest

log = logging.getLogger(__name__)

MODEL_PUBLISHED = "softmax-pipe.model.published"
ALIAS_MOVED = "softmax-pipe.alias.moved"


@dataclass(frozen=True)
class RegistryEvent:
    event: str
    resource: dict[str, str]
    payload: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[RegistryEvent], None]


def _resource(uri: str, name: str, alias: str | None = None) -> dict[str, str]:
    rid = f"softmax-pipe.registry.{uri}.model.{name}"
    labels = {"softmax-pipe.registry": uri, "softmax-pipe.model": name}
    if alias is not None:
        rid += f".alias.{alias}"
        labels["softmax-pipe.alias"] = alias
    shown = f"{name}@{alias}" if alias is not None else name
    return {"prefect.resource.id": rid, "prefect.resource.name": shown, **labels}


def published(uri: str, manifest: Manifest) -> RegistryEvent:
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
        },
    )


def alias_moved(uri: str, record: AliasRecord) -> RegistryEvent:
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
