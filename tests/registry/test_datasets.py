"""Datasets in the registry: the models' protocol for data, on both stores (local and S3)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from registry import Registry, layout
from softmax_core.errors import (
    CorruptObjectError,
    DataFormatError,
    IntegrityError,
    InvalidNameError,
    ModelNotFoundError,
)
from softmax_core.labelled import Labelled, read_folder
from tests.cli_invoke import invoke
from tests.npz_bombs import dataset_bomb, peak_bytes
from tests.printed_digits import write_printed
from tests.registry.helpers import make_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_printed(tmp_path_factory.mktemp("ds") / "printed", 6, seed=11)


def test_add_then_load_verified(reg: Registry, folder: Path) -> None:
    added, read = reg.add_folder("printed", folder)
    m = added.manifest
    assert added.created and m.ref == "printed:1" and m.previous is None
    assert m.count == 60 and m.train + m.holdout == 60
    assert m.classes == {str(d): 6 for d in range(10)}
    assert reg.store.head(m.blob_key) is not None
    got, data = reg.load_dataset("printed")
    assert got == m
    np.testing.assert_array_equal(data.images, read.data.images)
    assert reg.datasets() == ["printed"] and reg.models() == []
    doc = json.loads(reg.store.get(layout.dataset_manifest_key("printed", 1))[0])
    assert doc["schema"] == "softmax-pipe/dataset@1" and doc["blob"] == m.blob_key


def test_an_unchanged_folder_makes_no_version(reg: Registry, folder: Path) -> None:
    reg.add_folder("printed", folder)
    before = sorted(reg.store.list_keys(""))
    again, _ = reg.add_folder("printed", folder)
    assert not again.created and again.manifest.version == 1
    assert again.changes.unchanged == 60 and again.changes.added == 0
    assert sorted(reg.store.list_keys("")) == before  # nothing written


def test_a_grown_and_corrected_folder_is_a_new_version_with_the_union(
    reg: Registry, folder: Path, tmp_path: Path
) -> None:
    reg.add_folder("printed", folder)
    grown = tmp_path / "grown"
    shutil.copytree(folder, grown)
    write_printed(grown, 2, seed=12, start=100)  # 20 new images
    (grown / "1" / "p00000.png").rename(grown / "7" / "was-a-one.png")  # relabelled
    added, _ = reg.add_folder("printed", grown)
    m = added.manifest
    assert added.created and m.ref == "printed:2" and m.previous == 1
    assert m.changes == {"added": 20, "relabelled": 1, "unchanged": 59, "kept": 0}
    assert m.count == 80 and m.classes["1"] == 7 and m.classes["7"] == 9
    assert [v.version for v in reg.dataset_versions("printed")] == [1, 2]
    assert reg.resolve_dataset("printed:1").count == 60  # the old version is still there
    _, v1 = reg.load_dataset("printed:1")
    _, v2 = reg.load_dataset("printed:2")
    split1 = dict(zip(v1.sha256.tolist(), v1.holdout.tolist(), strict=True))
    split2 = dict(zip(v2.sha256.tolist(), v2.holdout.tolist(), strict=True))
    assert {s: split2[s] for s in split1} == split1  # no image changed split


def test_a_picture_the_version_holds_under_another_label_is_refused(
    reg: Registry, folder: Path, tmp_path: Path
) -> None:
    """The same picture in other file bytes under another label, added later from another
    folder, is refused as it is within one folder (and nothing is written); the line says
    the other one is in the dataset's version, not in the folder, and how to relabel it:
    the same file bytes under the new label, which then relabel."""
    from PIL import Image

    from softmax_core.errors import InvalidInputError

    reg.add_folder("printed", folder)
    later = tmp_path / "later"
    (later / "8").mkdir(parents=True)
    Image.open(folder / "3" / "p00000.png").save(later / "8" / "x_copy.png", compress_level=1)
    before = sorted(reg.store.list_keys(""))
    with pytest.raises(
        InvalidInputError,
        match=r"^8/x_copy\.png is the same image as 3/p00000\.png in printed:1, under another "
        r"label \(8; printed:1 has it as 3\); to relabel it, add that file itself \(the same "
        r"bytes\) under 8/, else take 8/x_copy\.png out$",
    ):
        reg.add_folder("printed", later)
    assert sorted(reg.store.list_keys("")) == before
    (later / "8" / "x_copy.png").unlink()
    shutil.copy(folder / "8" / "p00000.png", later / "8" / "x.png")  # its own label: fine
    assert reg.add_folder("printed", later)[0].manifest.version == 1  # the same file: no news
    relabel = tmp_path / "relabel"  # what the refusal says: the same bytes relabel
    (relabel / "8").mkdir(parents=True)
    shutil.copy(folder / "3" / "p00000.png", relabel / "8" / "it.png")
    assert reg.add_folder("printed", relabel)[0].changes.relabelled == 1


def test_concurrent_adds_never_share_a_version(
    registry_uri: str, tmp_path: Path, folder: Path
) -> None:
    data = read_folder(folder).data
    parts = [
        Labelled(data.images[i::4], data.labels[i::4], data.sha256[i::4], data.paths[i::4])
        for i in range(4)
    ]

    def add(part: Labelled) -> int:
        with Registry.open(registry_uri, cache_dir=tmp_path / f"c{id(part)}") as r:
            return r.add_dataset("racy", part).manifest.version

    with ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(add, parts))
    with Registry.open(registry_uri, cache_dir=tmp_path / "check") as r:
        numbers = r.dataset_numbers("racy")
        _, newest = r.load_dataset("racy")
    # no version is lost, and the newest holds every image of every add (an add that
    # found others' versions after its own read adds the union once more)
    assert numbers == list(range(1, len(numbers) + 1)) and set(versions) <= set(numbers)
    assert sorted(newest.sha256.tolist()) == sorted(data.sha256.tolist())


def test_a_tampered_blob_is_refused(reg: Registry, folder: Path) -> None:
    m = reg.add_folder("printed", folder)[0].manifest
    data = read_folder(folder).data
    forged = Labelled(data.images, (data.labels + 1) % 10, data.sha256, data.paths)
    reg.store.put(m.blob_key, forged.to_bytes())  # a well-formed blob, wrong labels
    with pytest.raises(IntegrityError, match=f"expected {m.digest}"):
        reg.load_dataset("printed")
    assert not reg.blob_cache_path(m.digest).exists()


def test_a_decompression_bomb_among_the_versions_is_refused_before_it_is_inflated(
    reg: Registry, folder: Path
) -> None:
    """A writer of datasets/ and blobs/ claims printed:2 for a 1.5 MB blob that inflates to
    1.5 GB: pulling it (dataset pull, training, a report) is one DataFormatError (exit 2)
    after its sha256 checks out, and never allocates the bomb."""
    v1 = reg.add_folder("printed", folder)[0].manifest
    bomb = dataset_bomb()
    digest = hashlib.sha256(bomb).hexdigest()
    reg.store.put(layout.blob_key(digest), bomb)
    forged = dataclasses.replace(v1, version=2, digest=digest, size=len(bomb), previous=1)
    reg.store.put(layout.dataset_manifest_key("printed", 2), forged.to_bytes())

    def load() -> None:
        with pytest.raises(DataFormatError, match=r"^printed:2 \(.*\): images\.npy declares"):
            reg.load_dataset("printed")

    assert peak_bytes(load) < 64 * 1024 * 1024
    code, out, err = invoke(
        "dataset", "pull", "printed:2", "--registry", reg.store.uri, "--cache-dir", reg.cache_dir
    )
    assert (code, out) == (2, "") and err.startswith("error: printed:2 (")
    assert "over the cap" in err and len(err.strip().splitlines()) == 1
    assert len(reg.load_dataset("printed:1")[1]) == 60  # the good version still loads


def test_a_tampered_cache_is_fetched_again(reg: Registry, folder: Path) -> None:
    m = reg.add_folder("printed", folder)[0].manifest
    reg.load_dataset("printed")
    reg.blob_cache_path(m.digest).write_bytes(b"changed on disk")
    _, data = reg.load_dataset("printed")
    assert len(data) == 60


def test_gc_keeps_every_blob_a_dataset_version_refers_to(
    reg: Registry, folder: Path, tmp_path: Path
) -> None:
    v1 = reg.add_folder("printed", folder)[0].manifest
    grown = tmp_path / "grown"
    shutil.copytree(folder, grown)
    write_printed(grown, 1, seed=13, start=200)
    v2 = reg.add_folder("printed", grown)[0].manifest
    orphan = make_model(7).to_bytes()
    orphan_key = layout.blob_key(hashlib.sha256(orphan).hexdigest())
    reg.store.put(orphan_key, orphan)
    assert reg.gc(grace_seconds=0) == [orphan_key]
    assert reg.store.head(v1.blob_key) is not None and reg.store.head(v2.blob_key) is not None
    reg.store.put(layout.dataset_manifest_key("printed", 2), b"{damaged")
    with pytest.raises(CorruptObjectError):
        reg.gc(grace_seconds=0)  # cannot tell what it refers to: delete nothing


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", "-rf", "x y"])
def test_names_that_could_escape_are_refused(reg: Registry, folder: Path, name: str) -> None:
    with pytest.raises(InvalidNameError):
        reg.add_folder(name, folder)
    with pytest.raises(InvalidNameError):
        reg.resolve_dataset(name)
    assert list(reg.store.list_keys("")) == []


def test_unknown_datasets_and_versions(reg: Registry, folder: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no dataset named 'nope'"):
        reg.load_dataset("nope")
    reg.add_folder("printed", folder)
    with pytest.raises(ModelNotFoundError, match=r"has no version 5.*it has version 1"):
        reg.resolve_dataset("printed:5")
    with pytest.raises(InvalidNameError, match="datasets have versions only"):
        reg.resolve_dataset("printed@champion")
