"""softmax_core.scoring as a library: discovery, decoding, output files, summary, flow tasks."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from softmax_core import images, scoring, settings
from softmax_core.errors import DataNotFoundError, InvalidInputError, StorageError
from softmax_core.mnist import Dataset
from softmax_core.model import Model
from softmax_core.requests import Output, Performance, Review, ScoringRequest
from tests import scoring_data as sd


def request(
    path: Path,
    output: Path | None,
    *,
    batch_size: int = settings.SCORE_BATCH_SIZE,
    review: Review | None = None,
) -> ScoringRequest:
    """What ``softmax-pipe score PATH -o OUTPUT`` builds, scoring in this process."""
    return ScoringRequest(
        str(path),
        output=Output(None if output is None else str(output)),
        performance=Performance(workers=1, batch_size=batch_size),
        review=review or Review(),
    )


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


@pytest.fixture(scope="module")
def model(mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Model:
    return Model.load(sd.trained_model(mnist_dir, session_cache, tmp_path_factory))


@pytest.fixture
def folder(ds: Dataset, tmp_path: Path) -> Path:
    """30 digits in three sub-folders, a transformed slice, broken files, a text file."""
    root = tmp_path / "images"
    sd.write_pngs(root / "mnist", ds.x_test[:30], ds.y_test[:30])
    sd.write_transformed(root / "transformed", ds.x_test, ds.y_test, range(30, 40))
    sd.write_broken(root / "bad", np.asarray(ds.x_test[0]))
    (root / "README.txt").write_text("not an image")
    return root


# --- discovery --------------------------------------------------------------------------


def test_discovery_order_problems_and_skips(folder: Path) -> None:
    d = scoring.Discovery(folder)
    items = list(d)
    rels = [it.rel for it in items]
    assert rels == sorted(rels, key=lambda r: r.split("/"))  # component-wise sorted
    assert len(items) == 30 + 60 + 7
    assert d.skipped == 1 and d.skipped_by_ext == {".txt": 1}
    problems = {it.rel: it.problem for it in items if it.problem}
    assert problems == {
        "bad/dangling.png": "unreadable: broken symlink",
        "bad/pipe.png": "unreadable: not a regular file",
    }
    assert list(d) == items  # iterable again, same order, counters reset
    assert d.skipped == 1
    assert scoring.count_images(folder) == len(items)


def test_a_real_folder_is_walked_under_its_name_and_a_link_to_it_is_skipped(
    ds: Dataset, tmp_path: Path
) -> None:
    """`latest -> scans` sorts first: the rows were `latest/a.png` and the real folder was
    the one skipped, as a loop. The link to a folder inside PATH is the one skipped; a link
    out of PATH is followed, once; a link into a hidden folder (never walked) is followed."""
    root = tmp_path / "r5"
    (root / "scans").mkdir(parents=True)
    (root / "scans" / "a.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[0])))
    (root / "latest").symlink_to("scans")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "h.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[1])))
    (root / "from-hidden").symlink_to(".hidden")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[2])))
    (root / "elsewhere").symlink_to(outside)
    (root / "elsewhere-again").symlink_to(outside)
    d = scoring.Discovery(root)
    rels = [it.rel for it in d]
    assert rels == ["elsewhere/o.png", "from-hidden/h.png", "scans/a.png"]
    assert d.loops == 2  # latest, elsewhere-again
    assert [it.rel for it in scoring.Discovery(root / "latest")] == ["a.png"]  # PATH a link


def test_a_file_named_explicitly_is_scored_whatever_its_extension(
    ds: Dataset, model: Model, tmp_path: Path
) -> None:
    path = tmp_path / "digit.dat"
    path.write_bytes(sd.png_bytes(np.asarray(ds.x_test[0])))
    out = tmp_path / "out.csv"
    summary = scoring.score(request(path, out), model)
    (row,) = sd.read_rows(out.read_text())
    assert row["path"] == "digit.dat" and row["label"] == str(ds.y_test[0])
    assert summary.scored == 1 and summary.failed == 0


def test_a_symlink_loop_has_one_reason_in_score_and_in_dataset_add(
    ds: Dataset, tmp_path: Path
) -> None:
    """A link to itself and two links to each other: ``symlink loop`` in a score row and
    in ``dataset add``'s failures alike (once "not a regular file" in one and the
    system's "Too many levels of symbolic links" in the other)."""
    from softmax_core.labelled import read_folder

    root = tmp_path / "labelled"
    (root / "3").mkdir(parents=True)
    (root / "3" / "digit.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[0])))
    (root / "3" / "self.png").symlink_to("self.png")
    (root / "3" / "a.png").symlink_to("b.png")
    (root / "3" / "b.png").symlink_to("a.png")
    loops = {f"3/{n}.png": f"unreadable: {images.LOOPED_LINK}" for n in ("self", "a", "b")}
    problems = {it.rel: it.problem for it in scoring.Discovery(root) if it.problem}
    assert problems == loops
    assert dict(read_folder(root).failures) == loops
    assert images.LOOPED_LINK == "symlink loop"


def test_missing_and_special_paths(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):  # exit 3, as everywhere
        scoring.Discovery(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InvalidInputError, match="not a regular file or a folder"):
        scoring.Discovery(tmp_path / "fifo")


def test_file_names_that_are_not_utf8(ds: Dataset, model: Model, tmp_path: Path) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    raw = os.fsencode(root) + b'/caf\xe9,"x".png'  # latin-1 byte, comma and quotes
    with open(raw, "wb") as f:
        f.write(sd.png_bytes(np.asarray(ds.x_test[0])))
    out = tmp_path / "out.csv"
    scoring.score(request(root, out), model)
    (row,) = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert row["path"] == 'caf\\xe9,"x".png' and row["status"] == "ok"


def test_folder_without_images(tmp_path: Path, model: Model) -> None:
    (tmp_path / "a.txt").write_text("x")
    out = tmp_path / "out.csv"
    with pytest.raises(DataNotFoundError, match=r"no images in .*: 1 other file skipped;"):
        scoring.score(request(tmp_path, out), model)
    assert not out.exists()


# --- decoding ---------------------------------------------------------------------------


def test_decode_items_keeps_positions_and_matches_read_digit(folder: Path) -> None:
    items = list(scoring.Discovery(folder))
    digits, errors, marks = scoring.decode_items([(it.path, it.problem) for it in items])
    assert [m for m, e in zip(marks, errors, strict=True) if e is None] == [1] * (30 + 60)
    ok = [it for it, e in zip(items, errors, strict=True) if e is None]
    assert len(digits) == len(ok) == 30 + 60
    for it, digit in zip(ok, digits, strict=True):
        assert np.array_equal(digit, images.read_digit(it.path)), it.rel  # stack == one by one
    kinds = {it.rel: e.split(":")[0] for it, e in zip(items, errors, strict=True) if e}
    assert kinds == {f"bad/{name}": kind for name, kind in sd.BROKEN_KINDS.items()}


def _png_one_row_short(d: np.ndarray) -> bytes:
    """An 8-bit gray PNG whose IHDR claims one row more than its data holds (28 wide, 29
    high, 28 rows), the last IDAT holding only the zlib checksum: Pillow refuses it as
    truncated (issue 27, item 9)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    z = zlib.compress(b"".join(b"\0" + row.tobytes() for row in d), 9)
    ihdr = struct.pack(">IIBBBBB", 28, 29, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", z[:-4]) + chunk(b"IDAT", z[-4:])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_a_png_with_a_row_missing_is_an_error_row_whatever_its_name(
    ds: Dataset, model: Model, tmp_path: Path
) -> None:
    root = tmp_path / "short"
    root.mkdir()
    data = _png_one_row_short(np.asarray(ds.x_test[0]))
    for name in ("short.png", "short.jpg", "short.PNG"):
        (root / name).write_bytes(data)
    (root / "good.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[0])))
    out = tmp_path / "out.csv"
    request = ScoringRequest(str(root), output=Output(str(out)), performance=Performance(workers=1))
    summary = scoring.score(request, model)
    rows = {r["path"]: r for r in sd.read_rows(out.read_text())}
    assert rows["good.png"]["status"] == "ok" and summary.failed == 3
    for name in ("short.png", "short.jpg", "short.PNG"):
        assert rows[name]["status"] == "error" and rows[name]["label"] == "", rows[name]
        assert (
            rows[name]["error"]
            == "corrupt: cannot decode: image file is truncated (0 bytes not processed)"
        )


def test_two_files_never_share_a_row_name(ds: Dataset, model: Model, tmp_path: Path) -> None:
    """A name holding a newline and one holding a backslash and an ``n`` are two rows, each
    named as escaping.unambiguous shows it, in CSV and JSON Lines alike."""
    root = tmp_path / "names"
    root.mkdir()
    for i, name in enumerate(["a\nb.png", "a\\nb.png", "c.png"]):
        (root / name).write_bytes(sd.png_bytes(np.asarray(ds.x_test[i])))
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        request = ScoringRequest(
            str(root), output=Output(str(out), format=fmt), performance=Performance(workers=1)
        )
        assert scoring.score(request, model).total == 3
        text = out.read_text()
        rows = (
            [json.loads(line) for line in text.splitlines()]
            if fmt == "jsonl"
            else sd.read_rows(text)
        )
        assert sorted(r["path"] for r in rows) == ["a\\\\nb.png", "a\\nb.png", "c.png"], rows


def test_a_batch_of_plain_gray_files_gives_the_bytes_of_the_per_image_path(
    ds: Dataset, tmp_path: Path
) -> None:
    """The raw-bytes stack (one shape, all 8-bit gray: the early return) and a mixed batch
    (gray, RGB and a palette of the same shape, a failure, a large image) give exactly
    the digits of ``gray_pixels`` + ``normalize`` one image at a time."""
    from PIL import Image

    from softmax_core import normalize

    paths = []
    for i in range(12):
        paths.append(tmp_path / f"g{i}.png")
        Image.fromarray(ds.x_test[i]).save(paths[-1])
    plain = [(str(p), None) for p in paths]
    mixed = list(plain)
    Image.fromarray(ds.x_test[20]).convert("RGB").save(tmp_path / "rgb.png")
    Image.fromarray(ds.x_test[21]).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(np.kron(ds.x_test[22], np.ones((6, 6), np.uint8))).save(tmp_path / "big.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for name in ("rgb.png", "bad.png", "pal.png", "big.png"):
        mixed.insert(3, (str(tmp_path / name), None))
    for pairs in (plain, mixed):
        digits, errors, _ = scoring.decode_items(pairs)
        ok = [p for (p, _), e in zip(pairs, errors, strict=True) if e is None]
        assert len(ok) == len(pairs) - (pairs is mixed)
        expected = [normalize.normalize(images.gray_pixels(images.open_image(p))) for p in ok]
        assert digits.tobytes() == np.stack(expected).tobytes()


def test_prepared_batches_are_the_models_steps_weights_and_temperature_on_the_digits(
    folder: Path, model: Model
) -> None:
    from softmax_core.softmax import softmax

    pairs = [(it.path, it.problem) for it in scoring.Discovery(folder / "mnist")]
    probs, errors, _ = scoring.prepare_items(pairs, model)
    digits, _, _ = scoring.decode_items(pairs)
    assert errors == [None] * 30
    assert model.temperature != 1.0  # trained as `train` trains: calibrated
    X = model.steps.features(digits)
    logits = X @ model.W + model.b
    assert model.quadratic is not None  # every class also weighs the second-order terms
    logits += model.quadratic.terms(X) @ model.quadratic.w
    np.testing.assert_allclose(probs, softmax(logits / model.temperature), rtol=1e-5)


# --- output -----------------------------------------------------------------------------


def test_output_is_renamed_into_place_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    out.write_text("the previous run\n")
    with pytest.raises(RuntimeError), scoring.open_output(out) as stream:  # noqa: PT012 - the crash must happen inside the open file
        stream.write("half of a result")
        raise RuntimeError("crash in the middle")
    assert out.read_text() == "the previous run\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no temp left
    with scoring.open_output(out) as stream:
        stream.write("complete\n")
    assert out.read_text() == "complete\n"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_crash_during_scoring_leaves_no_output(
    folder: Path, model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def exploding(*args: object, **kw: object) -> scoring.ScoredBatch:
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated crash after the first batch")
        return real(*args, **kw)  # type: ignore[arg-type]

    real = scoring.score_prepared
    monkeypatch.setattr(scoring.pool, "score_prepared", exploding)
    out = tmp_path / "scores.csv"
    with pytest.raises(MemoryError):
        scoring.score(request(folder, out, batch_size=8), model)
    assert not out.exists() and not list(tmp_path.glob(".scores.csv.*"))


def test_csv_and_jsonl_round_trip_awkward_paths() -> None:
    rels = ["a,b.png", 'quote"d.png', "new\nline.png", "ünï.png", "bad.png"]
    probs = np.eye(10, dtype=np.float32)[[1, 2, 3, 4, 0]]
    batch = scoring.ScoredBatch(
        rels=rels,
        labels=np.array([1, 2, 3, 4, -1]),
        probs=probs * np.array([[1], [1], [1], [1], [0]], np.float32),
        errors=[None, None, None, None, 'corrupt: cannot decode: "x", y'],
    )
    for fmt in settings.SCORE_FORMATS:
        buf = io.StringIO()
        writer = scoring.RowWriter(buf, fmt, model="=mnist:3", probs=True)
        writer.header()
        writer.write(batch)
        rows = (
            sd.read_rows(buf.getvalue(), fmt)
            if fmt == "csv"
            else [json.loads(line) for line in buf.getvalue().splitlines()]
        )
        assert [r["path"] for r in rows] == rels
        assert [r["status"] for r in rows] == ["ok"] * 4 + ["error"]
        assert rows[-1]["error"] == 'corrupt: cannot decode: "x", y'
        assert str(rows[0]["label"]) == "1" and float(rows[0]["confidence"]) == 1.0
        assert list(rows[0])[5:] == ["model"] + [f"p{k}" for k in range(10)]
        # every row names its model (a formula-looking name made inert in CSV only)
        assert {r["model"] for r in rows} == {"'=mnist:3" if fmt == "csv" else "=mnist:3"}


def test_bad_options_name_the_option() -> None:
    """The request refuses them when it is built (every field: tests/softmax_core/test_requests.py)."""
    for build, name in (
        (lambda: Performance(workers=0), "workers=0"),
        (lambda: Performance(batch_size=0), "batch_size=0"),
        (lambda: Performance(max_pixels=0), "max_pixels=0"),
        (lambda: Review(min_confidence=1.5), "min_confidence=1.5"),
        (lambda: Output(format="xml"), "format='xml'"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError, match=name):
            build()


def test_summary_counts_and_lists(folder: Path, model: Model) -> None:
    seen: list[int] = []
    out = io.StringIO()
    summary = scoring.ScoreSummary(model="m", root=str(folder), min_confidence=0.99999)
    items = list(scoring.Discovery(folder))
    for batch in scoring.score_batches(items, model, batch_size=16):
        scoring.RowWriter(out, "csv", model="m").write(batch)
        summary.add(batch)
        seen.append(len(batch))
    assert sum(seen) == len(items) and max(seen) == 16
    assert summary.scored == 90 and summary.failed == 7 and sum(summary.per_class) == 90
    assert 0 < summary.low_confidence < 90
    assert summary.failure_kinds["unreadable"] == 2 and summary.failure_kinds["blank"] == 1
    text = "\n".join(summary.lines())
    assert "failed 7 images (" in text and "bad/bomb.png: over Pillow's pixel cap" in text
    assert f"below 0.99999 confidence: {summary.low_confidence}" in text  # as given
    doc = summary.as_dict()
    assert doc["images"] == 97 and doc["failed"] == 7 and len(doc["failures"]) == 7
    many = scoring.ScoreSummary(model="m", root="r")
    many.add(
        scoring.ScoredBatch(
            rels=[f"{i}.png" for i in range(30)],
            labels=np.full(30, -1),
            probs=np.zeros((30, 10), np.float32),
            errors=["corrupt: x"] * 30,
        )
    )
    assert len(many.failures) == scoring.MAX_LISTED_FAILURES
    assert "... and 10 more (status=error rows in the output)" in many.lines()[-1]


# --- score(): one request, its review queue included ------------------------------------


def test_score_queues_the_unsure_images_for_review(
    folder: Path, model: Model, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    out = tmp_path / "scores.csv"
    unsure = Review(min_confidence=0.99999, queue=str(queue))
    summary = scoring.score(request(folder, out, review=unsure), model)
    rows = sd.read_rows(out.read_text())
    assert len(rows) == 97 and summary.scored == 90 and 0 < summary.low_confidence < 90
    queued = sorted((queue / "unlabelled").iterdir())
    assert summary.review == scoring.summary.Reviewed(
        folder=str(queue / "unlabelled"),
        queued=summary.low_confidence,  # each unsure image once; failed images never
        already=0,
        sheet=str(queue / "index.html"),
    )
    assert len(queued) == summary.low_confidence
    assert all("__pred" in p.name and p.suffix in (".png", ".jpg", ".bmp") for p in queued)
    sheet = (queue / "index.html").read_text(encoding="utf-8")
    assert f"scored by {model.ref}" in sheet and sheet.count('class="card') == len(queued)
    assert summary.as_dict()["review"]["queued"] == len(queued)
    assert summary.lines()[-1].startswith(f"review: {len(queued)} images below confidence 0.99999")
    # A second run finds them queued already, whatever they are called there now.
    queued[0].rename(queue / "unlabelled" / "renamed.png")
    again = scoring.score(request(folder, tmp_path / "again.csv", review=unsure), model)
    assert again.review is not None
    assert (again.review.queued, again.review.already) == (0, len(queued))
    assert "(" + f"{len(queued)} already queued)" in again.lines()[-1]


def test_score_without_a_queue_counts_the_unsure_and_copies_nothing(
    folder: Path, model: Model, tmp_path: Path
) -> None:
    summary = scoring.score(request(folder, tmp_path / "s.csv", review=Review(0.99999)), model)
    assert summary.low_confidence > 0 and summary.review is None
    assert "review" not in summary.as_dict() and not summary.lines()[-1].startswith("review")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "s.csv"]


def test_check_request_refuses_before_any_work(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        scoring.check_request(request(tmp_path / "missing", None))
    image = next((folder / "mnist").rglob("*.png"))
    with pytest.raises(InvalidInputError, match="is one of the images being scored"):
        scoring.check_request(request(folder, image))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInputError, match="afile is a file, not a folder"):
        scoring.check_request(request(folder, tmp_path / "afile" / "scores.csv"))
    with pytest.raises(StorageError, match="cannot create the folder /proc/"):
        scoring.check_request(request(folder, Path("/proc/softmax-pipe-nope/scores.csv")))
    scoring.check_request(request(folder, tmp_path / "new" / "scores.csv"))  # checked
    assert not (tmp_path / "new").exists()  # made for the check, gone: the write makes it
    inside = Review(queue=str(folder / "queue"))
    with pytest.raises(InvalidInputError, match=r"is inside .*choose a queue outside it"):
        scoring.check_request(request(folder, None, review=inside))
    # a queue that holds what is scored queued nothing ("2 already queued": the images
    # being scored were hashed as the queue's own)
    for queue, scored in ((folder.parent, folder), (folder / "mnist", image)):
        holds = Review(queue=str(queue))
        with pytest.raises(InvalidInputError, match=r"holds .*choose a queue beside it"):
            scoring.check_request(request(scored, None, review=holds))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file; expected a folder"):
        scoring.check_request(request(folder, None, review=Review(queue=str(tmp_path / "file"))))
    scoring.check_request(request(folder, tmp_path / "scores.csv"))  # nothing written
    assert not (tmp_path / "scores.csv").exists() and not (folder / "queue").exists()


# --- the flow's tasks, through .fn ------------------------------------------------------


def test_flow_tasks_are_the_library_calls(folder: Path, model: Model) -> None:
    from flows import scoring as flow

    listing = flow.list_images.fn(str(folder))
    assert listing.items == list(scoring.Discovery(folder)) and listing.skipped == 1
    parts = flow.shards(listing.items, shard_size=20, batch_size=8)
    assert [len(p) for p in parts] == [24, 24, 24, 24, 1]  # rounded up to whole batches
    assert [it for p in parts for it in p] == listing.items
    shard_batches = [b for p in parts for b in flow.score_shard.fn(p, model, 8, 2**24)]
    local = list(scoring.score_batches(listing.items, model, batch_size=8))
    assert len(shard_batches) == len(local)
    for a, b in zip(shard_batches, local, strict=True):
        assert a.rels == b.rels and a.errors == b.errors
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.probs, b.probs)


def test_pull_model_task_reads_a_model_file(tmp_path: Path, model: Model) -> None:
    from flows import scoring as flow
    from softmax_core.requests import Location, ModelRef

    where = Location(registry=str(tmp_path / "reg"), cache_dir=str(tmp_path / "c"))
    pulled = flow.pull_model.fn(ModelRef(model.ref, where))
    assert np.array_equal(pulled.W, model.W) and pulled.steps == model.steps
    assert pulled.ref == model.ref


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_workers_see_the_environment_their_parent_has_now(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forkserver keeps the environment it started with; workers started through it
    must still see what the parent has when it scores (credentials for S3 inputs set
    after an earlier score started the server: a flow, a notebook, the test session)."""
    from multiprocessing import forkserver

    if method == "forkserver":
        forkserver.ensure_running()  # started before the variable exists
    monkeypatch.setenv("SOFTMAX_PIPE_TEST_LATE", "set after the server started")
    pool = scoring.pool.new_pool(1, method)
    try:
        seen = pool.submit(os.getenv, "SOFTMAX_PIPE_TEST_LATE").result(timeout=60)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    assert seen == "set after the server started"


@pytest.mark.parametrize(
    ("rejected", "blank", "line"),
    [
        (1, 0, "rejected 1 image: 1 not a digit (status=rejected rows)"),
        (1, 1, "rejected 1 image: 1 blank page (status=rejected rows)"),
        (5, 2, "rejected 5 images: 3 not digits, 2 blank pages (status=rejected rows)"),
    ],
)
def test_the_rejected_line_counts_in_words(rejected: int, blank: int, line: str) -> None:
    summary = scoring.ScoreSummary(model="m", root="r", rejected=rejected, blank=blank)
    assert line in summary.lines()


def test_every_count_of_the_summary_is_in_words() -> None:
    """One of a kind is singular on every line ("scored 0 of 1 image", "failed 1 image"),
    more than one plural, as the rejected line above."""
    import collections

    from softmax_core.scoring.summary import Reviewed

    one = scoring.ScoreSummary(
        model="m",
        root="r",
        failed=1,
        skipped=1,
        loops=1,
        failure_kinds=collections.Counter({"not an image": 1}),
        failures=[("a.png", "not an image: no image format recognised in 1 byte")],
        skipped_by_ext=collections.Counter({".txt": 1}),
        review=Reviewed(folder="q/unlabelled", queued=1, already=0, sheet="q/index.html"),
    )
    lines = one.lines()
    assert lines[0] == "scored 0 of 1 image in 0.00 s with m"
    assert "skipped 1 file that is not an image (.txt 1)" in lines
    assert (
        "skipped 1 symlink to a folder walked already (under its own name, or through another link)"
    ) in lines
    assert "failed 1 image (not an image 1):" in lines
    unsure = scoring.ScoreSummary(model="m", root="r", min_confidence=0.999, scored=1)
    unsure.review = one.review  # the two lines say --min-confidence as given (was "1.00")
    assert "below 0.999 confidence: 0 (likely not digits, or badly scanned)" in unsure.lines()
    assert any(
        line.startswith("review: 1 image below confidence 0.999 ") for line in unsure.lines()
    )
    assert any(line.startswith("review: 1 image below confidence 0.5 copied") for line in lines)
    two = scoring.ScoreSummary(
        model="m", root="r", scored=1, failed=1, skipped=2, loops=2,
        review=Reviewed(folder="q/unlabelled", queued=2, already=0, sheet="q/index.html"),
    )  # fmt: skip
    lines = two.lines()
    assert lines[0] == "scored 1 of 2 images in 0.00 s with m"
    assert any(line.startswith("skipped 2 files that are not images (") for line in lines)
    assert (
        "skipped 2 symlinks to a folder walked already (under its own name, "
        "or through another link)"
    ) in lines
    assert any(line.startswith("failed 1 image (") for line in lines)
    assert any(line.startswith("review: 2 images below confidence") for line in lines)


def test_a_one_byte_file_is_one_byte(tmp_path: Path) -> None:
    """The reason a tiny non-image gives: "in 1 byte", not "in 1 bytes"."""
    (tmp_path / "x.png").write_bytes(b"x")
    _, errors, _ = scoring.decode_items([(str(tmp_path / "x.png"), None)])
    assert errors[0] is not None and "no image format recognised in 1 byte" in str(errors[0])
    assert not str(errors[0]).endswith("bytes")


def test_an_interrupt_while_the_pool_starts_arrives_once_it_has_started(
    folder: Path, model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM (the CLI's KeyboardInterrupt, ``softmax_pipe.cli``) that lands inside the
    pool's first ``submit``, between its manager thread's creation and its start: the pool's
    ``shutdown`` then raised RuntimeError ("cannot join thread before it is started") in
    place of the interrupt, and ``score`` exited 70, not 130 (seen under load in
    ``test_no_decoding_worker_outlives_a_killed_score``). Sent here at that very point;
    the interrupt must arrive as KeyboardInterrupt once the pool has started, and the
    workers must be gone when ``score_batches`` is."""
    import signal
    import threading

    import psutil

    started = threading.Thread.start

    def start_interrupted(thread: threading.Thread) -> None:
        if type(thread).__name__ == "_ExecutorManagerThread":
            os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler at once, if it can
        started(thread)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    helpers = {p.pid for p in psutil.Process().children()}  # a forkserver, its tracker
    before = signal.signal(signal.SIGTERM, terminate)
    monkeypatch.setattr(threading.Thread, "start", start_interrupted)
    items = list(scoring.Discovery(folder))
    try:
        with pytest.raises(KeyboardInterrupt):
            list(scoring.score_batches(items, model, workers=2, batch_size=4))
    finally:
        signal.signal(signal.SIGTERM, before)
    monkeypatch.undo()
    workers = [
        p
        for p in psutil.Process().children()
        if p.pid not in helpers and "multiprocessing" not in " ".join(p.cmdline())
    ]
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, [p.cmdline() for p in alive]
