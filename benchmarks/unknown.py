"""Not a digit (issue 24): one table, one run, a column per method: the share of non-digit
images each rejects, per kind, and the share of real digits it keeps.

The methods, each trained here with ``Hyper()`` on the same data (``--model`` adds a column):

- max-probability: the 10-class model (``--no-reject``), rejecting what its highest
  probability puts under the threshold that keeps as much of MNIST test as the default
  model keeps (so both spend the same real digits);
- the 11th class, linear: the model over the features alone, "not a digit" a column like
  the digits' (``Data(terms=0)``: the issue's probe);
- the default: every column with the second-order terms too (``softmax_core.quadratic``).

The sets:

- non-digits it never saw: ``tests/nondigits.py`` (photos, icons, symbols, doodles,
  letters in other faces: sources other than the negative generator), written as files
  and prepared as ``softmax-pipe score`` prepares them; a file the preparation finds blank
  counts as rejected (a blank page is a rejected row);
- the generator's own kinds (``softmax_core.negatives``, a seed no training uses), for
  reference: a model trained on them rejects these, which says little;
- real digits: MNIST test (the arrays through the preparation, as a folder of 28×28
  scans would be), digits on pages as users have them (``tests/forms.py``: box, comb,
  ruled, squared, plain; written as files and prepared the same way) and digits in the
  shapes users' folders hold them (``benchmarks/_folders.realistic``: inverted JPEG, RGB,
  RGBA, off-centre pages, 16-bit PNG, BMP, 300-dpi and bilevel scans, 12 MP phone photos,
  plain 28×28 crops; the mix ``score``'s benchmark uses), kept and read right.

Below them: MNIST test accuracy with rejects counted as errors, the ECE before and after
calibration, the max-probability AUROC, the rate of ``softmax-pipe score`` over the unseen
folder (the command, timed whole) and the training time. "Rejected" is :func:`rejected`.

A second table sweeps the default model's threshold over :data:`SWEEP` on the same
probabilities (the README's and ``settings.REJECT_THRESHOLD``'s): MNIST test accuracy
(rejects are errors) and rejected, the gate's held-out generated non-digits
(``train.heldout_negatives``), the form digits rejected (blank crops aside) and the unseen
non-digits rejected.

A third table says where the default lets the unseen non-digits through: per kind, the
:data:`WORST` things drawn (a symbol, a pair of letters, an icon's design, a doodle, a
photo: the files' names, ``nondigits.shows``) it reads as a digit most often, each with how
many of its files it read as one, how many were drawn, and the digit it read most.

A fourth table reads numbers: 2, 3 and 4 MNIST test digits side by side, overlapping,
touching or apart, as scans (:func:`print_numbers`), rejected by the default's
probabilities alone and as ``score`` rejects them (several marks are a rejected row).

    .venv/bin/python benchmarks/unknown.py [--model PATH] [--mnist ../shared/data/mnist]
        [--per-kind 200] [--seed 24] [--negatives 2000] [--forms 100] [--user-shapes 1000]
        [--numbers 100] [--threshold P] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import _folders  # noqa: E402  (beside this script)

from softmax_core import settings  # noqa: E402
from softmax_core.model import decide  # noqa: E402
from tests import forms, nondigits  # noqa: E402  (the builders the tests use)

DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
REJECT = 10  # the "not a digit" class of an 11-class model
SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9)  # the default model's thresholds, in a table of their own
WORST = 8  # the things drawn of each unseen kind that the third table names


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


def prepared(paths: list[Path]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The files prepared as ``score`` prepares them (decoded once, for every model):
    digits (n, 28, 28) (zeros for blank files), and which the preparation sets aside as
    rejected rows whatever the model says: blank pages and images of several marks
    (``scoring.decode.with_rejects``). Any other failure is a bug of the builders: raised."""
    from softmax_core.scoring.decode import decode_items

    ok, errors, marks = decode_items([(str(p), None) for p in paths])
    other = [(p, e) for p, e in zip(paths, errors, strict=True) if e and not e.startswith("blank")]
    if other:
        raise RuntimeError(f"{len(other)} files could not be scored: {other[:3]}")
    blank = np.array([e is not None for e in errors], dtype=bool)
    digits = np.zeros((len(paths), 28, 28), dtype=np.float32)
    digits[~blank] = ok
    return digits, blank | (np.array(marks) > 1)


def score_rate(model_path: Path, folder: Path, out: Path) -> float:
    """Images a second of ``softmax-pipe score FOLDER --model MODEL`` (the command, timed
    whole), over the folder's files. Exit 1 is fine (a 10-class model makes blank pages
    error rows); anything else is raised."""
    import subprocess

    n = sum(1 for f in folder.rglob("*") if f.is_file())
    command = [sys.executable, "-m", "softmax_pipe", "score", str(folder)]
    command += ["--model", str(model_path), "--output", str(out), "--no-profile"]
    t0 = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr[-2000:]}")
    return n / seconds


def print_misses(
    files: dict[str, list[Path]],
    probs: list[tuple[NDArray[Any], NDArray[np.bool_]]],
    threshold: float,
) -> None:
    """The third table: per unseen kind, the :data:`WORST` things drawn (what the files
    show) that the default model, its ``probs`` and the blank pages, reads as digits most."""
    print(
        "\n| unseen kind | the default's misses: what it shows, read as a digit / drawn "
        "(the digit read most) |\n|---|---|"
    )
    for (kind, paths), (p, blank) in zip(files.items(), probs, strict=True):
        shows = [nondigits.shows(f) for f in paths]
        drawn = Counter(shows)
        read: dict[str, list[int]] = {}
        missed = ~(rejected(p, threshold) | blank)
        for what, miss, digit in zip(shows, missed, p[:, :10].argmax(axis=1), strict=True):
            if miss:
                read.setdefault(what, []).append(int(digit))
        worst = sorted(read, key=lambda w: (-len(read[w]), w))[:WORST]
        cells = ", ".join(
            f"{w} {len(read[w])}/{drawn[w]} ({Counter(read[w]).most_common(1)[0][0]})"
            for w in worst
        )
        share = sum(len(read[w]) for w in worst)
        print(f"| {kind} | {int(missed.sum())} of {len(paths)}; these {share}: {cells} |")


def print_numbers(
    x: NDArray[Any], model: Any, folder: Path, per_cell: int, seed: int, threshold: float
) -> None:
    """The fourth table: numbers, ``per_cell`` files of 2, 3 and 4 MNIST test digits side by
    side (their 20-pixel-wide middles, ``gap`` pixels apart at 28 pixels tall: negative
    overlaps, 0 touches), drawn 3x as dark-on-light scans. Rejected by the default's
    ``probs`` alone (what ``score`` said before it counted marks) and now (a file the
    preparation finds blank or of several marks is a rejected row too)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    print(
        "\n| digits side by side | gap (pixels at 28 tall) | files | rejected by the model "
        "alone | rejected now | of those, by the preparation only |\n|---|---|---|---|---|---|"
    )
    for n in (2, 3, 4):
        for gap in (-4, 0, 4, 8):
            paths = []
            for i in range(per_cell):
                canvas = np.zeros((28, 20 * n + gap * (n - 1) + 16), np.uint8)
                for k, j in enumerate(rng.integers(0, len(x), n).tolist()):
                    at = 8 + k * (20 + gap)
                    np.maximum(canvas[:, at : at + 20], x[j][:, 4:24], out=canvas[:, at : at + 20])
                page = Image.fromarray(255 - canvas)
                path = folder / f"{n}-digits_gap{gap}_{i:03d}.png"
                page.resize((page.width * 3, 84), Image.Resampling.BILINEAR).save(path)
                paths.append(path)
            digits, aside = prepared(paths)
            alone = rejected(model.predict_proba(digits), threshold)
            now = alone | aside
            print(
                f"| {n} | {gap} | {len(paths)} | {100 * alone.mean():.0f}% | "
                f"{100 * now.mean():.0f}% | {100 * (now & ~alone).mean():.0f}% |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="one more model file (.npz), a column of its own")
    ap.add_argument("--mnist", default=str(DEFAULT_MNIST))
    ap.add_argument("--per-kind", type=int, default=200, help="unseen images of each kind")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--negatives", type=int, default=2000, help="generator pages (reference)")
    ap.add_argument("--forms", type=int, default=100, help="form pages of each kind")
    ap.add_argument("--numbers", type=int, default=100, help="numbers of each length and gap")
    ap.add_argument(
        "--user-shapes", type=int, default=1000, help="files of digits in users' shapes"
    )
    ap.add_argument("--threshold", type=float, default=None, help="the 11-class threshold")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    from softmax_core import negatives
    from softmax_core.metrics import expected_calibration_error
    from softmax_core.mnist import load_mnist
    from softmax_core.model import Model
    from softmax_core.normalize import prepare_stack
    from softmax_core.requests import Data, Hyper
    from softmax_core.softmax import softmax
    from softmax_core.train import heldout_negatives, train

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-unknown-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = load_mnist(args.mnist, cache_dir=work / "cache")
    threshold = settings.REJECT_THRESHOLD if args.threshold is None else args.threshold
    models: dict[str, tuple[Path, float]] = {}  # column -> (model file, training seconds)
    for column, data in (
        ("max-probability (10 classes)", Data(reject=False)),
        ("11th class, linear (the probe)", Data(terms=0)),
        ("11th class + terms (default)", Data()),
    ):
        t0 = time.perf_counter()
        made = train(ds, Hyper(), data=data)
        seconds = time.perf_counter() - t0
        models[column] = (made.save(work / f"model-{len(models)}.npz"), seconds)
    if args.model:
        models[f"given: {Path(args.model).name}"] = (Path(args.model), float("nan"))

    # the sets, prepared once: MNIST test (the arrays through the preparation, as a folder
    # of 28x28 scans would be), form pages, the unseen non-digits, the generator's own
    x, y = np.asarray(ds.x_test), np.asarray(ds.y_test)
    prepared_x = prepare_stack(x)
    mnist, mnist_aside = prepared_x.digits, prepared_x.marks > 1
    form_dir = forms.write_pages(
        work / f"forms-{args.seed}", forms.pages(x, y, args.forms, seed=args.seed)
    )
    form_files = sorted(f for f in form_dir.rglob("*") if f.is_file())
    form_y = np.array([int(f.stem.split("_")[1]) for f in form_files])
    form_kind = np.array([f.parent.name for f in form_files])
    form_x, form_aside = prepared(form_files)
    # a random sample of the test digits (its first half is the easier writers')
    pick = np.random.default_rng(args.seed).permutation(len(y))[: args.user_shapes]
    shaped_dir = _folders.realistic(
        work / f"user-shapes-{args.seed}", x[pick], y[pick], args.user_shapes, seed=args.seed
    )
    shaped_files = sorted(f for f in shaped_dir.rglob("*") if f.is_file())
    shaped_y = np.array([int(f.stem.split("_")[1]) for f in shaped_files])
    shaped_x, shaped_aside = prepared(shaped_files)
    unseen_dir = work / f"unseen-{args.seed}"
    files = nondigits.write(unseen_dir, per_kind=args.per_kind, seed=args.seed)
    unseen = {kind: prepared(paths) for kind, paths in files.items()}
    t0 = time.perf_counter()
    neg = negatives.negatives(args.negatives, seed=10_000 + args.seed)
    gen_ms = 1000 * (time.perf_counter() - t0) / max(1, args.negatives)
    plan = np.array(negatives._plan(args.negatives, 10_000 + args.seed))
    neg_blank = neg.reshape(len(neg), -1).max(axis=1) == 0

    rows: dict[str, list[str]] = {}

    def put(row: str, cell: str) -> None:
        rows.setdefault(row, []).append(cell)

    # the max-probability baseline keeps as much of MNIST test as the default model does
    default = Model.load(models["11th class + terms (default)"][0])
    reference_kept = 1 - float(
        (rejected(default.predict_proba(mnist), threshold) | mnist_aside).mean()
    )
    for path, _ in models.values():
        model = Model.load(path)
        p_mnist = model.predict_proba(mnist)
        # max probability: the threshold that keeps as much of MNIST as the default
        at = threshold if model.can_reject else keeping(p_mnist, reference_kept)
        r_mnist = rejected(p_mnist, at) | mnist_aside
        unseen_rej = {
            kind: rejected(model.predict_proba(digits), at) | aside
            for kind, (digits, aside) in unseen.items()
        }
        for kind, r in unseen_rej.items():
            put(f"unseen non-digits: {kind} ({len(r)})", f"{100 * r.mean():.1f}% rejected")
        everything = np.concatenate(list(unseen_rej.values()))
        put(
            f"**unseen non-digits: all ({len(everything)})**", f"**{100 * everything.mean():.1f}%**"
        )
        r_neg = rejected(model.predict_proba(neg), at) | neg_blank
        for kind in negatives.KINDS:
            sel = plan == kind
            put(
                f"generator (reference): {kind} ({int(sel.sum())})",
                f"{100 * r_neg[sel].mean():.1f}%",
            )
        put(f"MNIST test kept ({len(y)})", f"{100 * (1 - r_mnist.mean()):.2f}%")
        right = (p_mnist[:, :10].argmax(axis=1) == y) & ~r_mnist
        put("**MNIST test accuracy (rejects are errors)**", f"**{100 * right.mean():.2f}%**")
        p_forms = model.predict_proba(form_x)
        r_forms = rejected(p_forms, at) | form_aside
        for kind in forms.KINDS:
            sel = form_kind == kind
            put(
                f"form digits kept: {kind} ({int(sel.sum())})",
                f"{100 * (1 - r_forms[sel].mean()):.1f}%",
            )
        put(
            f"**form digits kept: all ({len(form_files)})**",
            f"**{100 * (1 - r_forms.mean()):.1f}%**",
        )
        form_right = (p_forms[:, :10].argmax(axis=1) == form_y) & ~r_forms
        put("form digits read right and kept", f"{100 * form_right.mean():.1f}%")
        p_shaped = model.predict_proba(shaped_x)
        r_shaped = rejected(p_shaped, at) | shaped_aside
        put(f"user-shaped digits kept ({len(shaped_files)})", f"{100 * (1 - r_shaped.mean()):.1f}%")
        shaped_right = (p_shaped[:, :10].argmax(axis=1) == shaped_y) & ~r_shaped
        put("**user-shaped digits read right and kept**", f"**{100 * shaped_right.mean():.1f}%**")
        X = model.features(mnist)
        raw = softmax(model.logits(X, calibrated=False))
        put(
            "ECE on MNIST test, before / after calibration",
            f"{100 * expected_calibration_error(raw, y):.2f}% / "
            f"{100 * expected_calibration_error(p_mnist, y):.2f}% (T={model.temperature:.3f})",
        )
        top = [
            np.where(b, 0.0, model.predict_proba(d)[:, :10].max(axis=1)) for d, b in unseen.values()
        ]
        auc = auroc(p_mnist[:, :10].max(axis=1), np.concatenate(top))
        put("max-probability AUROC (MNIST test vs unseen)", f"{auc:.3f}")
        put(
            "rule",
            f"p(not a digit) largest and >= {at:g}" if model.can_reject else f"max p < {at:.4f}",
        )
    # the command's rate, each model in turn, three rounds (the median): a busy machine
    # slows whichever runs while it is busy, not always the same one
    rounds = [
        [score_rate(path, unseen_dir, work / "scored.csv") for path, _ in models.values()]
        for _ in range(3)
    ]
    for rate in np.median(np.array(rounds), axis=0):
        put("`softmax-pipe score` on the unseen folder (median of 3)", f"{rate:.0f} images/s")
    for _, seconds in models.values():
        put("training (Hyper(), this run; derived images cached)", f"{seconds:.1f} s")
    print(f"| | {' | '.join(models)} |")
    print(f"|---|{'---|' * len(models)}")
    for row, cells in rows.items():
        print(f"| {row} | {' | '.join(cells)} |")
    print(f"\nGenerator: {gen_ms:.1f} ms a prepared negative. Seed {args.seed}; files in {work}.")

    # the default model's threshold, swept on the same probabilities (README and settings:
    # REJECT_THRESHOLD); the generated non-digits are the gate's held-out ones
    p_mnist = default.predict_proba(mnist)
    p_held = default.predict_proba(heldout_negatives(ds))
    p_forms = default.predict_proba(form_x)
    p_unseen = [(default.predict_proba(d), b) for d, b in unseen.values()]
    print(
        "\n| threshold | MNIST test | MNIST rejected | generated non-digits | "
        "form digits rejected | other non-digits |\n|---|---|---|---|---|---|"
    )
    for at in SWEEP:
        r_mnist = rejected(p_mnist, at) | mnist_aside
        right = (p_mnist[:, :10].argmax(axis=1) == y) & ~r_mnist
        r_unseen = np.concatenate([rejected(p, at) | b for p, b in p_unseen])
        print(
            f"| {at:g} | {100 * right.mean():.2f}% | {100 * r_mnist.mean():.2f}% | "
            f"{100 * rejected(p_held, at).mean():.1f}% | "
            f"{100 * (rejected(p_forms, at) & ~form_aside).mean():.1f}% | "
            f"{100 * r_unseen.mean():.1f}% |"
        )

    print_misses(files, p_unseen, threshold)
    print_numbers(x, default, work / f"numbers-{args.seed}", args.numbers, args.seed, threshold)


if __name__ == "__main__":
    main()
