"""Train and evaluate on a cached dataset: the library calls behind the CLI and the flows.

``train`` turns a Dataset (plus the users' labelled images) into a :class:`Model` whose
info records the hyperparameters and the data's lineage, calibrated on a slice of the
training split it did not learn from (:func:`calibration_split`); ``evaluate`` measures a
model on the dataset's test split (features from the cache), its calibration error
included; ``holdout_decisions`` gates a model on each user dataset's holdout.

Every column weighs the features and ``data.terms`` directions' second-order terms
(:mod:`softmax_core.quadratic`: fitted on the MNIST images' features, or a warm start's
own), the same for every class.

With ``data.reject`` (the default) the model has 11 classes: the digits, and class 10
"not a digit". The digits' columns are the 10-class model's, trained first exactly as
``--no-reject`` trains it (so every digit is read as that model reads it, and only a
rejection can change a row); then the column "not a digit" alone is fitted, the digits'
columns frozen (``sgd.fit(frozen=10)``), from ``data.n_negatives`` generated non-digits
(``softmax_core.negatives``, seed ``2 * hyper.seed``: even, so never the held-out seed
the gate measures with) and the users' ``not-a-digit`` images; each counted once, as an
MNIST image is. With them go ``settings.CLUTTERED_SHARE`` x the MNIST images of training
digits drawn on pages with a page's leftovers (``softmax_core.clutter``), labelled as the
digits they are, so that a frame's corner does not make a digit "not a digit".

The digits' fit sees cluttered digits too: ``settings.CLUTTERED_DIGITS_SHARE`` x the MNIST
images after MNIST's (the first of them are the ones the column "not a digit" learns from),
so that a kept tick, a cut stroke or a shadow does not change which digit is read. The
calibration proxy learns from its own, drawn from the images before the slice only
(:func:`cluttered_digits` of a run limited to them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import gate, labelled, metrics, quadratic, settings, sgd
from softmax_core.calibration import fit_temperature
from softmax_core.errors import InvalidInputError
from softmax_core.metrics import EvaluationReport
from softmax_core.model import N_CLASSES, REJECT, Model, ModelInfo, now
from softmax_core.preprocess import Steps
from softmax_core.quadratic import Quadratic
from softmax_core.requests import Data, Hyper
from softmax_core.words import plural

if TYPE_CHECKING:
    from softmax_core.mnist import Dataset

JITTER_STREAM = 0x6A17  # the jitter's random stream, beside SGD's, from the same seed
CLUTTER_STREAM = 0xC1077  # the cluttered digits' (softmax_core.clutter)
REJECT_STREAM = 0x4E7  # the jitter's when the column "not a digit" is fitted
TERMS_CHUNK = 4096  # rows whose second-order terms are made at a time
Labelled = tuple[NDArray[np.uint8], NDArray[np.uint8]]  # images (n, 28, 28) uint8, labels (n,)
Holdout = tuple[str, NDArray[Any], NDArray[Any]]  # dataset name, images (n, 28, 28), labels (n,)
Progress = Callable[[str], None]  # told one line before a slow step (softmax_core.mnist's)


def train(
    ds: Dataset,
    hyper: Hyper,
    *,
    data: Data | None = None,
    init: Model | None = None,
    extra: Sequence[Labelled] = (),
    callback: sgd.ProgressCallback | None = None,
    progress: Progress | None = None,
) -> Model:
    """Fit softmax regression by SGD on ``ds``'s training split; return the Model.

    ``hyper``: the features (their steps are recorded in the model) and the SGD
    hyperparameters; ``hyper.limit`` trains on the first N samples only (smoke runs,
    deliberately weak models). ``init``: warm-start weights; a model with other features
    is refused. ``extra``: more labelled images (the train splits of users' datasets),
    each counted :func:`extra_weight` times (``data.weighting``: "jitter" repeats it,
    each copy after the first jittered; "oversample" repeats it as it is; "loss" weighs
    its loss), after MNIST's. ``data.reject``: an 11-class model (see the module doc); from
    a 10-class ``init`` the digits' columns are copied and "not a digit" starts at zero.
    ``callback`` sees the digits' epochs; their history is the model's. ``progress`` is
    told one line before each step that prepares what is not cached yet (the features,
    the cluttered digits, the non-digits: the first run's 20 s before the first epoch).

    The model's confidence is calibrated (:mod:`softmax_core.calibration`): the last
    ``hyper.calibration_images`` images of MNIST's training split
    (:func:`calibration_split`) are scored by a digits' model that did not learn from
    them, and the temperature that fits their labels best is the model's (all its
    columns, "not a digit" too, are divided by it). When the model learned from them (no
    ``limit``, or one that reaches into the slice) or may have (a warm start from a
    champion that did), that is a second digits' model trained the same way without them
    and from scratch (the proxy: the same hyperparameters, seed and extra images), so the
    returned model still learns from every image; otherwise the model's own digits.
    """
    from softmax_core.mnist import cached_features

    data = data or Data()
    steps = Steps.named(hyper.features)
    if init is not None and init.steps != steps:
        theirs = init.steps.feature_set or init.steps.describe()
        raise InvalidInputError(
            f"cannot warm-start: the champion uses features {theirs!r}, this run "
            f"{hyper.features!r}; train with --features {theirs} or without --warm-start"
        )
    X_mnist = cached_features(ds, "train", steps, progress=progress)
    y_mnist = ds.y_train
    X, y = X_mnist, y_mnist
    if hyper.limit is not None:
        X, y = X[: hyper.limit], y[: hyper.limit]
    n_mnist = int(y.shape[0])
    # The second-order terms: a warm start's own (its weights mean something over them
    # only), else fitted on these digits' features (none from fewer than two).
    terms = init.quadratic if init is not None else None
    if terms is None:
        terms = _fit_terms(X, data)
    extra = extra if data.reject else [digits_only(images, labels) for images, labels in extra]
    digit_extra = [digits_only(images, labels) for images, labels in extra]
    weight = extra_weight(data, n_mnist, extra)
    # The digits: a 10-class model, as --no-reject trains it.
    X1, y1, sw = X, y, None
    if any(len(labels) for _, labels in digit_extra):
        rng = np.random.default_rng([hyper.seed, JITTER_STREAM])
        X1, y1, sw = with_extra(X, y, digit_extra, steps, data.weighting, weight, rng)
    start = None
    if init is not None:
        ten = init.with_classes(N_CLASSES)
        start = (_joined(ten, terms), ten.b)
    n = int(y_mnist.shape[0])
    cal = n - calibration_split(n, hyper.calibration_images)
    proxied = cal < n and (n_mnist > cal or init is not None)  # see the docstring
    if proxied and settings.CLUTTERED_DIGITS_SHARE:
        # the proxy's own cluttered digits, made (and cached) now, before the fits hold
        # their arrays: drawn after them, they raised the first run's peak by 60 MB
        lo = min(cal, n_mnist)
        cluttered_features(ds, hyper, steps, y[:lo], lo, progress=progress)
    # ... and on cluttered digits (CLUTTERED_DIGITS_SHARE of the MNIST images), after them
    Xe, ye, swe = X1, y1, sw
    X1, y1, sw = _with_cluttered(
        ds, hyper, steps, (Xe, ye, swe), y, n_mnist, terms, progress=progress
    )
    fitted = sgd.fit(
        X1, y1, hyper, init=start, callback=callback, sample_weight=sw, expand=_expand(terms)
    )
    W, b = fitted.W, fitted.b
    n_train, n_negatives = int(y1.shape[0]), data.n_negatives(n_mnist)
    del X1, y1, sw  # a copy with the cluttered digits' rows: freed before the next fits
    if data.reject:
        W, b, n_train = _fit_reject(
            ds,
            hyper,
            data,
            steps,
            (W, b),
            X,
            y,
            extra,
            weight,
            n_negatives,
            init,
            terms,
            progress=progress,
        )
    weighted = (
        {"data_weight": weight, "data_share": data.data_share, "weighting": data.weighting}
        if extra
        else {}
    )
    params = {
        **hyper.sgd_params(),
        "features": hyper.features,
        "limit": hyper.limit,
        "calibration_images": hyper.calibration_images,
        **weighted,
        "terms": 0 if terms is None else terms.q,
        **({"negatives": n_negatives, "negatives_seed": 2 * hyper.seed} if data.reject else {}),
    }
    info = ModelInfo(
        created=now(),
        params=params,
        n_train=n_train,
        data_digest=ds.digest,
        data_source=ds.source,
        warm_start=(init.ref if init.ref != "<model>" else init.info.created) if init else None,
        history=fitted.history,
        train_accuracy=fitted.history[-1].accuracy if fitted.history else None,
    )
    model = _model(W, b, steps, terms).evolve(info=info)
    if cal == n:
        return model
    proxy, proxy_terms = fitted, terms
    if proxied:  # it learned from the slice, or may have
        lo = min(cal, n_mnist)  # the proxy: as a run limited to the images before the slice
        proxy_terms = _fit_terms(X[:lo], data)
        Xp, yp, swp = _with_cluttered(
            ds, hyper, steps, _without(Xe, ye, swe, lo, n_mnist), y[:lo], lo, proxy_terms
        )
        proxy = sgd.fit(Xp, yp, hyper, sample_weight=swp, expand=_expand(proxy_terms))
    Z = _model(proxy.W, proxy.b, steps, proxy_terms).logits(X_mnist[cal:], calibrated=False)
    return model.evolve(calibration=fit_temperature(Z, np.asarray(y_mnist[cal:])))


def _fit_terms(X: NDArray[np.float32], data: Data) -> Quadratic | None:
    """``data.terms`` directions' terms fitted on the digits' features ``X``, for the
    digits' columns (None: no terms asked for, or fewer than two digits)."""
    if not data.terms or X.shape[0] < 2:
        return None
    return quadratic.fit(X, min(data.terms, X.shape[1]), N_CLASSES)


def _joined(model: Model, terms: Quadratic | None) -> NDArray[np.float32]:
    """``model``'s weights as SGD fits them over the features and ``terms``' terms: ``(d +
    e, k)``, its own weights over the terms under its feature weights (zeros when it has
    none: ``terms`` fitted for this run)."""
    if terms is None:
        return model.W
    own = model.quadratic
    w = own.w if own is not None else np.zeros((terms.w.shape[0], model.n_classes), np.float32)
    return np.concatenate([model.W, w])


def _model(
    W: NDArray[np.float32], b: NDArray[np.float32], steps: Steps, terms: Quadratic | None
) -> Model:
    """The Model of weights ``W (d + e, k)`` fitted over the features and ``terms``' terms."""
    d = steps.n_features
    quad = None if terms is None else terms.with_weights(W[d:])
    return Model(W=np.ascontiguousarray(W[:d]), b=b, steps=steps, quadratic=quad)


def _without(
    X: NDArray[np.float32], y: NDArray[Any], sw: NDArray[np.float32] | None, lo: int, hi: int
) -> tuple[NDArray[np.float32], NDArray[Any], NDArray[np.float32] | None]:
    """``X``, ``y`` and ``sw`` without rows ``lo..hi-1`` (a view when none follow)."""
    if hi >= y.shape[0]:
        return X[:lo], y[:lo], None if sw is None else sw[:lo]
    rows = np.r_[0:lo, hi : y.shape[0]]
    return X[rows], y[rows], None if sw is None else sw[rows]


def calibration_split(n: int, images: int) -> int:
    """How many of a training split's ``n`` images, from its end, the temperature is
    fitted on: ``images``, at most a fifth of the split (a small set's proxy still learns
    from most of it)."""
    return max(0, min(images, n // 5))


def _fit_reject(
    ds: Dataset,
    hyper: Hyper,
    data: Data,
    steps: Steps,
    digits: tuple[NDArray[np.float32], NDArray[np.float32]],
    X: NDArray[np.float32],
    y: NDArray[Any],
    extra: Sequence[Labelled],
    weight: int,
    n_negatives: int,
    init: Model | None,
    terms: Quadratic | None,
    *,
    progress: Progress | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], int]:
    """The column "not a digit" beside the digits' ``(W (d + e, 10), b)`` over the
    features and ``terms``' terms, which stay as they are: SGD on the 11-class loss with
    the digits' columns frozen, over the MNIST images ``X, y``, ``n_negatives`` generated
    non-digits, the cluttered digits and ``extra`` (its not-a-digit images too). Starts
    from ``init``'s column when it has one, else zero.
    ``progress``: as :func:`train`'s. Returns ``(W (d + e, 11), b (11,), images trained
    on)``."""
    from softmax_core.mnist import cached_uint8, cached_uint8_features
    from softmax_core.negatives import negatives

    n_mnist = int(y.shape[0])
    count = math.ceil(settings.CLUTTERED_SHARE * n_mnist)
    code = recipe_digest()
    pos, pos_y = cluttered_features(ds, hyper, steps, y, n_mnist, progress=progress)
    parts_X = [X, pos[:count]]
    parts_y = [np.asarray(y, np.uint8), pos_y[:count]]
    if n_negatives:
        seed = 2 * hyper.seed
        neg_key = {"n": n_negatives, "seed": seed, "code": code}
        made = _told(
            progress,
            f"generating {n_negatives:,} non-digits",
            lambda: negatives(n_negatives, seed=seed),
        )
        neg = cached_uint8(ds, "negatives", neg_key, made)
        parts_X.append(
            cached_uint8_features(
                ds, "negatives", neg_key, steps, neg, progress=progress, what="non-digits"
            )
        )
        parts_y.append(np.full(n_negatives, REJECT, dtype=np.uint8))
    y2, sw = np.concatenate(parts_y), None
    if extra:
        rng = np.random.default_rng([hyper.seed, REJECT_STREAM])
        X2, y2, sw = with_extra(
            np.concatenate(parts_X), y2, extra, steps, data.weighting, weight, rng
        )
        parts_X = [X2]
    W0, b0 = digits
    W = np.zeros((W0.shape[0], N_CLASSES + 1), np.float32)
    W[:, :N_CLASSES] = W0
    b = np.concatenate([b0, np.zeros(1, b0.dtype)])
    if init is not None:
        column = init.with_classes(N_CLASSES + 1)
        W[:, REJECT], b[REJECT] = _joined(column, terms)[:, REJECT], column.b[REJECT]
    X2 = _rows_with_terms(parts_X, terms)
    fitted = sgd.fit(
        X2,
        y2,
        hyper,
        init=(W, b),
        sample_weight=sw,
        n_classes=N_CLASSES + 1,
        frozen=N_CLASSES,
        expand=_expand(terms),
    )
    return fitted.W, fitted.b, int(y2.shape[0])


def _with_cluttered(
    ds: Dataset,
    hyper: Hyper,
    steps: Steps,
    rows: tuple[NDArray[np.float32], NDArray[Any], NDArray[np.float32] | None],
    y: NDArray[Any],
    n_mnist: int,
    terms: Quadratic | None,
    *,
    progress: Progress | None = None,
) -> tuple[NDArray[np.float32], NDArray[Any], NDArray[np.float32] | None]:
    """The digits' training ``rows`` (features, labels, sample weights or None) followed by
    ``settings.CLUTTERED_DIGITS_SHARE`` x ``n_mnist`` cluttered digits (:func:`cluttered_digits`
    of the first ``n_mnist`` training images, labels ``y``), each of weight 1, each row
    followed by its ``terms`` (:func:`_rows_with_terms`); the rows as they are when the
    share is 0 and there are no terms."""
    X, labels, sw = rows
    count = math.ceil(settings.CLUTTERED_DIGITS_SHARE * n_mnist)
    if not count:
        return (X if terms is None else _rows_with_terms([X], terms)), labels, sw
    pos, pos_y = cluttered_features(ds, hyper, steps, y, n_mnist, progress=progress)
    return (
        _rows_with_terms([X, pos[:count]], terms),
        np.concatenate([np.asarray(labels, np.uint8), pos_y[:count]]),
        None if sw is None else np.concatenate([sw, np.ones(count, np.float32)]),
    )


def cluttered_digits(
    ds: Dataset, hyper: Hyper, y: NDArray[Any], n_mnist: int, *, progress: Progress | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The cluttered digits (:func:`softmax_core.clutter.cluttered`) of a run on the first
    ``n_mnist`` training images (labels ``y``): ``max(CLUTTERED_SHARE,
    CLUTTERED_DIGITS_SHARE) x n_mnist`` of them, drawn from those images with the stream
    ``[hyper.seed, CLUTTER_STREAM]``; cached beside ``ds``. The column "not a digit" learns
    from the first ``CLUTTERED_SHARE`` of them, the digits from the first
    ``CLUTTERED_DIGITS_SHARE``. ``progress`` is told before they are drawn."""
    from softmax_core.clutter import cluttered
    from softmax_core.mnist import cached_uint8

    count, key = _cluttered_key(hyper, n_mnist)
    made: list[tuple[NDArray[np.uint8], NDArray[np.uint8]]] = []

    def clutter() -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        if not made:
            if progress is not None:
                progress(f"drawing {count:,} cluttered digits from {n_mnist:,} MNIST images")
            rng = np.random.default_rng([hyper.seed, CLUTTER_STREAM])
            made.append(cluttered(ds.x_train[:n_mnist], y[:n_mnist], count, rng))
        return made[0]

    pos = cached_uint8(ds, "cluttered", key, lambda: clutter()[0])
    pos_y = cached_uint8(ds, "cluttered-labels", key, lambda: clutter()[1])
    return pos, pos_y


def cluttered_features(
    ds: Dataset,
    hyper: Hyper,
    steps: Steps,
    y: NDArray[Any],
    n_mnist: int,
    *,
    progress: Progress | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """:func:`cluttered_digits`' features under ``steps`` (computed once, then cached beside
    them) and labels; ``progress`` told before each is made."""
    from softmax_core.mnist import cached_uint8_features

    pos, pos_y = cluttered_digits(ds, hyper, y, n_mnist, progress=progress)
    _, key = _cluttered_key(hyper, n_mnist)
    feats = cached_uint8_features(
        ds, "cluttered", key, steps, pos, progress=progress, what="cluttered digits"
    )
    return feats, pos_y


def _told(
    progress: Progress | None, message: str, make: Callable[[], NDArray[np.uint8]]
) -> Callable[[], NDArray[np.uint8]]:
    """``make``, telling ``progress`` ``message`` first (a cache calls it on a miss only)."""

    def made() -> NDArray[np.uint8]:
        if progress is not None:
            progress(message)
        return make()

    return made


def _cluttered_key(hyper: Hyper, n_mnist: int) -> tuple[int, dict[str, object]]:
    """How many cluttered digits a run on ``n_mnist`` images draws, and their cache key."""
    share = max(settings.CLUTTERED_SHARE, settings.CLUTTERED_DIGITS_SHARE)
    count = math.ceil(share * n_mnist)
    return count, {"n_mnist": n_mnist, "count": count, "seed": hyper.seed, "code": recipe_digest()}


def _rows_with_terms(
    parts: Sequence[NDArray[np.float32]], terms: Quadratic | None
) -> NDArray[np.float32]:
    """The parts' rows one under the other, each followed by its coordinates along the
    terms' directions when there are terms: ``(n, d + q)``, filled in place a few thousand
    rows at a time (no second copy of the features: the peak memory of training is this
    array). SGD makes each minibatch's terms from them (:func:`_expand`): the rows with
    their 465 terms were twice the size, 267 MB for the digits' fit."""
    d = parts[0].shape[1]
    q = 0 if terms is None else terms.q
    out = np.empty((sum(len(p) for p in parts), d + q), dtype=np.float32)
    at = 0
    for part in parts:
        for lo in range(0, len(part), TERMS_CHUNK):
            rows = np.asarray(part[lo : lo + TERMS_CHUNK], dtype=np.float32)
            out[at : at + len(rows), :d] = rows
            if terms is not None:
                out[at : at + len(rows), d:] = terms.coordinates(rows)
            at += len(rows)
    return out


def _expand(terms: Quadratic | None) -> sgd.Expand | None:
    """Rows of :func:`_rows_with_terms` (features, then coordinates) -> the model's rows
    (features, then ``terms``' terms), a minibatch at a time; None without terms."""
    if terms is None:
        return None
    d, e = terms.d, quadratic.n_terms(terms.q)

    def rows(stored: NDArray[np.float32]) -> NDArray[np.float32]:
        out = np.empty((stored.shape[0], d + e), dtype=np.float32)
        out[:, :d] = stored[:, :d]
        terms.products(stored[:, d:], out=out[:, d:])
        return out

    return rows


def recipe_digest() -> str:
    """The sha256 of the code that makes the reject column's derived images (the generator,
    the clutter, the preparation they go through): the cache key changes with any of it."""
    from softmax_core import clutter, images, negatives, normalize, page

    h = hashlib.sha256()
    for module in (negatives, clutter, page, normalize, images):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


def digits_only(images: NDArray[np.uint8], labels: NDArray[np.uint8]) -> Labelled:
    """The images of a labelled set that are digits (a 10-class model leaves "not a digit"
    out)."""
    keep = np.asarray(labels) < N_CLASSES
    return np.asarray(images)[keep], np.asarray(labels)[keep]


@dataclasses.dataclass(frozen=True)
class DatasetUse:
    """What a run takes of one user dataset ``name``: the images it trains on (its train
    split) and the images the gate measures (its holdout), and the not-a-digit images a
    10-class model leaves out of both (``left_out``: it cannot learn or say "not a
    digit"). A small dataset can have none of one split (each image's split follows from
    its pixels): the run goes on with the other. Either is said (:meth:`notes`)."""

    name: str
    train: int
    holdout: int
    left_out: int = 0

    @classmethod
    def of(cls, name: str, data: labelled.Labelled, *, can_reject: bool) -> DatasetUse:
        train, holdout = (len(used_split(data, s, can_reject=can_reject)[1]) for s in SPLITS)
        return cls(name, train, holdout, len(data) - train - holdout)

    def notes(self) -> list[str]:
        """One line for each part of the run this dataset had no images for, and one for
        the not-a-digit images a 10-class model left out."""
        why = "no {} images yet; add more images" if not self.left_out else "no digits in its {}"
        out = [
            f"{self.name} {what}: {why.format(split)}"
            for what, split, n in (
                ("not trained on", "train", self.train),
                ("not gated", "holdout", self.holdout),
            )
            if n == 0
        ]
        if self.left_out:
            n = self.left_out
            out.append(
                f"{self.name}: {n} {labelled.NOT_A_DIGIT} {plural(n, 'image')} left out (a "
                "10-class model cannot learn them)"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "train": self.train,
            "holdout": self.holdout,
            "not_a_digit_left_out": self.left_out,
            "trained": self.train > 0,
            "gated": self.holdout > 0,
        }


SPLITS = ("train", "holdout")


def used_split(data: labelled.Labelled, which: str, *, can_reject: bool) -> Labelled:
    """``(images, labels)`` of a dataset's ``"train"`` or ``"holdout"`` split that a model
    learns from or is measured on: all of it, or its digits for a 10-class model."""
    images, labels = data.split(which)
    return (images, labels) if can_reject else digits_only(images, labels)


def heldout_negatives(ds: Dataset) -> NDArray[np.uint8]:
    """The generated non-digits the gate measures rejection on: a seed training never
    draws with (``settings.HELDOUT_NEGATIVES_SEED``, odd); cached beside ``ds``."""
    from softmax_core.mnist import cached_uint8
    from softmax_core.negatives import negatives

    n, seed = settings.HELDOUT_NEGATIVES, settings.HELDOUT_NEGATIVES_SEED
    key = {"n": n, "seed": seed, "code": recipe_digest()}
    return cached_uint8(ds, "negatives", key, lambda: negatives(n, seed=seed))


def extra_weight(data: Data, n_mnist: int, extra: Sequence[Labelled]) -> int:
    """How many times each extra image counts next to ``n_mnist`` MNIST images
    (:meth:`Data.weight_for` over all the extra sets together)."""
    return data.weight_for(sum(len(labels) for _, labels in extra), n_mnist)


def with_extra(
    X: NDArray[np.float32],
    y: NDArray[Any],
    extra: Sequence[Labelled],
    steps: Steps,
    weighting: str,
    weight: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.float32] | None]:
    """``X (n, d)``, ``y (n,)`` followed by each extra set's features, and the sample
    weights: with ``weighting="jitter"`` each extra image ``weight`` times, every copy
    after the first jittered (``softmax_core.augment``, drawn from ``rng``); with
    ``"oversample"`` each ``weight`` times as it is (no weights: None); with ``"loss"``
    once, with sample weight ``weight`` (MNIST's: 1)."""
    from softmax_core.augment import jitter

    repeat = 1 if weighting == "loss" else weight
    xs, ys = [np.asarray(X, dtype=np.float32)], [np.asarray(y, dtype=np.uint8)]
    for images, labels in extra:
        if not len(labels):
            continue
        if weighting == "jitter":
            xs.append(steps.features(jitter(np.asarray(images), repeat, rng)))
        else:
            xs.append(np.repeat(steps.features(images), repeat, axis=0))
        ys.append(np.repeat(np.asarray(labels, dtype=np.uint8), repeat))
    X2, y2 = np.concatenate(xs), np.concatenate(ys)
    if weighting != "loss":
        return X2, y2, None
    sw = np.ones(len(y2), dtype=np.float32)
    sw[len(y) :] = weight
    return X2, y2, sw


def predict_test_split(model: Model, ds: Dataset) -> NDArray[np.int64]:
    """Labels predicted for ``ds``'s test split (features from the cache)."""
    from softmax_core.mnist import cached_features

    return model.predict_features(cached_features(ds, "test", model.steps))


def holdout_decisions(
    model: Model,
    holdouts: Sequence[Holdout],
    *,
    champion: Model | None,
    min_accuracy: float,
    alpha: float,
    margin: float,
) -> list[gate.GateDecision]:
    """The gate on each ``(domain, images (n, 28, 28), labels (n,))``: floor (on a holdout
    large enough) and champion, each model with its own preprocessing. A domain with no
    holdout image is not gated. A 10-class ``model`` is gated on the digits only (it cannot
    say "not a digit")."""
    out = []
    for domain, all_images, all_labels in holdouts:
        images, labels = (
            (all_images, all_labels) if model.can_reject else digits_only(all_images, all_labels)
        )
        if len(labels) == 0:
            continue
        out.append(
            gate.decide(
                labels,
                model.predict(images),
                min_accuracy=min_accuracy,
                champion_pred=champion.predict(images) if champion is not None else None,
                champion=champion.ref if champion is not None else None,
                alpha=alpha,
                margin=margin,
                domain=domain,
            )
        )
    return out


def evaluate_images(model: Model, images: NDArray[Any], labels: NDArray[Any]) -> EvaluationReport:
    """Metrics on labelled (n, 28, 28) images (a dataset's holdout): as :func:`evaluate`."""
    return evaluate_features(model, model.features(images), np.asarray(labels))


def evaluate(model: Model, ds: Dataset) -> EvaluationReport:
    """Test-split metrics: accuracy, n, per-class precision/recall/support, confusion
    (rejects are errors), and the expected calibration error with the model's temperature
    and without it."""
    from softmax_core.mnist import cached_features

    X = cached_features(ds, "test", model.steps)
    return evaluate_features(model, X, ds.y_test, data_digest=ds.digest)


def evaluate_features(
    model: Model, X: NDArray[np.float32], y: NDArray[Any], *, data_digest: str | None = None
) -> EvaluationReport:
    """:func:`evaluate` on features ``X (n, d)`` already made, labels ``y (n,)``."""
    from softmax_core.softmax import softmax

    raw = model.logits(X, calibrated=False)
    scaled = raw if model.calibration is None else model.logits(X)
    report = metrics.report(y, model.predict_features(X), model.n_classes, data_digest=data_digest)
    return dataclasses.replace(
        report,
        ece=metrics.expected_calibration_error(softmax(scaled), y),
        ece_uncalibrated=metrics.expected_calibration_error(softmax(raw), y),
    )
