"""Train and evaluate on a cached dataset: the library calls behind the CLI and the flows.

``train`` turns a Dataset into a ModelFile (weights + metadata recording the
preprocessing, hyperparameters and data lineage); ``evaluate`` scores a ModelFile on
the dataset's test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import gate, metrics, preprocess, settings
from softmax_core.blas import one_thread
from softmax_core.errors import InvalidInputError
from softmax_core.model import ProgressCallback, SoftmaxRegression, history_dicts
from softmax_core.modelfile import INPUT_SCHEMA, ModelFile

if TYPE_CHECKING:
    from softmax_core.mnist import Dataset

Labelled = tuple[NDArray[np.uint8], NDArray[np.uint8]]  # images (n, 28, 28) uint8, labels (n,)


def train(
    ds: Dataset,
    *,
    features: str = settings.FEATURES,
    init: ModelFile | None = None,
    limit: int | None = None,
    callback: ProgressCallback | None = None,
    extra: Sequence[Labelled] = (),
    data_weight: int = settings.DATA_WEIGHT,
    weighting: str = settings.DATA_WEIGHTING,
    **params: Any,
) -> ModelFile:
    """Fit a SoftmaxRegression on ``ds``'s training split; return it as a ModelFile.

    ``features``: a feature set of :data:`softmax_core.preprocess.FEATURE_SETS`
    (``pixels``, ``deskew``, ``hog``); its steps are recorded in the model file.
    ``init``: warm-start weights; a model with other features is refused.
    ``limit``: train on the first ``limit`` samples only (smoke runs, deliberately weak models).
    ``extra``: more labelled images (the train splits of users' datasets), each counted
    ``data_weight`` times (``weighting``: "oversample" repeats it, "loss" weighs its
    loss), after MNIST's.
    ``params``: hyperparameters for SoftmaxRegression (epochs, seed, learning_rate...).
    """
    from softmax_core.mnist import cached_features

    steps = preprocess.feature_steps(features)
    if init is not None and init.steps != steps:
        theirs = preprocess.feature_set_of(init.steps) or preprocess.describe(init.steps)
        raise InvalidInputError(
            f"cannot warm-start: the champion uses features {theirs!r}, this run {features!r}; "
            f"train with --features {theirs} or without --warm-start"
        )
    X = cached_features(ds, "train", steps)
    y = ds.y_train
    if limit is not None:
        if limit < 1:
            raise InvalidInputError(f"limit={limit} is invalid; expected an integer >= 1")
        X, y = X[:limit], y[:limit]
    sw = None
    if extra:
        X, y, sw = with_extra(X, y, extra, steps, data_weight, weighting)
    model = SoftmaxRegression(**params)
    start = (init.W, init.b) if init is not None else None
    model.fit(X, y, init=start, callback=callback, sample_weight=sw)
    meta: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "preprocessing": {"steps": list(steps)},
        "input_schema": INPUT_SCHEMA,
        "params": {
            **model.get_params(),
            "features": features,
            "limit": limit,
            **({"data_weight": data_weight, "weighting": weighting} if extra else {}),
        },
        "n_train": int(y.shape[0]),
        "data_digest": ds.digest,
        "data_source": ds.source,
        "warm_start": init.meta.get("registry", init.meta.get("created")) if init else None,
        "history": history_dicts(model),
        "train_accuracy": model.history_[-1].accuracy if model.history_ else None,
    }
    return ModelFile(W=model.W_, b=model.b_, meta=meta)


def with_extra(
    X: NDArray[np.float32],
    y: NDArray[Any],
    extra: Sequence[Labelled],
    steps: preprocess.Steps,
    weight: int,
    weighting: str = settings.DATA_WEIGHTING,
) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.float32] | None]:
    """``X (n, d)``, ``y (n,)`` followed by each extra set's features, and the sample
    weights: with ``weighting="oversample"`` each extra row ``weight`` times (no weights,
    None); with ``"loss"`` once, with sample weight ``weight`` (MNIST's rows: 1)."""
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
        raise InvalidInputError(f"data weight {weight!r} is invalid; expected an integer >= 1")
    if weighting not in settings.DATA_WEIGHTINGS:
        raise InvalidInputError(
            f"weighting {weighting!r} is unknown; expected one of {settings.DATA_WEIGHTINGS}"
        )
    repeat = weight if weighting == "oversample" else 1
    xs, ys = [np.asarray(X, dtype=np.float32)], [np.asarray(y, dtype=np.uint8)]
    for images, labels in extra:
        if len(labels):
            xs.append(np.repeat(preprocess.features(images, steps), repeat, axis=0))
            ys.append(np.repeat(np.asarray(labels, dtype=np.uint8), repeat))
    X2, y2 = np.concatenate(xs), np.concatenate(ys)
    if weighting == "oversample":
        return X2, y2, None
    sw = np.ones(len(y2), dtype=np.float32)
    sw[len(y) :] = weight
    return X2, y2, sw


@one_thread()
def predict(model: ModelFile, images: NDArray[np.generic]) -> NDArray[np.int64]:
    """Labels for (n, 28, 28) images, with the model's own preprocessing."""
    X = preprocess.features(images, model.steps)
    result: NDArray[np.int64] = np.argmax(X @ model.W + model.b, axis=1).astype(np.int64)
    return result


@one_thread()
def predict_test_split(model: ModelFile, ds: Dataset) -> NDArray[np.int64]:
    """Labels predicted for ``ds``'s test split (features from the cache)."""
    from softmax_core.mnist import cached_features

    X = cached_features(ds, "test", model.steps)
    if X.shape[1] != model.W.shape[0]:
        raise InvalidInputError(
            f"model expects {model.W.shape[0]} features, the data has {X.shape[1]}"
        )
    result: NDArray[np.int64] = np.argmax(X @ model.W + model.b, axis=1).astype(np.int64)
    return result


def holdout_decisions(
    model: ModelFile,
    holdouts: Sequence[tuple[str, NDArray[Any], NDArray[Any]]],
    *,
    champion: ModelFile | None,
    champion_ref: str | None,
    min_accuracy: float,
    alpha: float,
) -> list[gate.GateDecision]:
    """The gate on each ``(domain, images (n, 28, 28), labels (n,))``: floor and champion,
    each model with its own preprocessing. A domain with no holdout image is not gated."""
    out = []
    for domain, images, labels in holdouts:
        if len(labels) == 0:
            continue
        out.append(
            gate.decide(
                labels,
                predict(model, images),
                min_accuracy=min_accuracy,
                champion_pred=predict(champion, images) if champion is not None else None,
                champion=champion_ref,
                alpha=alpha,
                domain=domain,
            )
        )
    return out


def evaluate_images(model: ModelFile, images: NDArray[Any], labels: NDArray[Any]) -> dict[str, Any]:
    """Metrics on labelled (n, 28, 28) images (a dataset's holdout): as :func:`evaluate`."""
    return metrics.report(np.asarray(labels), predict(model, images))


def evaluate(model: ModelFile, ds: Dataset) -> dict[str, Any]:
    """Test-split metrics: accuracy, n, per_class (precision/recall/support), confusion."""
    pred = predict_test_split(model, ds)
    result = metrics.report(ds.y_test, pred)
    result["data_digest"] = ds.digest
    return result
