"""Not a digit (issue 24): the share of non-digit images a model rejects, per kind, and the
share of real digits it keeps, one table.

- non-digits it never saw: ``tests/nondigits.py`` (photos, icons, symbols, doodles,
  letters in other faces: sources other than the negative generator), written as files
  and scored as ``softmax-pipe score`` scores them (``prepare_items``: decode, the
  preparation, the model); a file the preparation finds blank counts as rejected (a blank
  page is rejected, not read), and how many were is shown;
- the generator's own kinds (``softmax_core.negatives``, a seed no training uses), for
  reference: a model trained on them will reject these, which says little;
- real digits kept: MNIST test (the arrays through the preparation, as a folder of 28×28
  scans would be) and digits on pages as users have them (``tests/forms.py``: box, comb,
  ruled, squared, plain; written as files and scored the same way).

"Rejected" is :func:`rejected` on the probability matrix (n, k): class 10 for an 11-class
model (k = 11), else the highest probability under the threshold. For a 10-class model the
threshold is the one that keeps ``--keep`` of MNIST test (the max-probability baseline);
``--threshold`` sets it. The max-probability AUROC (MNIST test against all the unseen
non-digits) is printed under the table.

    .venv/bin/python benchmarks/unknown.py [--model PATH] [--mnist ../shared/data/mnist]
        [--per-kind 200] [--seed 24] [--negatives 2000] [--forms 100] [--keep 0.95]
        [--threshold P] [--workdir DIR]

Without ``--model`` the default model is trained (``Hyper()``, as ``softmax-pipe run``
trains it) and saved in the work folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from softmax_core import settings  # noqa: E402
from softmax_core.model import decide  # noqa: E402
from tests import forms, nondigits  # noqa: E402  (the builders the tests use)

DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
REJECT = 10  # the "not a digit" class of an 11-class model


def rejected(probs: NDArray[Any], threshold: float | None = None) -> NDArray[np.bool_]:
    """(n,) which rows of a probability matrix (n, k) a model rejects, as ``score`` does:
    for k = 11, :func:`softmax_core.model.decide`'s rule ("not a digit" the most likely
    class and at least ``threshold``, default ``settings.REJECT_THRESHOLD``); for k = 10
    (the max-probability baseline), those whose highest probability is under
    ``threshold`` (none without one)."""
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] not in (10, 11):
        raise ValueError(f"expected probabilities (n, 10) or (n, 11), got {p.shape}")
    if p.shape[1] == 11:
        at = settings.REJECT_THRESHOLD if threshold is None else threshold
        out: NDArray[np.bool_] = decide(p, at) == REJECT
        return out
    if threshold is None:
        return np.zeros(len(p), dtype=bool)
    below: NDArray[np.bool_] = p.max(axis=1) < threshold
    return below


def keeping(probs: NDArray[Any], keep: float) -> float:
    """The max-probability threshold that keeps ``keep`` of these (real digits') rows."""
    return float(np.quantile(np.asarray(probs)[:, :10].max(axis=1), 1.0 - keep))


def auroc(pos: NDArray[Any], neg: NDArray[Any]) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney)."""
    both = np.concatenate([pos, neg])
    order = both.argsort(kind="stable")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    for v in np.unique(both[np.r_[False, np.diff(both[order]) == 0]]):  # average tied ranks
        tie = both == v
        ranks[tie] = ranks[tie].mean()
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def score_files(paths: list[Path], model: Any) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Probabilities (n, k) of the files as scoring makes them (zeros for blank files), and
    which were blank. Any other failure is a bug of the builders: raised."""
    from softmax_core.scoring.decode import prepare_items

    ok_probs, errors = prepare_items([(str(p), None) for p in paths], model)
    other = [(p, e) for p, e in zip(paths, errors, strict=True) if e and not e.startswith("blank")]
    if other:
        raise RuntimeError(f"{len(other)} files could not be scored: {other[:3]}")
    blank = np.array([e is not None for e in errors], dtype=bool)
    probs = np.zeros((len(paths), ok_probs.shape[1]), dtype=np.float32)
    probs[~blank] = ok_probs
    return probs, blank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a model file (.npz); default: train one")
    ap.add_argument("--mnist", default=str(DEFAULT_MNIST))
    ap.add_argument("--per-kind", type=int, default=200, help="unseen images of each kind")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--negatives", type=int, default=2000, help="generator pages (reference)")
    ap.add_argument("--forms", type=int, default=100, help="form pages of each kind")
    ap.add_argument("--keep", type=float, default=0.95, help="MNIST test kept (10 classes)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    from softmax_core import negatives
    from softmax_core.mnist import load_mnist
    from softmax_core.model import Model
    from softmax_core.normalize import normalize_stack

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-unknown-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = load_mnist(args.mnist, cache_dir=work / "cache")
    if args.model:
        model = Model.load(args.model)
        name = args.model
    else:
        from softmax_core.requests import Hyper
        from softmax_core.train import train

        t0 = time.perf_counter()
        model = train(ds, Hyper())
        model.save(work / "default.npz")
        name = f"default (Hyper(), trained in {time.perf_counter() - t0:.0f} s)"

    # real digits: MNIST test through the preparation, and form pages as files
    x, y = np.asarray(ds.x_test), np.asarray(ds.y_test)
    p_mnist = model.predict_proba(normalize_stack(x)[0])
    k = p_mnist.shape[1]
    threshold = args.threshold
    if threshold is None and k == 10:
        threshold = keeping(p_mnist, args.keep)
    made = forms.pages(x, y, args.forms, seed=args.seed)
    form_dir = forms.write_pages(work / f"forms-{args.seed}", made)
    form_files = sorted(f for f in form_dir.rglob("*") if f.is_file())
    p_forms, forms_blank = score_files(form_files, model)
    r_forms = rejected(p_forms, threshold) | forms_blank

    # non-digits it never saw, and the generator's own
    files = nondigits.write(work / f"unseen-{args.seed}", per_kind=args.per_kind, seed=args.seed)
    rows: list[tuple[str, int, int, float]] = []  # kind, n, blank, rejected share
    unseen_max: list[NDArray[Any]] = []
    for kind, paths in files.items():
        p, blank = score_files(paths, model)
        unseen_max.append(p[:, :10].max(axis=1))  # 0 for a blank file: surely not a digit
        share = float((rejected(p, threshold) | blank).mean())
        rows.append((kind, len(paths), int(blank.sum()), share))
    t0 = time.perf_counter()
    neg = negatives.negatives(args.negatives, seed=10_000 + args.seed)
    gen_ms = 1000 * (time.perf_counter() - t0) / max(1, args.negatives)
    plan = negatives._plan(args.negatives, 10_000 + args.seed)
    blank_neg = neg.reshape(len(neg), -1).max(axis=1) == 0
    p_neg = model.predict_proba(neg)
    r_neg = rejected(p_neg, threshold) | blank_neg

    all_unseen = sum(n for _, n, _, _ in rows)
    unseen_rej = sum(s * n for _, n, _, s in rows) / all_unseen
    rule = (
        f"p(not a digit) the largest and >= {threshold or settings.REJECT_THRESHOLD:g}"
        if k == 11
        else f"max p < {threshold:.4f}"
    )
    print(f"model: {name}; {k} classes; rejected: {rule}\n")
    print("| set | kind | images | blank | rejected / kept |")
    print("|---|---|---|---|---|")
    for kind, n, blank, share in rows:
        print(f"| unseen non-digits | {kind} | {n} | {blank} | {100 * share:.1f}% rejected |")
    print(
        f"| unseen non-digits | **all** | {all_unseen} | | **{100 * unseen_rej:.1f}% rejected** |"
    )
    for kind in negatives.KINDS:
        sel = np.array([kd == kind for kd in plan])
        print(
            f"| generator (reference) | {kind} | {int(sel.sum())} | {int(blank_neg[sel].sum())} "
            f"| {100 * r_neg[sel].mean():.1f}% rejected |"
        )
    kept_mnist = 1 - rejected(p_mnist, threshold).mean()
    acc_mnist = float(
        np.mean((p_mnist[:, :10].argmax(axis=1) == y) & ~rejected(p_mnist, threshold))
    )
    print(f"| real digits | MNIST test | {len(y)} | | {100 * kept_mnist:.2f}% kept |")
    labels = np.array([int(f.stem.split("_")[1]) for f in form_files])
    form_kinds = np.array([f.parent.name for f in form_files])
    for kind in forms.KINDS:
        sel = form_kinds == kind
        print(
            f"| digits on pages | {kind} | {int(sel.sum())} | | {100 * (1 - r_forms[sel].mean()):.1f}% kept |"
        )
    print(
        f"| digits on pages | **all** | {len(form_files)} | {int(forms_blank.sum())} | **{100 * (1 - r_forms.mean()):.1f}% kept** |"
    )
    right_forms = float(np.mean((p_forms[:, :10].argmax(axis=1) == labels) & ~r_forms))
    print(
        f"\nMNIST test read right: {100 * np.mean(p_mnist.argmax(axis=1) == y):.2f}%, "
        f"read right and kept: {100 * acc_mnist:.2f}%; form digits: "
        f"{100 * right_forms:.1f}%. Max-probability AUROC, MNIST test against the unseen "
        f"non-digits: {auroc(p_mnist[:, :10].max(axis=1), np.concatenate(unseen_max)):.3f}. "
        f"Generator: {gen_ms:.1f} ms a prepared negative. Seed {args.seed}; files in {work}."
    )


if __name__ == "__main__":
    main()
