"""What the training flow's steps hand each other, and what the flow returns: typed records.

- :class:`Champion`: the model behind ``name@alias``, which the challenger is gated
  against (and warm-starts from);
- :class:`Evaluation`: the test metrics and the gate's decisions, MNIST's and each
  dataset's holdout's;
- :class:`Published` or :class:`Skipped`: the run's result. ``to_json`` is what
  ``softmax-pipe run --json`` prints.
- :data:`PUBLISHED`: every version this process's runs published, noted as soon as the
  registry has it: what a runner says of a run cut short before it returned its result.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from registry import Manifest
from registry.manifest import RequestRecord
from softmax_core import gate
from softmax_core.lineage import Lineage
from softmax_core.metrics import EvaluationReport
from softmax_core.model import Model

if TYPE_CHECKING:
    from softmax_core.train import DatasetUse

NOTHING_NEW = "nothing new to learn"  # a scheduled run whose champion has its data and code


@dataclass(frozen=True)
class Champion:
    """The model currently behind ``name@alias`` (``alias_ref``): its manifest and weights
    (``model.ref`` is its version, ``mnist:3``)."""

    alias_ref: str
    manifest: Manifest
    model: Model

    @property
    def ref(self) -> str:
        return self.manifest.ref


@dataclass(frozen=True)
class Evaluation:
    """The evaluate step's result: test metrics and the gate's decision on MNIST test (with
    its reject rate), a decision per dataset holdout (``domains``) and, for a model that
    can reject, the decision on the held-out generated non-digits (``negatives``)."""

    report: EvaluationReport
    decision: gate.GateDecision
    domains: tuple[gate.GateDecision, ...] = ()
    negatives: gate.GateDecision | None = None

    @property
    def decisions(self) -> tuple[gate.GateDecision, ...]:
        return (self.decision, *self.domains, *((self.negatives,) if self.negatives else ()))


def domain_metrics(domains: tuple[gate.GateDecision, ...]) -> dict[str, Any]:
    """``{dataset: {accuracy, n, champion_accuracy, comparison, p_better, p_worse,
    min_accuracy, floor_applies}}``."""
    return {
        str(d.domain): {
            "accuracy": d.accuracy,
            "n": d.n,
            "champion_accuracy": d.champion_accuracy,
            "comparison": d.comparison,
            "p_better": d.p_better,
            "p_worse": d.p_worse,
            "min_accuracy": d.min_accuracy,
            "floor_applies": d.floor_applies,
        }
        for d in domains
    }


def run_notes(
    used: tuple[DatasetUse, ...], left_out: tuple[str, ...], champion: str | None
) -> list[str]:
    """What a training run says beside the gate: each dataset it had no images of a split
    for, and each the champion learned from that it left out (the gate did not measure
    the new version on it, and it may no longer read it)."""
    out = [note for u in used for note in u.notes()]
    for ref in left_out:
        name = ref.rsplit(":", 1)[0]
        out.append(
            f"{ref} left out: the champion {champion} learned from it, this run did not, "
            f"and the gate did not measure it (train with --dataset {name} to keep it)"
        )
    return out


@dataclass(frozen=True)
class Published:
    """A run that published ``name:version`` (and moved ``name@promoted``, or requested
    that an approver move ``requested.alias`` to it)."""

    registry: str
    manifest: Manifest
    promoted: str | None  # the alias moved to it, if any
    evaluation: Evaluation
    lineage: Lineage
    requested: RequestRecord | None = None  # the request made for it, if any
    used: tuple[DatasetUse, ...] = ()  # what it took of each dataset (train, holdout)
    left_out: tuple[str, ...] = ()  # the champion's datasets it did not train on (NAME:N)
    skipped: ClassVar[bool] = False

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def notes(self) -> list[str]:
        """:func:`run_notes` of this run."""
        return run_notes(self.used, self.left_out, self.lineage.champion)

    def to_json(self) -> dict[str, Any]:
        decision = self.evaluation.decision
        return {
            "skipped": False,
            "datasets": self.lineage.to_json()["datasets"],
            "domains": domain_metrics(self.evaluation.domains),
            "dataset_use": [u.to_dict() for u in self.used],
            "notes": self.notes,
            "left_out": list(self.left_out),
            "reject_rate": decision.reject_rate,
            "negatives_rejected": (
                self.evaluation.negatives.accuracy if self.evaluation.negatives else None
            ),
            "registry": self.registry,
            "name": self.manifest.name,
            "version": self.manifest.version,
            "ref": self.ref,
            "digest": self.manifest.digest,
            "promoted": self.promoted,
            "requested": None if self.requested is None else self.requested.to_dict(),
            "accuracy": decision.accuracy,
            "gate": decision.to_dict(),
            "champion_before": self.lineage.champion,
            "warm_start_from": self.lineage.warm_start_from,
            "data_digest": self.lineage.data_digest,
            "flow_run_id": self.lineage.flow_run_id,
            "flow_run_name": self.lineage.flow_run_name,
        }


@dataclass(frozen=True)
class Skipped:
    """A run that trained nothing: the champion (``champion``), a version awaiting an
    approver (``awaiting``: ``mnist:3 (request #3)``), or one an approver rejected
    (``rejected``, the same way), was made from the same data and code."""

    registry: str
    name: str
    champion: str | None
    reason: str = NOTHING_NEW
    awaiting: str | None = None
    rejected: str | None = None
    skipped: ClassVar[bool] = True

    @property
    def message(self) -> str:
        """The run's line: ``nothing new to learn: mnist:3 already has this data and code``."""
        if self.rejected:
            return f"{self.reason}: {self.rejected} was rejected with this data and code"
        same_as = f"{self.awaiting}, awaiting approval," if self.awaiting else self.champion
        return f"{self.reason}: {same_as} already has this data and code"

    def to_json(self) -> dict[str, Any]:
        return {
            "skipped": True,
            "reason": self.reason,
            "registry": self.registry,
            "name": self.name,
            "champion": self.champion,
            "awaiting": self.awaiting,
            "rejected": self.rejected,
        }


RunSummary = Published | Skipped


@dataclass
class PublishLog:
    """The versions (``NAME:N``) this process published, in order, and the aliases it
    moved to them: the ``publish`` task notes each version as soon as its manifest is
    written (``Registry.publish``'s ``committed``), and ``promote`` each move as soon as
    the alias record is (``Registry.promote``'s), not once the task returns: a signal in
    between kept the version (or the move) and said nothing of it; ``request`` notes each
    request for an approver the same way. A run interrupted after that point returns no
    summary, yet its version stays; the runner reads the log (:meth:`mark`, then
    :meth:`since` and :meth:`said`) to say so. A ``publish`` task retried after its
    version was written finishes that version (:meth:`claimed_by`) rather than publish
    the same training again."""

    _refs: list[str] = field(default_factory=list)
    _moves: dict[str, list[str]] = field(default_factory=dict)  # ref -> "name@alias"
    _claims: dict[str, Manifest] = field(default_factory=dict)  # task run id -> its version
    _requests: dict[str, list[str]] = field(default_factory=dict)  # ref -> what was asked
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, manifest: Manifest, *, task_run: str | None = None) -> None:
        """``manifest``'s version is published, by the Prefect task run ``task_run``."""
        with self._lock:
            self._refs.append(manifest.ref)
            if task_run is not None:
                self._claims[task_run] = manifest

    def claimed_by(self, task_run: str | None) -> Manifest | None:
        """The version an earlier attempt of the task run ``task_run`` published (a
        retried task run keeps its id), or None."""
        with self._lock:
            return None if task_run is None else self._claims.get(task_run)

    def note_move(self, alias_ref: str, ref: str) -> None:
        """``alias_ref`` (``mnist@champion``) now points at ``ref``."""
        with self._lock:
            self._moves.setdefault(ref, []).append(alias_ref)

    def note_request(self, alias_ref: str, request: RequestRecord) -> None:
        """An approver was asked to move ``alias_ref`` (``mnist@champion``) to
        ``request.ref``: said as a move, ``requested (request #K)``."""
        said = f"{alias_ref} -> {request.ref} requested (request #{request.seq})"
        with self._lock:
            self._requests.setdefault(request.ref, []).append(said)

    def mark(self) -> int:
        """Where the log stands now."""
        with self._lock:
            return len(self._refs)

    def since(self, mark: int) -> list[str]:
        """What was published after :meth:`mark` returned ``mark``."""
        with self._lock:
            return self._refs[mark:]

    def said(self, mark: int, *, moving: str | None = None) -> str:
        """What was done after ``mark``, for an interrupted run's line: ``after publishing
        mnist:4; mnist@champion -> mnist:4`` (or ``mnist@champion -> mnist:4 requested
        (request #2)``); ``moving``, the alias the run was to move, is said ``not moved``
        when it was not moved to the last of them."""
        refs = self.since(mark)
        with self._lock:
            moves = [f"{a} -> {ref}" for ref in refs for a in self._moves.get(ref, [])]
            moves += [said for ref in refs for said in self._requests.get(ref, [])]
        if moving is not None and refs and moving not in self._moves.get(refs[-1], []):
            moves.append(f"{moving} not moved")
        return "; ".join([f"after publishing {', '.join(refs)}", *moves])


PUBLISHED = PublishLog()
