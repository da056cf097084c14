"""``softmax-pipe dataset ...`` invoked as a user would, and the whole loop of the datasets
issue: score -> review -> label by moving files -> dataset add -> run -> better on that domain.

The domain is printed digits (tests/printed_digits.py: Pillow's own font, sizes, small
turns, noise), which an MNIST-only model reads worse than handwriting.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from registry import Registry, layout
from tests.cli_invoke import invoke
from tests.printed_digits import render, write_printed


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_printed(tmp_path_factory.mktemp("printed") / "p", 5, seed=21)


def test_add_list_versions_show_pull(printed: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    code, out, _ = invoke("dataset", "add", printed, "--name", "printed", "--registry", reg)
    assert code == 0 and f"added printed:1 to {reg}: 50 images" in out
    code, out, _ = invoke("dataset", "add", printed, "--name", "printed", "--registry", reg)
    assert code == 0 and "unchanged: printed:1 already holds all 50 images" in out
    code, out, _ = invoke("dataset", "list", "--registry", reg, "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["name"] == "printed" and row["version"] == 1 and row["count"] == 50
    code, out, _ = invoke("dataset", "versions", "printed", "--registry", reg)
    assert code == 0 and out.splitlines()[1].split()[:2] == ["1", "50"]
    code, out, _ = invoke("dataset", "show", "printed:1", "--registry", reg, "--json")
    shown = json.loads(out)
    assert shown["classes"] == {str(d): 5 for d in range(10)} and shown["split"]
    code, out, _ = invoke(
        "dataset", "pull", "printed", "--out", f"{tmp_path}/got/", "--registry", reg
    )
    assert code == 0 and (tmp_path / "got" / "printed-1.npz").is_file()


def test_bad_input_exit_codes(printed: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    bad = tmp_path / "bad"
    shutil.copytree(printed, bad)
    (bad / "10").mkdir()
    code, _, err = invoke("dataset", "add", bad, "--name", "x", "--registry", reg)
    assert code == 2 and "10: unexpected folder" in err and len(err.strip().splitlines()) <= 2
    code, _, err = invoke("dataset", "add", tmp_path / "nothing", "--name", "x", "--registry", reg)
    assert code == 3 and "nothing does not exist; expected a folder" in err
    a_file = printed / "3" / sorted(p.name for p in (printed / "3").iterdir())[0]
    code, _, err = invoke("dataset", "add", a_file, "--name", "x", "--registry", reg)
    assert code == 2 and f"error: {a_file} is not a folder; expected a folder" in err
    code, _, err = invoke("dataset", "add", printed, "--name", "../up", "--registry", reg)
    assert code == 2 and "dataset name '../up'" in err
    code, _, err = invoke("dataset", "show", "nope", "--registry", reg)
    assert code == 3 and "no dataset named 'nope'" in err


def test_some_broken_images_exit_1_and_the_rest_are_added(printed: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    folder = tmp_path / "f"
    shutil.copytree(printed, folder)
    (folder / "3" / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    code, out, err = invoke("dataset", "add", folder, "--name", "p", "--registry", reg)
    assert code == 1 and "3/torn.png" in err and "added p:1" in out and "50 images" in out
    said = "error: 1 of 51 images could not be read and was left out"
    assert f"{said}; the other 50 were added" in err
    # the same folder again: nothing added, and the line says so (exit 1 all the same)
    code, out, err = invoke("dataset", "add", folder, "--name", "p", "--registry", reg)
    assert code == 1 and "unchanged: p:1 already holds all 50 images; no new version" in out
    assert f"{said}; the dataset is unchanged (p:1 holds the other 50)" in err
    assert "were added" not in err


def test_the_notes_count_in_words(printed: Path, tmp_path: Path) -> None:
    """A repeated file and an image waiting in unlabelled/: one of each, said in the
    singular; two, in the plural."""
    folder = tmp_path / "f"
    shutil.copytree(printed, folder)
    first = sorted((folder / "3").iterdir())[0]
    shutil.copy(first, folder / "3" / "again.png")
    (folder / "unlabelled").mkdir()
    Image.open(first).save(folder / "unlabelled" / "waiting.png", compress_level=1)
    code, out, err = invoke("dataset", "add", folder, "--name", "p", "--registry", tmp_path / "r")
    assert code == 0 and "added p:1" in out and ": 50 images (" in out, err
    assert "note: 1 file repeats another file's bytes; each counted once" in err
    assert "note: 1 image still in unlabelled/ was not added" in err
    shutil.copy(first, folder / "3" / "and-again.png")
    Image.open(first).save(folder / "unlabelled" / "waiting-too.png", compress_level=2)
    code, _, err = invoke("dataset", "add", folder, "--name", "p", "--registry", tmp_path / "r")
    assert "note: 2 files repeat another file's bytes" in err
    assert "note: 2 images still in unlabelled/ were not added" in err


def test_images_copied_out_of_unlabelled_are_not_called_not_added(
    printed: Path, tmp_path: Path
) -> None:
    """A queue labelled by copying (cp unlabelled/* not-a-digit/) rather than moving:
    the copies' bytes are in the dataset, so they are said to be, not "not added", on the
    add that took them and on the next ones."""
    queue = tmp_path / "q"
    shutil.copytree(printed / "3", queue / "3")
    shutil.copytree(printed / "7", queue / "unlabelled")
    shutil.copytree(queue / "unlabelled", queue / "7")  # copied, not moved
    eight = sorted((printed / "8").iterdir())[0]
    shutil.copy(eight, queue / "unlabelled" / "still-to-label.png")
    reg = tmp_path / "r"
    code, out, err = invoke("dataset", "add", queue, "--name", "w", "--registry", reg)
    assert code == 0 and "added w:1" in out, err
    assert "note: 5 images in unlabelled/ are in w:1 already (labelled copies); delete them" in err
    assert "note: 1 image still in unlabelled/ was not added" in err
    code, out, err = invoke("dataset", "add", queue, "--name", "w", "--registry", reg)
    assert code == 0 and "unchanged: w:1" in out
    assert "5 images in unlabelled/ are in w:1 already" in err


def test_only_image_files_wait_in_unlabelled_and_json_counts_them(
    printed: Path, tmp_path: Path
) -> None:
    """A folder, a dangling symlink and a FIFO named like images in unlabelled/ are no
    images waiting (the review queue's own listing skips them: nothing to label), nor is a
    labelled copy; ``--json`` has the note's count as ``still_unlabelled``, 0 when none."""
    folder, reg = tmp_path / "f", tmp_path / "r"
    shutil.copytree(printed, folder)
    code, out, err = invoke("dataset", "add", folder, "--name", "p", "--registry", reg, "--json")
    assert code == 0 and json.loads(out)["still_unlabelled"] == 0 and "unlabelled" not in err
    queue = folder / "unlabelled"
    queue.mkdir()
    first = sorted((folder / "3").iterdir())[0]
    Image.open(first).save(queue / "waiting.png", compress_level=1)
    shutil.copy(first, queue / "copied.png")  # labelled already: said apart
    (queue / "x.png").mkdir()
    (queue / "d.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(queue / "f.png")
    code, out, err = invoke("dataset", "add", folder, "--name", "p", "--registry", reg)
    assert code == 0 and "unchanged: p:1" in out, err
    assert "note: 1 image still in unlabelled/ was not added" in err
    assert "note: 1 image in unlabelled/ is in p:1 already (labelled copies)" in err
    code, out, err = invoke("dataset", "add", folder, "--name", "p", "--registry", reg, "--json")
    assert code == 0 and json.loads(out)["still_unlabelled"] == 1, err
    assert "note: 1 image still in unlabelled/ was not added" in err


def test_a_tampered_blob_exits_4(printed: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    invoke("dataset", "add", printed, "--name", "p", "--registry", reg)
    with Registry.open(str(reg), cache_dir=tmp_path / "c") as r:
        m = r.resolve_dataset("p")
        r.store.put(layout.blob_key(m.digest), b"something else")
    code, _, err = invoke("dataset", "pull", "p", "--registry", reg, "--cache-dir", tmp_path / "c2")
    assert code == 4 and f"expected {m.digest}" in err


# --- the loop, end to end ---------------------------------------------------------------


def _label_of(queued: Path) -> int:
    """``<i>_<digit>.png__pred7__p0.41__<hash>.png`` -> digit (the truth, from the source)."""
    source = queued.name.split("__pred")[0]
    return int(source.split("_")[1].split(".")[0])


def _shots(folder: Path, n: int, seed: int) -> Path:
    """``n`` printed digits as users' files, flat, named ``<i>_<digit>.png``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        digit = i % 10
        size = int(rng.choice([22, 30, 40]))
        render(digit, None, size, float(rng.uniform(-8, 8)), rng).save(folder / f"{i}_{digit}.png")
    return folder


def _run(*args: object) -> dict[str, Any]:
    code, out, err = invoke("run", "--retry-delay", "0", "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_score_review_label_add_run_is_better_on_that_domain(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    reg, queue = tmp_path / "reg", tmp_path / "queue"
    common = ["--source", mnist_dir, "--cache-dir", session_cache, "--registry", reg]
    first = _run(*common)
    assert first["ref"] == "mnist:1"
    shots = _shots(tmp_path / "shots", 800, seed=4)

    # 1-2. score, and queue what the champion is unsure of
    code, _, err = invoke("score", shots, "--model", "mnist@champion", "--registry", reg,
                          "--cache-dir", session_cache, "--review", queue,
                          "--min-confidence", "0.99", "--output", tmp_path / "scores.csv")  # fmt: skip
    assert code == 0, err
    queued = sorted((queue / "unlabelled").iterdir())
    assert len(queued) >= 100, err

    # 3. a person labels them: each file moved into its digit's folder
    for f in queued:
        (queue / str(_label_of(f))).mkdir(exist_ok=True)
        f.rename(queue / str(_label_of(f)) / f.name)

    # 4. dataset add
    code, out, err = invoke("dataset", "add", queue, "--name", "printed", "--registry", reg)
    assert code == 0 and "added printed:1" in out, err

    # 5. run on MNIST plus the dataset, gated on both domains
    second = _run(*common, "--dataset", "printed")
    assert second["ref"] == "mnist:2" and second["gate"]["passed"]
    assert second["datasets"][0]["name"] == "printed" and second["datasets"][0]["version"] == 1
    printed = second["domains"]["printed"]

    # 6. better on that domain's holdout, MNIST within the margin (non-inferiority)
    assert printed["accuracy"] > printed["champion_accuracy"] + 0.05, printed
    assert printed["comparison"] == "better", printed
    assert second["gate"]["comparison"] in ("within the margin", "better")
    assert second["accuracy"] > 0.985
    code, out, _ = invoke("evaluate", "mnist:1", "--dataset", "printed", "--json", "--source",
                          mnist_dir, "--cache-dir", session_cache, "--registry", reg)  # fmt: skip
    assert json.loads(out)["domains"]["printed:1"]["accuracy"] == printed["champion_accuracy"]

    # the same labelled queue again: no new dataset version; re-scoring queues nothing twice
    code, out, _ = invoke("dataset", "add", queue, "--name", "printed", "--registry", reg)
    assert "unchanged: printed:1" in out


def test_add_reports_unreadable_files_as_escaped_error_rows(printed: Path, tmp_path: Path) -> None:
    """Issue 27 items 1, 5, 6, as a user runs it: a FIFO, links to /dev/zero and
    /dev/urandom, a dangling link and a name that forges terminal lines are error lines
    (escaped), exit 1, the rest added; in bounded time (it used to hang, or exit 70)."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "f"
    shutil.copytree(printed, folder)
    os.mkfifo(folder / "3" / "fifo.png")
    (folder / "3" / "zero.png").symlink_to("/dev/zero")
    (folder / "3" / "random.png").symlink_to("/dev/urandom")
    (folder / "3" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "4" / "\x1b]0;PWNED\x07\x1b[2K\rerror: fake.png").write_bytes(b"x")
    exe = Path(sys.executable).with_name("softmax-pipe")
    proc = subprocess.run(
        [str(exe), "dataset", "add", str(folder), "--name", "p", "--registry", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=180, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "added p:1" in proc.stdout and "50 images" in proc.stdout
    lines = proc.stderr.splitlines()
    assert "error: 3/fifo.png: unreadable: not a regular file" in lines
    assert "error: 3/zero.png: unreadable: not a regular file" in lines
    assert "error: 3/random.png: unreadable: not a regular file" in lines
    assert "error: 3/gone.png: unreadable: broken symlink" in lines
    forged = "error: 4/\\x1b]0;PWNED\\x07\\x1b[2K\\rerror: fake.png: not an image: "
    assert [line for line in lines if line.startswith(forged)], lines
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    assert "error: 5 of 55 images could not be read" in proc.stderr


def test_add_takes_a_not_a_digit_folder(printed: Path, tmp_path: Path) -> None:
    """A labelled folder's not-a-digit/ is the class "not a digit": added, counted, shown."""
    import numpy as np
    from PIL import Image

    from softmax_core.negatives import negatives

    folder = tmp_path / "mine"
    shutil.copytree(printed, folder)
    (folder / "not-a-digit").mkdir()
    for i, image in enumerate(negatives(6, seed=3)):
        Image.fromarray(255 - np.asarray(image)).save(folder / "not-a-digit" / f"junk{i}.png")
    reg = tmp_path / "reg"
    code, out, err = invoke("dataset", "add", folder, "--name", "mine", "--registry", reg)
    assert code == 0, err
    assert f"added mine:1 to {reg}: 56 images" in out and "not-a-digit:6" in out
    code, out, _ = invoke("dataset", "show", "mine:1", "--registry", reg, "--json")
    assert json.loads(out)["classes"] == {**{str(d): 5 for d in range(10)}, "not-a-digit": 6}
    # a folder that is no class is still refused, naming the classes there are
    (folder / "x").mkdir()
    code, _, err = invoke("dataset", "add", folder, "--name", "mine", "--registry", reg)
    assert code == 2 and "subfolders 0 … 9 and not-a-digit" in err


def test_class_folders_made_inside_unlabelled_are_pointed_at(printed: Path, tmp_path: Path) -> None:
    """Labelling in the wrong place (class folders inside a queue's unlabelled/) names them
    and says where they go; an empty queue names every class, not-a-digit too. Exit 3, as
    `run --inbox` reads it: nothing labelled yet."""
    queue = tmp_path / "queue"
    for c in ("8", "not-a-digit"):
        shutil.copytree(printed / "3", queue / "unlabelled" / c)
    code, _, err = invoke("dataset", "add", queue, "--name", "x", "--registry", tmp_path / "r")
    assert code == 3 and len(err.strip().splitlines()) == 1, err
    assert "move unlabelled/8/, unlabelled/not-a-digit/ up one level" in err
    shutil.rmtree(queue / "unlabelled")
    (queue / "unlabelled").mkdir()
    code, _, err = invoke("dataset", "add", queue, "--name", "x", "--registry", tmp_path / "r")
    assert code == 3 and "expected subfolders 0 … 9 and not-a-digit" in err
