"""`softmax-pipe report` invoked as a user would, on real MNIST and a local registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry import Registry
from softmax_core.model import Model
from softmax_pipe.cli import app
from tests.report.conftest import LINEAGE

runner = CliRunner()


def report(registry_dir: Path, mnist_dir: Path, cache: Path, *args: str) -> tuple[int, str]:
    common = [
        "--registry",
        str(registry_dir),
        "--source",
        str(mnist_dir),
        "--cache-dir",
        str(cache),
    ]
    result = runner.invoke(app, ["report", *args, *common])
    return result.exit_code, result.stderr


def test_cli_start_up_imports_no_plotting() -> None:
    code = "import sys, softmax_pipe.cli\nprint([m for m in ('matplotlib', 'numpy') if m in sys.modules])\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_report_of_a_version_against_its_champion(
    registry_dir: Path, mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mnist-2.html"
    code, err = report(registry_dir, mnist_dir, session_cache, "mnist:2", "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}" in err and "against mnist:1" in err
    html = out.read_text(encoding="utf-8")
    assert "Model report: mnist:2" in html and "champion mnist:1" in html
    assert "brave-otter" in html and "c0ffee1" in html  # lineage: flow run, code version


def test_open_without_a_browser_says_so(
    registry_dir: Path, mnist_dir: Path, session_cache: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``--open`` where no browser can be found: the page is written and the summary says
    where, instead of nothing at all."""
    monkeypatch.setenv("BROWSER", str(tmp_path / "no-such-browser"))
    out = tmp_path / "r.html"
    code, err = report(registry_dir, mnist_dir, session_cache, "mnist:2", "-o", str(out), "--open")
    assert code == 0 and out.is_file(), err
    assert f"no web browser found to open it (set BROWSER to one); open {out.as_uri()}" in err


def test_the_champion_itself_without_a_gated_champion_says_it_is_the_champion(
    registry_dir: Path, mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "r.html"  # a missing folder is made
    code, err = report(registry_dir, mnist_dir, session_cache, "mnist@champion", "-o", str(out))
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert "This model is the champion, and no champion it was gated against is recorded" in html
    assert "No champion to compare against" not in html


def test_the_champion_itself_is_compared_with_the_champion_it_was_gated_against(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, weak: Model, strong: Model
) -> None:
    """`run`, then `run --dataset mine` promoted mnist:2, gated against mnist:1 (its
    lineage says so): its report compares with mnist:1, not "no champion"."""
    root = tmp_path / "reg"
    with Registry.open(str(root), cache_dir=tmp_path / "pulled") as reg:
        reg.publish(weak, "mnist", alias="champion", lineage=LINEAGE)
        reg.publish(strong, "mnist", alias="champion", lineage={**LINEAGE, "champion": "mnist:1"})
    out = tmp_path / "r.html"
    code, err = report(root, mnist_dir, session_cache, "mnist@champion", "-o", str(out))
    assert code == 0 and "report of mnist:2 against mnist:1" in err, err
    html = out.read_text(encoding="utf-8")
    assert "champion mnist:1" in html and "No champion to compare against" not in html


def test_model_file_against_a_reference(
    registry_dir: Path, mnist_dir: Path, session_cache: Path, tmp_path: Path, strong: Model
) -> None:
    model = strong.save(tmp_path / "candidate.npz")
    out = tmp_path / "r.html"
    args = [str(model), "--against", "mnist@champion", "-o", str(out)]
    code, err = report(registry_dir, mnist_dir, session_cache, *args)
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert "Model report: candidate.npz" in html and "champion mnist:1" in html


def test_unknown_version_is_not_found(
    registry_dir: Path, mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    code, err = report(registry_dir, mnist_dir, session_cache, "mnist:9", "-o", str(out))
    assert code == 3, err
    assert "mnist" in err and not out.exists()


def test_an_output_that_cannot_be_written_fails_before_the_work(
    registry_dir: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    """Before the model is read (it does not exist here: that would be exit 3) and so long
    before MNIST is scored: one line, exit 4 for a folder that cannot be made, 2 for a
    folder named as the page or a file where a folder should be."""
    (tmp_path / "afile").write_text("x")
    cases = [
        ("/proc/softmax-pipe-no-such-folder/r.html", 4, "cannot create the folder /proc/"),
        (str(tmp_path / "afile" / "r.html"), 2, "afile is a file, not a folder"),
        (str(tmp_path), 2, "is a folder; expected a file name"),
    ]
    missing = str(tmp_path / "missing.npz")
    for out, expected, says in cases:
        code, err = report(registry_dir, mnist_dir, tmp_path / "c", missing, "-o", out)
        assert code == expected, err
        assert says in err and len(err.strip().splitlines()) == 1, err


def test_an_output_over_what_the_report_reads_or_named_as_a_folder_is_refused(
    registry_dir: Path, mnist_dir: Path, tmp_path: Path, weak: Model
) -> None:
    """``report victim.npz -o victim.npz`` wrote the page over the model (exit 0), and
    ``-o rep/new/`` wrote a file named ``rep/new``: now one line, exit 2, before any work,
    the check ``score --output`` makes (softmax_core.atomicio.check_output)."""
    victim = weak.save(tmp_path / "victim.npz")
    before = victim.read_bytes()
    cache = tmp_path / "c"
    cases = [
        (["victim.npz", "-o", "victim.npz"], "--out victim.npz is the model file"),
        (["mnist:2", "--against", "victim.npz", "-o", "victim.npz"], "is the --against model"),
        (["victim.npz", "-o", "rep/new/"], "--out rep/new/ names a folder (it ends in '/')"),
        (["./m", "-o", "r.html"], "./m is a folder, not a model file (.npz)"),
    ]
    (tmp_path / "m").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        for args, says in cases:
            code, err = report(registry_dir, mnist_dir, cache, *args)
            assert code == 2, err
            assert says in err and len(err.strip().splitlines()) == 1, err
    assert victim.read_bytes() == before
    assert not (tmp_path / "rep").exists() and not (tmp_path / "r.html").exists()
