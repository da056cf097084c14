"""How often the drift check flags a run like the reference: random subsets of one real
score run of MNIST test, checked by ``check_drift`` against the model's stored reference
profile, at several sizes; which test made each false flag.

    python benchmarks/drift.py ROWS.csv REFERENCE.json [--trials 2000] [--seed 1]

ROWS.csv is ``softmax-pipe score`` output of the MNIST test PNGs with the model whose
reference is REFERENCE.json (``monitoring/<name>/references/<n>.json`` in the registry).
The subsets are drawn without replacement from those 10,000 rows, so they are runs like
the reference (not independent of it: a conservative stand-in). The README promises a
flag on at most ``DRIFT_ALPHA`` (1%) of them.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import numpy as np

from softmax_core import settings
from softmax_core.monitoring import TESTS, Profile, check_drift


def profile_of(rows: list[dict[str, str]]) -> Profile:
    """The profile ``softmax-pipe score`` would write for these rows."""
    ok = [r for r in rows if r["status"] == "ok"]
    edges = settings.PROFILE_CONFIDENCE_EDGES
    conf = np.array([float(r["confidence"]) for r in ok])
    bins = np.searchsorted(np.array(edges[1:-1]), conf, side="right")
    return Profile(
        model="m",
        created="",
        input="subset",
        total=len(rows),
        ok=len(ok),
        rejected=sum(r["status"] == "rejected" for r in rows),
        failed=0,
        labels=tuple(int(c) for c in np.bincount([int(r["label"]) for r in ok], minlength=10)),
        confidence_edges=edges,
        confidence=tuple(int(c) for c in np.bincount(bins, minlength=len(edges) - 1)),
        confidence_sum=float(conf.sum()),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", type=Path)
    ap.add_argument("reference", type=Path)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", default="5,10,20,50,100,300,1000")
    args = ap.parse_args()
    reference = Profile.from_bytes(args.reference.read_bytes(), str(args.reference))
    with args.rows.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] in ("ok", "rejected")]
    rng = random.Random(args.seed)
    print(f"{len(rows)} rows, {args.trials} random subsets per size, alpha {settings.DRIFT_ALPHA}")
    print(f"{'n':>5} {'flagged':>8} " + " ".join(f"{'by ' + t:>14}" for t in TESTS) + "  ms/check")
    for n in (int(s) for s in args.sizes.split(",")):
        flags = 0
        by = dict.fromkeys(TESTS, 0)
        start = time.perf_counter()
        for _ in range(args.trials):
            drift = check_drift(profile_of(rng.sample(rows, n)), reference)
            flags += drift.flagged
            for t in drift.tests:
                by[t.name] += t.p_value < drift.threshold
        ms = (time.perf_counter() - start) * 1000 / args.trials
        share = " ".join(f"{by[t] / args.trials:>14.2%}" for t in TESTS)
        print(f"{n:>5} {flags / args.trials:>8.2%} {share}  {ms:8.2f}")


if __name__ == "__main__":
    main()
