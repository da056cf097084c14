"""Train and evaluate on a cached dataset: the library calls behind the CLI and the flows.

``train`` turns a Dataset (plus the users' labelled images) into a :class:`Model` whose
info records the hyperparameters and the data's lineage; ``evaluate`` measures a model on
the dataset's test split (features from the cache); ``holdout_decisions`` gates a model
on each user dataset's holdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import gate, metrics, sgd
from softmax_core.errors import InvalidInputError
from softmax_core.metrics import EvaluationReport
from softmax_core.model import Model, ModelInfo, now
from softmax_core.preprocess import Steps
from softmax_core.requests import Data, Hyper

if TYPE_CHECKING:
    from softmax_core.mnist import Dataset

JITTER_STREAM = 0x6A17  # the jitter's random stream, beside SGD's, from the same seed
Labelled = tuple[NDArray[np.uint8], NDArray[np.uint8]]  # images (n, 28, 28) uint8, labels (n,)
Holdout = tuple[str, NDArray[Any], NDArray[Any]]  # dataset name, images (n, 28, 28), labels (n,)


def train(
    ds: Dataset,
    hyper: Hyper,
    *,
    data: Data | None = None,
    init: Model | None = None,
    extra: Sequence[Labelled] = (),
    callback: sgd.ProgressCallback | None = None,
) -> Model:
    """Fit softmax regression by SGD on ``ds``'s training split; return the Model.

    ``hyper``: the features (their steps are recorded in the model) and the SGD
    hyperparameters; ``hyper.limit`` trains on the first N samples only (smoke runs,
    deliberately weak models). ``init``: warm-start weights; a model with other features
    is refused. ``extra``: more labelled images (the train splits of users' datasets),
    each counted :func:`extra_weight` times (``data.weighting``: "jitter" repeats it,
    each copy after the first jittered; "oversample" repeats it as it is; "loss" weighs
    its loss), after MNIST's.
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
    X = cached_features(ds, "train", steps)
    y = ds.y_train
    if hyper.limit is not None:
        X, y = X[: hyper.limit], y[: hyper.limit]
    sw = None
    weight = extra_weight(data, int(y.shape[0]), extra)
    if extra:
        rng = np.random.default_rng([hyper.seed, JITTER_STREAM])
        X, y, sw = with_extra(X, y, extra, steps, data.weighting, weight, rng)
    start = (init.W, init.b) if init is not None else None
    fitted = sgd.fit(X, y, hyper, init=start, callback=callback, sample_weight=sw)
    weighted = (
        {"data_weight": weight, "data_share": data.data_share, "weighting": data.weighting}
        if extra
        else {}
    )
    info = ModelInfo(
        created=now(),
        params={**hyper.sgd_params(), "features": hyper.features, "limit": hyper.limit, **weighted},
        n_train=int(y.shape[0]),
        data_digest=ds.digest,
        data_source=ds.source,
        warm_start=(init.ref if init.ref != "<model>" else init.info.created) if init else None,
        history=fitted.history,
        train_accuracy=fitted.history[-1].accuracy if fitted.history else None,
    )
    return Model(W=fitted.W, b=fitted.b, steps=steps, info=info)


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
    holdout image is not gated."""
    out = []
    for domain, images, labels in holdouts:
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
    return metrics.report(np.asarray(labels), model.predict(images))


def evaluate(model: Model, ds: Dataset) -> EvaluationReport:
    """Test-split metrics: accuracy, n, per-class precision/recall/support, confusion."""
    return metrics.report(ds.y_test, predict_test_split(model, ds), data_digest=ds.digest)
