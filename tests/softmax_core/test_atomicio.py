"""softmax_core.atomicio: where a write lands (a device, FIFO or pipe written through)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from softmax_core.atomicio import atomic_write, resolve_target, writes_in_place


def test_a_pipe_named_by_dev_fd_is_written_through() -> None:
    """``/dev/fd/N`` (``-o >(cat)``, and ``/dev/stdout`` on a pipe) resolves to a name like
    ``pipe:[1234]`` that cannot be opened: the write goes through the name given."""
    r, w = os.pipe()
    try:
        path = f"/dev/fd/{w}"
        assert resolve_target(path) == (Path(path), True)
        assert writes_in_place(path)
        atomic_write(path, b"path,label\na.png,7\n")
        os.close(w)
        w = -1
        assert os.read(r, 1000) == b"path,label\na.png,7\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_fifo_and_a_device_are_written_through_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert writes_in_place(fifo)
    atomic_write(fifo, b"rows\n")
    reader.join(timeout=30)
    assert got == [b"rows\n"] and fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.fifo"]  # no temporary file
    assert writes_in_place("/dev/null")
    atomic_write("/dev/null", b"gone")
    assert Path("/dev/null").is_char_device()


def test_writes_in_place_is_false_for_files_folders_and_missing_names(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("x")
    for path in (tmp_path / "f.csv", tmp_path, tmp_path / "missing.csv", tmp_path / "f.csv" / "x"):
        assert not writes_in_place(path)


def test_a_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert resolve_target(tmp_path / "link.csv") == (tmp_path / "real.csv", False)
    atomic_write(tmp_path / "link.csv", "new")
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_text() == "new"
