"""MNIST ingest: every source, the verified memory-mapped cache, bad input, cached features.

Small real IDX / npz files are written into tmp_path; the download path runs against a
real HTTP server on loopback; the real MNIST is parsed once into the session cache. The
keras source, against the real keras: tests/softmax_core/test_keras.py.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core import preprocess
from softmax_core.atomicio import TMP_MARK
from softmax_core.errors import (
    DataFormatError,
    DataNotFoundError,
    DownloadError,
    IntegrityError,
    InvalidInputError,
    StorageError,
)
from softmax_core.mnist import (
    ARRAY_NAMES,
    Dataset,
    cached_features,
    dataset_digest,
    file_sha256,
    formats,
    load_mnist,
    remote,
    resolve_source,
)
from softmax_core.mnist import arrays as arrays_mod
from softmax_core.mnist.arrays import IDX_FILES
from softmax_core.mnist.remote import check_url
from softmax_core.preprocess import Steps
from softmax_core.requests import Data, Hyper

Arrays = dict[str, np.ndarray]

# md5 of the uncompressed IDX files, as published in /work/shared/README.md.
MNIST_IDX_MD5 = {
    "x_train": "6bbc9ace898e44ae57da46a324031adb",
    "y_train": "a25bea736e30d166cdddb491f175f624",
    "x_test": "2646ac647ad5339dbf082846283269ea",
    "y_test": "27ae3e4e09519cfbb04c329615203637",
}


# --- helpers: real files built in the test ---------------------------------------------------


def make_arrays(n_train: int = 50, n_test: int = 20, seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def idx_bytes(a: np.ndarray, magic: int | None = None) -> bytes:
    """LeCun's IDX: big-endian magic (0x0803 images / 0x0801 labels), dims, uint8 data."""
    if magic is None:
        magic = 0x0803 if a.ndim == 3 else 0x0801
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return head + np.ascontiguousarray(a, dtype=np.uint8).tobytes()


def write_idx(folder: Path, arrays: Arrays, *, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, stem in IDX_FILES.items():
        raw = idx_bytes(arrays[name])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw, mtime=0))
        else:
            (folder / stem).write_bytes(raw)
    return folder


def write_npz(path: Path, arrays: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def leftovers(cache_dir: Path) -> list[Path]:
    """Everything under the cache except the (possibly empty) mnist/ folder itself."""
    return sorted(p for p in cache_dir.rglob("*") if p != cache_dir / "mnist")


def assert_same(ds: Dataset, arrays: Arrays) -> None:
    for name in ARRAY_NAMES:
        got = getattr(ds, name)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])


def assert_entry_verifies(ds: Dataset) -> None:
    manifest = json.loads((ds.path / "manifest.json").read_text())
    assert manifest["digest"] == ds.digest
    assert manifest["arrays"] == ds.arrays
    for name in ARRAY_NAMES:
        assert file_sha256(ds.path / f"{name}.npy") == ds.arrays[name]


@pytest.fixture
def small() -> Arrays:
    return make_arrays()


# --- a real HTTP server on loopback ------------------------------------------------------


@dataclass
class Server:
    url: str
    root: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """http.server on 127.0.0.1 (free port) serving tmp_path/www; `/short/<f>` announces
    more bytes than it sends, like a connection cut mid-transfer."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path.startswith("/short/"):
                body = (root / self.path.removeprefix("/short/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            if self.path.startswith("/unannounced/"):  # no Content-Length: read to the close
                body = (root / self.path.removeprefix("/unannounced/")).read_bytes()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        yield Server(url=f"http://127.0.0.1:{port}", root=root, requests=seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- resolve_source ------------------------------------------------------------------------


def test_default_source_is_download_without_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)  # import keras -> ImportError
    assert resolve_source(None) == "download"
    assert resolve_source("download") == "download"
    with pytest.raises(InvalidInputError, match="keras"):
        resolve_source("keras")


def test_resolve_source_paths(
    tmp_path: Path, small: Arrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    npz = write_npz(tmp_path / "m.npz", small)
    monkeypatch.chdir(tmp_path)
    assert resolve_source("idx") == str(folder)  # relative -> absolute
    assert resolve_source("m.npz") == str(npz)
    assert resolve_source(f"idx:{folder}") == str(folder)  # Dataset.source round-trips
    assert resolve_source(f"npz:{npz}") == str(npz)
    with pytest.raises(DataNotFoundError, match="nowhere"):
        resolve_source(str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="kears"):
        resolve_source("kears")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidInputError, match=r"notes\.txt"):
        resolve_source("notes.txt")
    with pytest.raises(InvalidInputError, match="npz"):
        resolve_source(f"npz:{folder}")


# --- each source -----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_idx_source(tmp_path: Path, cache_dir: Path, small: Arrays, gz: bool) -> None:
    folder = write_idx(tmp_path / "idx", small, gz=gz)
    messages: list[str] = []
    ds = load_mnist(str(folder), cache_dir=cache_dir, progress=messages.append)
    assert_same(ds, small)
    assert ds.x_train.shape == (50, 28, 28) and ds.y_test.shape == (20,)
    assert isinstance(ds.x_train, np.memmap)
    assert not ds.cached
    assert ds.source == f"idx:{folder}"
    assert ds.digest == dataset_digest(small)
    assert ds.path.parent == cache_dir / "mnist"
    assert_entry_verifies(ds)
    assert any("parsing" in m for m in messages)
    assert leftovers(cache_dir) == sorted([ds.path, *ds.path.iterdir()])


def test_npz_source(tmp_path: Path, cache_dir: Path, small: Arrays) -> None:
    labels64 = {**small, "y_train": small["y_train"].astype(np.int64)}  # any int labels
    npz = write_npz(tmp_path / "mnist.npz", labels64)
    ds = load_mnist(str(npz), cache_dir=cache_dir)
    assert_same(ds, small)
    assert ds.source == f"npz:{npz}"
    assert ds.digest == dataset_digest(small)
    assert ds.path.name == f"npz-{file_sha256(npz)}"
    assert_entry_verifies(ds)


def test_download_source(http_server: Server, cache_dir: Path, small: Arrays) -> None:
    npz = write_npz(http_server.root / "mnist.npz", small)
    url, sha = f"{http_server.url}/mnist.npz", file_sha256(npz)
    messages: list[str] = []
    ds = load_mnist("download", cache_dir=cache_dir, url=url, sha256=sha, progress=messages.append)
    assert_same(ds, small)
    assert ds.source == f"download:{url}"
    assert ds.path.name == f"download-{sha}"
    assert ds.digest == dataset_digest(small)
    assert http_server.requests == ["/mnist.npz"]
    size_mb = f"{npz.stat().st_size / 1e6:.1f}"
    assert any(m.startswith("downloaded") and size_mb in m for m in messages), messages
    assert_entry_verifies(ds)
    assert [p.name for p in (cache_dir / "mnist").iterdir()] == [ds.path.name]  # no temp file

    again = load_mnist("download", cache_dir=cache_dir, url=url, sha256=sha)
    assert again.cached and again.digest == ds.digest
    assert http_server.requests == ["/mnist.npz"]  # a warm load needs no network


def test_same_arrays_same_digest_whatever_the_source(
    tmp_path: Path,
    cache_dir: Path,
    small: Arrays,
    http_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    npz = write_npz(http_server.root / "mnist.npz", small)
    loads = [
        load_mnist(str(write_idx(tmp_path / "gz", small, gz=True)), cache_dir=cache_dir),
        load_mnist(str(write_idx(tmp_path / "plain", small, gz=False)), cache_dir=cache_dir),
        load_mnist(str(npz), cache_dir=cache_dir),
        load_mnist(
            "download",
            cache_dir=cache_dir,
            url=f"{http_server.url}/mnist.npz",
            sha256=file_sha256(npz),
        ),
    ]  # keras: tests/softmax_core/test_keras.py
    assert len({ds.path for ds in loads}) == 4  # one entry per source...
    assert {ds.digest for ds in loads} == {dataset_digest(small)}  # ...one dataset digest
    other = make_arrays(seed=1)
    assert dataset_digest(other) != dataset_digest(small)
    swapped = {**small, "x_train": small["x_test"], "x_test": small["x_train"]}
    swapped |= {"y_train": small["y_test"], "y_test": small["y_train"]}
    assert dataset_digest(swapped) != dataset_digest(small)


# --- the cache -----------------------------------------------------------------------------


def test_cache_hit_is_memory_mapped_without_parsing(
    tmp_path: Path, cache_dir: Path, small: Arrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    npz = write_npz(tmp_path / "m.npz", small)
    first = load_mnist(str(folder), cache_dir=cache_dir)
    first_npz = load_mnist(str(npz), cache_dir=cache_dir)

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cache hit must not parse the source")

    monkeypatch.setattr(formats, "read_idx", no_parsing)
    monkeypatch.setattr(remote, "read_npz", no_parsing)
    monkeypatch.setattr(formats, "read_npz", no_parsing)
    for src, before in ((folder, first), (npz, first_npz)):
        ds = load_mnist(str(src), cache_dir=cache_dir)
        assert ds.cached
        assert ds.path == before.path and ds.digest == before.digest
        assert ds.arrays == before.arrays
        for name in ARRAY_NAMES:
            assert isinstance(getattr(ds, name), np.memmap)
        assert_same(ds, small)


def test_changed_source_gets_a_new_entry(tmp_path: Path, cache_dir: Path, small: Arrays) -> None:
    folder = write_idx(tmp_path / "idx", small)
    first = load_mnist(str(folder), cache_dir=cache_dir)
    other = make_arrays(seed=7)
    write_idx(folder, other)
    second = load_mnist(str(folder), cache_dir=cache_dir)
    assert not second.cached and second.path != first.path
    assert second.digest == dataset_digest(other) != first.digest
    assert_same(second, other)


def _flip_last_byte(entry: Path) -> None:
    p = entry / "x_train.npy"
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))


def _drop_array(entry: Path) -> None:
    (entry / "y_test.npy").unlink()


def _garble_manifest(entry: Path) -> None:
    (entry / "manifest.json").write_text("{not json")


def _forge_manifest(entry: Path) -> None:
    m = json.loads((entry / "manifest.json").read_text())
    m["arrays"]["y_train"] = "0" * 64
    (entry / "manifest.json").write_text(json.dumps(m))


def _reshape_array(entry: Path) -> None:
    """A valid .npy with the manifest updated to match, but the wrong shape."""
    p = entry / "x_test.npy"
    np.save(p, np.zeros((20, 784), np.uint8))
    m = json.loads((entry / "manifest.json").read_text())
    m["arrays"]["x_test"] = file_sha256(p)
    (entry / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(
    "tamper", [_flip_last_byte, _drop_array, _garble_manifest, _forge_manifest, _reshape_array]
)
def test_tampered_entry_is_rebuilt_never_used(
    tmp_path: Path, cache_dir: Path, small: Arrays, tamper: Callable[[Path], None]
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    first = load_mnist(str(folder), cache_dir=cache_dir)
    tamper(first.path)
    messages: list[str] = []
    ds = load_mnist(str(folder), cache_dir=cache_dir, progress=messages.append)
    assert not ds.cached
    assert any("failed verification" in m for m in messages), messages
    assert ds.path == first.path and ds.digest == first.digest
    assert_same(ds, small)
    assert_entry_verifies(ds)
    assert [p.name for p in (cache_dir / "mnist").iterdir()] == [ds.path.name]
    assert load_mnist(str(folder), cache_dir=cache_dir).cached


def test_concurrent_loaders_share_one_entry(tmp_path: Path, cache_dir: Path, small: Arrays) -> None:
    folder = write_idx(tmp_path / "idx", small)
    results: list[Dataset] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def load() -> None:
        try:
            barrier.wait()
            results.append(load_mnist(str(folder), cache_dir=cache_dir))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == 4
    assert {ds.digest for ds in results} == {dataset_digest(small)}
    assert [p.name for p in (cache_dir / "mnist").iterdir()] == [results[0].path.name]
    for ds in results:
        assert_same(ds, small)
    assert_entry_verifies(results[0])


def test_failed_write_leaves_no_partial_entry(
    tmp_path: Path, cache_dir: Path, small: Arrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    real_save = np.save
    calls: list[str] = []

    def disk_full_on_third(file: Any, arr: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(str(file))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_save(file, arr, *args, **kwargs)

    monkeypatch.setattr(np, "save", disk_full_on_third)
    with pytest.raises(StorageError, match="No space left on device") as info:
        load_mnist(str(folder), cache_dir=cache_dir)
    assert "cache entry" in str(info.value)
    assert len(calls) == 3
    assert leftovers(cache_dir) == []
    monkeypatch.setattr(np, "save", real_save)
    assert not load_mnist(str(folder), cache_dir=cache_dir).cached


def test_stale_temporaries_of_crashed_loaders_are_swept(
    tmp_path: Path, cache_dir: Path, small: Arrays
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    root = cache_dir / "mnist"
    old, fresh = root / f"{TMP_MARK}idx-crashed", root / f"{TMP_MARK}idx-in-progress"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "x_train.npy").write_bytes(b"partial")
    two_days_ago = old.stat().st_mtime - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    ds = load_mnist(str(folder), cache_dir=cache_dir)
    assert not old.exists()
    assert fresh.exists()  # may belong to a loader still running
    assert sorted(p.name for p in root.iterdir()) == sorted([ds.path.name, fresh.name])


# --- bad input: one clear error naming the file, nothing left in the cache -------------------


def _truncate_gzip(folder: Path, arrays: Arrays) -> str:
    p = folder / "train-images-idx3-ubyte.gz"
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    return "train-images-idx3-ubyte.gz: truncated gzip"


def _corrupt_gzip(folder: Path, arrays: Arrays) -> str:
    p = folder / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(p.read_bytes())
    raw[20:40] = bytes(20)
    p.write_bytes(bytes(raw))
    return "t10k-images-idx3-ubyte.gz: corrupt gzip"


def _wrong_magic(folder: Path, arrays: Arrays) -> str:
    raw = idx_bytes(arrays["y_train"], magic=0x0803)  # labels file claiming to be images
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    return "train-labels-idx1-ubyte.gz: wrong IDX magic 0x00000803; expected 0x00000801"


def _count_mismatch(folder: Path, arrays: Arrays) -> str:
    raw = idx_bytes(arrays["y_test"][:-1])
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    return "20 test images but 19 test labels"


def _wrong_image_shape(folder: Path, arrays: Arrays) -> str:
    raw = idx_bytes(arrays["x_test"].reshape(20, 28 * 28)[:, :756].reshape(20, 27, 28))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    return "t10k-images-idx3-ubyte.gz: images are 27x28; expected 28x28"


def _data_shorter_than_header(folder: Path, arrays: Arrays) -> str:
    raw = idx_bytes(arrays["x_train"])
    (folder / "train-images-idx3-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte").write_bytes(raw[:-100])  # plain, cut short
    return "train-images-idx3-ubyte: truncated: the header promises 50 images"


def _trailing_data(folder: Path, arrays: Arrays) -> str:
    raw = idx_bytes(arrays["y_train"]) + b"\x00\x01"
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    return "train-labels-idx1-ubyte.gz: trailing data"


def _label_out_of_range(folder: Path, arrays: Arrays) -> str:
    labels = arrays["y_train"].copy()
    labels[3] = 10
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return r"y_train holds labels in 0\.\.10; expected 0\.\.9"


def _empty_file(folder: Path, arrays: Arrays) -> str:
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b""))
    return "t10k-labels-idx1-ubyte.gz: too short for an IDX header"


@pytest.mark.parametrize(
    "breakage",
    [
        _truncate_gzip,
        _corrupt_gzip,
        _wrong_magic,
        _count_mismatch,
        _wrong_image_shape,
        _data_shorter_than_header,
        _trailing_data,
        _label_out_of_range,
        _empty_file,
    ],
)
def test_bad_idx_is_one_clear_error_and_no_cache_state(
    tmp_path: Path,
    cache_dir: Path,
    small: Arrays,
    breakage: Callable[[Path, Arrays], str],
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    expected = breakage(folder, small)
    with pytest.raises(DataFormatError, match=expected) as info:
        load_mnist(str(folder), cache_dir=cache_dir)
    assert str(folder) in str(info.value)
    assert info.value.exit_code == 2
    assert leftovers(cache_dir) == []


def test_bad_idx_after_a_good_load_leaves_the_old_entry_alone(
    tmp_path: Path, cache_dir: Path, small: Arrays
) -> None:
    folder = write_idx(tmp_path / "idx", small)
    good = load_mnist(str(folder), cache_dir=cache_dir)
    before = leftovers(cache_dir)
    _truncate_gzip(folder, small)
    with pytest.raises(DataFormatError):
        load_mnist(str(folder), cache_dir=cache_dir)
    assert leftovers(cache_dir) == before
    assert_entry_verifies(good)


def test_missing_idx_files_are_listed(tmp_path: Path, cache_dir: Path, small: Arrays) -> None:
    folder = write_idx(tmp_path / "idx", small)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(str(folder), cache_dir=cache_dir)
    msg = str(info.value)
    assert "train-images-idx3-ubyte[.gz]" in msg and "t10k-labels-idx1-ubyte[.gz]" in msg
    assert "train-labels" not in msg and str(folder) in msg
    assert info.value.exit_code == 3
    assert leftovers(cache_dir) == []


def test_missing_source_path(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_mnist(str(tmp_path / "absent.npz"), cache_dir=cache_dir)
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"x_test": None}, r"missing arrays \['x_test'\]"),
        ({"x_train": "flat"}, r"x_train must have shape \(n, 28, 28\), got \(50, 784\)"),
        ({"y_train": "column"}, r"y_train must have shape \(n,\), got \(50, 1\)"),
        ({"x_test": "float"}, "x_test must be uint8 pixels, got dtype float32"),
        ({"y_test": "short"}, "20 test images but 18 test labels"),
        ({"y_train": "object"}, "not a readable .npz without pickles"),
    ],
)
def test_bad_npz(
    tmp_path: Path,
    cache_dir: Path,
    small: Arrays,
    change: dict[str, str | None],
    expected: str,
) -> None:
    arrays: dict[str, Any] = dict(small)
    for name, how in change.items():
        a = small[name]
        if how is None:
            del arrays[name]
        elif how == "flat":
            arrays[name] = a.reshape(len(a), -1)
        elif how == "column":
            arrays[name] = a[:, None]
        elif how == "float":
            arrays[name] = a.astype(np.float32) / 255
        elif how == "short":
            arrays[name] = a[:-2]
        elif how == "object":
            arrays[name] = np.array([int(v) for v in a] + [None], dtype=object)
    npz = tmp_path / "bad.npz"
    np.savez(npz, **arrays)  # np.savez pickles object arrays; we must refuse to load them
    with pytest.raises(DataFormatError, match=expected) as info:
        load_mnist(str(npz), cache_dir=cache_dir)
    assert str(npz) in str(info.value)
    assert leftovers(cache_dir) == []


def test_npz_that_is_not_a_zip(tmp_path: Path, cache_dir: Path) -> None:
    npz = tmp_path / "junk.npz"
    npz.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(DataFormatError, match=r"junk\.npz: not a readable \.npz"):
        load_mnist(str(npz), cache_dir=cache_dir)
    assert leftovers(cache_dir) == []


# --- download failures ----------------------------------------------------------------------


def test_download_sha_mismatch_is_an_integrity_error(
    http_server: Server, cache_dir: Path, small: Arrays
) -> None:
    npz = write_npz(http_server.root / "mnist.npz", small)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError) as info:
        load_mnist(
            "download", cache_dir=cache_dir, url=f"{http_server.url}/mnist.npz", sha256=wrong
        )
    msg = str(info.value)
    assert f"expected {wrong}" in msg and f"got {file_sha256(npz)}" in msg
    assert http_server.url in msg
    assert not isinstance(info.value, DownloadError)  # not worth a retry
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize("case", ["404", "server down", "cut short"])
def test_download_network_failures_are_download_errors(
    http_server: Server, cache_dir: Path, small: Arrays, case: str
) -> None:
    npz = write_npz(http_server.root / "mnist.npz", small)
    url = {
        "404": f"{http_server.url}/nothing-here.npz",
        "server down": f"http://127.0.0.1:{free_port()}/mnist.npz",
        "cut short": f"{http_server.url}/short/mnist.npz",
    }[case]
    with pytest.raises(DownloadError) as info:
        load_mnist("download", cache_dir=cache_dir, url=url, sha256=file_sha256(npz))
    assert url in str(info.value)
    if case == "404":
        assert "HTTP 404" in str(info.value)
    if case == "cut short":
        assert "cut short" in str(info.value)
    assert isinstance(info.value, StorageError) and info.value.exit_code == 4
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize("route", ["", "unannounced/"], ids=["announced", "unannounced"])
def test_download_over_the_size_cap_is_refused(
    http_server: Server,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
) -> None:
    big: dict[str, Any] = make_arrays(
        n_train=6000
    )  # ~5 MB: more than the pooch meter's one-chunk slack
    npz = http_server.root / "mnist.npz"
    np.savez(npz, **big)
    url = f"{http_server.url}/{route}mnist.npz"
    ds = load_mnist("download", cache_dir=cache_dir / "ok", url=url, sha256=file_sha256(npz))
    assert_same(ds, big)  # under the cap: fine, announced or not
    monkeypatch.setattr(remote, "MAX_DOWNLOAD_BYTES", npz.stat().st_size // 4)
    with pytest.raises(DownloadError, match="over the limit"):
        load_mnist("download", cache_dir=cache_dir / "capped", url=url, sha256=file_sha256(npz))
    assert leftovers(cache_dir / "capped") == []


def test_the_downloader_is_imported_only_for_a_download() -> None:
    code = "import sys, softmax_core.mnist; print([m for m in ('pooch', 'requests') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_download_refuses_other_schemes_and_embedded_credentials(
    cache_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="must be http"):
        load_mnist("download", cache_dir=cache_dir, url=f"file://{tmp_path}/m.npz")
    with pytest.raises(InvalidInputError, match="must not embed credentials") as info:
        load_mnist("download", cache_dir=cache_dir, url="http://me:s3cret@127.0.0.1:9/m.npz")
    assert "s3cret" not in str(info.value)
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://dluser:DlPassw0rd/part@mirror.example.com/mnist.npz",  # urlsplit: port
        "https://dluser:123/DlPassw0rd@mirror.example.com/mnist.npz",  # parses, wrongly
        "https://dluser:DlPassw0rd?x@mirror.example.com/mnist.npz",
        "https://dluser:DlPassw0rd#x@mirror.example.com/mnist.npz",
    ],
)
def test_a_download_url_whose_password_holds_a_delimiter_is_refused_without_it(
    url: str, cache_dir: Path
) -> None:
    """Not accepted and shown whole: refused (exit 2), shown without the password."""
    with pytest.raises(InvalidInputError) as info:
        check_url(url)
    message = str(info.value)
    assert "DlPassw0rd" not in message and "dluser" not in message
    assert message.startswith("download URL 'https://mirror.example.com/mnist.npz' ")
    with pytest.raises(InvalidInputError) as info:
        load_mnist("download", cache_dir=cache_dir, url=url)
    assert "DlPassw0rd" not in str(info.value)
    with pytest.raises(InvalidInputError, match="is a URL") as info:
        resolve_source(url)  # --source URL: not a path, and not shown whole either
    assert "DlPassw0rd" not in str(info.value)


def test_download_messages_elide_the_query_string(
    http_server: Server, cache_dir: Path, small: Arrays
) -> None:
    npz = write_npz(http_server.root / "mnist.npz", small)
    url = f"{http_server.url}/mnist.npz?X-Signature=s3cret"
    messages: list[str] = []
    ds = load_mnist(
        "download", cache_dir=cache_dir, url=url, sha256=file_sha256(npz), progress=messages.append
    )
    assert http_server.requests == ["/mnist.npz?X-Signature=s3cret"]
    assert ds.source == f"download:{http_server.url}/mnist.npz?…"
    assert not any("s3cret" in m for m in messages)
    assert "s3cret" not in (ds.path / "manifest.json").read_text()


# --- cached features -------------------------------------------------------------------------


@pytest.fixture
def small_ds(tmp_path: Path, cache_dir: Path, small: Arrays) -> Dataset:
    return load_mnist(str(write_idx(tmp_path / "idx", small)), cache_dir=cache_dir)


@pytest.mark.parametrize("features", ["pixels", "deskew"])
def test_cached_features_roundtrip(
    small_ds: Dataset, small: Arrays, features: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps.named(features)
    expected: dict[str, np.ndarray] = {}
    for split, n in (("train", 50), ("test", 20)):
        expected[split] = steps.features(small[f"x_{split}"])
        got = cached_features(small_ds, split, steps)  # type: ignore[arg-type]
        assert got.dtype == np.float32 and got.shape == (n, 784)
        np.testing.assert_array_equal(got, expected[split])
        folder = small_ds.path / "features" / "+".join(steps.to_json())
        meta = json.loads((folder / f"{split}.json").read_text())
        assert meta["sha256"] == file_sha256(folder / f"{split}.npy")
        assert meta["dataset_digest"] == small_ds.digest
        assert meta["steps"] == steps.to_json()

    def no_recompute(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a verified feature cache must not be recomputed")

    monkeypatch.setattr(Steps, "features", no_recompute)
    for split in ("train", "test"):
        warm = cached_features(small_ds, split, steps)  # type: ignore[arg-type]
        assert isinstance(warm, np.memmap)
        np.testing.assert_array_equal(warm, expected[split])


def test_cached_features_rebuilt_when_tampered(small_ds: Dataset, small: Arrays) -> None:
    steps = Steps.named("deskew")
    expected = steps.features(small["x_train"])
    cached_features(small_ds, "train", steps)
    npy = small_ds.path / "features" / "scale+deskew" / "train.npy"
    raw = bytearray(npy.read_bytes())
    raw[-4:] = b"\x00\x00\xc0\x7f"  # a NaN where a pixel feature was
    npy.write_bytes(bytes(raw))
    again = cached_features(small_ds, "train", steps)
    np.testing.assert_array_equal(again, expected)
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert file_sha256(npy) == meta["sha256"]
    npy.unlink()
    np.testing.assert_array_equal(cached_features(small_ds, "train", steps), expected)
    npy.with_suffix(".json").write_text("[]")
    np.testing.assert_array_equal(cached_features(small_ds, "train", steps), expected)
    assert [p.name for p in npy.parent.iterdir() if p.name.startswith(".")] == []


# --- verified stamps: the warm path skips re-hashing, a changed file never passes -------------


@pytest.fixture
def stamps_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stamp files however fresh (the real rule waits 2 s for the timestamp tick)."""
    monkeypatch.setattr(arrays_mod, "STAMP_MIN_AGE_NS", 0)


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = arrays_mod.file_sha256

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(arrays_mod, "file_sha256", counting)
    return hashed


@pytest.mark.usefixtures("stamps_at_once")
def test_a_verified_cache_is_not_hashed_again(
    small_ds: Dataset, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = preprocess.FEATURE_SETS["hog"]
    cached_features(small_ds, "train", steps)
    load_mnist(str(tmp_path / "idx"), cache_dir=cache_dir)  # hashes, then stamps
    cached_features(small_ds, "train", steps)
    hashed = count_hashes(monkeypatch)
    again = load_mnist(str(tmp_path / "idx"), cache_dir=cache_dir)
    feats = cached_features(again, "train", steps)
    assert hashed == [] and again.cached and feats.shape == (50, 392)
    stamps = sorted(p.name for p in again.path.rglob("*.verified"))
    assert stamps == sorted([f"{n}.npy.verified" for n in ARRAY_NAMES] + ["train.npy.verified"])


@pytest.mark.usefixtures("stamps_at_once")
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["written", "written-mtime-restored"])
def test_a_file_changed_after_its_stamp_is_hashed_and_refused(
    small_ds: Dataset, small: Arrays, monkeypatch: pytest.MonkeyPatch, keep_mtime: bool
) -> None:
    steps = Steps.named("deskew")
    expected = steps.features(small["x_train"])
    cached_features(small_ds, "train", steps)
    cached_features(small_ds, "train", steps)  # verified: stamped
    npy = small_ds.path / "features" / "scale+deskew" / "train.npy"
    assert npy.with_name("train.npy.verified").exists()
    before = npy.stat()
    # The change must land in a later timestamp tick than the stamp's (coarse clocks tick
    # every few ms); the production rule's 2 s age guarantees that, here a short wait does.
    time.sleep(0.05)
    raw = bytearray(npy.read_bytes())
    raw[-4:] = b"\x00\x00\xc0\x7f"  # same size, one NaN
    with npy.open("r+b") as f:
        f.write(bytes(raw))
    if keep_mtime:
        os.utime(npy, ns=(before.st_atime_ns, before.st_mtime_ns))
    hashed = count_hashes(monkeypatch)
    again = cached_features(small_ds, "train", steps)
    assert npy in hashed  # the stamp no longer matched
    np.testing.assert_array_equal(again, expected)  # recomputed, the NaN never used


def test_a_fresh_file_is_not_stamped(small_ds: Dataset) -> None:
    cached_features(small_ds, "train", Steps.named("pixels"))
    cached_features(small_ds, "train", Steps.named("pixels"))
    assert list(small_ds.path.rglob("*.verified")) == []  # written under 2 s ago


def test_cached_features_refuses_bad_steps_and_splits(small_ds: Dataset) -> None:
    """cached_features takes parsed Steps: steps that would name another folder (or none
    this version knows) never get that far."""
    with pytest.raises(InvalidInputError, match="unknown preprocessing step"):
        cached_features(small_ds, "train", Steps.parse(["scale", "../../etc"]))
    with pytest.raises(InvalidInputError, match="must start with 'scale'"):
        cached_features(small_ds, "train", Steps.parse(["deskew"]))
    with pytest.raises(InvalidInputError, match="split must be 'train' or 'test'"):
        cached_features(small_ds, "valid", Steps.named("pixels"))  # type: ignore[arg-type]
    assert not (small_ds.path / "features").exists()


# --- the real MNIST --------------------------------------------------------------------------


def test_real_mnist_through_idx(mnist_dir: Path, session_cache: Path) -> None:
    """Parsed bytes reproduce the published md5 of the uncompressed IDX files."""
    ds = load_mnist(str(mnist_dir), cache_dir=session_cache)
    assert ds.x_train.shape == (60000, 28, 28) and ds.y_train.shape == (60000,)
    assert ds.x_test.shape == (10000, 28, 28) and ds.y_test.shape == (10000,)
    for name in ARRAY_NAMES:
        a = getattr(ds, name)
        assert a.dtype == np.uint8 and isinstance(a, np.memmap)
        assert hashlib.md5(idx_bytes(np.asarray(a))).hexdigest() == MNIST_IDX_MD5[name], name
    for y, n in ((ds.y_train, 60000), (ds.y_test, 10000)):
        hist = np.bincount(y, minlength=10)
        assert hist.size == 10 and hist.sum() == n and hist.min() > 0.08 * n
    again = load_mnist(str(mnist_dir), cache_dir=session_cache)
    assert again.cached and again.digest == ds.digest and again.arrays == ds.arrays


def test_hog_features_are_cached_and_a_warm_start_across_feature_sets_is_refused(
    small_ds: Dataset, small: Arrays
) -> None:
    from softmax_core.errors import InvalidInputError
    from softmax_core.train import train

    steps = preprocess.FEATURE_SETS["hog"]
    got = cached_features(small_ds, "train", steps)
    assert got.shape == (50, 392) and isinstance(got, np.memmap)
    assert (small_ds.path / "features" / steps.key / "train.npy").is_file()
    np.testing.assert_array_equal(got, steps.features(small["x_train"]))
    hog_model = train(small_ds, Hyper(features="hog", epochs=1))
    assert hog_model.W.shape == (392, 11) and hog_model.info.params["features"] == "hog"
    # a warm start keeps the class "not a digit" (the default), or leaves it out (--no-reject)
    assert train(small_ds, Hyper(features="hog", epochs=1), init=hog_model).W.shape == (392, 11)
    ten = train(small_ds, Hyper(features="hog", epochs=1), data=Data(reject=False), init=hog_model)
    assert ten.W.shape == (392, 10)
    with pytest.raises(InvalidInputError, match="champion uses features 'hog', this run 'deskew'"):
        train(small_ds, Hyper(features="deskew", epochs=1), init=hog_model)


# --- no source given: the MNIST already cached ---------------------------------------------------


def test_no_source_reuses_the_mnist_last_cached(
    tmp_path: Path, cache_dir: Path, small: Arrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ingest --source X` once, then every command without a source: the entry last used
    (here an npz after an IDX folder), whatever made it, verified, without keras or the
    network (KERAS_HOME empty, so the default would otherwise be keras or a download)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras-here"))
    other = make_arrays(seed=9)
    idx = load_mnist(str(write_idx(tmp_path / "idx", small)), cache_dir=cache_dir)
    past = time.time() - 100  # whatever the filesystem clock's resolution
    os.utime(idx.path, (past, past))
    npz = load_mnist(str(write_npz(tmp_path / "m.npz", other)), cache_dir=cache_dir)
    messages: list[str] = []
    again = load_mnist(None, cache_dir=cache_dir, progress=messages.append)
    assert again.cached and again.path == npz.path and again.source == npz.source
    assert again.digest == dataset_digest(other)
    assert any(m.startswith("no source given: the MNIST cached from npz:") for m in messages)
    os.utime(npz.path, (past, past))
    load_mnist(str(tmp_path / "idx"), cache_dir=cache_dir)  # used last now
    assert load_mnist(None, cache_dir=cache_dir).path == idx.path


def test_no_source_and_a_damaged_cache_falls_back(
    tmp_path: Path, cache_dir: Path, small: Arrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry that fails verification is discarded, never used; the local source that
    made it is parsed again while it is there (a download was tried instead); with none,
    the default source decides (here keras's cached file, taken as the published one,
    reused without a download: the URL is a closed port)."""
    import shutil

    home = tmp_path / "keras-home"
    other = make_arrays(seed=4)
    published = write_npz(home / "datasets" / "mnist.npz", other)
    monkeypatch.setenv("KERAS_HOME", str(home))
    folder = write_idx(tmp_path / "idx", small)
    ds = load_mnist(str(folder), cache_dir=cache_dir)
    _flip_last_byte(ds.path)
    messages: list[str] = []
    url = f"http://127.0.0.1:{free_port()}/mnist.npz"
    again = load_mnist(
        None, cache_dir=cache_dir, url=url, sha256=file_sha256(published), progress=messages.append
    )
    assert any("failed verification" in m and "discarded" in m for m in messages), messages
    assert any(f"parsing idx:{folder} again" in m for m in messages), messages
    assert again.digest == ds.digest and again.source == f"idx:{folder}"
    _flip_last_byte(again.path)
    shutil.rmtree(folder)  # the source is gone too: the default decides
    again = load_mnist(None, cache_dir=cache_dir, url=url, sha256=file_sha256(published))
    assert not ds.path.exists()
    assert again.digest == dataset_digest(other) and again.source == f"download:{url}"
