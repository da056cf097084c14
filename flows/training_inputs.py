"""The training flow's inputs, checked before any work, and the lineage a run records.

:func:`check_inputs` builds the settings from the flow's plain parameters and checks
every value (``flows.runner.run_training`` calls it before a Prefect server starts);
:func:`run_lineage` is what the published manifest says the model was made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows._common import RegistryLocation, io_retry_options
from softmax_core import settings
from softmax_core.errors import InvalidInputError, ModelNotFoundError

if TYPE_CHECKING:
    from flows.training import Champion
    from registry import DatasetManifest
    from softmax_core.labelled import Labelled
    from softmax_core.mnist import Dataset

FLOW_NAME = "training-pipeline"


@dataclass(frozen=True)
class Inputs:
    """The flow's parameters, checked and resolved: what :func:`check_inputs` returns."""

    source: str | None  # None: keras when installed, else the download
    cache_dir: Path
    location: RegistryLocation
    name: str
    alias: str  # of the champion: ``promote``, or the default alias with ``promote=None``
    io: dict[str, Any]  # ``with_options`` keywords of the I/O tasks (retries, delays)
    datasets: tuple[str, ...] = ()  # references of the users' datasets to train on
    inbox: Path | None = None  # a labelled folder synced into dataset ``inbox_dataset``


def check_inputs(
    *,
    source: str | None,
    registry: str | None,
    name: str,
    promote: str | None,
    features: str,
    endpoint_url: str | None,
    cache_dir: str | None,
    io_retries: int,
    io_retry_delay: float,
    datasets: list[str] | None = None,
    data_weight: int = settings.DATA_WEIGHT,
    min_dataset_accuracy: float = settings.DATASET_MIN_ACCURACY,
    inbox: str | None = None,
    inbox_dataset: str = settings.INBOX_DATASET,
) -> Inputs:
    """Build the settings and check every value the user gave, before any work or server.

    Raises InvalidNameError (a bad model, alias or dataset name, a malformed registry
    URI), DataNotFoundError (a source path that does not exist) or
    InvalidInputError. Opening the registry here does no I/O: it only parses the URI.
    """
    from registry.names import parse_dataset_ref, validate_name
    from softmax_core.mnist import resolve_source
    from softmax_core.preprocess import feature_steps

    built = settings.Settings.build(source=source, cache_dir=cache_dir, registry=registry)
    validate_name("model name", name)
    alias = validate_name("alias", promote or settings.ALIAS)
    feature_steps(features)
    io = io_retry_options(io_retries, io_retry_delay)
    refs = tuple(datasets or ())
    for ref in refs:
        parse_dataset_ref(ref)
    validate_name("dataset name", inbox_dataset)
    if not isinstance(data_weight, int) or isinstance(data_weight, bool) or data_weight < 1:
        raise InvalidInputError(f"data_weight={data_weight!r} is invalid; expected an integer >= 1")
    if not 0.0 <= min_dataset_accuracy <= 1.0:
        raise InvalidInputError(
            f"min_dataset_accuracy={min_dataset_accuracy!r} is invalid; expected a number in [0, 1]"
        )
    inbox_path = Path(inbox).expanduser() if inbox else None
    if inbox_path is not None and inbox_path.exists() and not inbox_path.is_dir():
        raise InvalidInputError(
            f"inbox {inbox_path} is a file; expected a labelled folder (subfolders 0 … 9)"
        )  # a missing inbox is nothing to sync yet (sync-inbox says so), not an error
    if built.source is not None:
        resolve_source(built.source)
    location = RegistryLocation(built.registry, endpoint_url, built.cache_dir)
    location.open().close()
    return Inputs(built.source, built.cache_dir, location, name, alias, io, refs, inbox_path)


def warm_start_weights(run: Inputs, champion: Champion | None) -> Any:
    """The champion's weights (a ModelFile) to start from; ModelNotFoundError when none."""
    if champion is None:
        raise ModelNotFoundError(
            f"--warm-start needs {run.name}@{run.alias} in {run.location.uri}, and there is none; "
            "run once without --warm-start to create a champion"
        )
    return champion.model


def run_lineage(
    ds: Dataset,
    champion: Champion | None,
    *,
    warm_start: bool,
    features: str,
    user_data: Sequence[tuple[DatasetManifest, Labelled]] = (),
    data_weight: int = settings.DATA_WEIGHT,
    train_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Where the model came from: this flow run, the data, the code, the champion, and the
    training parameters (``train_params``: epochs, seed, learning rate, ...)."""
    from prefect.runtime import flow_run

    from softmax_core.version import code_version

    return {
        "flow": FLOW_NAME,
        "flow_run_id": str(flow_run.id),
        "flow_run_name": flow_run.name,
        "data_digest": ds.digest,
        "data_source": ds.source,
        "datasets": [m.lineage() for m, _ in user_data],
        "data_weight": data_weight if user_data else None,
        "features": features,
        "train_params": dict(train_params or {}),
        "code_version": code_version(),
        "warm_start_from": champion.ref if warm_start and champion else None,
        "champion": champion.ref if champion else None,
    }
