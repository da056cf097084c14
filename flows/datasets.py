"""The training flow's data from users: labelled datasets, the inbox, "nothing new to learn".

- ``sync-inbox`` (I/O, retries on storage errors): a labelled inbox folder becomes a new
  version of its dataset when anything in it changed (``Registry.add_folder``); an inbox
  with no labelled image yet is not an error, only a log line.
- ``pull-datasets`` (I/O): the dataset versions a run trains on, verified, with arrays.
- :func:`nothing_new` compares what the run would be made from with what the champion
  was made from (``Lineage.fingerprint``: MNIST's digest, each dataset's content, the code,
  the features, the hyperparameters); the scheduled retraining trains nothing when they
  are equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import get_run_logger, task

from flows._common import IN_MEMORY, STORAGE_RETRY, open_registry
from softmax_core.errors import DataNotFoundError
from softmax_core.lineage import Lineage
from softmax_core.requests import Location

if TYPE_CHECKING:
    from registry import DatasetManifest, Manifest
    from softmax_core.labelled import Labelled
    from softmax_core.train import DatasetUse, Holdout

UserData = list[tuple["DatasetManifest", "Labelled"]]


def holdouts(user_data: UserData) -> list[Holdout]:
    """Each dataset's holdout split, named by the dataset: what the gate and the report
    page measure a user's domain on."""
    return [(m.name, *data.split("holdout")) for m, data in user_data]


def uses(user_data: UserData, *, can_reject: bool) -> tuple[DatasetUse, ...]:
    """What the run takes of each dataset (its train and holdout images; a 10-class
    model: their digits)."""
    from softmax_core.train import DatasetUse

    return tuple(DatasetUse.of(m.name, data, can_reject=can_reject) for m, data in user_data)


@task(name="sync-inbox", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def sync_inbox(location: Location, inbox: str, dataset: str) -> str | None:
    """The inbox (a folder, or an ``s3://`` prefix on the registry's endpoint) into dataset
    ``dataset``; the reference of its newest version, or None when the inbox holds no
    labelled image yet (and the dataset has no version)."""
    logger = get_run_logger()
    with open_registry(location) as reg:
        try:
            added, read = reg.add_folder(dataset, inbox)
        except DataNotFoundError as e:  # nothing labelled yet: train on what there is
            logger.info("inbox: %s", e)
            return reg.resolve_dataset(dataset).ref if reg.dataset_numbers(dataset) else None
    for rel, reason in read.failures:
        logger.warning("inbox: %s left out: %s", rel, reason)
    if read.scan.linked_folders:
        logger.warning("inbox: symlinked folders not walked: %s", read.scan.linked_folders)
    m, c = added.manifest, added.changes
    if added.created:
        logger.info(
            "inbox -> %s: %d images (%d new, %d relabelled)", m.ref, m.count, c.added, c.relabelled
        )
    else:
        logger.info("inbox unchanged: %s already holds all %d of its images", m.ref, len(read.data))
    return m.ref


@task(name="pull-datasets", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def pull_datasets(location: Location, refs: list[str]) -> UserData:
    """Each ``name`` (newest) or ``name:n`` with its verified arrays, in the order given."""
    logger = get_run_logger()
    out: UserData = []
    with open_registry(location) as reg:
        for ref in refs:
            manifest, data = reg.load_dataset(ref)
            logger.info(
                "%s: %d images, %d train / %d holdout (sha256:%s)",
                manifest.ref,
                manifest.count,
                manifest.train,
                manifest.holdout,
                manifest.digest,
            )
            out.append((manifest, data))
    return out


def nothing_new(champion: Manifest | None, lineage: Lineage) -> bool:
    """True when the champion was made from the same data, code, features and parameters."""
    return (
        champion is not None
        and Lineage.from_json(champion.lineage).fingerprint() == lineage.fingerprint()
    )
