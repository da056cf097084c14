"""Where a published model came from: the run, the data, the code, the champion.

A :class:`Lineage` is made by the training flow, stored in the version's manifest as JSON
(:meth:`Lineage.to_json`, the manifest's ``lineage`` object) and read back with
:meth:`Lineage.from_json`, which accepts the partial lineage of versions published by
hand (``registry publish`` records only the data source). :meth:`Lineage.fingerprint` is
what "nothing new to learn" compares: the same data, datasets, code, features and
hyperparameters as the champion's mean a scheduled retraining would learn nothing new.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetLineage:
    """One version of a user's dataset a model was trained on."""

    name: str
    version: int
    digest: str  # sha256 of the dataset blob
    content: str  # what the data is (softmax_core.labelled.Labelled.content_digest)
    count: int
    train: int
    holdout: int

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DatasetLineage:
        return cls(
            name=str(doc.get("name")),
            version=int(doc.get("version") or 0),
            digest=str(doc.get("digest")),
            content=str(doc.get("content")),
            count=int(doc.get("count") or 0),
            train=int(doc.get("train") or 0),
            holdout=int(doc.get("holdout") or 0),
        )


@dataclass(frozen=True)
class Lineage:
    """What a model was made from (every field may be missing in older manifests)."""

    flow: str | None = None
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    data_digest: str | None = None  # MNIST's dataset digest
    data_source: str | None = None
    datasets: tuple[DatasetLineage, ...] = ()
    data_weight: int | None = None  # how many times a dataset image counted (with datasets)
    weighting: str | None = None  # jitter, oversample or loss (with datasets)
    features: str | None = None
    train_params: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    warm_start_from: str | None = None  # the champion's version, with a warm start
    champion: str | None = None  # the version gated against
    gate: dict[str, Any] | None = None  # the gate's decision at publication
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc.pop("extra")
        doc["datasets"] = [dataclasses.asdict(d) for d in self.datasets]
        if doc["gate"] is None:
            del doc["gate"]
        return {**self.extra, **doc}

    def left_out_of(self, before: Lineage) -> tuple[str, ...]:
        """The datasets ``before`` (the champion's lineage) learned from that this run has
        none of by name, as ``NAME:VERSION``."""
        names = {d.name for d in self.datasets}
        return tuple(f"{d.name}:{d.version}" for d in before.datasets if d.name not in names)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Lineage:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: doc[k] for k in known if k in doc}
        values["datasets"] = tuple(
            DatasetLineage.from_json(d) for d in doc.get("datasets") or () if isinstance(d, dict)
        )
        values["train_params"] = dict(doc.get("train_params") or {})
        return cls(**values, extra={k: v for k, v in doc.items() if k not in known})

    def fingerprint(self) -> dict[str, Any]:
        """What "nothing new to learn" compares: data, datasets' content, code, features
        and hyperparameters (a run asked for other epochs or another seed has something
        new to try)."""
        return {
            "train_params": self.train_params,
            "data_digest": self.data_digest,
            "datasets": sorted((d.name, d.content) for d in self.datasets),
            "data_weight": self.data_weight if self.datasets else None,
            "weighting": self.weighting if self.datasets else None,
            "code_version": self.code_version,
            "features": self.features,
        }
