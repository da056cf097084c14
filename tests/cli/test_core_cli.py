"""`softmax-pipe ingest / train / evaluate` invoked as a user would, on real MNIST."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from softmax_core.metrics import expected_calibration_error
from softmax_core.mnist import Dataset, cached_features, load_mnist
from softmax_core.model import Model
from softmax_core.preprocess import Deskew, Hog, Scale
from softmax_core.softmax import softmax
from softmax_pipe.cli import app
from tests.cli_invoke import invoke

runner = CliRunner()


def ds(mnist_dir: Path, cache: Path) -> Dataset:
    return load_mnist(str(mnist_dir), cache_dir=cache)


def test_help_lists_the_commands_and_exit_codes() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for command in ("ingest", "train", "evaluate"):
        assert command in out
    assert "5 accuracy gate failed" in " ".join(out.split())


def test_help_lists_every_exit_code_of_the_readme_s_table() -> None:
    """The top-level help's list left out 141 (stdout closed early), which the README's
    table and ``score --help`` document."""
    from tests.test_errors import _readme_table

    code, out, _ = invoke("--help")
    assert code == 0
    listed = " ".join(out.replace("│", " ").split()).split("Exit codes:", 1)[1]
    assert set(_readme_table()) == {int(c) for c in re.findall(r"\b(\d+) [a-z]", listed)}
    assert "141 stdout closed early" in listed


def _help_at_80_columns(command: str) -> subprocess.CompletedProcess[str]:
    """``softmax-pipe COMMAND --help`` as a user's terminal shows it: the installed script,
    80 columns; exit 0."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "COLUMNS": "80"}
    script = Path(sys.executable).parent / "softmax-pipe"
    done = subprocess.run(
        [str(script), *command.split(), "--help"], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("group", ["", "registry", "dataset"])
def test_command_lists_break_lines_only_where_they_are_full(group: str) -> None:
    """Each command's line in a group's list is its summary flowed to the width, as a
    user's terminal shows it (the installed script, 80 columns): a row ends early only
    where its summary ends. The docstrings' own line breaks used to break them
    mid-sentence ("... on the test split," and the rest below)."""
    done = _help_at_80_columns(group)
    panel = done.stdout.split("─ Commands ─")[1].splitlines()[1:]
    rows = [line[1:-1] for line in panel if line.startswith("│")]
    assert len(rows) >= 5, done.stdout
    start = len(rows[0]) - len(rows[0].split(maxsplit=1)[1].lstrip())  # the summaries' column
    texts = [(row[:start].strip(), row[start:].rstrip()) for row in rows]
    room = len(rows[0]) - start - 1  # the panel's right padding
    for (name, text), (next_name, next_text) in itertools.pairwise(texts):
        if next_name:  # the next command: this summary may end anywhere
            continue
        assert len(text) + 1 + len(next_text.split()[0]) > room, f"{name or '…'} {text!r}"


@pytest.mark.parametrize(
    "command", ["evaluate", "run", "serve", "deploy", "registry promote", "dataset add"]
)
def test_a_command_s_help_breaks_lines_only_where_they_are_full(command: str) -> None:
    """The paragraphs above a command's options, at 80 columns: a line ends early only where
    its paragraph ends. The docstrings' own breaks used to stay ("... how many it" /
    "rejected;" / "the expected calibration error ...")."""
    done = _help_at_80_columns(command)
    lines = done.stdout.split("Usage:")[1].split("╭")[0].splitlines()[1:]
    texts = [line.strip() for line in lines]
    assert sum(1 for t in texts if t) >= 3, done.stdout
    for text, after in itertools.pairwise(texts):
        if text and after:  # inside a paragraph: this line was full
            assert len(text) + 1 + len(after.split()[0]) > 78, f"{text!r} / {after!r}"


@pytest.mark.parametrize(
    ("command", "panels"),
    [
        ("run", ["Data", "Registry", "Training", "Gate", "Prefect"]),
        ("score", ["Model", "Registry", "Output", "Performance", "Review", "As a Prefect flow"]),
        ("train", ["Data", "Training", "Output"]),
    ],
)
def test_long_option_lists_are_grouped_in_panels(command: str, panels: list[str]) -> None:
    code, out, _ = invoke(command, "--help")
    assert code == 0
    titles = re.findall(r"[╭+]─+ ([^─]+?) ─", out)
    assert set(panels) <= set(titles), titles
    assert titles.index(panels[0]) < titles.index(panels[-1])  # in the order declared


def test_help_imports_no_heavy_module() -> None:
    """`--help` stays fast: the CLI module imports neither numpy nor Prefect, boto3, Pillow."""
    code = (
        "import sys, softmax_pipe.cli\n"
        "heavy = [m for m in ('numpy', 'prefect', 'boto3', 'PIL') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ingest_reports_cache_and_digests(mnist_dir: Path, session_cache: Path) -> None:
    code, out, err = invoke("ingest", "--source", str(mnist_dir), "--cache-dir", str(session_cache))
    assert code == 0, err
    assert "digest:  sha256:" in out and "60000 images" in out and "x_train.npy" in out
    code, out, err = invoke(
        "ingest", "--source", str(mnist_dir), "--cache-dir", str(session_cache), "--json"
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["cached"] is True
    assert info["train"] == 60000 and info["test"] == 10000
    assert len(info["digest"]) == 64
    assert set(info["arrays"]) == {"x_train", "y_train", "x_test", "y_test"}


def test_a_cache_dir_that_cannot_be_created_is_one_line(mnist_dir: Path, tmp_path: Path) -> None:
    """A --cache-dir under a file (as root, the way a read-only folder fails for a user)."""
    (tmp_path / "afile").write_text("")
    for command in ("ingest", "train"):
        code, _, err = invoke(
            command, "--source", str(mnist_dir), "--cache-dir", str(tmp_path / "afile" / "c")
        )
        assert code == 4, err
        assert "cannot create the MNIST cache under" in err and "--cache-dir" in err
        assert "unexpected" not in err


def test_source_from_environment(
    mnist_dir: Path, session_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTMAX_PIPE_MNIST", str(mnist_dir))
    monkeypatch.setenv("SOFTMAX_PIPE_CACHE", str(session_cache))
    code, out, err = invoke("ingest", "--json")
    assert code == 0, err
    assert str(mnist_dir) in json.loads(out)["source"]


@pytest.mark.parametrize(
    ("features", "steps", "floor"),
    [
        # 0.955 before the digits learned from cluttered digits (95.6% -> 95.4%)
        ("deskew", (Scale(), Deskew()), 0.95),
        ("pixels", (Scale(),), 0.92),  # 0.925 before the reject option: rejects are errors
        ("hog", (Scale(), Deskew(), Hog()), 0.985),
    ],
)
def test_train_then_evaluate_on_real_mnist(
    features: str,
    steps: tuple[object, ...],
    floor: float,
    mnist_dir: Path,
    session_cache: Path,
    tmp_path: Path,
) -> None:
    model = tmp_path / "model.npz"
    common = ["--source", str(mnist_dir), "--cache-dir", str(session_cache)]
    code, out, err = invoke(
        "train", "--features", features, "--seed", "0", "--out", str(model), *common
    )
    assert code == 0, err
    assert "test accuracy" in out and str(model) in out
    trained = Model.load(model)
    assert trained.steps.items == steps
    assert trained.info.params["seed"] == 0 and trained.info.params["features"] == features
    assert trained.info.data_digest is not None and len(trained.info.data_digest) == 64
    assert trained.info.code_version
    code, out, err = invoke("evaluate", str(model), "--json", *common)
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] >= floor
    assert report["accuracy"] == pytest.approx(trained.info.metrics["accuracy"])
    # the default model's 11th class, "not a digit": MNIST has none, rejects are errors
    assert trained.n_classes == 11
    assert len(report["per_class"]) == 11 and len(report["confusion"]) == 11
    assert report["per_class"][10]["support"] == 0 and not any(report["confusion"][10])
    assert sum(map(sum, report["confusion"])) == 10000
    # calibrated on the training split's last images; both errors on MNIST test, 15 bins
    assert trained.temperature != 1.0
    assert trained.info.metrics["temperature"] == trained.temperature
    assert 0 <= report["ece"] <= 0.02 and 0 <= report["ece_uncalibrated"] <= 0.05
    for key in ("ece", "ece_uncalibrated"):
        assert report[key] == pytest.approx(trained.info.metrics[key])
    test = ds(mnist_dir, session_cache)
    probs = softmax(trained.logits(cached_features(test, "test", trained.steps)))
    assert report["ece"] == pytest.approx(expected_calibration_error(probs, test.y_test))
    code, out, err = invoke("evaluate", str(model), *common)
    assert code == 0, err
    assert "confusion matrix" in out and "precision" in out
    assert f"expected calibration error {report['ece']:.4f}" in out
    # the class "not a digit" by its name: its column holds the rejected digits, and it
    # has no row (MNIST test holds none)
    rejected = sum(row[10] for row in report["confusion"])
    assert f"rejected as not a digit: {rejected} of 10000" in out
    matrix = out.split("confusion matrix", 1)[1].splitlines()
    assert any("┃" in line and "┃not-a-digit┃" in line for line in matrix), out  # whole
    assert not any(line.startswith("│ 10 ") for line in out.splitlines()), out


def test_same_seed_same_weights_on_real_mnist(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    common = ["--source", str(mnist_dir), "--cache-dir", str(session_cache), "--epochs", "1"]
    for name in ("a", "b"):
        code, out, err = invoke(
            "train", "--seed", "3", "--out", str(tmp_path / f"{name}.npz"), *common
        )
        assert code == 0, err
        assert " after 1 epoch in " in out, out  # not "1 epochs"
    a, b = Model.load(tmp_path / "a.npz"), Model.load(tmp_path / "b.npz")
    assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    assert not np.array_equal(a.W, np.zeros_like(a.W))


def test_train_json_and_evaluate_a_registry_reference(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    from registry import Registry

    common = ["--source", str(mnist_dir), "--cache-dir", str(session_cache)]
    model = tmp_path / "m.npz"
    code, out, err = invoke(
        "train", "--epochs", "1", "--seed", "2", "--out", str(model), "--json", *common
    )
    assert code == 0, err
    trained = json.loads(out)  # stdout is the JSON alone
    info = Model.load(model).info
    assert trained["model"] == str(model) and trained["features"] == "hog"
    assert (trained["epochs"], trained["seed"]) == (1, 2)
    assert trained["accuracy"] == info.metrics["accuracy"] > 0.9
    assert trained["data_digest"] == info.data_digest
    assert set(info.metrics) <= set(trained)
    assert trained["calibration_note"] is None  # 5,000 held-out images: a temperature fitted

    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=tmp_path / "c") as r:
        r.publish(model, "mnist", alias="champion")
    for ref in ("mnist@champion", "mnist:1", "mnist"):
        code, out, err = invoke("evaluate", ref, "--registry", str(reg), "--json", *common)
        assert code == 0, err
        report = json.loads(out)
        assert report["model"] == "mnist:1" and report["accuracy"] == trained["accuracy"]
    code, _, err = invoke("evaluate", "mnist:9", "--registry", str(reg), *common)
    assert code == 3 and "no version 9" in err


def test_evaluate_missing_model_is_not_found(tmp_path: Path, mnist_dir: Path) -> None:
    code, _, err = invoke("evaluate", str(tmp_path / "nope.npz"), "--source", str(mnist_dir))
    assert code == 3
    assert "nope.npz does not exist" in err
    assert "Traceback" not in err


def test_evaluate_corrupt_model_is_bad_input(tmp_path: Path, mnist_dir: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    code, _, err = invoke("evaluate", str(bad), "--source", str(mnist_dir))
    assert code == 2
    assert "bad.npz" in err


def test_missing_source_folder_is_not_found(tmp_path: Path) -> None:
    code, _, err = invoke(
        "ingest", "--source", str(tmp_path / "nowhere"), "--cache-dir", str(tmp_path)
    )
    assert code == 3
    assert "nowhere" in err


def test_a_command_that_fails_after_its_output_check_leaves_no_folder(tmp_path: Path) -> None:
    """train, score and report check their output before the work, making its missing
    folders to do so; a run that then failed (a missing source, model or registry version)
    left them there, empty. Now nothing is left."""
    out = tmp_path / "out"
    reg = ("--registry", str(tmp_path / "registry"), "--cache-dir", str(tmp_path / "cache"))
    (tmp_path / "registry").mkdir()
    (tmp_path / "images").mkdir()
    for command in (
        ("train", "--source", str(tmp_path / "nowhere"), "--out", f"{out}/a/m.npz"),
        ("report", str(tmp_path / "none.npz"), "-o", f"{out}/b/r.html"),
        ("score", str(tmp_path / "images"), "-m", "mnist:9", "-o", f"{out}/c/x.csv", *reg),
    ):
        code, _, err = invoke(*command)
        assert code == 3, err
        assert not out.exists(), command


def test_bad_option_is_usage_error(tmp_path: Path) -> None:
    code, _, _ = invoke("train", "--epochs", "0", "--out", str(tmp_path / "m.npz"))
    assert code == 2


def test_an_unexpected_error_is_one_line_exit_70_and_debug_shows_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import softmax_core.mnist

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in the loader")

    monkeypatch.setattr(softmax_core.mnist, "load_mnist", boom)
    monkeypatch.delenv("SOFTMAX_PIPE_DEBUG", raising=False)
    code, _, stderr = invoke("ingest", "--cache-dir", str(tmp_path))
    assert code == 70, stderr
    assert stderr.strip().count("\n") == 0
    assert "unexpected RuntimeError: boom in the loader" in stderr and "--debug" in stderr
    code, _, stderr = invoke("--debug", "ingest", "--cache-dir", str(tmp_path))
    assert code == 70, stderr  # the traceback, and the code the README gives a bug
    assert stderr.startswith("Traceback (most recent call last):"), stderr
    assert "RuntimeError: boom in the loader" in stderr
    last = stderr.strip().splitlines()[-1]  # the traceback is there: no hint to ask for it
    assert last.startswith("error: unexpected RuntimeError") and "--debug" not in last, last


def test_an_idx_split_of_no_images_is_exit_2(mnist_dir: Path, tmp_path: Path) -> None:
    """Test files whose headers count 0 images: the line the .npz source gives (exit 2),
    not an unexpected TypeError of the parser's memoryview (exit 70)."""
    import gzip
    import shutil
    import struct

    idx = tmp_path / "idx"
    idx.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, idx / name)
    (idx / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">IIII", 0x803, 0, 28, 28))
    )
    (idx / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, 0)))
    code, _, stderr = invoke("ingest", "--source", idx, "--cache-dir", tmp_path / "cache")
    assert code == 2, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"error: MNIST IDX folder {idx}: the test split holds no images"
    )


def test_usage_errors_are_one_line_exit_2() -> None:
    code, _, stderr = invoke("train", "--epochs", "many")
    assert code == 2
    assert stderr.startswith("error: Invalid value for '--epochs'") and "Traceback" not in stderr
    assert "╭" not in stderr  # no boxed panel


def test_version_names_the_package_and_the_code() -> None:
    code, stdout, _ = invoke("--version")
    assert code == 0 and stdout.startswith("softmax-pipe ") and "(" in stdout


def test_python_dash_m_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "softmax_pipe", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "registry" in done.stdout


@pytest.mark.parametrize("args", [["--help"], ["score", "--help"], ["registry", "list", "--help"]])
def test_help_into_a_closed_pipe_exits_quietly(args: list[str]) -> None:
    """`softmax-pipe --help | head -1`: exit 141, nothing on stderr (it was exit 70, then 1)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write is EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "softmax_pipe", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr.decode()
    assert proc.stderr.decode() == ""


def test_root_usage_errors_are_one_line_too() -> None:
    """An unknown option of the root itself fails before any command runs (typer would box it)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "softmax-pipe"), "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "error: No such option: --bogus (see `softmax-pipe --help`)\n"
    assert done.stdout == ""


def test_a_group_without_a_command_prints_its_help_and_no_empty_error() -> None:
    code, out, err = invoke("registry")
    assert code == 2
    assert "Usage: softmax-pipe registry" in out and "pull" in out
    assert err == ""  # it was "error:  (see ...)"


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_env_var_names_are_whole_in_help_at_80_columns() -> None:
    import typer.main

    checked = 0
    for path, cmd in _commands(typer.main.get_command(app)):
        envvars = [p.envvar for p in cmd.params if getattr(p, "show_envvar", False) and p.envvar]
        if not envvars:
            continue
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERM": "xterm"})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, path
        words = set(re.findall(r"[A-Z][A-Z0-9_]+", result.stdout))
        for name in envvars:
            assert name in words, (path, name)  # on one line, not cut or wrapped mid-name
        checked += 1
    assert checked >= 8


def test_shell_completion_is_on() -> None:
    """The script `--show-completion` prints, and the completions it asks the CLI for."""
    exe = str(Path(sys.executable).parent / "softmax-pipe")
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = subprocess.run(
        [exe, "--show-completion", "bash"], capture_output=True, text=True, timeout=120, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert "_SOFTMAX_PIPE_COMPLETE=complete_bash" in shown.stdout
    assert "complete -o default -F _softmax_pipe_completion softmax-pipe" in shown.stdout
    env |= {"_SOFTMAX_PIPE_COMPLETE": "complete_bash", "COMP_WORDS": "softmax-pipe reg"}
    asked = subprocess.run(
        [exe], capture_output=True, text=True, timeout=120, env={**env, "COMP_CWORD": "1"}
    )
    assert asked.returncode == 0 and asked.stdout.split() == ["registry"], asked


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (["--debug", "train", "--epochs", "many"], {}, 2),
        (["--bogus"], {"SOFTMAX_PIPE_DEBUG": "1"}, 2),
        (["--debug", "ingest", "--source", "/no/such/mnist"], {}, 3),
        (["--debug", "registry", "show", "nope:1", "--registry", "{tmp}/r"], {}, 3),
        (["--debug", "score", "{tmp}", "--model", "{tmp}/none.npz"], {}, 3),
    ],
    ids=["usage", "root-usage-env", "not-found", "registry-not-found", "model-not-found"],
)
def test_debug_shows_the_traceback_and_keeps_the_exit_code(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int
) -> None:
    """Issue 27 item 10: ``--debug`` (or SOFTMAX_PIPE_DEBUG=1) used to exit 1, "partial
    failure", for every error; the process exits with the documented code."""
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("softmax-pipe")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [str(exe), *argv], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env}, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    assert "Traceback (most recent call last):" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("error: ")


def test_train_no_reject_writes_a_ten_class_model(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    model = tmp_path / "ten.npz"
    common = ["--source", str(mnist_dir), "--cache-dir", str(session_cache), "--json"]
    args = ["--features", "pixels", "--epochs", "1", "--limit", "2000", "--out", str(model)]
    code, out, err = invoke("train", *args, "--no-reject", *common)
    assert code == 0, err
    assert json.loads(out)["classes"] == 10 and Model.load(model).n_classes == 10
    code, out, err = invoke("train", *args, *common)
    assert code == 0, err
    assert json.loads(out)["classes"] == 11 and Model.load(model).can_reject


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--learning-rate", "20000"], "may hold); lower --learning-rate (now 20000)"),
        (["--learning-rate", "1e6"], "; lower --learning-rate (now 1e+06)"),  # loss 1e60
        (["--l2", "1e30"], "; --l2 is too large: lower it under 7.6 (now 1e+30; with "),
    ],
)
def test_a_run_that_diverges_fails_and_writes_nothing(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, option: list[str], says: str
) -> None:
    """Exit 0 and a file no command took (20000), exit 0 with a loss of 1e60 (1e6); the
    advice names the option as it is typed (it said ``lower learning_rate``, ``l2``)."""
    model = tmp_path / "lr.npz"
    code, out, err = invoke(
        "train", "--no-reject", "--features", "pixels", "--limit", "2000", "--epochs", "1",
        *option, "-o", model, "--source", mnist_dir, "--cache-dir", session_cache,
    )  # fmt: skip
    assert (code, out) == (2, ""), err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: training diverged at epoch 1 (") and says in last, err
    assert not model.exists()


def test_too_few_images_to_calibrate_keep_a_temperature_of_one_and_say_so(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """20 training images: 4 held out for the temperature, which the search ran to its cap
    (20.000) on, with a calibration error three times that at T = 1."""
    mnist = ds(mnist_dir, session_cache)
    tiny = tmp_path / "tiny.npz"
    np.savez(
        tiny,
        x_train=mnist.x_train[:20],
        y_train=mnist.y_train[:20],
        x_test=mnist.x_test[:500],
        y_test=mnist.y_test[:500],
    )
    model = tmp_path / "m.npz"
    args = ["--source", tiny, "--cache-dir", tmp_path / "cache", "-o", model]
    code, out, err = invoke("train", *args)
    assert code == 0, err
    assert (
        "at temperature 1 (4 held-out images, too few to fit a temperature: at least 100); "
        f"model written to {model}"
    ) in out
    assert Model.load(model).temperature == 1.0
    code, out, err = invoke("train", *args, "--json")  # the same note, as a field
    assert code == 0, err
    assert json.loads(out)["calibration_note"] == (
        "4 held-out images, too few to fit a temperature: at least 100"
    )


def test_the_first_training_says_what_it_prepares_and_a_later_one_does_not(
    mnist_dir: Path, tmp_path: Path
) -> None:
    """A first run sat ~20 s at 'training epoch 0/4' (without a terminal: nothing at all)
    while the features, cluttered digits and non-digits were made; a line now says each,
    once: a run that finds them cached is as quiet as before, and learns the same."""
    args = ["--features", "pixels", "--limit", "500", "--epochs", "1"]
    common = ["--source", mnist_dir, "--cache-dir", tmp_path / "cache"]
    code, _, first = invoke("train", *args, "-o", tmp_path / "a.npz", *common)
    assert code == 0, first
    said = [line for line in first.splitlines() if not line.startswith(("parsing", "writing"))]
    assert said == [
        "computing pixels features of 60,000 MNIST train images",
        "drawing 150 cluttered digits from 500 MNIST images",
        "computing pixels features of 150 cluttered digits",
        "generating 50 non-digits",
        "computing pixels features of 50 non-digits",
    ], first
    code, _, again = invoke("train", *args, "-o", tmp_path / "b.npz", *common)
    assert code == 0 and [line for line in again.splitlines() if "cache hit" not in line] == []
    a, b = Model.load(tmp_path / "a.npz"), Model.load(tmp_path / "b.npz")
    assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)


def test_train_checks_out_before_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A --out that cannot take the model fails before MNIST is even loaded, in one line with
    its exit code (it was an unexpected error, exit 70, after the whole training)."""
    import softmax_pipe.cli_core
    from softmax_core.errors import DataNotFoundError

    def no_training(*args: object) -> None:
        raise DataNotFoundError("reached the training")

    monkeypatch.setattr(softmax_pipe.cli_core, "_load", no_training)
    (tmp_path / "model.npz").write_bytes(b"x")
    (tmp_path / "models").mkdir()
    cases = [
        ("/proc/softmax-pipe-no-such-folder/m.npz", 4, "cannot create the folder /proc/"),
        ("/proc/softmax-pipe-m.npz", 4, "cannot write /proc/softmax-pipe-m.npz"),
        (tmp_path / "model.npz" / "m.npz", 2, "model.npz is a file, not a folder"),
        (tmp_path / "models", 2, "models is a folder; expected a file name"),
    ]
    for out, expected, says in cases:
        code, stdout, err = invoke("train", "--out", out, "--cache-dir", tmp_path / "c")
        assert (code, stdout) == (expected, ""), err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "model.npz").read_bytes() == b"x"
    code, _, err = invoke("train", "--out", tmp_path / "new" / "m.npz", "--cache-dir", tmp_path)
    assert code == 3 and "reached the training" in err
    assert not (tmp_path / "new").exists()  # made for the check, then gone: training failed


def test_train_refuses_an_out_over_its_data_or_named_as_a_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``train --source ds.npz -o ds.npz`` replaced the dataset by the model, and ``-o
    m/new/`` wrote a file named ``m/new``: now one line, exit 2, before the data is read
    (the check score's --output makes: softmax_core.atomicio.check_output)."""
    import softmax_pipe.cli_core
    from softmax_core.errors import DataNotFoundError

    def no_training(*args: object) -> None:
        raise DataNotFoundError("reached the training")

    monkeypatch.setattr(softmax_pipe.cli_core, "_load", no_training)
    data = tmp_path / "ds.npz"
    data.write_bytes(b"the user's dataset")
    (tmp_path / "link.npz").symlink_to(data)
    idx = tmp_path / "idx"  # an IDX folder: its files are the training data too
    idx.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (idx / f"{stem}.gz").write_bytes(b"the user's IDX file")
    images = idx / "train-images-idx3-ubyte.gz"
    cases: list[tuple[list[object], str]] = [
        (["--source", data, "--out", data], "--out " + str(data) + " is the training data"),
        (["--source", data, "--out", tmp_path / "link.npz"], "is the training data"),
        (["--out", f"{tmp_path}/m/new/"], "names a folder (it ends in '/'); expected a file"),
        (
            ["--source", idx, "--out", images],
            f"--out {images} is the training data (train-images-idx3-ubyte.gz)",
        ),
    ]
    for args, says in cases:
        code, stdout, err = invoke("train", *args, "--cache-dir", tmp_path / "c")
        assert (code, stdout) == (2, ""), err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert data.read_bytes() == b"the user's dataset"
    assert images.read_bytes() == b"the user's IDX file"
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("command", ["train", "report"])
def test_an_empty_out_says_it_is_empty(command: str, tmp_path: Path) -> None:
    """``train --out ''`` said ``--out  is a folder`` (pathlib reads '' as the current
    folder); it says the name is empty, exit 2, before any work."""
    data = tmp_path / "ds.npz"
    data.write_bytes(b"the user's dataset")
    first = ["--source", data] if command == "train" else [data]
    code, stdout, err = invoke(command, *first, "--out", "", "--cache-dir", tmp_path / "c")
    assert (code, stdout, err) == (2, "", "error: --out is empty; expected a file name\n")


def test_evaluate_a_folder_says_it_is_a_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``evaluate ./m`` where m is a folder said ``no model named './m'`` (exit 3): it
    says what m is, exit 2. A bare name is the registry's model even where a folder of that
    name is at hand (a user's ``mnist/`` data folder must not hide the model ``mnist``)."""
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    for folder in ("./m", "m/", str(tmp_path / "m")):
        code, _, err = invoke("evaluate", folder, "--registry", tmp_path / "reg")
        assert (code, err.strip()) == (2, f"error: {folder} is a folder, not a model file (.npz)")
    code, _, err = invoke("evaluate", "m", "--registry", tmp_path / "reg")
    assert code == 3 and "no model named 'm'" in err, err


@pytest.mark.parametrize("args", ["--help", "--version", "registry --help"])
def test_a_full_stdout_is_one_line_exit_4_for_every_command(args: str) -> None:
    """``softmax-pipe --help > /dev/full``: one line naming stdout and exit 4, as ``score``'s
    rows give; it was an OSError's traceback out of click, exit 120."""
    script = Path(sys.executable).parent / "softmax-pipe"
    done = subprocess.run(
        ["bash", "-c", f"{script} {args} > /dev/full"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        4,
        "error: cannot write stdout: No space left on device\n",
    ), done.stderr


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_a_cache_dir_that_cannot_be_made_says_so(
    command: str, model_files: list[Path], tmp_path: Path
) -> None:
    """``--cache-dir`` naming a file: the line ingest gives (exit 4), before any MNIST is
    loaded; evaluate and train said ``keras.datasets.mnist.load_data() failed: URL fetch
    failure`` (the loader fell back to the network, then the cache failed anyway)."""
    args = [model_files[0]] if command == "evaluate" else ["--out", tmp_path / "m.npz"]
    code, _, err = invoke(command, *args, "--cache-dir", model_files[1])
    assert code == 4, err
    assert err.strip().splitlines()[-1] == (
        f"error: cannot create the MNIST cache under {model_files[1] / 'mnist'} (Not a "
        "directory); give a writable --cache-dir (or SOFTMAX_PIPE_CACHE)"
    )


def test_a_cache_entry_that_fails_verification_is_parsed_again_from_its_source(
    tmp_path: Path,
) -> None:
    """No source given and the last entry damaged: the local file that made it is parsed
    again (it was discarded, then keras's download tried)."""
    rng = np.random.default_rng(0)
    source = tmp_path / "digits.npz"
    np.savez(
        source,
        x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        y_train=np.arange(60, dtype=np.uint8) % 10,
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=np.arange(20, dtype=np.uint8) % 10,
    )
    cache = tmp_path / "cache"
    code, _, err = invoke("ingest", "--source", source, "--cache-dir", cache)
    assert code == 0, err
    (damaged,) = (cache / "mnist").glob("npz-*/x_test.npy")
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")
    code, _, err = invoke("ingest", "--cache-dir", cache)
    assert code == 0, err
    assert "failed verification" in err and f"parsing npz:{source} again" in err, err
    assert "keras" not in err and "download" not in err
