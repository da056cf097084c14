"""A folder registry's rights are Unix rights: a user who may not write the aliases folder
gets exit 77 and one line from `registry promote`, and may still request the move."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_invoke import invoke


def _as_a_user(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script as a user bound by the folder's modes: root loses
    CAP_DAC_OVERRIDE (``setpriv``), so a folder without write permission refuses it
    with EACCES as it refuses anyone else."""
    exe = Path(sys.executable).parent / "softmax-pipe"
    argv = [str(exe), *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        argv = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_a_user_who_may_not_write_aliases_gets_77_and_may_request(
    model_files: list[Path], tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    reg = ("--registry", str(root), "--cache-dir", str(tmp_path / "cache"))
    for f in model_files[:2]:
        assert invoke("registry", "publish", str(f), "--name", "digits", *reg)[0] == 0
    assert invoke("registry", "promote", "digits:1", "champion", *reg)[0] == 0
    aliases = root / "models" / "digits" / "aliases"
    modes = {p: p.stat().st_mode for p in [aliases, *aliases.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        done = _as_a_user("registry", "promote", "digits:2", "champion", *reg)
        assert done.returncode == 77, done.stderr
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"error: promoting digits:2 to champion needs write access to "
            f"models/digits/aliases/ in {root} (denied: Permission denied); request it with "
            "`softmax-pipe registry request digits:2 champion`, then an approver runs "
            "`softmax-pipe registry approve digits:2 champion`"
        ]
        done = _as_a_user("registry", "request", "digits:2", "champion", *reg)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("requested #1 digits@champion -> digits:2;")
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    code, out, err = invoke("registry", "approve", "digits:2", "champion", *reg)
    assert code == 0, err
    assert out.strip().endswith("digits@champion -> digits:2 (was digits:1)")


def test_requests_show_the_gate_figures_the_flow_recorded(
    model_files: list[Path], tmp_path: Path
) -> None:
    """The table's CHAMPION and P columns are the metrics the training flow records
    (``flows.report.published_metrics``), not "-"."""
    import dataclasses

    from softmax_core.model import Model

    model = Model.load(model_files[0])
    metrics = {"accuracy": 0.9871, "champion": "digits:1", "champion_accuracy": 0.9899}
    gated = dataclasses.replace(
        model, info=dataclasses.replace(model.info, metrics={**metrics, "p_worse": 0.967})
    )
    f = tmp_path / "gated.npz"
    gated.save(f)
    reg = ("--registry", str(tmp_path / "registry"), "--cache-dir", str(tmp_path / "cache"))
    assert invoke("registry", "publish", str(f), "--name", "digits", *reg)[0] == 0
    assert invoke("registry", "request", "digits:1", "champion", *reg)[0] == 0
    code, out, err = invoke("registry", "requests", "digits", *reg)
    assert code == 0, err
    row = out.splitlines()[1].split()
    assert row[3:7] == ["0.9871", "0.9899", "(digits:1)", "0.967"], out


def test_requests_say_an_approval_not_carried_out(model_files: list[Path], tmp_path: Path) -> None:
    """A crash between the decision and the move showed 'approved by bob' as if the alias
    had moved; it says the move never happened and what to do."""
    import json

    from registry import Registry, approvals
    from registry.manifest import APPROVED
    from softmax_core.requests import Location

    root = tmp_path / "registry"
    reg = ("--registry", str(root), "--cache-dir", str(tmp_path / "cache"))
    for f in model_files[:2]:
        assert invoke("registry", "publish", str(f), "--name", "digits", *reg)[0] == 0
    assert invoke("registry", "request", "digits:1", "champion", *reg)[0] == 0
    assert invoke("registry", "approve", "digits:1", "champion", "--by", "ann", *reg)[0] == 0
    assert invoke("registry", "request", "digits:2", "champion", *reg)[0] == 0
    with Registry.at(Location(str(root), cache_dir=str(tmp_path / "cache"))) as r:
        (req,) = [p.request for p in r.requests("digits")]
        approvals._decide(r.store, req, APPROVED, r.actor("bob"), None)  # then "crashed"
    code, out, err = invoke("registry", "requests", "digits", "--all", *reg)
    assert code == 0, err
    first, second = out.splitlines()[1:]
    assert "approved by ann" in first and "not carried out" not in first, out
    assert "approved by bob (root), not carried out (approve again)" in second, out
    code, out, err = invoke("registry", "requests", "digits", "--all", "--json", *reg)
    assert code == 0, err
    assert [r["carried_out"] for r in json.loads(out)] == [True, False]
    assert invoke("registry", "approve", "digits:2", "champion", *reg)[0] == 0
    code, out, err = invoke("registry", "requests", "digits", "--all", *reg)
    assert code == 0 and "not carried out" not in out, out


def test_requests_show_why_a_request_was_closed(model_files: list[Path], tmp_path: Path) -> None:
    """The COMMENT column holds the decision's comment too: a request closed as superseded
    by a newer approval, or rejected with a reason, looked like any other rejection."""
    reg = ("--registry", str(tmp_path / "registry"), "--cache-dir", str(tmp_path / "cache"))
    for f in model_files[:2]:
        assert invoke("registry", "publish", str(f), "--name", "digits", *reg)[0] == 0
    for version in ("digits:1", "digits:2"):
        assert invoke("registry", "request", version, "champion", *reg)[0] == 0
    code, out, err = invoke("registry", "approve", "digits:2", "champion", *reg)
    assert code == 0 and "closed #1 digits@champion -> digits:1 as superseded" in out, err
    code, out, err = invoke("registry", "requests", "digits", "--all", *reg)
    assert code == 0, err
    first = " ".join(out.splitlines()[1].split())
    assert "superseded: digits:2 was approved for champion (request #2)" in first, out
