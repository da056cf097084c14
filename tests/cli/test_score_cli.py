"""`softmax-pipe score`, invoked as a user would, on folders built from real MNIST test digits."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from softmax_core.mnist import Dataset
from tests import scoring_data as sd
from tests.cli_invoke import invoke


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


@pytest.fixture(scope="module")
def model(mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.trained_model(mnist_dir, session_cache, tmp_path_factory)


@pytest.fixture(scope="module")
def digits_10k(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 10,000 MNIST test digits as PNG files in 10 sub-folders (built once)."""
    return sd._once(  # type: ignore[no-any-return]
        "digits_10k",
        lambda: sd.write_pngs(tmp_path_factory.mktemp("digits10k"), ds.x_test, ds.y_test),
    )


@pytest.fixture(scope="module")
def transformed(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 test digits × 6 transforms (inverted JPEG, RGB 4×, RGBA strokes, off-centre page,
    16-bit PNG, palette BMP)."""
    folder = tmp_path_factory.mktemp("transformed")
    return sd.write_transformed(folder, ds.x_test, ds.y_test, range(0, 10000, 25))


@pytest.fixture
def mixed(ds: Dataset, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """20 good digits plus every broken-file case; returns the folder and expected kinds."""
    folder = tmp_path / "mixed"
    sd.write_pngs(folder / "good", ds.x_test[:20], ds.y_test[:20])
    expected = sd.write_broken(folder / "bad", np.asarray(ds.x_test[0]))
    return folder, {f"bad/{k}": v for k, v in expected.items()}


# --- accuracy on real folders ----------------------------------------------------------------


def test_10k_mnist_pngs_score_like_the_in_memory_evaluate(
    digits_10k: Path, model: Path, ds: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    code, stdout, stderr = invoke("score", digits_10k, "--model", model, "-o", out, "--workers", 2)
    assert code == 0, stderr
    assert stdout == ""
    rows = sd.read_rows(out.read_text())
    assert len(rows) == 10_000
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)  # the walk's order
    assert rows[0]["path"] == "0/00000_7.png" and rows[-1]["path"].startswith("9/09999_")
    # a few digits the model calls "not a digit" (well under 1%): rejected rows, exit 0
    rejected = sum(r["status"] == "rejected" for r in rows)
    assert {r["status"] for r in rows} <= {"ok", "rejected"} and rejected < 50
    evaluate = sd.in_memory_accuracy(model, ds)  # rejects count as errors there too
    assert abs(sd.accuracy(rows) - evaluate) <= 0.003, (sd.accuracy(rows), evaluate)
    assert f"scored {10_000 - rejected:,} of 10,000 images" in stderr
    assert "per class: 0: " in stderr and "below 0.5 confidence: " in stderr
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_transformed_copies_are_read_like_mnist(transformed: Path, model: Path) -> None:
    code, stdout, stderr = invoke("score", transformed, "--model", model, "--workers", 2)
    assert code == 0, stderr
    rows = sd.read_rows(stdout)
    assert len(rows) == 400 * len(sd.TRANSFORMS)
    assert sd.accuracy(rows) >= 0.93
    for name in sd.TRANSFORMS:
        part = [r for r in rows if r["path"].startswith(name + "/")]
        assert len(part) == 400
        assert sd.accuracy(part) >= 0.9, name


# --- bad input ---------------------------------------------------------------------------------


def test_broken_files_are_error_rows_and_the_run_goes_on(
    mixed: tuple[Path, dict[str, str]], model: Path, tmp_path: Path
) -> None:
    folder, expected = mixed
    out = tmp_path / "out" / "scores.csv"
    out.parent.mkdir()
    code, _, stderr = invoke(
        "score", folder, "--model", model, "-o", out, "--workers", 2, "--no-reject"
    )
    assert code == 1, stderr
    rows = {r["path"]: r for r in sd.read_rows(out.read_text())}
    assert len(rows) == 20 + len(expected)
    for rel, kind in expected.items():
        row = rows[rel]
        assert row["status"] == "error" and row["label"] == "" and row["confidence"] == ""
        assert row["error"].startswith(kind + ": "), (rel, row["error"])
    good = [r for r in rows.values() if r["path"].startswith("good/")]
    assert {r["status"] for r in good} == {"ok"} and sd.accuracy(good) >= 0.9
    assert f"failed {len(expected)} images" in stderr
    assert "bad/bomb.png: over Pillow's pixel cap: image is 400,000,000 pixels" in stderr
    assert f"error: {len(expected)} of {20 + len(expected)} images could not be scored" in stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv", "scores.csv.profile.json"]

    # With the reject option (the default) a blank page is rejected, not an error: the
    # other broken files still make the run exit 1, and the count says so.
    code, _, stderr = invoke("score", folder, "--model", model, "-o", out, "--workers", 2)
    assert code == 1, stderr
    blank = {r["path"]: r for r in sd.read_rows(out.read_text())}["bad/blank.png"]
    assert (blank["status"], blank["label"], blank["error"]) == ("rejected", "", "blank page")
    assert blank["confidence"] == ""
    n = len(expected) - 1
    assert f"error: {n} of {20 + len(expected)} images could not be scored" in stderr
    assert "1 blank page (status=rejected rows)" in stderr


def test_pixel_cap_option(digits_10k: Path, model: Path) -> None:
    code, stdout, _ = invoke(
        "score", digits_10k / "0" / "00000_7.png", "--model", model, "--max-pixels", 700
    )
    assert code == 1
    (row,) = sd.read_rows(stdout)
    assert row["error"] == "over pixel cap: image is 28×28 = 784 pixels, over the cap of 700"


def test_help_says_the_pixel_ceiling_a_max_pixels_cannot_raise() -> None:
    """Over Pillow's own cap a row says "(a --max-pixels above it has no effect)": the help
    says that ceiling too (it said only "Refuse images with more pixels than this")."""
    from PIL import Image

    from softmax_core import images, settings

    assert images.read_digit is not None  # imported: it sets Pillow's cap from settings
    assert (Image.MAX_IMAGE_PIXELS or 0) * 2 == settings.PIXEL_CEILING == 178_956_970
    code, stdout, _ = invoke("score", "--help")
    assert code == 0 and "At most 178,956,970: Pillow refuses larger images" in " ".join(
        stdout.replace("│", " ").split()
    )


def test_help_names_the_flow_as_prefect_does() -> None:
    """--flow said "Run as the Prefect flow `batch scoring`"; Prefect knows it as
    ``batch-scoring`` (what the UI lists and ``prefect deployment`` takes)."""
    from flows.scoring import FLOW_NAME, batch_scoring

    code, stdout, _ = invoke("score", "--help")
    assert code == 0 and FLOW_NAME == batch_scoring.name == "batch-scoring"
    assert f"Run as the Prefect flow `{FLOW_NAME}`" in " ".join(stdout.replace("│", " ").split())


def test_path_that_does_not_exist_is_exit_3_as_everywhere(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    code, stdout, stderr = invoke("score", tmp_path / "nope", "--model", model, "-o", out)
    assert code == 3
    assert "nope does not exist" in stderr and "Traceback" not in stderr
    assert stdout == "" and not out.exists()


def test_output_into_a_missing_folder_makes_it(
    digits_10k: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "sub" / "x.csv"
    image = digits_10k / "0" / "00000_7.png"
    code, _, stderr = invoke("score", image, "--model", model, "-o", out, "--no-profile")
    assert code == 0, stderr
    (row,) = sd.read_rows(out.read_text())
    assert row["path"] == "00000_7.png" and row["status"] == "ok"
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.csv"]


def test_an_output_that_cannot_be_written_fails_before_the_model_is_read(
    tmp_path: Path,
) -> None:
    """A folder that cannot be made is exit 4, a file where a folder should be or a folder
    named as the output exit 2: each before the model is looked for (it does not exist
    here, which would be exit 3)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    (tmp_path / "afile").write_text("x")
    cases = [
        ("/proc/softmax-pipe-no-such-folder/x.csv", 4, "cannot create the folder /proc/"),
        (tmp_path / "afile" / "x.csv", 2, "afile is a file, not a folder"),
        (tmp_path, 2, "is a folder; expected a file name"),
    ]
    for out, expected, says in cases:
        code, stdout, stderr = invoke("score", folder, "-m", tmp_path / "none.npz", "-o", out)
        assert (code, stdout) == (expected, ""), stderr
        assert says in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("--batch-size", 0, "--batch-size 0 is invalid; expected an integer 1..65536"),
        ("--workers", 0, "--workers 0 is invalid; expected an integer 1..256"),
        ("--shard-size", 0, "--shard-size 0 is invalid; expected an integer >= 1"),
        ("--max-pixels", 0, "--max-pixels 0 is invalid; expected an integer >= 1"),
        ("--min-confidence", 2, "--min-confidence 2.0 is invalid; expected a number in [0, 1]"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_field_exit_2(
    tmp_path: Path, option: str, value: int, line: str
) -> None:
    """The scoring request refuses it when the CLI builds it: nothing is read or written."""
    out = tmp_path / "scores.csv"
    code, stdout, stderr = invoke(
        "score", tmp_path, "-m", tmp_path / "m.npz", "-o", out, option, value
    )
    assert code == 2
    assert stderr == f"error: {line}\n" and stdout == "" and not out.exists()


def test_model_not_found_is_exit_3(digits_10k: Path, tmp_path: Path) -> None:
    code, _, stderr = invoke("score", digits_10k / "0", "--model", tmp_path / "missing.npz")
    assert code == 3 and "missing.npz does not exist" in stderr
    registry = tmp_path / "registry"
    registry.mkdir()
    code, _, stderr = invoke("score", digits_10k / "0", "--registry", registry)  # mnist@champion
    assert code == 3 and "mnist" in stderr


def test_folder_without_images_is_exit_3_and_writes_nothing(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("no digits here")
    (folder / "data.csv").write_text("a,b\n")
    out = tmp_path / "scores.csv"
    code, stdout, stderr = invoke("score", folder, "--model", model, "-o", out)
    assert code == 3
    assert f"no images in {folder}: 2 other files skipped" in stderr
    assert not out.exists() and stdout == ""
    # hidden files are counted as hidden, not as files of their extension
    hid = tmp_path / "hid"
    hid.mkdir()
    (hid / "._a.jpg").write_bytes(b"\0\5\22\7")  # macOS AppleDouble
    (hid / "notes.txt").write_text("x")
    code, _, stderr = invoke("score", hid, "--model", model)
    assert code == 3 and f"no images in {hid}: 1 hidden file and 1 other file skipped" in stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    code, stdout, _ = invoke("score", empty, "--model", model)
    assert code == 3 and stdout == ""


# --- the model from the registry ----------------------------------------------------------


def test_default_model_comes_from_the_registry(
    digits_10k: Path, model: Path, tmp_path: Path
) -> None:
    from registry import Registry

    reg_dir = tmp_path / "registry"
    with Registry.open(str(reg_dir), cache_dir=tmp_path / "publish-cache") as reg:
        reg.publish(model, "mnist", alias="champion")
    code, stdout, stderr = invoke(
        "score", digits_10k / "1", "--registry", reg_dir, "--cache-dir", tmp_path / "cache"
    )
    assert code == 0, stderr
    assert "with mnist:1" in stderr
    by_file = sd.read_rows(invoke("score", digits_10k / "1", "--model", model)[1])
    pulled = sd.read_rows(stdout)
    assert {r.pop("model") for r in pulled} == {"mnist:1"}  # each row names the version
    assert {r.pop("model") for r in by_file} == {str(model)}
    assert pulled == by_file  # same weights, same rows
    assert any((tmp_path / "cache").rglob("*.npz"))  # pulled into the verified cache
    code, _, stderr = invoke("score", digits_10k / "1", "--registry", reg_dir, "-m", "mnist:7")
    assert code == 3 and "mnist" in stderr


def test_model_from_an_s3_registry(
    digits_10k: Path, model: Path, s3_bucket: str, tmp_path: Path
) -> None:
    from registry import Registry

    uri = f"s3://{s3_bucket}/models"
    with Registry.open(uri, cache_dir=tmp_path / "publish-cache") as reg:
        reg.publish(model, "digits", alias="prod")
    code, stdout, stderr = invoke(
        "score",
        digits_10k / "2",
        "-m",
        "digits@prod",
        "--registry",
        uri,
        "--cache-dir",
        tmp_path / "cache",
    )
    assert code == 0, stderr
    assert len(sd.read_rows(stdout)) == 1000 and "with digits:1" in stderr


# --- output formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "given", "fmt"),
    [
        ("rows.jsonl", [], "jsonl"),
        ("rows.NDJSON", [], "jsonl"),
        ("rows.csv", [], "csv"),
        ("rows.txt", [], "csv"),
        ("rows.jsonl", ["--format", "csv"], "csv"),  # a format given wins over the name
    ],
)
def test_the_output_s_name_picks_the_format_unless_one_is_given(
    mixed: tuple[Path, dict[str, str]], model: Path, tmp_path: Path, name: str,
    given: list[str], fmt: str,
) -> None:  # fmt: skip
    """``-o rows.jsonl`` writes JSON Lines: it wrote CSV into a file named .jsonl."""
    folder, expected = mixed
    out = tmp_path / name
    code, _, stderr = invoke("score", folder, "--model", model, "-o", out, *given)
    assert code == 1, stderr
    text = out.read_text()
    assert text.startswith("{") == (fmt == "jsonl"), text[:80]
    assert len(sd.read_rows(text, fmt)) == 20 + len(expected)


def test_jsonl_with_probabilities(mixed: tuple[Path, dict[str, str]], model: Path) -> None:
    folder, expected = mixed
    code, stdout, _ = invoke("score", folder, "--model", model, "--format", "jsonl", "--probs")
    assert code == 1
    rows = sd.read_rows(stdout, "jsonl")
    assert len(rows) == 20 + len(expected)
    for r in rows:
        assert list(r)[:6] == ["path", "label", "confidence", "status", "error", "model"]
        assert r["model"] == str(model)
        probs = [r[f"p{k}"] for k in range(10)]
        if r["status"] == "ok":
            assert abs(sum(probs) + r["p_reject"] - 1) < 1e-4
            assert r["label"] == int(np.argmax(probs)) and r["confidence"] == max(probs)
            assert r["error"] == ""
        elif r["path"] == "bad/blank.png":  # rejected: nothing to score, and no failure
            assert (r["status"], r["error"], r["confidence"]) == ("rejected", "blank page", None)
        else:
            assert probs == [None] * 10 and r["label"] is None and r["confidence"] is None
            assert r["status"] == "error" and r["error"].split(":")[0] == expected[r["path"]]


def test_csv_to_stdout_with_probs_and_summary_on_stderr(digits_10k: Path, model: Path) -> None:
    code, stdout, stderr = invoke("score", digits_10k / "3", "--model", model, "--probs")
    assert code == 0
    header = stdout.splitlines()[0]
    assert header == "path,label,confidence,status,error,model," + ",".join(
        [*(f"p{k}" for k in range(10)), "p_reject"]  # a model with "not a digit"
    )
    assert len(stdout.splitlines()) == 1001
    assert "scored" not in stdout and "of 1,000 images" in stderr


def test_a_single_file(digits_10k: Path, model: Path) -> None:
    code, stdout, _ = invoke("score", digits_10k / "0" / "00000_7.png", "--model", model)
    assert code == 0
    (row,) = sd.read_rows(stdout)
    assert row["path"] == "00000_7.png" and row["label"] == "7" and row["status"] == "ok"


def test_a_reader_that_stops_early_ends_the_run_quietly(digits_10k: Path, model: Path) -> None:
    """`softmax-pipe score DIR | head -1`: exit 141 (SIGPIPE's code), no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "softmax_pipe.cli", "score", str(digits_10k), "-m", str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"path,label,confidence,status,error,model\n"
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr and "Error" not in stderr


def test_a_reader_of_stderr_that_stops_early_is_141_too(digits_10k: Path, model: Path) -> None:
    """`softmax-pipe score DIR 2>&1 | head -3`: exit 141 as with stdout alone (it was 120:
    the summary left unwritten in stderr's buffer failed again at the interpreter's exit).
    Here stderr's reader is gone before the first line, so the summary's write fails (stderr
    buffered, as it is unless ``PYTHONUNBUFFERED`` is set)."""
    command = ["score", str(digits_10k / "0"), "-m", str(model)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "softmax_pipe.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
    )
    assert proc.stderr is not None
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141


def test_progress_bar_on_a_terminal_only(digits_10k: Path, model: Path, tmp_path: Path) -> None:
    """stderr a terminal: a progress bar over the counted images; not a terminal: none."""
    import pty

    master, slave = pty.openpty()
    out = tmp_path / "scores.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "softmax_pipe.cli",
            "score",
            str(digits_10k / "4"),
            "-m",
            str(model),
            "-o",
            str(out),
        ],
        stderr=slave,
        stdout=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "scoring" in terminal and "1000/1000" in terminal
    assert "of 1,000 images" in terminal
    _, _, stderr = invoke("score", digits_10k / "4", "-m", model, "-o", out)
    assert "1000/1000" not in stderr and "of 1,000 images" in stderr


def test_one_or_two_workers_write_the_same_bytes(
    mixed: tuple[Path, dict[str, str]], model: Path
) -> None:
    folder, _ = mixed
    outs = [
        invoke("score", folder, "--model", model, "--workers", w, "--batch-size", 7, "--probs")[1]
        for w in (1, 2)
    ]
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 28


# --- discovery ----------------------------------------------------------------------------


def test_discovery_is_recursive_sorted_case_insensitive_and_counts_skips(
    ds: Dataset, model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "walk"
    (folder / "b" / "deeper").mkdir(parents=True)
    png = sd.png_bytes(np.asarray(ds.x_test[0]))
    for rel in ("Z.PNG", "a.png", "b/deeper/c.png", "b/A.Png", "c.png", "b/x.png.bak"):
        (folder / rel).write_bytes(png)
    for img, name in ((sd.inverted_jpeg, "d.JPEG"), (sd.palette_bmp, "e.BMP")):
        image, _, kw = img(np.asarray(ds.x_test[0]))
        image.save(folder / name, format="JPEG" if name.endswith("JPEG") else "BMP", **kw)
    (folder / "notes.TXT").write_text("skip me")
    (folder / "._a.png").write_bytes(b"\0\5\22\7")  # macOS AppleDouble, and Finder's
    (folder / "b" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    code, stdout, stderr = invoke("score", folder, "--model", model)
    assert code == 0, stderr
    paths = [r["path"] for r in sd.read_rows(stdout)]
    assert paths == ["Z.PNG", "a.png", "b/A.Png", "b/deeper/c.png", "c.png", "d.JPEG", "e.BMP"]
    assert "skipped 2 hidden files\n" in stderr
    assert "skipped 2 files that are not images (.bak 1, .txt 1)" in stderr


def test_symlink_loops_do_not_hang_the_walk(ds: Dataset, model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "loop"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "one.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[0])))
    os.symlink(folder, folder / "sub" / "back")  # sub/back -> the root: a loop
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "two.png").write_bytes(sd.png_bytes(np.asarray(ds.x_test[1])))
    os.symlink(other, folder / "linked")  # a symlinked folder is followed once
    code, stdout, stderr = invoke("score", folder, "--model", model)
    assert code == 0, stderr
    assert [r["path"] for r in sd.read_rows(stdout)] == ["linked/two.png", "sub/one.png"]
    assert (
        "skipped 1 symlink to a folder walked already (under its own name, or through another link)"
    ) in stderr


# --- the flow -----------------------------------------------------------------------------


@pytest.fixture
def flow_folder(ds: Dataset, transformed: Path, tmp_path: Path) -> Path:
    """600 MNIST PNGs, a transformed slice and the broken files: several shards' worth."""
    folder = tmp_path / "flow"
    sd.write_pngs(folder / "mnist", ds.x_test[:600], ds.y_test[:600])
    shutil.copytree(transformed / "rgba-strokes", folder / "rgba-strokes")
    sd.write_broken(folder / "bad", np.asarray(ds.x_test[0]))
    return folder


def test_flow_writes_what_the_local_command_writes(
    flow_folder: Path, model: Path, tmp_path: Path, prefect_harness: None
) -> None:
    local, flowed = tmp_path / "local.csv", tmp_path / "flow.csv"
    common = ["--model", model, "--batch-size", 64, "--probs"]
    code_local, _, _ = invoke("score", flow_folder, *common, "-o", local)
    code_flow, _, stderr = invoke(
        "score", flow_folder, *common, "-o", flowed, "--flow", "--shard-size", 150
    )
    assert code_local == code_flow == 1, stderr
    assert flowed.read_bytes() == local.read_bytes()  # rejected rows too
    assert "failed 6 images" in stderr and "1 blank page (" in stderr
    # The UI's view of that run: its progress bar went to 100 %, shard by shard.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["batch-scoring"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    progress = [a for a in arts if a.key == "scoring-progress"]
    assert progress and progress[0].type == "progress" and float(str(progress[0].data)) == 100.0
    # 1007 images, shards of 150 rounded up to whole batches of 64: 192, so 6 shards
    assert "percent of 6 shards" in (progress[0].description or ""), progress[0].description
    assert {a.key for a in arts} >= {"scoring-summary", "scoring-progress"}


@pytest.mark.slow
@pytest.mark.e2e
def test_flow_on_a_dask_cluster_writes_what_the_local_command_writes(
    flow_folder: Path, model: Path, tmp_path: Path, prefect_harness: None
) -> None:
    from distributed import LocalCluster

    local, dasked = tmp_path / "local.jsonl", tmp_path / "dask.jsonl"
    common = ["--model", model, "--batch-size", 64, "--format", "jsonl"]
    assert invoke("score", flow_folder, *common, "-o", local)[0] == 1
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        code, _, stderr = invoke(
            "score",
            flow_folder,
            *common,
            "-o",
            dasked,
            "--dask-address",
            cluster.scheduler_address,
            "--shard-size",
            128,
        )
    assert code == 1, stderr
    assert dasked.read_bytes() == local.read_bytes()
    rows = sd.read_rows(dasked.read_text(), "jsonl")
    # the 1,000 digits are read, or a few rejected as not digits (the model's call, the
    # same on both sides: the bytes above); the blank page is rejected too
    digits = [r for r in rows if not r["path"].startswith("bad/")]
    assert len(digits) == 600 + 400
    assert {r["status"] for r in digits} <= {"ok", "rejected"}
    assert sum(r["status"] == "rejected" for r in digits) <= 10  # the gate's 1%
    first = json.loads(dasked.read_text().splitlines()[0])
    assert (first["path"], first["status"], first["error"]) == (
        "bad/blank.png",
        "rejected",
        "blank page",
    )


@pytest.mark.slow
def test_flow_exit_codes(model: Path, tmp_path: Path, prefect_harness: None) -> None:
    """The flow maps failures like the command: missing PATH 3, no images 3, no model 3 (a missing path is exit 3 everywhere)."""
    assert invoke("score", tmp_path / "nope", "-m", model, "--flow")[0] == 3
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    code, stdout, stderr = invoke("score", tmp_path / "docs", "-m", model, "--flow")
    assert code == 3 and "no images in" in stderr and stdout == ""
    (tmp_path / "docs" / "one.png").write_bytes(sd.png_bytes(np.zeros((28, 28), np.uint8)))
    code, _, stderr = invoke("score", tmp_path / "docs", "-m", tmp_path / "none.npz", "--flow")
    assert code == 3 and "none.npz does not exist" in stderr


def test_flow_checks_its_inputs_before_a_prefect_server_starts(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`score --flow` refused a missing PATH, a missing model file, `-o` naming a folder and
    `--review` only once a temporary Prefect server had started (10-13 s); now at once,
    as without --flow, and no server is asked or started."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    cases = [
        ((tmp_path / "nope", "-m", model), 3, "does not exist"),
        ((folder, "-m", tmp_path / "none.npz"), 3, "model file"),
        ((folder, "-m", model, "-o", tmp_path), 2, "is a folder; expected a file name"),
        ((folder, "-m", model, "--review", tmp_path / "q"), 2, "drop --flow"),
    ]
    for args, expected, said in cases:
        code, stdout, stderr = invoke("score", *args, "--flow")
        assert (code, stdout) == (expected, ""), stderr
        assert said in stderr and "prefect" not in stderr.lower(), stderr
    code, stdout, _ = invoke("score", "--help")
    assert "Runs with the local command only: not with --flow" in " ".join(
        stdout.replace("│", " ").split()
    )


def test_an_unreachable_dask_scheduler_is_exit_4(digits_10k: Path, model: Path) -> None:
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, stdout, stderr = invoke(
        "score", digits_10k / "5", "-m", model, "--dask-address", f"tcp://127.0.0.1:{port}"
    )
    assert code == 4, stderr
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in stderr
    assert stdout == "" and "Traceback" not in stderr


# --- hostile output targets and names (issue 10) ----------------------------------------------


def _digit_png(path: Path) -> None:
    """A white bar on black: an image with ink, scored as some digit."""
    from PIL import Image

    img = Image.new("L", (28, 28))
    img.paste(255, (12, 4, 16, 24))
    img.save(path)


def test_pillow_warnings_about_a_bad_exif_block_do_not_reach_stderr(
    model: Path, tmp_path: Path
) -> None:
    """A JPEG whose EXIF block is cut short, or whose orientation has two values: Pillow
    warned on stderr (`TiffImagePlugin.py:982: UserWarning: Corrupt EXIF data...`, `Metadata
    Warning, tag 274 had too many entries`), naming no file. Now nothing, and the images
    score as the same picture without EXIF does (their orientation: 1, as it is)."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    img = Image.new("L", (28, 28))
    img.paste(255, (12, 4, 16, 24))
    tiff = b"Exif\x00\x00II*\x00\x08\x00\x00\x00"  # little-endian, the IFD at 8
    orientation = b"\x12\x01\x03\x00"  # tag 274, SHORT
    cut = tiff + b"\x02\x00" + orientation + b"\x01\x00\x00\x00\x01\x00\x00\x00" + b"\x1a\x01"
    two = tiff + b"\x01\x00" + orientation + b"\x02\x00\x00\x00\x01\x00\x01\x00" + b"\0" * 4
    img.save(folder / "clean.jpg")
    img.save(folder / "cut_exif.jpg", exif=cut)
    img.save(folder / "two_orientations.jpg", exif=two)
    command = [sys.executable, "-m", "softmax_pipe.cli", "score", str(folder), "-m", str(model)]
    for workers in ("1", "2"):
        done = subprocess.run(
            [*command, "--no-profile", "--workers", workers],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr and "warn" not in done.stderr, done.stderr
        rows = {r.pop("path"): r for r in sd.read_rows(done.stdout)}
        assert rows["cut_exif.jpg"] == rows["two_orientations.jpg"] == rows["clean.jpg"]


def test_output_that_is_an_input_or_the_model_is_refused(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    code, _, stderr = invoke("score", folder, "--model", model, "-o", folder / "a.png")
    assert code == 2 and "one of the images being scored" in stderr
    assert (folder / "a.png").read_bytes() == before
    code, _, stderr = invoke("score", folder, "--model", model, "-o", folder)
    assert code == 2 and f"--output {folder} is a folder; expected a file name" in stderr
    code, _, stderr = invoke("score", folder, "--model", model, "-o", model)
    assert code == 2 and "is the model file" in stderr


def test_an_output_named_as_a_folder_or_a_model_that_is_a_folder_is_refused(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-o out/new/`` wrote the rows into a file named ``out/new`` (exit 0) and said the
    profile could not be written into it; ``-m m`` for a folder m looked m up in the
    registry (exit 3, "no model named 'm'"). Both: one line, exit 2, nothing written."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = invoke("score", "imgs", "--model", model, "-o", "out/new/")
    assert (code, stdout) == (2, ""), stderr
    assert stderr.strip() == (
        "error: --output out/new/ names a folder (it ends in '/'); expected a file name"
    )
    assert not (tmp_path / "out").exists()
    code, stdout, stderr = invoke("score", "imgs", "--model", "m/", "--registry", tmp_path / "r")
    assert (code, stdout) == (2, ""), stderr
    assert stderr.strip() == "error: m/ is a folder, not a model file (.npz)", stderr


def test_output_through_a_symlink_replaces_its_target_and_a_device_is_written_through(
    model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, _, stderr = invoke("score", folder, "--model", model, "-o", link)
    assert code in (0, 1), stderr
    assert link.is_symlink() and target.read_text().startswith("path,label")
    code, _, stderr = invoke("score", folder, "--model", model, "-o", "/dev/null")
    assert code in (0, 1), stderr
    assert Path("/dev/null").is_char_device()


def test_no_profile_is_written_beside_a_device(model: Path, tmp_path: Path) -> None:
    """`-o /dev/null` (a device, as a FIFO or a pipe): the rows go through it and the profile
    goes nowhere beside it (an earlier version wrote /dev/null.profile.json), as for stdout."""
    beside = Path("/dev/null" + ".profile.json")
    beside.unlink(missing_ok=True)  # left by an earlier version, or by an earlier run of this suite
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    code, _, stderr = invoke("score", folder, "--model", model, "-o", "/dev/null")
    assert code in (0, 1), stderr
    # none, or one an earlier version running at the same time on this machine wrote
    assert not beside.exists() or json.loads(beside.read_text())["input"] != str(folder)
    (line,) = [x for x in stderr.splitlines() if x.startswith("profile:")]
    assert "not written" in line and "a device" in line and "/dev/null" not in line
    assert "rows written to /dev/null" in stderr


def test_a_profile_that_cannot_be_written_says_why_once(model: Path, tmp_path: Path) -> None:
    """A folder where the profile goes (as a full disk would): the rows are written, and
    the profile's line says it was not written and why, once (it said "it goes beside a
    local --output file" and then "cannot write X: cannot write X: ...")."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    rows = tmp_path / "rows.csv"
    beside = Path(f"{rows}.profile.json")
    beside.mkdir()
    code, _, stderr = invoke("score", folder, "--model", model, "-o", rows)
    assert code == 0, stderr
    assert "rows written to" in stderr and rows.is_file()
    lines = [x for x in stderr.splitlines() if x.startswith("profile")]
    assert len(lines) == 1, stderr
    assert lines[0].endswith(f"; not written: {beside} is a folder; expected a file name"), lines
    assert beside.is_dir() and not any(beside.iterdir())


def test_rows_through_dev_stdout_or_dev_fd_reach_the_pipe(model: Path, tmp_path: Path) -> None:
    """`-o /dev/stdout | wc -l` and `-o >(cat)` (/dev/fd/N): the name of a pipe resolves to
    `pipe:[N]`, which is no file; the rows are written through the name given."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    command = [sys.executable, "-m", "softmax_pipe.cli", "score", str(folder), "-m", str(model)]
    done = subprocess.run(
        [*command, "-o", "/dev/stdout", "--no-profile"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [row["path"] for row in sd.read_rows(done.stdout)] == ["a.png"]
    assert "rows written to /dev/stdout" in done.stderr
    r, w = os.pipe()
    try:
        done = subprocess.run(
            [*command, "-o", f"/dev/fd/{w}", "--no-profile"],
            pass_fds=(w,),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        os.close(w)
        w = -1
        with os.fdopen(r, encoding="utf-8") as rows:
            r = -1
            text = rows.read()
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and [row["path"] for row in sd.read_rows(text)] == ["a.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


def test_a_registry_without_models_says_how_to_get_one(tmp_path: Path) -> None:
    """A new user's first ``score`` (no model published yet): exit 3 and the way to one,
    not only "`registry list` shows the models" (it shows none)."""
    _digit_png(tmp_path / "a.png")
    code, _, stderr = invoke("score", tmp_path / "a.png", "--registry", tmp_path / "reg")
    assert code == 3, stderr
    assert f"no registry at {tmp_path / 'reg'} (the folder does not exist)" in stderr
    assert "`softmax-pipe run` trains a model and publishes it there, or check --registry" in (
        stderr
    )  # a mistyped --registry too: not "holds no models yet"
    (tmp_path / "reg").mkdir()
    code, _, stderr = invoke("score", tmp_path / "a.png", "--registry", tmp_path / "reg")
    assert code == 3, stderr
    assert "holds no models yet; `softmax-pipe run` trains one" in stderr
    assert "registry list" not in stderr


def test_a_stdout_that_cannot_be_written_is_one_line_exit_4(model: Path, tmp_path: Path) -> None:
    """`score DIR > /dev/full` (a full disk) and `score DIR -o - >&-` (stdout closed): one
    line naming stdout, exit 4, as for an --output file; no "Exception ignored" at exit
    (the rows once failed as an unexpected OSError, exit 120, as the workers forked)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        _digit_png(folder / name)
    line = f"{sys.executable} -m softmax_pipe.cli score {folder} -m {model} --no-profile"
    said = {
        "--workers 2 > /dev/full": "error: cannot write stdout: No space left on device",
        "--workers 1 > /dev/full": "error: cannot write stdout: No space left on device",
        "-o - >&-": "error: cannot write stdout: it is closed; name a file with --output",
    }
    for redirect, expected in said.items():
        done = subprocess.run(
            ["bash", "-c", f"{line} {redirect}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert (done.returncode, done.stderr) == (4, expected + "\n"), redirect


def test_rows_through_dev_stdout_into_a_file_append_with_two_redirections(
    model: Path, tmp_path: Path
) -> None:
    """``-o /dev/stdout > rows.csv`` then ``>> rows.csv``: both runs' rows are in the
    file, and no profile is written beside ``/dev/stdout`` (it once went to
    ``/dev/stdout.profile.json``)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    rows = tmp_path / "rows.csv"
    line = f"{sys.executable} -m softmax_pipe.cli score {folder} -m {model} -o /dev/stdout"
    for redirect in (">", ">>"):
        done = subprocess.run(
            ["bash", "-c", f"{line} {redirect} {rows}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        (said,) = [x for x in done.stderr.splitlines() if x.startswith("profile:")]
        assert "not written" in said, said
    text = rows.read_text()
    assert text.count("path,label") == 2 and text.count("a.png") == 2, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "rows.csv"]


def test_a_dash_is_stdout(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    code, stdout, stderr = invoke("score", folder, "--model", model, "-o", "-")
    assert code in (0, 1), stderr
    assert [row["path"] for row in sd.read_rows(stdout)] == ["a.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no file named '-'
    assert "rows written" not in stderr
    code, stdout, _ = invoke("score", "--help")
    assert code == 0 and "'-'" in stdout


def test_dot_slash_dash_is_a_file_named_dash(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o ./-` writes a file named `-` in the current folder, as `score --help` says (it was
    refused: pathlib makes `./-` into `-`, stdout's name), with its profile beside it."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    code, stdout, stderr = invoke("score", folder, "--model", model, "-o", "./-")
    assert code in (0, 1), stderr
    assert stdout == "" and "rows written to ./-" in stderr
    assert [row["path"] for row in sd.read_rows((tmp_path / "-").read_text())] == ["a.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-", "-.profile.json", "imgs"]


def test_csv_paths_that_look_like_formulas_are_neutralised(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "=HYPERLINK(1).png")
    _digit_png(folder / "+1.png")
    code, stdout, stderr = invoke("score", folder, "--model", model)
    assert code in (0, 1), stderr
    cells = [line.split(",")[0] for line in stdout.splitlines()[1:]]
    assert sorted(cells) == ["'+1.png", "'=HYPERLINK(1).png"]


def test_hidden_files_are_skipped(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    _, stdout, stderr = invoke("score", folder, "--model", model)
    assert "._a.png" not in stdout
    assert "skipped 1 hidden file" in stderr.splitlines() and "not an image" not in stderr


def test_counts_of_one_are_singular(model: Path, tmp_path: Path) -> None:
    """One good image, one 1-byte file: every count of one in the summary and the last line
    is singular ("failed 1 image", "in 1 byte", "the other 1 was scored")."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    _digit_png(folder / "a.png")
    (folder / "b.png").write_bytes(b"x")
    code, _, stderr = invoke("score", folder, "--model", model, "--no-reject")
    assert code == 1, stderr
    lines = stderr.splitlines()
    assert lines[0].startswith("scored 1 of 2 images in ")
    assert "failed 1 image (not an image 1):" in lines
    assert "  b.png: not an image: no image format recognised in 1 byte" in lines
    assert lines[-1] == (
        "error: 1 of 2 images could not be scored (status=error rows); the other 1 was "
        "scored and written"
    )
    # none left: no "the other 0"
    code, _, stderr = invoke("score", folder / "b.png", "--model", model)
    assert code == 1, stderr
    assert stderr.splitlines()[-1] == (
        "error: 1 of 1 image could not be scored (status=error rows)"
    )
    # with a rejected row too, the last line counts "scored" as the first line does
    (folder / "c.png").write_bytes(sd.png_bytes(np.zeros((40, 40), np.uint8)))  # a blank page
    code, _, stderr = invoke("score", folder, "--model", model)
    assert code == 1, stderr
    lines = stderr.splitlines()
    assert lines[0].startswith("scored 1 of 3 images in ")
    assert "rejected 1 image: 1 blank page (status=rejected rows)" in lines
    assert lines[-1] == (
        "error: 1 of 3 images could not be scored (status=error rows); the other 2 were "
        "written (1 scored, 1 rejected)"
    )
    # over the pixel cap (a 600-dpi A4 scan is 35 million pixels): the option that raises it
    code, _, stderr = invoke("score", folder, "--model", model, "--max-pixels", 1000)
    assert code == 1, stderr  # the 40×40 page is over, the 28×28 digit is not
    assert stderr.splitlines()[-1] == (
        "error: 2 of 3 images could not be scored (status=error rows); the other 1 was "
        "scored and written; 1 over the pixel cap (--max-pixels raises it)"
    )
    # an image Pillow will not open (over 178,956,970 pixels): no --max-pixels lets it in,
    # and the hint counts only the images one would (it said "1 over the pixel cap" when a
    # row said "a --max-pixels above it has no effect")
    (folder / "d.png").write_bytes(sd.bomb_png())  # 400 MP
    code, _, stderr = invoke("score", folder, "--model", model, "--max-pixels", 1000)
    assert code == 1, stderr
    (failed,) = [line for line in stderr.splitlines() if line.startswith("failed 3 images (")]
    assert "over pixel cap 1" in failed and "over Pillow's pixel cap 1" in failed, failed
    assert stderr.splitlines()[-1].endswith("; 1 over the pixel cap (--max-pixels raises it)")
    code, _, stderr = invoke("score", folder / "d.png", "--model", model, "--max-pixels", 5 * 10**8)
    assert code == 1, stderr
    assert "(a --max-pixels above it has no effect)" in stderr
    assert stderr.splitlines()[-1] == (
        "error: 1 of 1 image could not be scored (status=error rows)"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_decoding_worker_outlives_a_killed_score(
    model: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    import psutil

    folder = tmp_path / "many"
    folder.mkdir()
    _digit_png(tmp_path / "one.png")
    for i in range(20_000):  # hard links: a big folder, no disk
        os.link(tmp_path / "one.png", folder / f"{i:05d}.png")
    exe = Path(sys.executable).with_name("softmax-pipe")
    proc = subprocess.Popen(
        [str(exe), "score", str(folder), "--model", str(model), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120  # a busy machine starts the workers slowly
    children: list[psutil.Process] = []
    while time.monotonic() < deadline and len(children) < 2 and proc.poll() is None:
        children = parent.children(recursive=True)
        time.sleep(0.05)
    assert len(children) >= 2, "the decoding workers never started"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, f"workers outlived the scoring process: {[p.pid for p in alive]}"
    if sig == signal.SIGTERM:
        assert proc.returncode == 130
        assert proc.stderr is not None and "interrupted" in proc.stderr.read().decode()


# --- the review queue ----------------------------------------------------------------------


def _cut_from(row: str, shown: str) -> bool:
    """Whether ``shown``, a queued name's two decimals, is the confidence cut, never rounded
    up (the row's six decimals are rounded: a hair either side of the true value)."""
    return Decimal(shown) - Decimal("0.000001") <= Decimal(row) <= Decimal(shown) + Decimal("0.01")


def test_review_queue_copies_the_unsure_once_and_draws_their_sheet(
    transformed: Path, model: Path, tmp_path: Path
) -> None:
    folder = transformed / "offcentre-64x48"
    queue = tmp_path / "queue"
    out = tmp_path / "s.csv"
    args = ["score", folder, "--model", model, "-o", out, "--min-confidence", 0.999]
    code, _, stderr = invoke(*args, "--review", queue)
    assert code == 0, stderr
    rows = sd.read_rows(out.read_text())
    unsure = sorted(r["path"] for r in rows if float(r["confidence"]) < 0.999)
    assert 0 < len(unsure) < len(rows)  # some, not all: only those below the line
    queued = sorted((queue / "unlabelled").iterdir())
    assert len(queued) == len(unsure)
    # "<source>__pred7__p0.41__<sha>.png", or "<source>__rejected__p0.89__<sha>.png" for
    # an image the model took for not a digit (its confidence: that probability)
    by_source = {re.split("__(?:pred|rejected)", p.name)[0]: p.name for p in queued}
    assert sorted(by_source) == sorted(u.replace("/", "~") for u in unsure)
    for r in rows:
        if r["path"] in unsure:  # the name says what the model said, and how sure
            name = by_source[r["path"].replace("/", "~")]
            said = "rejected" if r["status"] == "rejected" else f"pred{r['label']}"
            shown = re.search(rf"__{said}__p(\d\.\d\d)__", name)
            assert shown is not None and _cut_from(r["confidence"], shown[1]), name
            assert (queue / "unlabelled" / name).read_bytes() == (folder / r["path"]).read_bytes()
    sheet = (queue / "index.html").read_text()
    assert sheet.count('class="card') == len(unsure) and "<script" not in sheet
    assert f"{len(unsure)} images" in sheet and str(model) in sheet
    rejected = " or rejected as not digits" if any(r["status"] == "rejected" for r in rows) else ""
    assert f"review: {len(unsure)} images below confidence 0.999{rejected} copied to" in stderr

    # Again: nothing copied twice. A person labels one (moved and renamed) and another
    # (copied): still not copied again, and the sheet shows only what is left.
    code, _, stderr = invoke(*args, "--review", queue)
    assert code == 0 and f"review: 0 images below confidence 0.999{rejected} copied" in stderr
    assert f"({len(unsure)} already queued)" in stderr
    (queue / "3").mkdir()
    queued[0].rename(queue / "3" / "mine.png")
    (queue / "not-a-digit").mkdir()
    shutil.copy(queued[-1], queue / "not-a-digit")
    code, _, _ = invoke(*args, "--review", queue)
    assert code == 0 and len(list((queue / "unlabelled").iterdir())) == len(unsure) - 1
    sheet = (queue / "index.html").read_text()
    assert sheet.count('class="card') == len(unsure) - 2 and queued[-1].name not in sheet


def test_review_queue_refuses_a_place_it_cannot_use(
    transformed: Path, model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(transformed / "rgb-4x", folder)
    code, _, stderr = invoke("score", folder, "-m", model, "--review", folder / "queue")
    assert code == 2 and "inside" in stderr and not (folder / "queue").exists()
    (tmp_path / "file").write_text("x")
    code, _, stderr = invoke("score", folder, "-m", model, "--review", tmp_path / "file")
    assert code == 2 and "is a file" in stderr
    # a file on the queue's way (file/q), or where its unlabelled/ goes: exit 2, one line
    # naming it, before the work (was exit 4, "[Errno 20] Not a directory")
    (tmp_path / "q2").mkdir()
    (tmp_path / "q2" / "unlabelled").write_text("x")
    (tmp_path / "q3").mkdir()  # a link to nowhere: "[Errno 17] File exists", exit 4
    (tmp_path / "q3" / "unlabelled").symlink_to(tmp_path / "nowhere")
    for queue, said in (
        (tmp_path / "file" / "q", f"file is a file, not a folder (for the folder {tmp_path}/"),
        (tmp_path / "q2", "q2/unlabelled is a file, not a folder"),
        (tmp_path / "q3", "q3/unlabelled is a broken symbolic link, not a folder"),
    ):
        code, _, stderr = invoke("score", folder, "-m", model, "--review", queue)
        assert code == 2, stderr
        assert len(stderr.strip().splitlines()) == 1 and f"{tmp_path}/{said}" in stderr, stderr
    code, _, stderr = invoke("score", folder, "-m", model, "--review", tmp_path / "q", "--flow")
    assert code == 2 and "drop --flow" in stderr
    # a queue that cannot be made: one line as for every other output (it said "cannot use
    # the review queue …: [Errno 2] No such file or directory: '…'")
    nowhere = "/proc/softmax-pipe-no-such-folder/q"
    code, _, stderr = invoke("score", folder, "-m", model, "--review", nowhere)
    assert code == 4, stderr
    assert stderr.startswith(f"error: cannot create the folder {nowhere}/unlabelled: "), stderr
    assert len(stderr.strip().splitlines()) == 1 and "Errno" not in stderr, stderr
    # rows over the queue's own page: the sheet replaced them, exit 0, "rows written"
    queue = tmp_path / "q"
    args = ("score", folder, "-m", model, "--review", queue, "-o", queue / "index.html")
    code, _, stderr = invoke(*args)
    assert code == 2 and f"is inside the review queue {queue}" in stderr, stderr
    assert not queue.exists()


# --- hostile file names (issue 27, items 1 and 2) ----------------------------------------------

FORGE = "\x1b]0;PWNED\x07\x1b[2K\rerror: fake"  # retitle, clear the line, write a fake one
FENCE = "\n```\n[click](javascript:alert(1))\n```\n"  # leave the artifact's code block


def _hostile_folder(tmp_path: Path) -> Path:
    """A broken file and a readable digit, both with names that forge terminal lines or
    markdown, and a plain digit beside them."""
    folder = tmp_path / "hostile"
    (folder / "3").mkdir(parents=True)
    (folder / "3" / f"{FORGE}x.png").write_bytes(b"x")
    (folder / "3" / f"b{FENCE}.png").write_bytes(b"x")
    _digit_png(folder / "3" / f"digit{FORGE}.png")
    _digit_png(folder / "3" / "plain.png")
    return folder


def _no_forgery(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text, repr(text)
    assert not [line for line in text.splitlines() if line.startswith(("error: fake", "```"))]


def test_review_queue_names_keep_letters_of_any_script(
    ds: Dataset, model: Path, tmp_path: Path
) -> None:
    """Queued names keep the source's letters and digits in any script, NFC (was ``_.jpg``
    for ``字母.jpg``), and are cut at 120 bytes of UTF-8 between characters: never a
    broken character, never over a file system's 255 bytes."""
    import unicodedata

    folder = tmp_path / "scans"
    names = {
        "字母.png": "字母.png",
        unicodedata.normalize("NFD", "é.png"): "é.png",  # macOS spells it so
        "Фото/снимок 1.png": "Фото~снимок_1.png",
        "Ärger ö.png": "Ärger_ö.png",
        "-rf <x>:y?.png": "rf_x_y_.png",
        "字" * 80 + ".png": "字" * 40,  # 40 × 3 bytes
        # the marks of a letter stay with it (a virama, vowel signs, tone marks)
        "हिन्दी.png": "हिन्दी.png",
        "ที่นี่.png": "ที่นี่.png",
        "مُحَمَّد.png": "مُحَمَّد.png",
        "\u200fשלום\u200f.png": "_שלום_.png",  # the name's, not the row's "\\u200f"
    }
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(sd.png_bytes(np.asarray(ds.x_test[i])))
    queue = tmp_path / "queue"
    args = ("score", folder, "-m", model, "--review", queue, "--min-confidence", 1.0)
    code, _, stderr = invoke(*args, "--no-reject")
    assert code == 0, stderr
    queued = sorted(p.name for p in (queue / "unlabelled").iterdir())
    stems = sorted(re.split("__pred", q)[0] for q in queued)
    assert stems == sorted(names.values()), queued
    assert all(len(q.encode()) <= 255 and unicodedata.is_normalized("NFC", q) for q in queued)
    # a file named as PATH is scored whatever its extension: a long one is left off
    odd = tmp_path / ("a." + "字" * 75)
    odd.write_bytes(sd.png_bytes(np.asarray(ds.x_test[0])))
    code, _, stderr = invoke("score", odd, "-m", model, "--review", tmp_path / "q2", "--no-reject",
                             "--min-confidence", 1.0)  # fmt: skip
    assert code == 0, stderr  # was exit 4: "File name too long"
    (long,) = (tmp_path / "q2" / "unlabelled").iterdir()
    assert len(long.name.encode()) < 255, long.name


def test_file_names_cannot_forge_terminal_lines(model: Path, tmp_path: Path) -> None:
    """Names with ESC, BEL, CR and newlines are shown escaped in the summary, the rows and
    the review queue's names; the unsure digit with such a name is still queued."""
    folder = _hostile_folder(tmp_path)
    queue = tmp_path / "queue"
    code, stdout, stderr = invoke(
        "score", folder, "--model", model, "--review", queue, "--min-confidence", 1.0
    )
    assert code == 1, stderr
    _no_forgery(stderr)
    _no_forgery(stdout)
    assert "3/\\x1b]0;PWNED\\x07\\x1b[2K\\rerror: fakex.png: not an image" in stderr
    rows = {r["path"]: r for r in sd.read_rows(stdout)}
    assert rows["3/digit\\x1b]0;PWNED\\x07\\x1b[2K\\rerror: fake.png"]["status"] == "ok"
    queued = [p.name for p in (queue / "unlabelled").iterdir()]
    # read through its real name (the same bytes as plain.png: queued once, first in the
    # walk), named after it: each run of control characters one "_", none kept
    assert len(queued) == 1 and queued[0].startswith("3~digit_0_PWNED_2K_error_fake"), queued
    assert queued[0].isprintable(), queued


def test_flow_scoring_summary_artifact_escapes_file_names(
    model: Path, tmp_path: Path, prefect_harness: None
) -> None:
    """The ``scoring-summary`` artifact, read back from the Prefect API and rendered as
    CommonMark: one code block holding every line, no link, no HTML."""
    from markdown_it import MarkdownIt
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    folder = _hostile_folder(tmp_path)
    code, _, stderr = invoke("score", folder, "--model", model, "--flow", "-o", tmp_path / "o.csv")
    assert code == 1, stderr
    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["scoring-summary"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    md = MarkdownIt("commonmark", {"html": True})
    md.validateLink = lambda url: True  # type: ignore[method-assign]  # see every link
    tokens = md.parse(str(art.data))
    assert [t.type for t in tokens] == ["heading_open", "inline", "heading_close", "fence"]
    assert "failed 2 images" in tokens[3].content and "javascript" in tokens[3].content
    described = md.parse(art.description or "")
    inline = [c.type for t in described for c in t.children or []]
    assert "link_open" not in inline and "html_inline" not in inline


# --- the reject option ----------------------------------------------------------------------


MAIN_10_CLASS = Path(__file__).resolve().parents[1] / "data" / "main_10_class"
_PROBABILITY = re.compile(r"[01]\.\d{6}")


def _shape_of_rows(text: str) -> str:
    """The rows' text with every probability (``0.089441``) as ``P``: what must not move
    from one CPU to another."""
    return _PROBABILITY.sub("P", text)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("reject", ["--reject", "--no-reject"])
def test_a_ten_class_model_file_written_by_main_scores_the_same_bytes(
    fmt: str, reject: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tests/data/main_10_class``: a model file written by main's code before the reject
    option, eight images (a blank page and a broken file among them) and the rows main's
    ``score --probs`` wrote for them. A 10-class model cannot reject: its rows are the same,
    the blank page still an error, whatever --reject says. The same up to the last printed
    digit of a probability: OpenBLAS picks its float32 kernels by CPU (on an AMD EPYC, its
    Haswell ones: AVX2), and there a sum's last bit moved one probability from the stored
    0.089441 to 0.089442 (the test compared bytes, true only on the kind of CPU the rows
    were written on)."""
    work = tmp_path / "main"
    shutil.copytree(MAIN_10_CLASS, work)
    monkeypatch.chdir(work)
    args = ["score", "images", "-m", "model.npz", "--probs", "--workers", 1, "-f", fmt]
    code, _, stderr = invoke(*args, "-o", f"now.{fmt}", reject)
    assert code == 1, stderr  # the blank page and the broken file, as on main
    now, then = (work / f"now.{fmt}").read_text(), (MAIN_10_CLASS / f"rows.{fmt}").read_text()
    assert _shape_of_rows(now) == _shape_of_rows(then)
    for a, b in zip(sd.read_rows(now, fmt), sd.read_rows(then, fmt), strict=True):
        assert list(a) == list(b)
        for key, value in a.items():
            if isinstance(b[key], float) or _PROBABILITY.fullmatch(str(b[key])):  # 6 decimals
                assert abs(float(value) - float(b[key])) <= 1.0001e-6, (key, a, b)
            else:
                assert value == b[key], (key, a, b)
    assert not [line for line in stderr.splitlines() if line.startswith("rejected")]
    assert "rejected 0.0%" in stderr  # the run's profile: nothing rejected


@pytest.fixture(scope="module")
def junk_and_digits(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 MNIST test digits, 60 held-out generated non-digits (as PNGs, dark on light as a
    scan) and a blank page."""
    from softmax_core import settings
    from softmax_core.negatives import negatives

    folder = tmp_path_factory.mktemp("junk")
    sd.write_pngs(folder / "digits", ds.x_test[:20], ds.y_test[:20])
    (folder / "junk").mkdir()
    for i, image in enumerate(negatives(60, seed=settings.HELDOUT_NEGATIVES_SEED)):
        (folder / "junk" / f"junk{i:02d}.png").write_bytes(sd.png_bytes(255 - image))
    (folder / "blank.png").write_bytes(sd.png_bytes(np.full((40, 30), 250, np.uint8)))
    return folder


def test_images_that_are_not_digits_are_rejected_rows_and_the_run_succeeds(
    junk_and_digits: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s.csv"
    code, _, stderr = invoke("score", junk_and_digits, "-m", model, "-o", out, "--probs")
    assert code == 0, stderr  # rejected rows are not failures
    rows = sd.read_rows(out.read_text())
    assert list(rows[0])[-11:] == [f"p{k}" for k in range(10)] + ["p_reject"]
    junk = [r for r in rows if r["path"].startswith("junk/")]
    rejected = [r for r in junk if r["status"] == "rejected"]
    assert len(rejected) >= 0.6 * len(junk)  # about 76% at the default threshold
    marks = [r for r in rejected if r["error"].startswith("not one digit (")]
    assert all(r["label"] == r["confidence"] == r["p_reject"] == "" for r in marks)
    for r in (r for r in rejected if r not in marks):
        assert r["label"] == "" and r["confidence"] == r["p_reject"]
        assert r["error"] == f"not a digit (p={float(r['p_reject']):.2f})"
        assert float(r["p_reject"]) == max(float(r[k]) for k in list(r)[-11:])
    digits = [r for r in rows if r["path"].startswith("digits/")]
    assert sum(r["status"] == "ok" for r in digits) >= 19 and sd.accuracy(digits) >= 0.9
    blank = next(r for r in rows if r["path"] == "blank.png")
    assert (blank["status"], blank["error"], blank["confidence"], blank["p_reject"]) == (
        "rejected",
        "blank page",
        "",
        "",
    )
    n = len(rejected) + 1
    assert f"rejected {n} images: {n - 1} not digits, 1 blank page (" in stderr
    assert "failed" not in stderr

    # the summary as JSON-able counts, and JSON Lines rows
    jl = tmp_path / "s.jsonl"
    code, _, _ = invoke("score", junk_and_digits, "-m", model, "-o", jl, "-f", "jsonl")
    assert code == 0
    lines = [json.loads(line) for line in jl.read_text().splitlines()]
    first = next(r for r in lines if r["status"] == "rejected" and r["path"] != "blank.png")
    assert first["label"] is None and first["error"].startswith("not ")
    first = next(r for r in lines if r["status"] == "rejected" and r["error"][:5] == "not a")
    assert isinstance(first["confidence"], float)
    assert next(r for r in lines if r["path"] == "blank.png")["confidence"] is None

    # --no-reject: every image gets a digit; the blank page is an error (exit 1) again
    code, _, stderr = invoke("score", junk_and_digits, "-m", model, "-o", out, "--no-reject")
    assert code == 1
    rows = sd.read_rows(out.read_text())
    assert {r["status"] for r in rows} == {"ok", "error"}
    assert all(r["label"] in [str(k) for k in range(10)] for r in rows if r["status"] == "ok")

    # a threshold of 1: only a "not a digit" of probability 1 rejects
    code, _, _ = invoke("score", junk_and_digits, "-m", model, "-o", out, "--reject-threshold", 1)
    assert code == 0
    strict = [r for r in sd.read_rows(out.read_text()) if r["status"] == "rejected"]
    assert len(strict) < n and all(
        float(r["confidence"]) == 1.0 for r in strict[:-1] if r["confidence"]
    )


def test_several_digits_in_one_image_are_a_rejected_row(
    ds: Dataset, model: Path, tmp_path: Path
) -> None:
    """A number (two MNIST digits side by side, dark on light as a photo of "72"; five in a
    strip) is not one digit: a rejected row, ``not one digit (N separate marks)``, with no
    confidence, whatever the model says of the digit nearest the centre, and not queued for
    review. ``--no-reject`` reads that digit, as before. A digit alone stays ok."""
    x = np.asarray(ds.x_test)
    folder = tmp_path / "numbers"
    folder.mkdir()
    (folder / "72.png").write_bytes(sd.png_bytes(255 - np.concatenate([x[0], x[1]], axis=1)))
    (folder / "five.png").write_bytes(sd.png_bytes(np.concatenate(list(x[:5]), axis=1)))
    (folder / "one.png").write_bytes(sd.png_bytes(x[2]))
    out, queue = tmp_path / "s.csv", tmp_path / "queue"
    args = ["score", folder, "-m", model, "-o", out, "--probs"]
    code, _, stderr = invoke(*args, "--review", queue, "--min-confidence", 0)
    assert code == 0, stderr
    rows = {r["path"]: r for r in sd.read_rows(out.read_text())}
    for name, n in (("72.png", 2), ("five.png", 5)):
        r = rows[name]
        assert (r["status"], r["label"], r["confidence"], r["p_reject"]) == ("rejected", "", "", "")
        assert r["error"] == f"not one digit ({n} separate marks)"
    assert (rows["one.png"]["status"], rows["one.png"]["label"]) == ("ok", str(ds.y_test[2]))
    assert "rejected 2 images: 2 not digits (status=rejected rows)" in stderr
    assert list((queue / "unlabelled").iterdir()) == []
    code, _, stderr = invoke(*args, "--no-reject")
    assert code == 0, stderr
    rows = {r["path"]: r for r in sd.read_rows(out.read_text())}
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert rows["72.png"]["label"] in (str(ds.y_test[0]), str(ds.y_test[1]))


def test_a_bad_reject_threshold_is_exit_2(junk_and_digits: Path, model: Path) -> None:
    code, _, stderr = invoke("score", junk_and_digits, "-m", model, "--reject-threshold", 1.5)
    assert code == 2
    assert "--reject-threshold 1.5 is invalid; expected a number in [0, 1]" in stderr


def test_review_queue_takes_rejected_images_under_a_name_that_says_so(
    junk_and_digits: Path, model: Path, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    out = tmp_path / "s.csv"
    args = ["score", junk_and_digits, "-m", model, "-o", out, "--min-confidence", 0.0]
    code, _, stderr = invoke(*args, "--review", queue)
    assert code == 0, stderr
    rows = sd.read_rows(out.read_text())
    rejected = [r for r in rows if r["status"] == "rejected" and r["path"] != "blank.png"]
    by_model = [r for r in rejected if r["error"].startswith("not a digit (p=")]
    queued = sorted(p.name for p in (queue / "unlabelled").iterdir())
    # the blank page is not queued, nor is an image of several marks: no label changes them
    assert len(queued) == len(by_model)
    for r in by_model:
        stem = r["path"].replace("/", "~")
        (name,) = [q for q in queued if q.startswith(f"{stem}__rejected__p")]
        shown = re.search(r"__rejected__p(\d\.\d\d)__", name)
        assert shown is not None and _cut_from(r["confidence"], shown[1]), name
    assert "or rejected as not digits copied to" in stderr
    sheet = (queue / "index.html").read_text()
    assert "not-a-digit" in sheet  # named as its class folder (labelled.label_name)
    # the person confirms: not-a-digit/ is a class folder dataset add accepts
    (queue / "not-a-digit").mkdir()
    for name in queued[:3]:
        (queue / "unlabelled" / name).rename(queue / "not-a-digit" / name)
    from softmax_core.labelled import read_folder

    read = read_folder(queue)
    assert read.data.class_counts() == {**{str(d): 0 for d in range(10)}, "not-a-digit": 3}
    assert set(read.data.labels.tolist()) == {10}


def test_review_sheet_says_what_each_row_says(
    junk_and_digits: Path, model: Path, tmp_path: Path
) -> None:
    """Each card of the contact sheet shows its row's label (or ``rejected``), confidence
    and status, and the sheet counts "below confidence" as the summary does: an image
    whose most likely class is "not a digit", under the reject threshold, is its digit's
    row (was: a ``not-a-digit`` card, counted on that probability)."""
    queue, out = tmp_path / "queue", tmp_path / "s.csv"
    args = ("score", junk_and_digits, "-m", model, "-o", out, "--probs", "--review", queue)
    code, _, stderr = invoke(*args, "--reject-threshold", 0.9)
    assert code == 0, stderr
    rows = {r["path"].replace("/", "~"): r for r in sd.read_rows(out.read_text())}
    under = [  # the case: "not a digit" wins, but under the threshold: an ok row
        r
        for r in rows.values()
        if r["status"] == "ok" and float(r["p_reject"]) > max(float(r[f"p{k}"]) for k in range(10))
    ]
    assert under, "no row where 'not a digit' wins under the threshold"
    sheet = (queue / "index.html").read_text()
    cards = sheet.split('<div class="card')[1:]
    assert len(cards) == len(list((queue / "unlabelled").iterdir())) > len(under)
    for card in cards:
        name = re.search(r'class="name" title="([^"]*)"', card)
        assert name is not None
        r = rows[re.split(r"__(?:pred\d|rejected)__", name[1])[0]]
        said = r["label"] if r["status"] == "ok" else "rejected"
        assert f'<div class="label">{said}<' in card, (r, card[:300])
        shown = re.search(r'<div class="row">confidence (\d\.\d{6}) · ([a-z]+)', card)
        assert shown is not None and shown[2] == r["status"], (r, card[:300])
        # the sheet scores the queue's copies in a batch of their own: float32 sums may
        # round the last printed digit the other way on a CPU whose OpenBLAS kernels
        # depend on the batch's shape (AVX2), as the same file scored alone may
        assert abs(float(shown[1]) - float(r["confidence"])) <= 1.0001e-6, (r, card[:300])
        assert card.startswith(" check") == (r["status"] == "ok" and float(r["confidence"]) < 0.5)
    below = re.search(r"below 0\.5 confidence: (\d+)", stderr)
    assert below is not None
    assert f"<b>{below[1]}</b><span>below confidence 0.5</span>" in sheet
    assert sum(c.startswith(" check") for c in cards) == int(below[1])
