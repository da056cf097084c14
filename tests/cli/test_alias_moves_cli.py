"""`softmax-pipe registry promote / rollback` when nothing moves.

A promote to where the alias already is says so (issue 27, item 13); like a rollback with
nowhere to go, it writes nothing, so a read-only or full registry folder answers both as
any other would: 0 and 3, never 4 (item 11).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_invoke import invoke


def _publish_both(reg: tuple[str, ...], model_files: list[Path]) -> None:
    for i, f in enumerate(model_files[:2]):
        alias = ("--alias", "champion") if i == 0 else ()
        code, _, err = invoke("registry", "publish", str(f), "--name", "digits", *alias, *reg)
        assert code == 0, err


@pytest.mark.slow
def test_a_promote_to_where_the_alias_is_says_so(
    registry_uri: str, model_files: list[Path], tmp_path: Path
) -> None:
    reg = ("--registry", registry_uri, "--cache-dir", str(tmp_path / "cache"))
    _publish_both(reg, model_files)

    code, out, err = invoke("registry", "promote", "digits:1", "champion", *reg)
    assert code == 0, err
    assert out.strip() == "digits@champion is already digits:1"
    code, out, err = invoke("registry", "promote", "digits:1", "champion", *reg, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["moved"], doc["version"], doc["seq"], doc["from_version"]) == (False, 1, 1, None)

    code, out, err = invoke("registry", "promote", "digits:2", "champion", *reg, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["moved"], doc["version"], doc["seq"], doc["from_version"]) == (True, 2, 2, 1)
    code, out, err = invoke("registry", "promote", "digits:2", "champion", *reg)
    assert code == 0 and out.strip() == "digits@champion is already digits:2"
    code, out, _ = invoke("registry", "history", "digits@champion", *reg, "--json")
    assert [(h["seq"], h["version"]) for h in json.loads(out)] == [(1, 1), (2, 2)]


# Every write of a byte to a file fails, for root too (chmod does not stop root): the
# kernel refuses any write past RLIMIT_FSIZE (EFBIG, as a full disk refuses with
# ENOSPC). SIGXFSZ, which would kill the writer, is ignored, as CPython does anyway.
_NO_WRITES = (
    "import os, resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def _without_writes(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script in a process that can write no file."""
    exe = Path(sys.executable).parent / "softmax-pipe"
    assert exe.is_file(), f"{exe} missing: pip install -e . in the venv"
    return subprocess.run(
        [sys.executable, "-c", _NO_WRITES, str(exe), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_read_only_or_full_registry_folder_answers_moves_that_write_nothing(
    model_files: list[Path], tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    reg = ("--registry", str(root), "--cache-dir", str(tmp_path / "cache"))
    _publish_both(reg, model_files)
    assert invoke("registry", "promote", "digits:2", "champion", *reg)[0] == 0
    assert invoke("registry", "promote", "digits:1", "staging", *reg)[0] == 0
    # the current move's history entry is missing, as a move cut short leaves it
    (root / "models" / "digits" / "aliases" / "champion.log" / "000000000002.json").unlink()
    paths = [root, *root.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p, mode in modes.items():  # read-only for everyone but root; the rlimit stops root
        p.chmod(mode & ~0o222)
    try:
        done = _without_writes("registry", "promote", "digits:2", "champion", *reg)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "digits@champion is already digits:2"
        done = _without_writes("registry", "rollback", "digits@staging", *reg)
        assert done.returncode == 3, done.stderr
        assert "has no earlier version to roll back to" in done.stderr
        # the same process can really not write: a move that must write fails (exit 4)
        done = _without_writes("registry", "promote", "digits:1", "champion", *reg)
        assert done.returncode == 4 and "cannot write" in done.stderr, done.stderr
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert [p for p in root.rglob("*") if p not in modes] == []  # nothing was created
    code, out, _ = invoke("registry", "history", "digits@champion", *reg, "--json")
    assert code == 0 and [(h["seq"], h["version"]) for h in json.loads(out)] == [(1, 1), (2, 2)]
