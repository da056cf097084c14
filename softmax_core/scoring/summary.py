"""What a scoring run did: counts per class, rejected images, failures, skipped files, low
confidence."""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from softmax_core import settings
from softmax_core.escaping import markdown_block, printable
from softmax_core.labelled import UNLABELLED
from softmax_core.monitoring import Profile
from softmax_core.scoring.decode import BLANK_PAGE, ScoredBatch
from softmax_core.scoring.discover import Source, skipped_words
from softmax_core.scoring.profile import ProfileCounts
from softmax_core.words import plural

if TYPE_CHECKING:
    from softmax_core.scoring.review import ReviewQueue
from softmax_core.model import N_CLASSES

DEFAULT_MIN_CONFIDENCE = settings.MIN_CONFIDENCE
MAX_LISTED_FAILURES = 20  # the summary names this many failed files; the output has them all


@dataclass(frozen=True)
class Reviewed:
    """What a run put into its review queue: copied this time, there already, the sheet."""

    folder: str
    queued: int
    already: int
    sheet: str


@dataclass
class ScoreSummary:
    """What a run did, for stderr (``lines()``) and machines (``as_dict()``)."""

    model: str
    root: str
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    loops: int = 0
    low_confidence: int = 0
    rejected: int = 0  # status=rejected rows: not digits (the model said so) and blank pages
    blank: int = 0  # of which blank pages
    per_class: list[int] = field(default_factory=lambda: [0] * N_CLASSES)
    failure_kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # the first few
    skipped_by_ext: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0
    review: Reviewed | None = None  # what went into the review queue, when there was one
    counts: ProfileCounts = field(default_factory=ProfileCounts, repr=False)
    # the run's profile once written (with its drift check), where it went, and why it
    # could not go somewhere (registry.monitoring.watch)
    profile: Profile | None = None
    profile_places: tuple[str, ...] = ()
    profile_problems: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.scored + self.rejected + self.failed

    def add(self, batch: ScoredBatch) -> None:
        self.counts.add(batch)
        ok = batch.labels >= 0
        n_ok = int(ok.sum())
        rejected = [r for r in batch.rejects if r is not None]
        self.scored += n_ok
        self.rejected += len(rejected)
        self.blank += sum(r == BLANK_PAGE for r in rejected)
        self.failed += len(batch) - n_ok - len(rejected)
        if n_ok:
            counts = np.bincount(batch.labels[ok], minlength=N_CLASSES)
            self.per_class = [a + int(c) for a, c in zip(self.per_class, counts, strict=True)]
            self.low_confidence += int(batch.unsure(self.min_confidence).sum())
        if n_ok + len(rejected) < len(batch):
            for rel, err in zip(batch.rels, batch.errors, strict=True):
                if err is not None:
                    self.failure_kinds[err.split(":", 1)[0]] += 1
                    if len(self.failures) < MAX_LISTED_FAILURES:
                        self.failures.append((rel, err))

    def add_review(self, queue: ReviewQueue, sheet: Path) -> None:
        self.review = Reviewed(
            folder=str(queue.folder / UNLABELLED),
            queued=len(queue.queued),
            already=queue.already,
            sheet=str(sheet),
        )

    def add_discovery(self, discovery: Source) -> None:
        self.skipped += discovery.skipped
        self.loops += discovery.loops
        self.skipped_by_ext.update(discovery.skipped_by_ext)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "path": self.root,
            "images": self.total,
            "scored": self.scored,
            "failed": self.failed,
            "skipped": self.skipped,
            "symlink_loops": self.loops,
            "per_class": {str(k): c for k, c in enumerate(self.per_class)},
            "min_confidence": self.min_confidence,
            "low_confidence": self.low_confidence,
            "rejected": self.rejected,
            "rejected_blank": self.blank,
            "failure_kinds": dict(self.failure_kinds),
            "failures": [{"path": p, "error": e} for p, e in self.failures],
            "skipped_by_extension": dict(self.skipped_by_ext),
            "seconds": round(self.seconds, 3),
            **({"review": dataclasses.asdict(self.review)} if self.review else {}),
            **(
                {"profile": self.profile.to_json(), "profile_written_to": list(self.profile_places)}
                if self.profile is not None
                else {}
            ),
        }

    def profile_lines(self) -> list[str]:
        """The profile's line (and the drift check's: one line, ``DRIFT: ...`` when flagged).

        Written nowhere because every write failed: the profile's line says why, once;
        written somewhere but not everywhere: a ``profile not stored: why`` line a failure."""
        p = self.profile
        if p is None:
            return [f"profile not stored: {why}" for why in self.profile_problems]
        estimate = p.accuracy_estimate
        guess = f"estimated accuracy {estimate:.1%}, " if estimate is not None else ""
        out: list[str] = []
        if self.profile_places:
            where = f"written to {', '.join(self.profile_places)}"
            out = [f"profile not stored: {why}" for why in self.profile_problems]
        elif self.profile_problems:
            where = f"not written: {'; '.join(self.profile_problems)}"
        else:
            where = (
                "not written (it goes beside a local --output file, not beside stdout, a "
                "device or a pipe; and to the registry for a registry model)"
            )
        share = p.rejected_share
        rejected = "no image read" if share is None else f"rejected {share:.1%}"
        out.insert(0, f"profile: {guess}{rejected}; {where}")
        if p.drift is not None:
            out.append(p.drift.line())
        return out

    def lines(self) -> list[str]:
        """The human summary, one string per stderr line, each :func:`printable` (file names,
        extensions, the model and error reasons come from users: no line can forge another)."""
        rate = f" ({self.total / self.seconds:,.0f} images/s)" if self.seconds > 0 else ""
        below = f"{self.min_confidence:g}"  # as given, one way on every line: 0.999, not 1.00
        out = [
            f"scored {self.scored:,} of {self.total:,} {plural(self.total, 'image')} in "
            f"{self.seconds:.2f} s{rate} with {self.model}",
        ]
        if self.scored:
            out.append(
                "per class: " + "  ".join(f"{k}: {c:,}" for k, c in enumerate(self.per_class))
            )
            out.append(
                f"below {below} confidence: {self.low_confidence:,} "
                "(likely not digits, or badly scanned)"
            )
        if self.rejected:
            junk, blank = self.rejected - self.blank, self.blank
            reasons = [f"{junk:,} not {plural(junk, 'a digit', 'digits')}"] if junk else []
            reasons += [f"{blank:,} blank {plural(blank, 'page')}"] if blank else []
            out.append(
                f"rejected {self.rejected:,} {plural(self.rejected, 'image')}: "
                f"{', '.join(reasons)} (status=rejected rows)"
            )
        out.extend(
            f"skipped {words}"
            for words in skipped_words(self.skipped, self.skipped_by_ext)
            if words
        )
        if self.loops:
            out.append(
                f"skipped {self.loops:,} {plural(self.loops, 'symlink')} to a folder walked "
                "already (under its own name, or through another link)"
            )
        if self.failed:
            kinds = ", ".join(f"{k} {c:,}" for k, c in self.failure_kinds.most_common())
            out.append(f"failed {self.failed:,} {plural(self.failed, 'image')} ({kinds}):")
            out.extend(f"  {p}: {e}" for p, e in self.failures)
            if self.failed > len(self.failures):
                out.append(
                    f"  ... and {self.failed - len(self.failures):,} more "
                    "(status=error rows in the output)"
                )
        if self.review is not None:
            r = self.review
            again = f" ({r.already:,} already queued)" if r.already else ""
            what = f"below confidence {below}"
            what += " or rejected as not digits" if self.rejected > self.blank else ""
            out.append(
                f"review: {r.queued:,} {plural(r.queued, 'image')} {what} copied to "
                f"{r.folder}{again}; contact sheet {r.sheet}"
            )
        out.extend(self.profile_lines())
        return [printable(line) for line in out]

    def markdown(self) -> str:
        """The ``scoring-summary`` artifact: :meth:`lines` in a code block nothing can leave."""
        return "\n".join(["# Batch scoring", "", markdown_block(self.lines())])
