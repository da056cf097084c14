"""`softmax-pipe registry ...` invoked as a user would: exit codes 0/2/3/4, tables and JSON."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_invoke import invoke


def test_registry_help_lists_the_commands() -> None:
    code, out, _ = invoke("registry", "--help")
    assert code == 0
    for command in ("list", "versions", "show", "publish", "promote", "rollback", "pull", "gc"):
        assert command in out


@pytest.mark.slow
def test_publish_promote_pull_round_trip(
    registry_uri: str, model_files: list[Path], tmp_path: Path
) -> None:
    reg = ("--registry", registry_uri, "--cache-dir", str(tmp_path / "cache"))
    code, out, err = invoke(
        "registry", "publish", str(model_files[0]), "--name", "digits", "--alias", "champion", *reg
    )
    assert code == 0, err
    assert "published digits:1" in out and "digits@champion -> digits:1" in out
    for f in model_files[1:]:
        code, out, err = invoke("registry", "publish", str(f), "--name", "digits", *reg, "--json")
        assert code == 0, err
    assert json.loads(out)["version"] == 3

    code, out, err = invoke("registry", "versions", "digits", *reg, "--json")
    assert code == 0, err
    versions = json.loads(out)
    assert isinstance(versions, list) and [v["version"] for v in versions] == [1, 2, 3]
    for v, f in zip(versions, model_files, strict=True):
        assert v["digest"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert v["metrics"]["accuracy"] == pytest.approx(float(v["params"]["seed"]) / 100 + 0.9)
    code, out, _ = invoke("registry", "versions", "digits", *reg)
    assert code == 0 and out.splitlines()[0].split() == [
        "VERSION",
        "CREATED",
        "DIGEST",
        "ACCURACY",
        "ALIASES",
    ]
    assert "champion" in out.splitlines()[1]

    code, out, err = invoke("registry", "promote", "digits:3", "champion", *reg)
    assert code == 0, err
    assert out.strip() == "digits@champion -> digits:3 (was digits:1)"
    code, out, _ = invoke("registry", "show", "digits@champion", *reg, "--json")
    assert code == 0 and json.loads(out)["version"] == 3
    assert json.loads(out)["report"] is None
    code, out, _ = invoke("registry", "show", "digits:3", *reg)
    assert code == 0 and "report:         none (draw one: softmax-pipe report digits:3)" in out
    from registry import Registry

    with Registry.open(registry_uri, cache_dir=tmp_path / "cache") as r:
        r.put_report("digits", 3, "<!doctype html>")
        url = r.report_url("digits", 3)
    assert url is not None
    code, out, _ = invoke("registry", "show", "digits@champion", *reg, "--json")
    assert code == 0 and json.loads(out)["report"].split("?")[0] == url.split("?")[0]
    code, out, _ = invoke("registry", "show", "digits@champion", *reg)
    assert code == 0 and f"report:         {url.split('?')[0]}" in out

    target = tmp_path / "out" / "model.npz"
    code, out, err = invoke("registry", "pull", "digits@champion", "--out", str(target), *reg)
    assert code == 0, err
    assert target.read_bytes() == model_files[2].read_bytes()
    assert "downloaded, sha256 verified" in out
    code, out, _ = invoke("registry", "pull", "digits@champion", *reg, "--json")
    assert code == 0 and json.loads(out)["cached"] is True

    code, out, err = invoke("registry", "rollback", "digits@champion", *reg)
    assert code == 0, err
    assert out.strip() == "digits@champion -> digits:1 (was digits:3)"
    code, out, _ = invoke("registry", "history", "digits@champion", *reg, "--json")
    assert [(h["action"], h["version"]) for h in json.loads(out)] == [
        ("promote", 1),
        ("promote", 3),
        ("rollback", 1),
    ]
    code, out, _ = invoke("registry", "list", *reg, "--json")
    assert json.loads(out) == [
        {"name": "digits", "latest": 3, "versions": 3, "aliases": {"champion": 1}}
    ]
    code, out, _ = invoke("registry", "gc", "--grace", "0", "--force", *reg, "--json")
    assert code == 0 and json.loads(out)["deleted"] == []


def test_exit_codes_for_bad_input_and_unknown_things(
    registry_uri: str, model_files: list[Path], tmp_path: Path
) -> None:
    reg = ("--registry", registry_uri, "--cache-dir", str(tmp_path / "cache"))
    assert invoke("registry", "publish", str(model_files[0]), "--name", "digits", *reg)[0] == 0
    cases = [
        (2, ["publish", str(model_files[0]), "--name", "../etc"], "model name '../etc'"),
        (2, ["publish", str(model_files[0]), "--name", "ok", "--alias", "a/b"], "alias 'a/b'"),
        (2, ["show", "digits:abc"], "version 'abc'"),
        (2, ["promote", "digits@champion", "prod"], "NAME:VERSION"),
        (2, ["rollback", "digits:1"], "NAME@ALIAS"),
        (3, ["versions", "nope"], "no model named 'nope'"),
        (3, ["show", "digits:9"], "no version 9"),
        (3, ["pull", "digits@champion"], "no alias 'champion'"),
        (3, ["promote", "digits:9", "champion"], "no version 9"),
        (3, ["rollback", "digits@champion"], "no alias 'champion'"),
    ]
    for expected, args, message in cases:
        code, _, err = invoke("registry", *args, *reg)
        assert code == expected, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_tampered_blob_fails_the_pull(
    registry_uri: str, model_files: list[Path], tmp_path: Path
) -> None:
    from registry import Registry

    reg = ("--registry", registry_uri, "--cache-dir", str(tmp_path / "cache"))
    code, out, _ = invoke(
        "registry", "publish", str(model_files[0]), "--name", "digits", *reg, "--json"
    )
    assert code == 0
    blob = json.loads(out)["blob"]
    Registry.open(registry_uri, cache_dir=tmp_path).store.put(blob, model_files[1].read_bytes())
    code, _, err = invoke("registry", "pull", "digits:1", "--out", str(tmp_path / "x.npz"), *reg)
    assert code == 4 and "sha256" in err and "altered" in err
    assert not (tmp_path / "x.npz").exists()


def test_default_registry_is_named_and_env_var_wins(
    model_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = invoke("registry", "publish", str(model_files[0]), "--name", "digits")
    assert code == 0
    default = Path(os.environ["XDG_DATA_HOME"]) / "softmax-pipe" / "registry"
    assert f"using the default local registry at {default}" in err
    assert (default / "models" / "digits" / "versions" / "00000001.json").is_file()

    monkeypatch.setenv("SOFTMAX_PIPE_REGISTRY", str(tmp_path / "from-env"))
    code, out, err = invoke("registry", "list", "--json")
    assert (
        code == 3
        and f"no registry at {tmp_path / 'from-env'}" in err
        and "using the default" not in err
    )
    (tmp_path / "from-env").mkdir()
    code, out, err = invoke("registry", "list", "--json")
    assert code == 0 and json.loads(out) == [] and "using the default" not in err


def test_storage_failures_exit_4_naming_what_to_check(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, _, err = invoke("registry", "list", "--registry", "s3://no-such-bucket-cli/x")
    assert code == 4 and "bucket 'no-such-bucket-cli' does not exist" in err

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = invoke(
        "registry",
        "versions",
        "digits",
        "--registry",
        "s3://models/x",
        "--endpoint-url",
        f"http://127.0.0.1:{port}",
    )
    assert code == 4
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in err and "check" in err


def test_installed_console_script(s3_bucket: str, model_files: list[Path], tmp_path: Path) -> None:
    """The real `softmax-pipe` executable, in its own process, configured by the environment."""
    exe = Path(sys.executable).parent / "softmax-pipe"
    assert exe.is_file(), f"{exe} missing: pip install -e . in the venv"
    env = {**os.environ, "SOFTMAX_PIPE_REGISTRY": f"s3://{s3_bucket}/proc"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(exe), "registry", *args], env=env, capture_output=True, text=True, timeout=120
        )

    done = run("publish", str(model_files[0]), "--name", "digits", "--alias", "champion")
    assert done.returncode == 0, done.stderr
    done = run("versions", "digits", "--json")
    assert done.returncode == 0, done.stderr
    [manifest] = json.loads(done.stdout)
    assert manifest["version"] == 1 and manifest["metrics"]["accuracy"] == pytest.approx(0.91)
    assert manifest["digest"] == hashlib.sha256(model_files[0].read_bytes()).hexdigest()
    done = run("show", "digits@nope")
    assert done.returncode == 3 and "no alias 'nope'" in done.stderr
    done = run("show", "bad/name")
    assert done.returncode == 2
    done = run("pull", "digits@champion", "--out", str(tmp_path / "pulled.npz"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pulled.npz").read_bytes() == model_files[0].read_bytes()


def test_pull_out_with_a_trailing_slash_writes_into_that_folder(
    tmp_path: Path, model_files: list[Path]
) -> None:
    reg = ("--registry", str(tmp_path / "registry"), "--cache-dir", str(tmp_path / "cache"))
    assert invoke("registry", "publish", str(model_files[0]), "--name", "digits", *reg)[0] == 0
    folder = tmp_path / "new" / "models"
    code, _, err = invoke("registry", "pull", "digits:1", "--out", f"{folder}/", *reg)
    assert code == 0, err
    assert (folder / "digits-1.npz").is_file()
    assert (folder / "digits-1.npz").read_bytes() == model_files[0].read_bytes()


def test_a_failed_pull_leaves_no_folder_behind(tmp_path: Path, model_files: list[Path]) -> None:
    """A pull of a version that does not exist (exit 3) left the --out folder it made
    before the download, and its parents, empty; now they are gone again. A folder that
    was there stays, and so does one of a pull that worked."""
    reg = ("--registry", str(tmp_path / "registry"), "--cache-dir", str(tmp_path / "cache"))
    assert invoke("registry", "publish", str(model_files[0]), "--name", "digits", *reg)[0] == 0
    there = tmp_path / "there"
    there.mkdir()
    before = sorted(tmp_path.iterdir())
    for out in ("new/", "new/models/", "new/models/m.npz", "there/new/", "there/m.npz"):
        for command in (("registry", "pull", "digits:9"), ("dataset", "pull", "nothing:1")):
            code, _, err = invoke(*command, "--out", f"{tmp_path}/{out}", *reg)
            assert code == 3, err
            assert sorted(tmp_path.iterdir()) == before, out
            assert list(there.iterdir()) == [], out
    code, _, err = invoke("registry", "pull", "digits:1", "--out", f"{tmp_path}/new/", *reg)
    assert code == 0, err
    assert (tmp_path / "new" / "digits-1.npz").is_file()
    for command in (("registry", "pull", "digits:1"), ("dataset", "pull", "nothing:1")):
        code, _, err = invoke(*command, "--out", "", *reg)  # pathlib's '' is the current folder
        assert (code, err.strip()) == (2, "error: --out is empty; expected a file name")


def test_pull_out_that_cannot_be_written_is_one_line(
    tmp_path: Path, model_files: list[Path]
) -> None:
    """As every command's output, checked before the download (the versions named here do
    not exist, which would be exit 3): a folder that cannot be made is exit 4, a file where
    a folder should be exit 2."""
    reg = ("--registry", str(tmp_path / "registry"), "--cache-dir", str(tmp_path / "cache"))
    assert invoke("registry", "publish", str(model_files[0]), "--name", "digits", *reg)[0] == 0
    cases = [
        ("/proc/softmax-pipe-no-such-folder/m.npz", 4, "cannot create the folder /proc/"),
        ("/proc/softmax-pipe-no-such-folder/", 4, "cannot create the folder /proc/"),
        (f"{model_files[0]}/m.npz", 2, "m1.npz is a file, not a folder"),
        (f"{model_files[0]}/sub/", 2, "m1.npz is a file, not a folder"),
    ]
    for out, expected, says in cases:
        for command in (("registry", "pull", "digits:9"), ("dataset", "pull", "nothing:1")):
            code, stdout, err = invoke(*command, "--out", out, *reg)
            assert (code, stdout) == (expected, ""), err
            assert says in err and len(err.strip().splitlines()) == 1, err
    assert model_files[0].is_file()
    code, _, err = invoke("registry", "pull", "digits:1", "--out", tmp_path / "new" / "m.npz", *reg)
    assert code == 0, err
    assert (tmp_path / "new" / "m.npz").read_bytes() == model_files[0].read_bytes()


def test_list_names_a_damaged_alias_and_lists_the_others(
    registry_uri: str, model_files: list[Path], tmp_path: Path
) -> None:
    reg = ("--registry", registry_uri, "--cache-dir", str(tmp_path / "cache"))
    for name in ("alpha", "beta"):
        code, _, err = invoke(
            "registry", "publish", str(model_files[0]), "--name", name, "--alias", "champion", *reg
        )
        assert code == 0, err
    from registry import Registry, layout

    Registry.open(registry_uri).store.put(layout.alias_key("alpha", "champion"), b"{not json")
    code, out, err = invoke("registry", "list", *reg)
    assert code == 1
    assert "beta" in out and "alpha" not in out
    assert "alpha" in err and "--repair" in err and "Traceback" not in err
    code, out, err = invoke("registry", "promote", "alpha:1", "champion", "--repair", *reg)
    assert code == 0, err
    code, out, err = invoke("registry", "list", *reg, "--json")
    assert code == 0, err
    assert [m["aliases"] for m in json.loads(out)] == [{"champion": 1}, {"champion": 1}]


def test_a_registry_path_that_is_a_file_or_missing_is_an_error(tmp_path: Path) -> None:
    """A file given as the registry is a usage mistake, exit 2 (it was exit 4, storage's)."""
    afile = tmp_path / "afile"
    afile.write_text("not a registry")
    code, _, err = invoke("registry", "list", "--registry", str(afile))
    assert (code, err) == (
        2,
        f"error: local registry {afile} is a file, not a registry folder; give a folder, "
        "file:///path or s3://bucket/prefix\n",
    )
    code, _, err = invoke("registry", "list", "--registry", str(afile / "sub"))
    assert (code, err) == (  # it was "does not exist (publishing creates it)", exit 3
        2,
        f"error: {afile} is a file, not a folder (for the registry {afile / 'sub'})\n",
    )
    code, _, err = invoke("registry", "list", "--registry", str(tmp_path / "missing"))
    assert code == 3 and "no registry at" in err
    (tmp_path / "empty").mkdir()
    code, _, err = invoke("registry", "list", "--registry", str(tmp_path / "empty"))
    assert code == 0 and "no models" in err


def test_a_name_that_reads_as_an_option_is_refused(tmp_path: Path, model_files: list[Path]) -> None:
    code, _, err = invoke(
        "registry", "publish", str(model_files[0]), "--name=-rf", "--registry", str(tmp_path / "r")
    )
    assert code == 2 and "starts with '-'" in err


def test_publish_with_an_alias_that_cannot_move_says_the_version_was_published(
    model_files: list[Path], tmp_path: Path
) -> None:
    """Issue 27 item 12: the version is published, the alias write fails (here its folder
    is a file, so even root cannot write it): exit 4, and the line says both."""
    root = tmp_path / "registry"
    reg = ("--registry", str(root), "--cache-dir", str(tmp_path / "cache"))
    code, _, err = invoke("registry", "publish", str(model_files[0]), "--name", "digits", *reg)
    assert code == 0, err
    (root / "models" / "digits" / "aliases").write_text("not a folder")
    code, out, err = invoke(
        "registry", "publish", str(model_files[1]), "--name", "digits", "--alias", "champion", *reg
    )
    assert code == 4, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: published digits:2, but moving digits@champion failed: "), err
    code, out, _ = invoke("registry", "versions", "digits", *reg, "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]


def test_gc_with_a_short_grace_needs_force(model_files: list[Path], tmp_path: Path) -> None:
    """Racing ``gc --grace 0`` with adds lost a dataset version's blob for good: a grace
    under a minute is refused (exit 2) unless --force; a dry run deletes nothing, so it may."""
    root = tmp_path / "registry"
    reg = ("--registry", str(root), "--cache-dir", str(tmp_path / "cache"))
    orphan = root / "blobs" / "sha256" / f"{'ab' * 32}.npz"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"a blob whose manifest is not written yet")
    for grace in ("0", "59.5"):
        code, out, err = invoke("registry", "gc", "--grace", grace, *reg)
        assert code == 2 and "add --force if none is running" in err, err
        assert orphan.exists()
    code, out, err = invoke("registry", "gc", "--grace", "0", "--dry-run", *reg)
    assert code == 0 and "would delete 1 unreferenced blob\n" in out and orphan.exists()
    code, out, err = invoke("registry", "gc", "--grace", "0", "--force", *reg)
    assert code == 0 and "deleted 1 unreferenced blob\n" in out and not orphan.exists()


def test_a_held_registry_lock_is_waited_for_with_a_line_then_given_up(
    model_files: list[Path], tmp_path: Path
) -> None:
    """Another process holding a local registry's lock: the command says it waits, after
    a second, and gives up with one line and exit 4 after the settings' bound (it waited
    forever, silently). The bound is lowered to 3 s here."""
    import fcntl

    root = tmp_path / "registry"
    for model in model_files[:2]:
        assert invoke("registry", "publish", model, "--name", "digits", "--registry", root)[0] == 0
    assert invoke("registry", "promote", "digits:1", "champion", "--registry", root)[0] == 0
    held = os.open(root / ".~lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    lowered = (
        "import sys\nfrom softmax_core import settings\nsettings.REGISTRY_LOCK_WAIT = 3.0\n"
        "from softmax_pipe.cli import main\nsys.argv[0] = 'softmax-pipe'\nmain()\n"
    )
    args = ["registry", "promote", "digits:2", "champion", "--registry", str(root)]
    try:
        done = subprocess.run(
            [sys.executable, "-c", lowered, *args],
            capture_output=True,
            text=True,
            timeout=30,  # it hung: a failure, not a hang of the suite
            check=False,
        )
    finally:
        os.close(held)
    assert done.returncode == 4, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("waiting for the registry lock held by another"), lines
    assert lines[1].startswith(f"error: the registry lock {root / '.~lock'} stayed held"), lines
    assert len(lines) == 2 and "Traceback" not in done.stderr
    code, out, _ = invoke("registry", "promote", "digits:2", "champion", "--registry", root)
    assert code == 0, out  # once it is free, the move is made
