"""Form digits benchmark (issue 23): the page → digit preparation on pages as people have
them, one table, every row next to its peers measured in the same run.

- accuracy per kind of page (``tests/forms.py``: box, comb, ruled, squared, plain; PNG and
  JPEG, 32 to 480 pixels, real MNIST test digits as ink) with the default model
  (``Hyper()``, as ``softmax-pipe run`` trains it), for: this preparation
  (``softmax_core.normalize``, with the page steps of ``softmax_core.page``), today's
  (``softmax_core/normalize.py`` as it was at ``--before``, loaded from git) and a naive
  resize (grayscale, 28×28, no polarity, no crop);
- preparation time per image (decoded grey pages, one at a time, the decode excluded),
  this vs today's;
- ``softmax-pipe score`` images/s on a mixed folder of ``--folder`` generator pages (all five
  kinds; ``--distinct`` of them drawn, each written again under other names: the decode and
  preparation cost is per file either way) against Pillow decoding the same files in as
  many warm processes (the bound nothing can beat);
- MNIST test through the preparation (the 10,000 arrays), this vs today's, and the
  in-memory accuracy (no preparation) as the reference.

    .venv/bin/python benchmarks/pages.py [--mnist ../shared/data/mnist] [--per-kind 300]
        [--seed 23] [--folder 10000] [--distinct 2000] [--before REV] [--workdir DIR]
        [--more-seeds 25,26,27] [--train-seeds 1,2] [--no-reject]

The default model has the class "not a digit" (11 classes); a page it rejects is read
wrong. ``--no-reject`` trains the 10-class model, as before the reject option.

With ``--more-seeds``, a second table follows: this preparation's accuracy per kind on
other seeds, each kind's pages drawn on its own (what hidden cases of the same kinds would
show).

With ``--train-seeds``, that table (without ``--more-seeds``: its row for ``--seed``)
again for the default model trained with each of those seeds (``Hyper(seed=...)``: the
cluttered digits drawn again and SGD's order changed; the same data and recipe): one
training is one draw, and a change is judged over several.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import forms  # noqa: E402  (the generator the tests use)

DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
BEFORE = "f8ff3d01a3446207aa8f418ea9335dc34241bdb2"  # main before the page step
WORKERS = os.cpu_count() or 1
FORMS = ("box", "comb", "ruled", "squared")  # the kinds with a form's lines: "forms (4 kinds)"


def before_module(rev: str) -> types.ModuleType:
    """``softmax_core/normalize.py`` as it was at ``rev``, as a module of its own."""
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:softmax_core/normalize.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mod = types.ModuleType("normalize_before")
    exec(compile(src, f"{rev}:softmax_core/normalize.py", "exec"), mod.__dict__)
    return mod


def naive(gray: np.ndarray) -> np.ndarray:
    """Grayscale resized to 28×28, as it is: no polarity, no crop, no centring."""
    img = Image.fromarray(np.asarray(gray, np.float32), mode="F")
    return np.asarray(img.resize((28, 28), Image.Resampling.BILINEAR), np.float32)


def _decode_only(paths: list[str]) -> int:
    for p in paths:
        with Image.open(p) as im:
            im.load()
    return len(paths)


def decode_bound(paths: list[str]) -> float:
    """images/s of Pillow decoding ``paths`` in WORKERS warm processes, nothing else."""
    parts = [paths[i::WORKERS] for i in range(WORKERS)]
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_decode_only, [p[:50] for p in parts]))
        t = time.perf_counter()
        n = sum(pool.map(_decode_only, parts))
        return n / (time.perf_counter() - t)


def score_rate(folder: Path, model: Path, n: int) -> tuple[float, int]:
    """images/s of ``softmax-pipe score FOLDER -m MODEL -o CSV`` end to end (the command
    started, its workers, every file decoded, prepared, scored and written)."""
    exe = Path(sys.executable).with_name("softmax-pipe")
    out = folder.parent / "scores.csv"
    t = time.perf_counter()
    done = subprocess.run(
        [str(exe), "score", str(folder), "-m", str(model), "-o", str(out)],
        check=False,
        capture_output=True,
    )
    rate = n / (time.perf_counter() - t)
    if done.returncode not in (0, 1):  # 1: some pages blank (rows with status=error)
        sys.exit(f"softmax-pipe score failed ({done.returncode}): {done.stderr.decode()}")
    return rate, done.returncode


def this_preparation(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """The page as ``score`` prepares it: the digit and the marks the page holds (more
    than 1: a row rejected as "not one digit", by a model that can reject)."""
    from softmax_core.normalize import prepare_stack

    done = prepare_stack(np.asarray(gray)[None])
    if done.errors[0] is not None:
        raise done.errors[0]
    return done.digits[0], int(done.marks[0])


def one_mark(prep: Callable[[Any], np.ndarray]) -> Callable[[Any], tuple[np.ndarray, int]]:
    """A preparation that does not count marks, as :func:`this_preparation` answers."""
    return lambda gray: (prep(gray), 1)


def said(
    model: Any, prep: Callable[[Any], tuple[np.ndarray, int]], gray: np.ndarray
) -> tuple[int, int]:
    """What ``score`` says of the page ``gray`` prepared by ``prep``: a digit, REJECT (not a
    digit at the default threshold, or several marks, for a model that can reject) or -1
    (the preparation refuses it, e.g. as blank); and the digit the model finds most likely
    (what it would say if it rejected nothing; -1 where the preparation refuses the page)."""
    from softmax_core import settings
    from softmax_core.errors import ImageError
    from softmax_core.model import REJECT, decide

    try:
        digit, marks = prep(gray)
    except ImageError:
        return -1, -1
    probs = model.predict_proba(digit[None])
    answer = int(decide(probs, settings.REJECT_THRESHOLD)[0])
    if marks > 1 and model.can_reject:
        answer = REJECT
    return answer, int(probs[0, :10].argmax())


def more_seeds(ds: Any, model: Any, seeds: list[int], per_kind: int, title: str = "") -> None:
    """This preparation's accuracy per kind on ``per_kind`` pages of each kind drawn on
    its own with each of ``seeds``, as a second table (``title``: which model); for a model
    that can reject, also the four kinds read as if it rejected nothing (the most that no
    reject rule exceeds)."""
    from softmax_core.images import open_image, to_gray

    kinds = list(forms.KINDS)
    extra = ["forms, rejecting nothing"] if model.can_reject else []
    print(f"\nthis preparation{title}, {per_kind} pages of each kind drawn on its own:")
    print("| seed | " + " | ".join([*kinds, "forms (4 kinds)", *extra]) + " |")
    print("|" + "---|" * (len(kinds) + 2 + len(extra)))
    for seed in seeds:
        ok: dict[str, list[bool]] = {}
        digit_ok: dict[str, list[bool]] = {}
        for kind in kinds:
            for p in forms.pages(ds.x_test, ds.y_test, per_kind, seed=seed, kinds=(kind,)):
                g = to_gray(open_image(io.BytesIO(p.to_bytes())))
                answer, digit = said(model, this_preparation, g)
                ok.setdefault(kind, []).append(answer == p.label)
                digit_ok.setdefault(kind, []).append(digit == p.label)
        four = [v for k in FORMS for v in ok[k]]
        cells = [f"{100 * np.mean(ok[k]):.1f}%" for k in kinds] + [f"{100 * np.mean(four):.1f}%"]
        if extra:
            cells.append(f"{100 * np.mean([v for k in FORMS for v in digit_ok[k]]):.1f}%")
        print(f"| {seed} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", default=str(DEFAULT_MNIST))
    ap.add_argument("--per-kind", type=int, default=300)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--folder", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=2_000)
    ap.add_argument("--before", default=BEFORE, help="git revision of today's preparation")
    ap.add_argument("--workdir", default=None)
    ap.add_argument(
        "--no-reject",
        action="store_true",
        help="train the 10-class model (no 'not a digit'), as before the reject option",
    )
    ap.add_argument(
        "--more-seeds",
        default="",
        help="comma-separated seeds: after the table, this preparation's accuracy per kind "
        "on --per-kind pages of each kind drawn on its own with each seed",
    )
    ap.add_argument(
        "--train-seeds",
        default="",
        help="comma-separated training seeds: that table again for the default trained "
        "with each (Hyper(seed=...)): how far one training's figures move",
    )
    args = ap.parse_args()

    from softmax_core.images import open_image, to_gray
    from softmax_core.mnist import load_mnist
    from softmax_core.model import REJECT
    from softmax_core.normalize import normalize_stack
    from softmax_core.requests import Data, Hyper
    from softmax_core.train import train

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-pages-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = load_mnist(args.mnist, cache_dir=work / "cache")
    t0 = time.perf_counter()
    model = train(ds, Hyper(), data=Data(reject=not args.no_reject))
    train_seconds = time.perf_counter() - t0
    model_path = model.save(work / "default.npz")
    old = before_module(args.before)

    made = forms.pages(ds.x_test, ds.y_test, args.per_kind, seed=args.seed)
    grays = [to_gray(open_image(io.BytesIO(p.to_bytes()))) for p in made]
    preps: dict[str, Callable[[Any], tuple[np.ndarray, int]]] = {
        "this preparation": this_preparation,
        "today's": one_mark(old.normalize),
        "naive resize": one_mark(naive),
    }
    right: dict[str, dict[str, list[bool]]] = {name: {} for name in preps}
    rejected: dict[str, list[bool]] = {}
    digit_right: dict[str, list[bool]] = {}  # this preparation, had the model rejected nothing
    ms: dict[str, float] = {}
    for name, prep in preps.items():
        t = 0.0
        for p, g in zip(made, grays, strict=True):
            t0 = time.perf_counter()
            answer, digit = said(model, prep, g)
            t += time.perf_counter() - t0
            right[name].setdefault(p.kind, []).append(answer == p.label)
            if name == "this preparation":
                rejected.setdefault(p.kind, []).append(answer == REJECT)
                digit_right.setdefault(p.kind, []).append(digit == p.label)
        ms[name] = 1000 * t / len(made)

    # MNIST test through the preparation
    x, y = np.asarray(ds.x_test), np.asarray(ds.y_test)
    mnist = {
        "this preparation": float(np.mean(model.predict(normalize_stack(x)[0]) == y)),
        "today's": float(np.mean(model.predict(old.normalize_stack(x)[0]) == y)),
        "naive resize": float(np.mean(model.predict(x) == y)),
    }

    # the mixed folder
    folder = work / "mixed"
    shutil.rmtree(folder, ignore_errors=True)
    distinct = forms.pages(
        ds.x_test, ds.y_test, max(1, args.distinct // len(forms.KINDS)), seed=args.seed + 1
    )
    written = 0
    while written < args.folder:
        for p in distinct:
            if written >= args.folder:
                break
            sub = folder / p.kind / f"{written // 1000:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            p.image.save(sub / f"{written:05d}_{p.label}.{p.ext}", **p.save_kw)
            written += 1
    paths = sorted(str(f) for f in folder.rglob("*") if f.is_file())
    bound = decode_bound(paths)
    rate, _ = score_rate(folder, model_path, len(paths))

    kinds = list(forms.KINDS)
    head = ["preparation", *kinds, "forms (4 kinds)", "MNIST test", "ms / image"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in preps:
        r = right[name]
        four = [v for k in FORMS for v in r[k]]
        cells = [f"{100 * np.mean(r[k]):.1f}%" for k in kinds]
        cells += [f"{100 * np.mean(four):.1f}%", f"{100 * mnist[name]:.2f}%", f"{ms[name]:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        f"\n{args.per_kind} pages per kind (seed {args.seed}); MNIST test for the naive row: "
        "the arrays as they are. `softmax-pipe score` on "
        f"{len(paths):,} mixed generator pages ({len(distinct):,} distinct): "
        f"{rate:,.0f} images/s; Pillow decoding the same files in {WORKERS} processes: "
        f"{bound:,.0f} images/s ({rate / bound:.2f} of the bound)."
    )
    shares = ", ".join(f"{k} {100 * np.mean(v):.1f}%" for k, v in rejected.items())
    print(
        f"The model: {model.n_classes} classes, trained in {train_seconds:.1f} s (seed "
        f"{Hyper().seed}, temperature {model.temperature:.3f}). Form digits "
        f"it rejects as not digits (this preparation): {shares}."
    )
    if model.can_reject:
        from softmax_core.train import heldout_negatives

        held = float(np.mean(model.predict(heldout_negatives(ds)) == REJECT))
        on_mnist = float(np.mean(model.predict(x) == REJECT))
        four = [v for k in FORMS for v in digit_right[k]]
        print(
            f"It rejects {100 * on_mnist:.2f}% of MNIST test (rejects count as errors above) "
            f"and {100 * held:.1f}% of the held-out generated non-digits. Had it rejected "
            f"nothing, it would have read {100 * np.mean(four):.1f}% of the forms (4 kinds; "
            "this preparation): no reject rule reads more."
        )
    more = [int(x) for x in args.more_seeds.split(",") if x.strip()]
    if more:
        more_seeds(ds, model, more, args.per_kind)
    for seed in [int(x) for x in args.train_seeds.split(",") if x.strip()]:
        other = train(ds, Hyper(seed=seed), data=Data(reject=not args.no_reject))
        title = f" (the default trained with seed {seed}, temperature {other.temperature:.3f})"
        more_seeds(ds, other, more or [args.seed], args.per_kind, title)


if __name__ == "__main__":
    main()
