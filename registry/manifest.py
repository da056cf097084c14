"""The registry's JSON documents: version manifests, alias records, promotion requests
and their decisions, and who made each (:class:`Actor`).

All are plain JSON objects (sorted keys, UTF-8) that any S3 tool can read.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from registry import layout
from registry.names import validate_name
from softmax_core.errors import CorruptObjectError
from softmax_core.lineage import DatasetLineage

MANIFEST_SCHEMA = "softmax-pipe/manifest@1"
ALIAS_SCHEMA = "softmax-pipe/alias@1"
INDEX_SCHEMA = "softmax-pipe/index@1"
DATASET_SCHEMA = "softmax-pipe/dataset@1"
REQUEST_SCHEMA = "softmax-pipe/request@1"
DECISION_SCHEMA = "softmax-pipe/decision@1"
APPROVED, REJECTED = "approved", "rejected"
V = TypeVar("V", bound="Versioned")


def _finite(value: Any) -> Any:
    """NaN and infinities become null: records are standard JSON any reader can parse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(doc: dict[str, Any]) -> bytes:
    """Standard JSON (``allow_nan=False``; a NaN metric is written as null)."""
    text = json.dumps(_finite(doc), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode()


def whole(value: Any, what: str, *, minimum: int = 0) -> int:
    """A JSON integer >= ``minimum``: ``2.9``, ``"3"``, ``true`` and ``1e999`` are refused."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} {value!r} is not a whole number >= {minimum}")
    return value


def _check_schema(doc: dict[str, Any], schema: str, origin: str) -> None:
    found = doc.get("schema")
    if found != schema:
        raise CorruptObjectError(
            f"{origin} has schema {found!r}, expected {schema!r}; it was written by another "
            "tool or a newer softmax-pipe"
        )


def _loads(data: bytes, origin: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptObjectError(
            f"{origin} is not valid JSON ({e}); it was damaged or not ours"
        ) from e
    if not isinstance(doc, dict):
        raise CorruptObjectError(f"{origin} is not a JSON object")
    return doc


class Versioned:
    """What a model's and a dataset's manifest share: ``name:version``, a blob, their JSON
    (unknown fields of newer writers kept in ``extra``)."""

    SCHEMA: ClassVar[str]
    name: str
    version: int
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def blob_key(self) -> str:
        return layout.blob_key(self.digest)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        extra = d.pop("extra")
        return {**extra, "schema": self.SCHEMA, **d, "blob": self.blob_key}

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict())


def parse_versioned(cls: type[V], data: bytes, *, name: str, version: int, origin: str) -> V:
    """A manifest read from ``origin``, which must be ``name:version``'s."""
    m = cls.from_bytes(data, origin=origin)  # type: ignore[attr-defined]
    if m.name != name or m.version != version:
        raise CorruptObjectError(f"{origin} claims to be {m.ref}, expected {name}:{version}")
    return m  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Manifest(Versioned):
    """One published version of a model: what the weights are and origin they came from."""

    name: str
    version: int
    digest: str  # sha256 hex of the model file bytes (the blob)
    created: str  # ISO 8601 UTC time of publication
    data_digest: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    preprocessing: dict[str, Any]
    input_schema: dict[str, Any]
    code_version: str | None
    lineage: dict[str, Any]
    size: int = 0  # bytes of the blob
    model_created: str | None = None  # when the model file was written (training time)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields from newer writers
    SCHEMA: ClassVar[str] = MANIFEST_SCHEMA

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, origin: str = "manifest") -> Manifest:
        try:
            name = validate_name("model name", str(doc["name"]))
            version = whole(doc["version"], "version", minimum=1)
            digest = layout.validate_digest(str(doc["digest"]))
            known = {f for f in cls.__dataclass_fields__ if f != "extra"} | {"schema", "blob"}
            return cls(
                name=name,
                version=version,
                digest=digest,
                created=str(doc["created"]),
                data_digest=doc.get("data_digest"),
                params=dict(doc.get("params") or {}),
                metrics=dict(doc.get("metrics") or {}),
                preprocessing=dict(doc.get("preprocessing") or {}),
                input_schema=dict(doc.get("input_schema") or {}),
                code_version=doc.get("code_version"),
                lineage=dict(doc.get("lineage") or {}),
                size=whole(doc.get("size", 0), "size"),
                model_created=doc.get("model_created"),
                extra={k: v for k, v in doc.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptObjectError(f"{origin} is not a valid manifest: {e!r}") from e

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "manifest") -> Manifest:
        doc = _loads(data, origin)
        _check_schema(doc, MANIFEST_SCHEMA, origin)
        return cls.from_dict(doc, origin=origin)


def _text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} {value!r} is not a string")
    return value


@dataclass(frozen=True)
class Actor:
    """Who did something: ``identity`` as the store knows them (an STS ARN, an access key
    id, a local user: ``source`` says which; ``registry.store.Identity``) and ``by``, the
    name they gave (``--by``), if any. Recorded as written by the client; the store's
    rights decide who could write it (README, "Rights")."""

    identity: str
    source: str
    by: str | None = None

    def __str__(self) -> str:
        return f"{self.by} ({self.identity})" if self.by else self.identity

    @classmethod
    def from_dict(cls, doc: Any, what: str = "actor") -> Actor:
        if not isinstance(doc, dict):
            raise ValueError(f"{what} {doc!r} is not an object")
        return cls(
            identity=str(doc["identity"]),
            source=str(doc["source"]),
            by=_text(doc.get("by"), f"{what}.by"),
        )


def _actor(doc: Any, what: str) -> Actor | None:
    return None if doc is None else Actor.from_dict(doc, what)


@dataclass(frozen=True)
class RequestRecord:
    """A request that ``name@alias`` move to ``name:version``
    (``models/<name>/requests/<seq>.json``, written once, numbered like versions)."""

    name: str
    alias: str
    version: int
    seq: int
    requested_by: Actor
    requested_at: str
    comment: str | None
    request_id: str  # unique per request: tells a retried write of ours from someone else's

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": REQUEST_SCHEMA, **asdict(self)}

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, origin: str = "request") -> RequestRecord:
        try:
            return cls(
                name=validate_name("model name", str(doc["name"])),
                alias=validate_name("alias", str(doc["alias"])),
                version=whole(doc["version"], "version", minimum=1),
                seq=whole(doc["seq"], "seq", minimum=1),
                requested_by=Actor.from_dict(doc["requested_by"], "requested_by"),
                requested_at=str(doc["requested_at"]),
                comment=_text(doc.get("comment"), "comment"),
                request_id=str(doc["request_id"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptObjectError(f"{origin} is not a valid request: {e!r}") from e

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "request") -> RequestRecord:
        doc = _loads(data, origin)
        _check_schema(doc, REQUEST_SCHEMA, origin)
        return cls.from_dict(doc, origin=origin)


@dataclass(frozen=True)
class Decision:
    """How request ``seq`` of ``name`` was closed: ``approved`` or ``rejected``, by whom,
    when (``models/<name>/decisions/<seq>.json``, written once: the first
    decision is the decision). ``superseded_by``: for a request an approval closed since
    the alias had moved past it, the approved request's seq (None for a person's
    decision)."""

    name: str
    seq: int
    decision: str  # APPROVED or REJECTED
    by: Actor
    at: str
    comment: str | None
    decision_id: str  # unique per decision (a retried write of ours)
    superseded_by: int | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = {"schema": DECISION_SCHEMA, **asdict(self)}
        if self.superseded_by is None:  # a person's decision reads as it always has
            del doc["superseded_by"]
        return doc

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "decision") -> Decision:
        doc = _loads(data, origin)
        _check_schema(doc, DECISION_SCHEMA, origin)
        try:
            decision = str(doc["decision"])
            if decision not in (APPROVED, REJECTED):
                raise ValueError(f"decision {decision!r} is neither {APPROVED} nor {REJECTED}")
            return cls(
                name=validate_name("model name", str(doc["name"])),
                seq=whole(doc["seq"], "seq", minimum=1),
                decision=decision,
                by=Actor.from_dict(doc["by"], "by"),
                at=str(doc["at"]),
                comment=_text(doc.get("comment"), "comment"),
                decision_id=str(doc["decision_id"]),
                superseded_by=(
                    None
                    if doc.get("superseded_by") is None
                    else whole(doc["superseded_by"], "superseded_by", minimum=1)
                ),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptObjectError(f"{origin} is not a valid decision: {e!r}") from e


@dataclass(frozen=True)
class AliasRecord:
    """Where an alias points, the stack of versions it pointed to before, and this move:
    who made it (``actor``, with an optional ``comment``) and, for an approval, the
    request it carried out (``request``: who asked, when, why)."""

    name: str
    alias: str
    version: int
    previous: tuple[int, ...]  # older targets, most recent last: rollback pops from here
    seq: int  # 1 for the first move, +1 per move: also the key of its history entry
    moved_at: str
    move_id: str  # unique per move: tells a retried write of ours from someone else's
    action: str  # "promote", "approve" (a request carried out) or "rollback"
    from_version: int | None
    actor: Actor | None = None  # None in records written before moves named their maker
    comment: str | None = None
    request: RequestRecord | None = None
    # the blob the version's manifest named when the alias moved to it: resolving the
    # alias refuses a manifest rewritten since (a trainer's key may write versions/)
    digest: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["previous"] = list(self.previous)
        return {"schema": ALIAS_SCHEMA, **d}

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "alias record") -> AliasRecord:
        doc = _loads(data, origin)
        _check_schema(doc, ALIAS_SCHEMA, origin)
        try:
            prev = doc.get("previous") or []
            rec = cls(
                name=validate_name("model name", str(doc["name"])),
                alias=validate_name("alias", str(doc["alias"])),
                version=whole(doc["version"], "version", minimum=1),
                previous=tuple(whole(v, "previous version", minimum=1) for v in prev),
                seq=whole(doc["seq"], "seq", minimum=1),
                moved_at=str(doc["moved_at"]),
                move_id=str(doc["move_id"]),
                action=str(doc["action"]),
                from_version=None
                if doc.get("from_version") is None
                else whole(doc["from_version"], "from_version", minimum=1),
                actor=_actor(doc.get("actor"), "actor"),
                comment=_text(doc.get("comment"), "comment"),
                request=None
                if doc.get("request") is None
                else RequestRecord.from_dict(doc["request"], origin=f"{origin} (its request)"),
                digest=None
                if doc.get("digest") is None
                else layout.validate_digest(str(doc["digest"])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptObjectError(f"{origin} is not a valid alias record: {e!r}") from e
        if rec.version < 1 or rec.seq < 1:
            raise CorruptObjectError(f"{origin}: version and seq must be >= 1")
        return rec


def index_page_bytes(name: str, page: int, entries: list[tuple[str, Manifest]]) -> bytes:
    """An index page: copies of manifests with the ETag each had in the store's listing."""
    return dumps(
        {
            "schema": INDEX_SCHEMA,
            "name": name,
            "page": page,
            "entries": [{"etag": etag, "manifest": m.to_dict()} for etag, m in entries],
        }
    )


def parse_index_page(data: bytes, *, name: str, origin: str) -> dict[int, tuple[str, Manifest]]:
    """``{version: (etag, manifest)}`` from an index page; CorruptObjectError if malformed."""
    doc = _loads(data, origin)
    if doc.get("schema") != INDEX_SCHEMA or doc.get("name") != name:
        raise CorruptObjectError(f"{origin} is not an index page of {name!r}")
    out: dict[int, tuple[str, Manifest]] = {}
    try:
        for entry in doc["entries"]:
            m = Manifest.from_dict(entry["manifest"], origin=origin)
            if m.name != name:
                raise ValueError(f"entry for {m.ref} in the index of {name!r}")
            out[m.version] = (str(entry["etag"]), m)
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptObjectError(f"{origin} is not a valid index page: {e!r}") from e
    return out


@dataclass(frozen=True)
class DatasetManifest(Versioned):
    """One version of a labelled dataset: its blob (``softmax_core.labelled.Labelled`` as
    npz), what it holds per class and per split, and how it differs from the version before."""

    name: str
    version: int
    digest: str  # sha256 hex of the blob
    created: str
    size: int  # bytes of the blob
    count: int  # images
    classes: dict[str, int]  # "0".."9" -> images
    train: int
    holdout: int
    split: str  # the rule (softmax_core.labelled.SPLIT_RULE)
    content: str  # softmax_core.labelled.Labelled.content_digest(): what the data is
    changes: dict[str, int]  # added, relabelled, unchanged, kept (vs the previous version)
    previous: int | None
    code_version: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    SCHEMA: ClassVar[str] = DATASET_SCHEMA

    def lineage(self) -> DatasetLineage:
        """What a model's lineage records of each dataset version it was trained on."""
        return DatasetLineage(
            name=self.name,
            version=self.version,
            digest=self.digest,
            content=self.content,
            count=self.count,
            train=self.train,
            holdout=self.holdout,
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "dataset manifest") -> DatasetManifest:
        doc = _loads(data, origin)
        _check_schema(doc, DATASET_SCHEMA, origin)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"} | {"schema", "blob"}
        try:
            prev = doc.get("previous")
            return cls(
                name=validate_name("dataset name", str(doc["name"])),
                version=whole(doc["version"], "version", minimum=1),
                digest=layout.validate_digest(str(doc["digest"])),
                created=str(doc["created"]),
                size=whole(doc["size"], "size"),
                count=whole(doc["count"], "count"),
                classes={str(k): whole(v, "class count") for k, v in doc["classes"].items()},
                train=whole(doc["train"], "train"),
                holdout=whole(doc["holdout"], "holdout"),
                split=str(doc["split"]),
                content=layout.validate_digest(str(doc["content"])),
                changes={str(k): whole(v, "change count") for k, v in doc["changes"].items()},
                previous=None if prev is None else whole(prev, "previous", minimum=1),
                code_version=doc.get("code_version"),
                extra={k: v for k, v in doc.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorruptObjectError(f"{origin} is not a valid dataset manifest: {e!r}") from e
