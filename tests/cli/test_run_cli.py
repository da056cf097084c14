"""``softmax-pipe run``: the training pipeline from the command line.

CliRunner tests run the real flow in process against the session's Prefect test server;
one test runs the installed console script in a subprocess with no Prefect server
configured, so it starts (and announces) Prefect's temporary local server itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry import Registry
from softmax_core.labelled import read_folder
from softmax_pipe.cli import app
from tests.printed_digits import write_printed

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "softmax-pipe"

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _invoke(mnist_dir: Path, cache: Path, registry: Path, *args: str) -> object:
    base = [
        "run",
        "--source",
        str(mnist_dir),
        "--cache-dir",
        str(cache),
        "--registry",
        str(registry),
    ]
    return CliRunner().invoke(app, [*base, "--retry-delay", "0", *args])


def _versions(registry: Path, cache: Path, name: str = "mnist") -> list[int]:
    with Registry.open(str(registry), cache_dir=cache) as r:
        return r.version_numbers(name)


def _aliases(registry: Path, cache: Path, name: str = "mnist") -> dict[str, int]:
    with Registry.open(str(registry), cache_dir=cache) as r:
        return r.aliases(name)


def test_run_publishes_and_says_where(mnist_dir: Path, session_cache: Path, tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    result = _invoke(mnist_dir, session_cache, reg, "--epochs", "3", "--name", "digits")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert f"published digits:1 to {reg}" in out
    assert "test accuracy 0.9" in out and "gate passed" in out
    assert "digits@champion -> digits:1" in out
    assert "flow run " in out
    # The harness configures an API URL: no temporary-server line, and the registry was given.
    assert "temporary" not in result.stderr  # type: ignore[attr-defined]
    assert _versions(reg, session_cache, "digits") == [1]
    assert _aliases(reg, session_cache, "digits") == {"champion": 1}


def test_json_output_is_one_document(mnist_dir: Path, session_cache: Path, tmp_path: Path) -> None:
    result = _invoke(mnist_dir, session_cache, tmp_path / "r", "--json", "--no-promote")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert doc["ref"] == "mnist:1" and doc["promoted"] is None
    assert doc["gate"]["passed"] is True and doc["accuracy"] >= 0.95
    assert _aliases(tmp_path / "r", session_cache) == {}


def test_gate_refusal_exits_5_and_changes_nothing(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    result = _invoke(mnist_dir, session_cache, with_champion, "--min-accuracy", "0.995")
    assert result.exit_code == 5, result.output  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "error: gate refused the model: accuracy 0.9" in stderr
    assert "below the floor 0.9950 by" in stderr and "nothing was published" in stderr
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert result.stdout == ""  # type: ignore[attr-defined]
    assert _versions(with_champion, session_cache) == [1]
    assert _aliases(with_champion, session_cache) == {"champion": 1}


def test_worse_challenger_exits_5(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    args = ["--epochs", "1", "--limit", "1200", "--min-accuracy", "0.5"]
    result = _invoke(mnist_dir, session_cache, with_champion, *args)
    assert result.exit_code == 5, result.output  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert (
        "error: gate refused the model: champion mnist:1 0.99" in stderr
        and "vs challenger" in stderr
    )
    assert "worse beyond the 0.5-point margin" in stderr and "next step:" in stderr
    assert _versions(with_champion, session_cache) == [1]


@pytest.mark.slow
def test_warm_start_and_custom_alias(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    # No mnist@staging yet: warm start has nothing to start from.
    result = _invoke(
        mnist_dir, session_cache, with_champion, "--warm-start", "--promote", "staging"
    )
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    assert "--warm-start needs mnist@staging" in result.stderr  # type: ignore[attr-defined]

    result = _invoke(mnist_dir, session_cache, with_champion, "--warm-start", "--epochs", "1")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "warm-started from mnist:1" in result.stdout  # type: ignore[attr-defined]
    assert _aliases(with_champion, session_cache) == {"champion": 2}


@pytest.mark.slow
def test_request_instead_of_promote(
    mnist_dir: Path, session_cache: Path, with_champion: Path
) -> None:
    """``--request``: gated against the champion, published, and a request for an approver;
    the alias stays where it was."""
    result = _invoke(mnist_dir, session_cache, with_champion, "--request", "champion")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert "champion mnist:1" in out  # gated against it
    assert (
        "  requested mnist@champion -> mnist:2 (request #1); an approver runs "
        "`softmax-pipe registry approve mnist:2 champion`"
    ) in out
    assert _aliases(with_champion, session_cache) == {"champion": 1}
    with Registry.open(str(with_champion), cache_dir=session_cache) as r:
        (pending,) = r.requests("mnist")
    assert (pending.request.version, pending.request.alias) == (2, "champion")
    result = _invoke(mnist_dir, session_cache, with_champion, "--request", "champion", "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert doc["promoted"] is None and doc["requested"]["seq"] == 2
    assert doc["requested"]["version"] == doc["version"] == 3


def test_default_registry_is_named(mnist_dir: Path, session_cache: Path) -> None:
    from softmax_core.settings import default_registry_dir

    default = default_registry_dir()  # under the test's own XDG_DATA_HOME (conftest)
    args = ["run", "--source", str(mnist_dir), "--cache-dir", str(session_cache), "--epochs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"using the default local registry at {default}" in result.stderr
    assert f"published mnist:1 to {default}" in result.stdout
    assert _versions(default, session_cache) == [1]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--promote", "prod", "--no-promote"], 2, "contradict"),
        (["--request", "champion", "--no-promote"], 2, "--request champion and --no-promote"),
        (["--promote", "a", "--request", "b"], 2, "--promote a and --request b contradict"),
        (["--name", "../escape"], 2, "model name '../escape'"),
        (["--promote", "a/b"], 2, "alias 'a/b'"),
        (
            ["--min-accuracy", "1.5"],
            2,
            "--min-accuracy 1.5 is invalid; expected a number in [0, 1]",
        ),
        (["--epochs", "0"], 2, "--epochs 0 is invalid; expected an integer >= 1"),
        (["--data-weight", "0"], 2, "--data-weight 0 is invalid; expected an integer >= 1"),
        (["--retries", "-1"], 2, "--retries -1 is invalid; expected an integer >= 0"),
        (["--retry-delay", "-1"], 2, "--retry-delay -1.0 is invalid; expected seconds >= 0"),
    ],
)
def test_bad_input_exits_2(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = _invoke(mnist_dir, session_cache, tmp_path / "reg", *args)
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    assert message in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "reg").exists()


def test_a_bad_value_is_one_line_naming_the_option(tmp_path: Path) -> None:
    """The request refuses it when the CLI builds it: before any data, registry or server;
    the line names the option as typed (it said the field, 'epochs=0')."""
    result = CliRunner().invoke(app, ["run", "--epochs", "0", "--registry", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: --epochs 0 is invalid; expected an integer >= 1\n"
    assert result.stdout == "" and not (tmp_path / "r").exists()


def test_the_same_dataset_named_twice_is_refused_in_one_line(tmp_path: Path) -> None:
    """``--dataset mine --dataset mine:1`` trained on the same images twice and printed
    two identical holdout lines: refused when the request is built, before anything."""
    reg = str(tmp_path / "r")
    result = CliRunner().invoke(
        app, ["run", "--dataset", "mine", "--dataset", "mine:1", "--registry", reg]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: dataset mine is named twice (mine and mine:1); name each dataset once, at "
        "the version to train on (NAME is its newest)\n"
    )
    assert result.stdout == "" and not (tmp_path / "r").exists()


def test_missing_source_exits_3(session_cache: Path, tmp_path: Path) -> None:
    result = _invoke(tmp_path / "no-mnist-here", session_cache, tmp_path / "reg")
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    assert "no-mnist-here" in result.stderr  # type: ignore[attr-defined]


def test_a_mistyped_inbox_exits_3_in_one_line_before_prefect(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """``run --inbox "my queeu"`` took the folder for an inbox with nothing labelled yet,
    trained on MNIST alone and published (and promoted): now exit 3, naming it, before
    any Prefect server (the scheduled retraining still treats a missing inbox so)."""
    result = _invoke(mnist_dir, session_cache, tmp_path / "reg", "--inbox", "my queeu")
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        "error: inbox my queeu does not exist; expected a folder with subfolders 0 … 9\n"
    )
    assert not (tmp_path / "reg").exists()


def test_the_first_run_says_what_it_prepares_as_train_does(mnist_dir: Path, tmp_path: Path) -> None:
    """A first ``run`` sat silent for about 70 s while it parsed MNIST and made features,
    cluttered digits and non-digits (the train task logged them to Prefect, whose console
    is quiet); it says the lines ``train`` says, on stderr, and a cached run says none."""
    args = ["--features", "pixels", "--limit", "500", "--epochs", "1", "--no-promote"]
    args += ["--min-accuracy", "0", "--max-reject-rate", "1", "--min-negatives-rejected", "0"]
    first = _invoke(mnist_dir, tmp_path / "cache", tmp_path / "reg", *args)
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    said = first.stderr.splitlines()  # type: ignore[attr-defined]
    assert [line for line in said if not line.startswith(("parsing", "writing"))] == [
        "computing pixels features of 60,000 MNIST train images",
        "drawing 150 cluttered digits from 500 MNIST images",
        "computing pixels features of 150 cluttered digits",
        "generating 50 non-digits",
        "computing pixels features of 50 non-digits",
    ], said
    assert any(line.startswith("parsing") for line in said), said
    again = _invoke(mnist_dir, tmp_path / "cache", tmp_path / "reg", *args)
    assert again.exit_code == 0, again.output  # type: ignore[attr-defined]
    lines = again.stderr.splitlines()  # type: ignore[attr-defined]
    assert [line for line in lines if not line.startswith("cache hit")] == [], lines


def test_unreachable_s3_registry_exits_4(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = CliRunner().invoke(
        app,
        [
            "run", "--source", str(mnist_dir), "--cache-dir", str(session_cache),
            "--registry", "s3://nobody-home/reg", "--endpoint-url", f"http://127.0.0.1:{port}",
            "--retries", "1", "--retry-delay", "0",
        ],
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "error:" in result.stderr and f"127.0.0.1:{port}" in result.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_console_script_with_temporary_prefect_server(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """The installed script, no PREFECT_API_URL: one line about the temporary server (and
    the steps a cold cache prepares), no Prefect log wall, the model published. Starts its
    own server (10-15 s)."""
    env = {
        k: v
        for k, v in os.environ.items()
        # A user's shell: no analytics switch either (the temporary server's telemetry
        # heartbeat once printed "database is locked" tracebacks; `run` turns it off).
        if not k.startswith(("PREFECT_API_", "PREFECT_SERVER_", "SOFTMAX_PIPE_", "AWS_"))
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    reg = tmp_path / "reg"
    proc = subprocess.run(
        [
            str(SCRIPT), "run", "--source", str(mnist_dir), "--cache-dir", str(session_cache),
            "--registry", str(reg), "--epochs", "2",
        ],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("temporary local Prefect server") == 1
    # then only what a cold cache prepares (none when warm: this session's may be either)
    assert proc.stderr.startswith("prefect: no PREFECT_API_URL"), proc.stderr
    assert "| INFO" not in proc.stderr and "Flow run" not in proc.stderr
    assert "Task run" not in proc.stderr and "Traceback" not in proc.stderr
    assert f"published mnist:1 to {reg}" in proc.stdout
    assert "mnist@champion -> mnist:1" in proc.stdout
    assert _versions(reg, session_cache) == [1]
    # The run is recorded in the Prefect database under PREFECT_HOME.
    assert (tmp_path / "prefect-home" / "prefect.db").is_file()


@pytest.mark.slow
def test_a_run_posts_its_events_to_webhooks(
    mnist_dir: Path, session_cache: Path, with_champion: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow's publish and request reach a receiver, signed, before the command ends."""
    from softmax_core import settings
    from tests.webhook_receiver import receiver

    with receiver("s3cret") as got:
        monkeypatch.setenv(settings.ENV_WEBHOOK_URL, got.url)
        monkeypatch.setenv(settings.ENV_WEBHOOK_SECRET, "s3cret")
        result = _invoke(mnist_dir, session_cache, with_champion, "--request", "champion")
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        events = [(e["type"], e["version"]) for e in got.events()]
    assert events == [("publish", 2), ("request", 2)]
    assert all(a.signed for a in got.attempts)


@pytest.mark.slow
def test_a_run_with_a_dead_webhook_says_so_in_one_line_and_exits_0(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect keeps its console quiet during a run; the failed delivery is still one line."""
    from softmax_core import settings
    from tests.webhook_receiver import dead_url

    url = dead_url()
    monkeypatch.setenv(settings.ENV_WEBHOOK_URL, url)
    monkeypatch.setenv(settings.ENV_WEBHOOK_SECRET, "s3cret")
    result = _invoke(mnist_dir, session_cache, tmp_path / "r", "--epochs", "1")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = [line for line in result.stderr.splitlines() if line.startswith("webhook ")]  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    assert "could not deliver publish mnist:1 and 1 more" in lines[0]
    assert "the registry change itself is done" in lines[0]


def test_reject_options_are_checked_once_and_named(tmp_path: Path) -> None:
    for args, message in (
        (
            ["--max-reject-rate", "2"],
            "--max-reject-rate 2.0 is invalid; expected a number in [0, 1]",
        ),
        (["--min-negatives-rejected", "-1"], "--min-negatives-rejected -1.0 is invalid"),
        (["--negatives-share", "1.5"], "--negatives-share 1.5 is invalid"),
    ):
        result = CliRunner().invoke(app, ["run", *args, "--registry", str(tmp_path / "r")])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and not (tmp_path / "r").exists()


def test_no_reject_publishes_a_ten_class_model_and_reject_an_eleven_class_one(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    reg = tmp_path / "reg"
    few = ["--features", "pixels", "--epochs", "1", "--limit", "3000", "--min-accuracy", "0.8"]
    result = _invoke(mnist_dir, session_cache, reg, *few, "--no-reject", "--no-promote")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "as not digits" not in result.output  # type: ignore[attr-defined]
    result = _invoke(
        mnist_dir, session_cache, reg, *few, "--no-promote", "--min-negatives-rejected", "0.05"
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = result.output  # type: ignore[attr-defined]
    assert re.search(
        r"gate passed: accuracy [0-9.]+ >= floor 0\.8000; rejects [0-9.]+% as not digits", out
    ), out
    assert out.count("as not digits") == 1, out  # said once, in the gate's line
    assert "gate passed on held-out negatives: it rejects" in out
    with Registry.open(str(reg), cache_dir=tmp_path / "c") as r:
        assert r.load("mnist:1")[1].n_classes == 10
        _, eleven = r.load("mnist:2")
    assert eleven.n_classes == 11 and eleven.info.params["negatives"] == 300


FEW = ["--features", "pixels", "--epochs", "1", "--limit", "3000", "--min-accuracy", "0.8"]


def _by_split(src: Path, root: Path) -> tuple[Path, Path]:
    """``src``'s images in two labelled folders: those of the train split, those of the
    holdout (each image's split follows from its pixels)."""
    read = read_folder(src)
    train, holdout = root / "train-only", root / "holdout-only"
    for rel, held in zip(read.data.paths.tolist(), read.data.holdout.tolist(), strict=True):
        target = (holdout if held else train) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, target)
    return train, holdout


def test_a_dataset_without_holdout_or_train_images_is_said_not_gated_or_not_trained_on(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """A dataset of three images, all in the train split, was silently not gated (no line at
    all), one all in the holdout silently not learned from; the run still publishes (exit
    0) and says so, in its lines and in --json."""
    reg = tmp_path / "reg"
    train, holdout = _by_split(write_printed(tmp_path / "p", 3, seed=31), tmp_path)
    with Registry.open(str(reg), cache_dir=session_cache) as r:
        three = r.add_folder("three", train)[0].manifest
        held = r.add_folder("held", holdout)[0].manifest
    assert three.holdout == 0 and held.train == 0 and three.train and held.holdout
    args = [*FEW, "--no-reject", "--no-promote", "--dataset", "three", "--dataset", "held"]
    result = _invoke(mnist_dir, session_cache, reg, *args)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    assert "  three not gated: no holdout images yet; add more images" in lines
    assert "  held not trained on: no train images yet; add more images" in lines
    assert any(line.startswith("  held holdout accuracy ") for line in lines), lines
    assert not any("three holdout" in line or "held not gated" in line for line in lines)
    result = _invoke(mnist_dir, session_cache, reg, *args, "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert doc["dataset_use"] == [
        {"name": "three", "train": three.train, "holdout": 0, "not_a_digit_left_out": 0,
         "trained": True, "gated": False},
        {"name": "held", "train": 0, "holdout": held.holdout, "not_a_digit_left_out": 0,
         "trained": False, "gated": True},
    ]  # fmt: skip
    assert doc["notes"] == [
        "three not gated: no holdout images yet; add more images",
        "held not trained on: no train images yet; add more images",
    ]


def test_a_ten_class_model_says_it_left_the_not_a_digit_images_out(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """``run --no-reject`` dropped a dataset's not-a-digit/ images from training and from
    the gate without a word, and ``evaluate`` of that 10-class model on the dataset failed
    with ``label 10 is outside 0..9``: the run says how many it left out, and evaluate
    measures the holdout's digits (as the gate does) and says the rest were left out."""
    import numpy as np
    from PIL import Image

    from softmax_core.negatives import negatives

    folder = write_printed(tmp_path / "mine", 6, seed=31)
    (folder / "not-a-digit").mkdir()
    for i, image in enumerate(negatives(30, seed=3)):
        Image.fromarray(255 - np.asarray(image)).save(folder / "not-a-digit" / f"junk{i}.png")
    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=session_cache) as r:
        _, data = r.load_dataset(r.add_folder("mine", folder)[0].manifest.ref)
    junk = data.labels == 10
    n, held = int(junk.sum()), int((junk & data.holdout).sum())
    assert held and n > held  # in both splits
    args = [*FEW, "--no-reject", "--no-promote", "--dataset", "mine"]
    result = _invoke(mnist_dir, session_cache, reg, *args)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    assert f"  mine: {n} not-a-digit images left out (a 10-class model cannot learn them)" in lines
    digits = int((~junk & data.holdout).sum())
    assert any(line.startswith("  mine holdout accuracy ") and f" on {digits} images" in line
               for line in lines), lines  # fmt: skip
    result = _invoke(mnist_dir, session_cache, reg, *args, "--json")
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert doc["dataset_use"][0]["not_a_digit_left_out"] == n
    where = ["--source", str(mnist_dir), "--cache-dir", str(session_cache), "--registry", str(reg)]
    result = CliRunner().invoke(app, ["evaluate", "mnist:1", "--dataset", "mine", *where])
    assert result.exit_code == 0, result.output
    assert (
        "mine:1 holdout: accuracy " in result.stdout
        and f" on {digits} images ({held} not-a-digit images left out: a 10-class model cannot "
        'say "not a digit")'
        in result.stdout
    ), result.stdout
    result = CliRunner().invoke(app, ["evaluate", "mnist:1", "--dataset", "mine", "--json", *where])
    assert json.loads(result.stdout)["domains"]["mine:1"]["not_a_digit_left_out"] == held


def test_a_run_that_leaves_out_the_champions_dataset_says_so(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """A plain ``run`` after ``run --dataset`` replaced a champion that had learned the
    user's images with one that had not, and said nothing (the gate measures only the
    datasets the run names): the run says which of the champion's datasets it left out,
    in its lines and in --json; one that names the dataset again says nothing of it."""
    with Registry.open(str(tmp_path / "reg"), cache_dir=session_cache) as r:
        mine = r.add_folder("mine", write_printed(tmp_path / "p", 12, seed=33))[0].manifest
    reg = tmp_path / "reg"
    first = _invoke(mnist_dir, session_cache, reg, *FEW, "--no-reject", "--dataset", "mine")
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    plain = _invoke(mnist_dir, session_cache, reg, *FEW, "--no-reject", "--json")
    assert plain.exit_code == 0, plain.output  # type: ignore[attr-defined]
    doc = json.loads(plain.stdout)  # type: ignore[attr-defined]
    assert doc["left_out"] == [f"mine:{mine.version}"]
    assert doc["notes"] == [
        f"mine:{mine.version} left out: the champion {doc['champion_before']} learned from "
        "it, this run did not, and the gate did not measure it (train with --dataset mine "
        "to keep it)"
    ]
    again = _invoke(mnist_dir, session_cache, reg, *FEW, "--no-reject", "--dataset", "mine")
    assert again.exit_code == 0, again.output  # type: ignore[attr-defined]
    assert "left out" not in again.stdout  # type: ignore[attr-defined]
    # the champion is now the plain run's model, which learned no dataset: nothing to say
    assert "mine" in again.stdout  # type: ignore[attr-defined]
