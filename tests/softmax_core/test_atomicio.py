"""softmax_core.atomicio: where a write lands, and the check every command makes of its
output before the work (folders made, a folder or an unwritable place refused at once)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from softmax_core.atomicio import (
    atomic_write,
    check_output,
    make_folder,
    prepare_output,
    resolve_target,
    writes_in_place,
)
from softmax_core.errors import InvalidInputError, StorageError

# /proc: a folder nobody may make anything in, root included (chmod does not stop root)
UNMAKEABLE = Path("/proc/softmax-pipe-no-such-folder")


def test_a_pipe_named_by_dev_fd_is_written_through() -> None:
    """``/dev/fd/N`` (``-o >(cat)``, and ``/dev/stdout`` on a pipe) resolves to a name like
    ``pipe:[1234]`` that cannot be opened: the write goes through the name given."""
    r, w = os.pipe()
    try:
        path = f"/dev/fd/{w}"
        assert resolve_target(path) == (Path(path), True)
        assert writes_in_place(path) and prepare_output(path)
        atomic_write(path, b"path,label\na.png,7\n")
        os.close(w)
        w = -1
        assert os.read(r, 1000) == b"path,label\na.png,7\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_regular_file_behind_dev_fd_is_appended_to_as_the_shell_opened_it(
    tmp_path: Path,
) -> None:
    """``-o /dev/stdout >> rows.csv`` (and ``> rows.csv``): the shell's file is written
    through the descriptor's name, appending: not replaced by a rename (which would leave
    the shell's file alone and undo ``>>``), and nothing is put beside the name."""
    shells = tmp_path / "rows.csv"
    shells.write_bytes(b"earlier\n")
    fd = os.open(shells, os.O_WRONLY | os.O_APPEND)  # what ``>> rows.csv`` opens
    try:
        path = f"/dev/fd/{fd}"
        assert resolve_target(path) == (Path(path), True)
        assert writes_in_place(path) and prepare_output(path)
        atomic_write(path, b"a.png,7\n")
        atomic_write(path, b"b.png,1\n")
    finally:
        os.close(fd)
    assert shells.read_bytes() == b"earlier\na.png,7\nb.png,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]
    assert not writes_in_place(shells)  # by its own name, a file is replaced as always


def test_a_fifo_and_a_device_are_written_through_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert prepare_output(fifo)
    atomic_write(fifo, b"rows\n")
    reader.join(timeout=30)
    assert got == [b"rows\n"] and fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.fifo"]  # no temporary file
    assert prepare_output("/dev/null") and writes_in_place("/dev/null")
    atomic_write("/dev/null", b"gone")
    assert Path("/dev/null").is_char_device()


def test_writes_in_place_is_false_for_files_folders_and_missing_names(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("x")
    for path in (tmp_path / "f.csv", tmp_path, tmp_path / "missing.csv", tmp_path / "f.csv" / "x"):
        assert not writes_in_place(path)


def test_prepare_output_checks_missing_folders_and_leaves_nothing(tmp_path: Path) -> None:
    """The folders it made for its check go again (a command that fails after it leaves
    no empty folder); the write makes them; folders that were there stay."""
    out = tmp_path / "a" / "b" / "scores.csv"
    assert prepare_output(out) is False
    assert list(tmp_path.iterdir()) == []
    atomic_write(out, "x")
    assert out.read_text() == "x"
    (tmp_path / "a" / "c").mkdir()
    assert prepare_output(tmp_path / "a" / "c" / "d" / "e.csv") is False
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b", "c"]
    assert list((tmp_path / "a" / "c").iterdir()) == []


def test_prepare_output_refuses_a_folder_and_a_file_in_the_way(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is a folder; expected a file name") as e:
        prepare_output(tmp_path)
    assert e.value.exit_code == 2
    (tmp_path / "model.npz").write_bytes(b"x")
    for out in (tmp_path / "model.npz" / "m.npz", tmp_path / "model.npz" / "sub" / "m.npz"):
        with pytest.raises(InvalidInputError, match=r"model\.npz is a file, not a folder") as e:
            prepare_output(out)
        assert e.value.exit_code == 2
    assert (tmp_path / "model.npz").read_bytes() == b"x"


def test_check_output_refuses_a_file_being_read_and_a_name_ending_in_a_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one output check every command makes: the file it reads, under any of its names
    (a symlink, a hard link), and a folder not made yet (``out/new/``: pathlib drops the
    slash, and a file named ``out/new`` was written); nothing is touched."""
    model = tmp_path / "m.npz"
    model.write_bytes(b"x")
    (tmp_path / "soft.npz").symlink_to(model)
    os.link(model, tmp_path / "hard.npz")
    for out in (model, str(model), tmp_path / "soft.npz", tmp_path / "hard.npz"):
        with pytest.raises(InvalidInputError, match=r"^--out .* is the model file; choose") as e:
            prepare_output(out, option="--out", reads={"the model file": str(model)})
        assert e.value.exit_code == 2
    reads = {"the model file": "mnist@champion", "the data": None}  # not files: no check
    assert check_output(tmp_path / "new.npz", reads=reads) == (tmp_path / "new.npz", False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match=r"^--out out/new/ names a folder \(it ends"):
        prepare_output("out/new/", option="--out")  # refused before anything is made
    with pytest.raises(InvalidInputError, match="names a folder"):
        prepare_output(f"{tmp_path}/out/new/")
    assert model.read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.npz", "m.npz", "soft.npz"]


def test_prepare_output_refuses_a_dash_and_makes_no_file_named_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-`` is stdout for score's rows only (``requests.Output``); any other output named
    ``-`` (``train --out -``) is refused, not written as a file named ``-``."""
    monkeypatch.chdir(tmp_path)
    for dash in ("-", Path("-")):
        with pytest.raises(InvalidInputError, match=r"'-' \(stdout\) is for score's rows") as e:
            prepare_output(dash)
        assert e.value.exit_code == 2
    assert prepare_output(tmp_path / "-") is False  # a file named -, asked for by its path
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made_or_written_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match=f"cannot create the folder {UNMAKEABLE}") as e:
        prepare_output(UNMAKEABLE / "m.npz")
    assert e.value.exit_code == 4
    with pytest.raises(StorageError, match=f"cannot create the folder {UNMAKEABLE}"):
        make_folder(UNMAKEABLE)
    with pytest.raises(StorageError, match=r"cannot write /proc/softmax-pipe-out\.csv"):
        prepare_output("/proc/softmax-pipe-out.csv")  # the folder exists, no file can be made


def test_a_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert resolve_target(tmp_path / "link.csv") == (tmp_path / "real.csv", False)
    atomic_write(tmp_path / "link.csv", "new")
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_text() == "new"
