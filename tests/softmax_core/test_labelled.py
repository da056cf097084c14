"""Labelled folders: what is refused, how images are prepared, splits that never leak, deltas."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from softmax_core import labelled
from softmax_core.errors import DataFormatError, DataNotFoundError, InvalidInputError
from softmax_core.labelled import Labelled, merge, read_folder, scan_folder
from softmax_core.scoring.decode import decode_items
from tests.npz_bombs import dataset_bomb, npy_header, peak_bytes
from tests.printed_digits import write_printed


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_printed(tmp_path_factory.mktemp("printed") / "p", 12, seed=3)


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_reads_every_image_with_its_label(printed: Path) -> None:
    read = read_folder(printed)
    assert len(read.data) == 120 and read.failures == [] and read.duplicates == 0
    assert read.data.class_counts() == {str(d): 12 for d in range(10)}
    for rel, y in zip(read.data.paths, read.data.labels, strict=True):
        assert rel.split("/")[0] == str(y)


def test_images_are_prepared_exactly_as_scoring_prepares_them(printed: Path) -> None:
    read = read_folder(printed)
    paths = [(str(printed / rel), None) for rel in read.data.paths[:20]]
    digits, errors, marks = decode_items(paths)
    assert errors == [None] * 20 and marks == [1] * 20
    expected = np.rint(np.clip(digits, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(read.data.images[:20], expected)


@pytest.mark.parametrize("bad", ["10", "x", "seven"])
def test_an_unknown_subfolder_is_refused_by_name(printed: Path, tmp_path: Path, bad: str) -> None:
    root = copy(printed, tmp_path / "d")
    (root / bad).mkdir()
    with pytest.raises(InvalidInputError, match=rf"/{bad}: unexpected folder.*0 … 9"):
        scan_folder(root)


def test_a_file_at_the_top_level_is_refused(printed: Path, tmp_path: Path) -> None:
    root = copy(printed, tmp_path / "d")
    shutil.copy(root / "3" / "p00000.png", root / "loose.png")
    with pytest.raises(InvalidInputError, match=r"loose\.png: unexpected file at the top level"):
        scan_folder(root)


def test_a_file_that_is_not_an_image_in_a_class_is_refused(printed: Path, tmp_path: Path) -> None:
    root = copy(printed, tmp_path / "d")
    (root / "4" / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match=r"4/notes.txt is not an image"):
        scan_folder(root)


def test_a_folder_without_class_subfolders_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no class subfolders"):
        read_folder(tmp_path / "empty")
    with pytest.raises(DataNotFoundError, match="missing does not exist; expected a folder"):
        read_folder(tmp_path / "missing")


def test_a_file_given_as_the_folder_is_bad_input_not_missing(tmp_path: Path) -> None:
    """A path that is there but of the wrong kind is exit 2, as ``score /dev/null`` is; only
    a path that is not there is "not found" (exit 3)."""
    (tmp_path / "ok.png").write_bytes(b"\x89PNG")
    for there in (tmp_path / "ok.png", Path("/dev/null")):
        with pytest.raises(InvalidInputError, match=f"{there} is not a folder; expected") as e:
            scan_folder(there)
        assert e.value.exit_code == 2


def test_an_empty_class_is_noted_and_only_empty_classes_refused(
    printed: Path, tmp_path: Path
) -> None:
    root = copy(printed, tmp_path / "d")
    shutil.rmtree(root / "7")
    (root / "7").mkdir()
    read = read_folder(root)
    assert read.scan.empty_classes == ["7"] and len(read.data) == 108
    (tmp_path / "none" / "1").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="every class subfolder is empty"):
        read_folder(tmp_path / "none")


def test_broken_images_are_reported_and_the_rest_go_on(printed: Path, tmp_path: Path) -> None:
    root = copy(printed, tmp_path / "d")
    (root / "2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "5" / "blank.png").write_bytes(_png(np.zeros((28, 28), np.uint8)))
    read = read_folder(root)
    assert len(read.data) == 120
    reasons = dict(read.failures)
    assert set(reasons) == {"2/broken.png", "5/blank.png"}
    assert "not an image" in reasons["2/broken.png"] and "blank" in reasons["5/blank.png"]


@pytest.mark.parametrize("folder", ["7", "not-a-digit"])
def test_an_image_of_several_marks_is_reported_and_the_rest_go_on(
    printed: Path, tmp_path: Path, folder: str
) -> None:
    """A 2 beside a 7 in 7/ was added as its 2 labelled 7 (the preparation keeps the mark
    nearest the centre); score rejects it as ``not one digit (2 separate marks)``, and so
    does a labelled folder: a failure row, as a blank page, in not-a-digit/ too (its 28x28
    would be one digit, learned as "not a digit")."""
    root = copy(printed, tmp_path / "d")
    two, seven = (np.asarray(Image.open(printed / d / "p00000.png").convert("L")) for d in "27")
    page = np.full((max(two.shape[0], seven.shape[0]), 2 * (two.shape[1] + seven.shape[1])), 255)
    page[: two.shape[0], : two.shape[1]] = two
    page[: seven.shape[0], page.shape[1] - seven.shape[1] :] = seven  # apart, as on a form
    (root / folder).mkdir(exist_ok=True)
    (root / folder / "27.png").write_bytes(_png(page.astype(np.uint8)))
    read = read_folder(root)
    assert read.failures == [(f"{folder}/27.png", "not one digit (2 separate marks)")]
    assert len(read.data) == 120 and f"{folder}/27.png" not in read.data.paths.tolist()
    assert len(read.data.images) == 120


def test_only_broken_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d" / "3").mkdir(parents=True)
    (tmp_path / "d" / "3" / "a.png").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match=r"none of the 1 images .* could be read"):
        read_folder(tmp_path / "d")


def test_a_review_queue_is_a_labelled_folder(printed: Path, tmp_path: Path) -> None:
    root = tmp_path / "queue"
    (root / "unlabelled").mkdir(parents=True)
    shutil.copy(printed / "1" / "p00000.png", root / "unlabelled" / "x__pred7__p0.41.png")
    (root / "index.html").write_text("<html></html>")
    (root / "6").mkdir()
    shutil.copy(printed / "6" / "p00000.png", root / "6" / "y__pred5__p0.30.png")
    read = read_folder(root)
    assert read.data.labels.tolist() == [6] and len(read.scan.unlabelled) == 1


def test_one_picture_under_two_labels_is_refused(printed: Path, tmp_path: Path) -> None:
    root = copy(printed, tmp_path / "d")
    shutil.copy(root / "3" / "p00000.png", root / "8" / "again.png")
    with pytest.raises(InvalidInputError, match="same image under two labels"):
        read_folder(root)


def test_one_picture_in_other_file_bytes_under_two_labels_is_refused(
    printed: Path, tmp_path: Path
) -> None:
    """The same picture saved twice (other compression: other bytes, other sha256) in 3/
    and 8/ was added, and the model trained on it read that 3 at p3 0.55 / p8 0.45: the
    prepared pixels are compared too, and it is refused as the same bytes are."""
    root = copy(printed, tmp_path / "d")
    pixels = np.asarray(Image.open(root / "3" / "p00000.png"))
    (root / "3" / "x.png").write_bytes(_png(pixels, compress_level=9))
    (root / "8" / "x_copy.png").write_bytes(_png(pixels, compress_level=1))
    with pytest.raises(
        InvalidInputError,
        match=r"^8/x_copy\.png and 3/(p00000|x)\.png are the same image under two labels "
        r"\(8 and 3\); keep it in one class folder$",
    ):
        read_folder(root)


def test_a_picture_in_not_a_digit_and_a_class_folder_names_both_classes(
    printed: Path, tmp_path: Path
) -> None:
    """The refusal names the classes as the user wrote them: ``not-a-digit``, not 10."""
    root = copy(printed, tmp_path / "d")
    (root / "not-a-digit").mkdir()
    shutil.copy(root / "5" / "p00000.png", root / "not-a-digit" / "again.png")
    with pytest.raises(InvalidInputError, match=r"two labels \(not-a-digit and 5\)"):
        read_folder(root)


def test_the_same_file_twice_is_one_item(printed: Path, tmp_path: Path) -> None:
    root = copy(printed, tmp_path / "d")
    shutil.copy(root / "3" / "p00000.png", root / "3" / "copy.png")
    read = read_folder(root)
    assert len(read.data) == 120 and read.duplicates == 1


def _png(pixels: np.ndarray, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **options)
    return buf.getvalue()


def test_the_same_picture_under_other_names_and_bytes_lands_in_one_split(
    printed: Path, tmp_path: Path
) -> None:
    """Other names, other file bytes (compression, metadata), the same pixels: one split."""
    root = copy(printed, tmp_path / "d")
    originals = sorted((root / "4").glob("*.png"))
    for i, p in enumerate(originals):
        pixels = np.asarray(Image.open(p))
        (root / "4" / f"twin{i}.png").write_bytes(_png(pixels, compress_level=0))
    read = read_folder(root)
    assert len(read.data) == 120 + len(originals)  # different bytes: different items
    split = dict(zip(read.data.paths.tolist(), read.data.holdout.tolist(), strict=True))
    for i, p in enumerate(originals):
        assert split[f"4/twin{i}.png"] == split[f"4/{p.name}"]


def test_splits_never_change_as_the_dataset_grows(tmp_path: Path) -> None:
    root = write_printed(tmp_path / "d", 30, seed=5)
    before = read_folder(root).data
    write_printed(root, 30, seed=6, start=30)
    after = read_folder(root).data
    merged, changes = merge(before, after)
    assert changes.added == 300 and changes.unchanged == 300
    was = dict(zip(before.sha256.tolist(), before.holdout.tolist(), strict=True))
    now = dict(zip(merged.sha256.tolist(), merged.holdout.tolist(), strict=True))
    assert {s: now[s] for s in was} == was
    assert 0.14 < merged.holdout.mean() < 0.26  # about HOLDOUT_FRACTION of 600 pictures


def test_merge_is_a_union_where_the_new_label_wins(printed: Path, tmp_path: Path) -> None:
    first = read_folder(printed).data
    root = copy(printed, tmp_path / "d")
    (root / "5" / "p00000.png").rename(root / "6" / "moved.png")  # relabelled 5 -> 6
    (root / "9" / "p00001.png").unlink()  # gone from the folder: kept in the union
    write_printed(tmp_path / "extra", 1, seed=9)
    shutil.copy(tmp_path / "extra" / "2" / "p00000.png", root / "2" / "new.png")
    merged, changes = merge(first, read_folder(root).data)
    assert changes.to_dict() == {"added": 1, "relabelled": 1, "unchanged": 118, "kept": 1}
    assert len(merged) == 121
    moved = merged.paths.tolist().index("6/moved.png")
    assert merged.labels[moved] == 6
    assert merged.content_digest() != first.content_digest()
    again, none = merge(merged, read_folder(root).data)
    assert none.added == none.relabelled == 0 and again.content_digest() == merged.content_digest()


def test_blob_round_trip_and_refusals(printed: Path) -> None:
    data = read_folder(printed).data
    back = Labelled.from_bytes(data.to_bytes(), origin="t")
    for k in ("images", "labels", "sha256", "paths"):
        np.testing.assert_array_equal(getattr(back, k), getattr(data, k))
    with pytest.raises(DataFormatError, match="not a dataset blob"):
        Labelled.from_bytes(b"junk", origin="t")
    buf = io.BytesIO()
    np.savez(buf, images=np.zeros((1, 28, 28), np.uint8), labels=np.array([3], np.uint8),
             sha256=np.array(["a" * 64]), paths=np.array([object()], dtype=object))  # fmt: skip
    with pytest.raises(DataFormatError):  # an object array would need a pickle: refused
        Labelled.from_bytes(buf.getvalue(), origin="t")
    bad = Labelled(data.images, data.labels + 10, data.sha256, data.paths)
    with pytest.raises(DataFormatError, match="unexpected shapes or types"):
        Labelled.from_bytes(bad.to_bytes(), origin="t")


# --- hostile blobs: refused from their headers, before anything large is allocated -------

BOMB_PEAK = 64 * 1024 * 1024  # what refusing a bomb may hold at once (it is 1.5 GB inflated)


def test_a_decompression_bomb_is_refused_before_it_is_inflated() -> None:
    """1.5 MB of deflated zeros declaring 2,000,000 images (1.5 GB): one DataFormatError
    line, and no more memory than a few MB while refusing it."""
    bomb = dataset_bomb()
    assert len(bomb) < 2_000_000

    def load() -> None:
        with pytest.raises(DataFormatError, match="over the cap") as info:
            Labelled.from_bytes(bomb, origin="printed:2")
        assert str(info.value).startswith("printed:2: ") and "\n" not in str(info.value)

    assert peak_bytes(load) < BOMB_PEAK


def test_arrays_over_the_cap_together_are_refused_before_they_are_read() -> None:
    """Each member under the cap, all four over it (the sha256 strings weigh 256 bytes an
    image): refused on their declared sizes, nothing read."""
    n = 260_000  # images 204 MB + labels + sha256 67 MB + paths: 272 MB, over 256 MiB
    bomb = dataset_bomb(n, full=True)

    def load() -> None:
        with pytest.raises(DataFormatError, match=r"arrays declare 271,700,000 bytes, over"):
            Labelled.from_bytes(bomb, origin="t")

    assert peak_bytes(load) < BOMB_PEAK


def test_a_member_that_inflates_past_the_cap_is_refused_from_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A header declaring 10 images, followed by 10 MB of zeros (the cap made 8 MiB): the
    archive's own size of the member is over the cap, so not even its header is read."""
    from softmax_core import settings

    monkeypatch.setattr(settings, "MAX_DATASET_BYTES", 8 * 1024 * 1024)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as f:
            f.write(npy_header((10, 28, 28), "|u1"))
            for _ in range(10):
                f.write(bytes(1 << 20))
        for name, shape, descr in (("labels", (10,), "|u1"), ("sha256", (10,), "<U64")):
            zf.writestr(
                f"{name}.npy", npy_header(shape, descr) + bytes(10 * np.dtype(descr).itemsize)
            )
        zf.writestr("paths.npy", npy_header((10,), "<U4") + bytes(160))

    def load() -> None:
        with pytest.raises(DataFormatError, match=r"images\.npy declares 10,485,8\d\d bytes"):
            Labelled.from_bytes(buf.getvalue(), origin="t")

    assert peak_bytes(load) < BOMB_PEAK


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ({"images": ((10**9, 28, 28), "|u1")}, "too large"),  # declared, never there
        ({"images": ((1000, 28, 28), "|u1")}, "more than it holds"),
        ({"images": ((10, 28, 28), "<f8")}, "unexpected shapes or types"),
        ({"images": ((10, 32, 32), "|u1")}, "unexpected shapes or types"),
        ({"labels": ((11,), "|u1")}, "unexpected shapes or types"),
        ({"paths": ((10,), "<i8")}, "unexpected shapes or types"),
    ],
    ids=["huge-shape", "truncated", "float-images", "32x32", "count-mismatch", "int-paths"],
)
def test_headers_are_checked_before_any_array_is_read(
    members: dict[str, tuple[tuple[int, ...], str]], match: str
) -> None:
    layout = {
        "images": ((10, 28, 28), "|u1"),
        "labels": ((10,), "|u1"),
        "sha256": ((10,), "<U64"),
        "paths": ((10,), "<U4"),
        **members,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (shape, descr) in layout.items():
            size = int(np.prod(shape)) * np.dtype(descr).itemsize
            held = size if name != "images" or shape[0] == 10 else 16  # what it holds
            zf.writestr(f"{name}.npy", npy_header(shape, descr) + bytes(held))
    with pytest.raises(DataFormatError, match=match):
        Labelled.from_bytes(buf.getvalue(), origin="t")


def test_a_dataset_over_the_cap_is_never_written(
    printed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What from_bytes would refuse, to_bytes refuses to make (exit 2, before any write)."""
    from softmax_core import settings

    data = read_folder(printed).data
    monkeypatch.setattr(settings, "MAX_DATASET_BYTES", data.nbytes - 1)
    with pytest.raises(InvalidInputError, match=r"a dataset of 120 images takes .* over the cap"):
        data.to_bytes()
    monkeypatch.setattr(settings, "MAX_DATASET_BYTES", data.nbytes)
    assert len(Labelled.from_bytes(data.to_bytes(), origin="t")) == 120


def test_split_rejects_unknown_names(printed: Path) -> None:
    data = read_folder(printed).data
    tx, ty = data.split("train")
    _, hy = data.split("holdout")
    assert len(ty) + len(hy) == len(data) and tx.shape[1:] == (28, 28)
    with pytest.raises(InvalidInputError, match="'test' is unknown"):
        data.split("test")
    assert labelled.empty().class_counts()["0"] == 0


# --- files that are not plain images (issue 27, items 5 and 6) -------------------------------


@pytest.mark.timeout(60)  # a read that hangs fails the test instead of the suite
def test_fifos_devices_and_broken_links_are_failure_rows(printed: Path, tmp_path: Path) -> None:
    """A FIFO, symlinks to /dev/zero and /dev/urandom, a dangling symlink: failure rows, no
    hang, no crash; symlinks are followed inside the folder only; a symlinked folder is
    named, not walked."""
    import os

    root = copy(printed, tmp_path / "d")
    outside = tmp_path / "private.png"
    shutil.copy(next((root / "7").iterdir()), outside)
    os.mkfifo(root / "3" / "fifo.png")
    (root / "3" / "zero.png").symlink_to("/dev/zero")
    (root / "3" / "random.png").symlink_to("/dev/urandom")
    (root / "3" / "gone.png").symlink_to(tmp_path / "gone.png")
    (root / "7" / "secret.png").symlink_to(outside)
    (root / "7" / "again.png").symlink_to(next(p for p in (root / "7").iterdir()))
    (root / "8" / "more").symlink_to(tmp_path, target_is_directory=True)
    read = read_folder(root)
    reasons = dict(read.failures)
    assert reasons == {
        "3/fifo.png": "unreadable: not a regular file",
        "3/zero.png": "unreadable: not a regular file",
        "3/random.png": "unreadable: not a regular file",
        "3/gone.png": "unreadable: broken symlink",
        "7/secret.png": "unreadable: a symlink out of the labelled folder (not followed)",
    }
    assert len(read.data) == 120 and read.duplicates == 1  # again.png: followed, inside
    assert read.scan.linked_folders == ["8/more"]


def test_a_file_over_the_size_cap_is_a_failure_row(
    printed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softmax_core import settings

    root = copy(printed, tmp_path / "d")
    (root / "4" / "huge.png").write_bytes(b"\0" * 65536)
    monkeypatch.setattr(settings, "MAX_IMAGE_BYTES", 32768)  # the printed digits are ~5 KB
    reasons = dict(read_folder(root).failures)
    assert reasons == {"4/huge.png": "over size cap: 65,536 bytes, over the cap of 32,768"}


def test_a_not_a_digit_folder_is_the_class_10(printed: Path, tmp_path: Path) -> None:
    from softmax_core.negatives import negatives

    root = copy(printed, tmp_path / "d")
    (root / "not-a-digit" / "logos").mkdir(parents=True)
    for i, image in enumerate(negatives(5, seed=1)):
        Image.fromarray(255 - image).save(root / "not-a-digit" / "logos" / f"n{i}.png")
    read = read_folder(root)
    assert read.failures == [] and len(read.data) == 125
    assert read.data.class_counts() == {**{str(d): 12 for d in range(10)}, "not-a-digit": 5}
    junk = read.data.labels == 10
    assert sorted(read.data.paths[junk]) == [f"not-a-digit/logos/n{i}.png" for i in range(5)]
    back = Labelled.from_bytes(read.data.to_bytes(), origin="t")
    np.testing.assert_array_equal(back.labels, read.data.labels)
    # a folder of digits only keeps its counts as they were (no "not-a-digit": 0)
    assert "not-a-digit" not in read_folder(printed).data.class_counts()
