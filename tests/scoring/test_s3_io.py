"""Images and rows on S3 (the session's SeaweedFS): ``score s3://... -o s3://...`` writes
what a local score of the same files writes, byte for byte; the size cap holds before any
download; the output appears whole or not at all; ``dataset add s3://...`` and the retrain
inbox take a labelled prefix as they take a folder; every error is one line with the
documented exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry import Registry
from registry.objects import ObjectReader, ObjectSource, ObjectURI, connection, write_object
from softmax_core.errors import ImageError, StorageError
from softmax_core.mnist import Dataset
from tests import scoring_data as sd
from tests.cli_invoke import invoke
from tests.conftest import S3_ADMIN, S3_NOBODY, use_s3_identity
from tests.printed_digits import write_printed
from tests.registry.helpers import count_http
from tests.s3server import upload_tree


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


@pytest.fixture(scope="module")
def model(mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.trained_model(mnist_dir, session_cache, tmp_path_factory)


@pytest.fixture(scope="module")
def folder(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Names that sort differently as keys and as a walk (``a.png``, ``a/``, ``a-b.png``),
    users' files, broken ones, spaces and accents, skipped and hidden files."""
    root = tmp_path_factory.mktemp("s3-folder") / "images"
    sd.write_pngs(root / "mnist", ds.x_test[:300], ds.y_test[:300])
    sd.write_transformed(root / "users", ds.x_test, ds.y_test, range(0, 200, 20))
    digit = np.asarray(ds.x_test[7])
    (root / "a").mkdir()
    for rel in ("a.png", "a/b.png", "a-b.png", "A.png", "my scan ü 1.png", "z/9.PNG"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(sd.png_bytes(digit))
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    data = sd.png_bytes(digit)
    (bad / "truncated.png").write_bytes(data[: len(data) // 2])
    (bad / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    (bad / "bomb.png").write_bytes(sd.bomb_png())
    (bad / "blank.png").write_bytes(sd.png_bytes(np.full((28, 28), 255, np.uint8)))
    (root / "readme.txt").write_text("not an image\n")
    (root / ".hidden.png").write_bytes(data)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    return root


@pytest.fixture
def uploaded(folder: Path, s3_bucket: str, s3_env: str) -> str:
    """``folder`` as objects under ``s3://<bucket>/in/``; returns that address."""
    client = S3_ADMIN.client(s3_env)
    upload_tree(client, folder, s3_bucket, "in/")
    client.close()
    return f"s3://{s3_bucket}/in/"


def keys(bucket: str, prefix: str = "") -> list[str]:
    store = connection(bucket, None)
    listed = store.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def read_object(bucket: str, key: str) -> bytes:
    body: bytes = connection(bucket, None).client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


# --- score -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_score_s3_writes_what_a_local_score_of_the_same_files_writes(
    fmt: str, folder: Path, uploaded: str, s3_bucket: str, model: Path, tmp_path: Path
) -> None:
    local = tmp_path / f"local.{fmt}"
    common = ["-m", model, "--probs", "--format", fmt, "--workers", 2, "--batch-size", 64]
    code_local, out_local, err_local = invoke("score", folder, *common, "-o", local)
    target = f"s3://{s3_bucket}/out/scores.{fmt}"
    code, out, err = invoke("score", uploaded, *common, "-o", target)
    assert code == code_local == 1, err
    assert out == out_local == ""
    assert read_object(s3_bucket, f"out/scores.{fmt}") == local.read_bytes()
    assert keys(s3_bucket, "out/") == [f"out/scores.{fmt}"]  # no temporary key left

    def summary(text: str) -> list[str]:  # the summary, minus timings and where rows went
        return [
            line.split(" in ")[0] if line.startswith("scored") else line
            for line in text.splitlines()
            if "rows written to" not in line and not line.startswith(("error:", "profile:"))
        ]

    assert summary(err) == summary(err_local)
    rows = sd.read_rows(local.read_text(), fmt)
    paths = [r["path"] for r in rows]
    assert paths.index("a/b.png") < paths.index("a-b.png") < paths.index("a.png")  # the walk
    blank = rows[paths.index("bad/blank.png")]  # rejected: the model can say "not a digit"
    assert (blank["status"], blank["error"]) == ("rejected", "blank page")
    assert {r["path"]: r["error"] for r in rows if r["status"] == "error"} == {
        "bad/bomb.png": rows[paths.index("bad/bomb.png")]["error"],
        "bad/empty.png": "empty file: 0 bytes",
        "bad/notes.jpg": rows[paths.index("bad/notes.jpg")]["error"],
        "bad/truncated.png": rows[paths.index("bad/truncated.png")]["error"],
    }
    assert "skipped 2 hidden files\n" in err  # .hidden.png, .git/: as on disk (above)
    assert "skipped 1 file that is not an image (.txt 1)" in err  # readme.txt


def test_score_s3_to_stdout_and_in_the_flow(
    uploaded: str, s3_bucket: str, model: Path, tmp_path: Path, prefect_harness: None
) -> None:
    code, stdout, _ = invoke("score", uploaded + "mnist/", "-m", model)
    assert code == 0 and len(stdout.splitlines()) == 301
    local = tmp_path / "flow.csv"
    code, _, err = invoke(
        "score", uploaded + "mnist", "-m", model, "--flow", "--shard-size", 100, "-o", local
    )
    assert code == 0, err
    assert local.read_text() == stdout  # the prefix without '/' is the same folder


def test_one_object_is_scored_like_one_file(uploaded: str, model: Path) -> None:
    code, stdout, err = invoke("score", uploaded + "a.png", "-m", model)
    assert code == 0, err
    assert [line.split(",")[0] for line in stdout.splitlines()] == ["path", "a.png"]


def test_the_size_cap_refuses_by_length_before_downloading(uploaded: str, s3_bucket: str) -> None:
    source = ObjectSource(uploaded + "bad/", max_bytes=100)
    items = {it.rel: it.problem for it in source}
    over = [rel for rel, problem in items.items() if problem and "over size cap" in problem]
    assert "bomb.png" in over and items["empty.png"] == "empty file: 0 bytes"
    # the reader checks the Content-Length a GET answers before it reads the body
    reader = ObjectReader(s3_bucket, max_bytes=100, ahead=1)
    sent = count_http(connection(s3_bucket, None).client)
    (got,) = list(reader.open_all(["in/bad/bomb.png"]))
    assert isinstance(got, ImageError) and got.kind == "over size cap"
    assert [s.split()[0] for s in sent] == ["GET"]
    (small,) = list(ObjectReader(s3_bucket).open_all(["in/a.png"]))
    assert not isinstance(small, ImageError) and small.read().startswith(b"\x89PNG")


def test_an_object_gone_since_listing_is_an_error_row(uploaded: str, s3_bucket: str) -> None:
    reader = ObjectReader(s3_bucket, ahead=4)
    got = list(reader.open_all(["in/a.png", "in/no-such.png", "in/A.png"]))
    assert isinstance(got[1], ImageError) and "gone" in str(got[1])
    assert not isinstance(got[0], ImageError) and not isinstance(got[2], ImageError)


def test_a_store_failing_mid_batch_fails_the_run_not_the_rows(
    uploaded: str, s3_bucket: str
) -> None:
    """An unreachable store is no one image's fault: decoding raises it (exit 4) rather
    than writing an error row for every image of the batch."""
    from softmax_core.scoring import decode_items

    reader = ObjectReader(s3_bucket, endpoint_url="http://127.0.0.1:9", ahead=2)
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint"):
        decode_items([("in/a.png", None), ("in/A.png", None)], reader=reader)


def test_the_output_is_whole_or_nothing(s3_bucket: str, s3_env: str) -> None:
    target = ObjectURI(s3_bucket, "out/rows.csv")
    with write_object(target, endpoint_url=None) as stream:
        stream.write("first\n")
    assert read_object(s3_bucket, "out/rows.csv") == b"first\n"

    def interrupted() -> None:
        with write_object(target, endpoint_url=None) as stream:
            stream.write("half of the second\n")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert read_object(s3_bucket, "out/rows.csv") == b"first\n"  # untouched
    assert keys(s3_bucket) == ["out/rows.csv"]  # no temporary key
    head = connection(s3_bucket, None).client.head_object(Bucket=s3_bucket, Key="out/rows.csv")
    assert head["ContentType"].startswith("text/csv")


def test_errors_are_one_line_with_their_exit_code(
    uploaded: str, s3_bucket: str, model: Path, s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: Any) -> tuple[int, str]:
        code, _, err = invoke("score", *args)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        return code, lines[0]

    code, line = run("s3://no-such-bucket-x/in/", "-m", model)
    assert code == 3 and "bucket 'no-such-bucket-x' does not exist" in line
    code, line = run(f"s3://{s3_bucket}/nothing-here/", "-m", model)
    assert code == 3 and f"no images in s3://{s3_bucket}/nothing-here/" in line
    code, line = run(uploaded, "-m", model, "-o", f"s3://{s3_bucket}/")
    assert code == 2 and "expected s3://bucket/key" in line
    code, line = run(uploaded, "-m", model, "-o", "s3://no-such-bucket-x/rows.csv")
    assert code == 2 and "create it first" in line
    code, line = run(uploaded, "-m", model, "-o", uploaded + "a.png")
    assert code == 2 and "is one of the images being scored" in line
    code, line = run("ftp://host/images/", "-m", model)
    assert code == 2 and "only s3://bucket/key" in line
    code, line = run(uploaded, "-m", model, "--review", "queue")
    assert code == 2 and "--review" in line and "local PATH" in line
    code, line = run(uploaded, "-m", model, "--endpoint-url", "http://127.0.0.1:9")
    assert code == 4 and "cannot reach the S3 endpoint" in line
    use_s3_identity(monkeypatch, S3_NOBODY, s3_env)  # a key allowed nothing here
    code, line = run(uploaded, "-m", model)
    assert code == 77 and "denied" in line and S3_NOBODY.secret_key not in line


# --- labelled data -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_printed(tmp_path_factory.mktemp("printed") / "p", 4, seed=25)


@pytest.fixture
def labelled_s3(printed: Path, s3_bucket: str, s3_env: str, tmp_path: Path) -> str:
    """The printed digits with a broken image, under ``s3://<bucket>/labelled/``."""
    copy = tmp_path / "labelled"
    shutil.copytree(printed, copy)
    (copy / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (copy / "index.html").write_text("<html></html>")  # a review queue's sheet: skipped
    client = S3_ADMIN.client(s3_env)
    upload_tree(client, copy, s3_bucket, "labelled/")
    client.close()
    return f"s3://{s3_bucket}/labelled/"


def test_dataset_add_from_s3_is_the_same_dataset_as_from_a_folder(
    printed: Path, labelled_s3: str, s3_bucket: str, tmp_path: Path
) -> None:
    local = tmp_path / "local-labelled"
    shutil.copytree(printed, local)
    (local / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    reg = f"s3://{s3_bucket}/reg"
    code, out, err = invoke("dataset", "add", labelled_s3, "--name", "s3", "--registry", reg)
    assert code == 1, err  # the broken image is left out, the rest added
    assert "error: 3/broken.png: " in err and f"added s3:1 to {reg}: 40 images" in out
    code, _, err = invoke("dataset", "add", local, "--name", "disk", "--registry", reg)
    assert code == 1, err
    with Registry.open(reg, cache_dir=tmp_path / "cache") as r:
        (s3_version, from_s3), (disk_version, from_disk) = (
            r.load_dataset("s3"),
            r.load_dataset("disk"),
        )
    assert from_s3.content_digest() == from_disk.content_digest()
    assert sorted(from_s3.paths) == sorted(from_disk.paths)
    assert s3_version.digest == disk_version.digest  # the same arrays, byte for byte


def test_dataset_add_from_s3_refuses_what_a_folder_refuses(
    labelled_s3: str, s3_bucket: str, s3_env: str, tmp_path: Path
) -> None:
    client = S3_ADMIN.client(s3_env)
    client.put_object(Bucket=s3_bucket, Key="labelled/stray.png", Body=b"x")
    client.close()
    reg = str(tmp_path / "reg")
    code, _, err = invoke("dataset", "add", labelled_s3, "--name", "x", "--registry", reg)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert f"{labelled_s3}stray.png: unexpected file at the top level" in line
    code, _, err = invoke(
        "dataset", "add", f"s3://{s3_bucket}/none/", "--name", "x", "--registry", reg
    )
    assert code == 3 and "no objects" in err


def test_an_oversized_labelled_object_is_refused_without_download(
    labelled_s3: str, s3_bucket: str, tmp_path: Path
) -> None:
    from registry.objects import mirror_labelled

    sent = count_http(connection(s3_bucket, None).client)
    failures = mirror_labelled(labelled_s3, tmp_path / "m", endpoint_url=None, max_bytes=200)
    assert failures == []
    gets = [s for s in sent if s.startswith("GET") and "list-type" not in s]
    small = [p for p in (tmp_path / "m").rglob("*.png") if p.stat().st_size <= 200]
    assert len(gets) == len(small)  # only the ones under the cap were downloaded
    big = [p for p in (tmp_path / "m").rglob("*.png") if p.stat().st_size > 200]
    assert big and all(p.stat().st_blocks == 0 for p in big)  # sparse stand-ins


def test_the_retrain_inbox_on_s3(
    labelled_s3: str, s3_bucket: str, tmp_path: Path, session_cache: Path
) -> None:
    """What ``run --inbox s3://...`` runs first (``sync-inbox``): the prefix becomes dataset
    ``inbox``; an empty one is "nothing labelled yet", not an error."""
    from prefect.logging import disable_run_logger

    from flows.datasets import sync_inbox
    from softmax_core.requests import Location

    location = Location(registry=str(tmp_path / "reg"), cache_dir=str(session_cache))
    with disable_run_logger():
        assert sync_inbox.fn(location, f"s3://{s3_bucket}/empty/", "inbox") is None
        assert sync_inbox.fn(location, labelled_s3, "inbox") == "inbox:1"
        assert sync_inbox.fn(location, labelled_s3, "inbox") == "inbox:1"  # unchanged
    with Registry.open(str(tmp_path / "reg"), cache_dir=session_cache) as r:
        assert r.resolve_dataset("inbox").count == 40
    assert json.dumps(location.registry)  # a plain folder registry took an S3 inbox
