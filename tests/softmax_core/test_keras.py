"""The ``keras`` source against the real keras 3, and keras's cache reused.

No test sets KERAS_BACKEND: the source chooses JAX itself (``use_keras_backend``), as it
does in a user's shell, where keras 3 would otherwise ask for TensorFlow.

keras.datasets.mnist.load_data runs for real: keras's get_file (its cache folder under
a temporary KERAS_HOME, its sha256 check, its urlretrieve over HTTP), its np.load parsing,
then our adapter, validation and cache. Only the network fetch is redirected, at the one
seam keras offers: load_data passes two published constants to get_file, the origin on
storage.googleapis.com and that file's sha256. The tests swap exactly those for a real
HTTP server on loopback serving an npz made from real MNIST, and that npz's sha256 (our
bytes are not Google's, and keras refuses any file whose hash differs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core.errors import DataFormatError, DownloadError, IntegrityError
from softmax_core.mnist import (
    MNIST_SHA256,
    MNIST_URL,
    dataset_digest,
    file_sha256,
    load_mnist,
    resolve_source,
)
from tests.softmax_core.test_data import (  # noqa: F401 (http_server is a fixture)
    Arrays,
    Server,
    assert_entry_verifies,
    assert_same,
    free_port,
    http_server,
    leftovers,
    make_arrays,
    write_npz,
)


@pytest.fixture(autouse=True)
def keras_backend_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests import keras themselves (to redirect its download) before our loader
    does: the backend is chosen first, as ``load_keras`` chooses it."""
    from softmax_core.mnist.remote import KERAS_BACKEND, keras_backend

    chosen = keras_backend()
    if chosen is not None:
        monkeypatch.setenv(KERAS_BACKEND, chosen)


@pytest.fixture(scope="session")
def real_npz(
    mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """keras's mnist.npz layout (x_train, y_train, x_test, y_test), made from the real MNIST."""
    ds = load_mnist(str(mnist_dir), cache_dir=session_cache)
    arrays = {name: np.asarray(getattr(ds, name)) for name in ("x_train", "y_train")}
    arrays |= {name: np.asarray(getattr(ds, name)) for name in ("x_test", "y_test")}
    return write_npz(tmp_path_factory.mktemp("keras-npz") / "mnist.npz", arrays)


def serve_to_keras(
    monkeypatch: pytest.MonkeyPatch, server: Server, npz: Path | None, keras_home: Path
) -> str:
    """Serve ``npz`` (``None``: nothing, a 404) as /mnist.npz and point the real keras
    loader at it; keras caches under ``keras_home``, which is also $KERAS_HOME. Returns the
    sha256 keras is told to expect."""
    import keras.src.datasets.mnist as keras_mnist

    if npz is not None:
        shutil.copyfile(npz, server.root / "mnist.npz")
    sha = file_sha256(npz) if npz is not None else "0" * 64
    real_get_file = keras_mnist.get_file

    def get_file(*, fname: str, origin: str, file_hash: str, **kwargs: Any) -> Any:
        assert (origin, file_hash) == (MNIST_URL, MNIST_SHA256)  # the constants swapped
        url = f"{server.url}/mnist.npz"
        return real_get_file(
            fname=fname, origin=url, file_hash=sha, cache_dir=str(keras_home), **kwargs
        )

    monkeypatch.setattr(keras_mnist, "get_file", get_file)
    keras_home.mkdir(parents=True, exist_ok=True)  # keras falls back to /tmp/.keras otherwise
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    return sha


def test_keras_source_is_real_mnist_through_real_keras(
    monkeypatch: pytest.MonkeyPatch,
    http_server: Server,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
    real_npz: Path,
    mnist_dir: Path,
    session_cache: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import keras

    assert keras.backend.backend() == "jax" and keras.__version__.startswith("3.")
    home = tmp_path / "keras-home"
    sha = serve_to_keras(monkeypatch, http_server, real_npz, home)
    messages: list[str] = []
    ds = load_mnist("keras", cache_dir=cache_dir, progress=messages.append)
    idx = load_mnist(str(mnist_dir), cache_dir=session_cache)
    assert ds.source == "keras" and not ds.cached
    assert ds.x_train.shape == (60000, 28, 28) and ds.y_test.shape == (10000,)
    assert ds.digest == idx.digest  # the same lineage as the IDX files
    assert ds.path.name == f"keras-{ds.digest}"
    assert_entry_verifies(ds)
    assert http_server.requests == ["/mnist.npz"]
    assert file_sha256(home / "datasets" / "mnist.npz") == sha  # keras's own cache folder
    out, err = capfd.readouterr()
    assert out == "" and "Downloading data from" in err  # keras's bar kept off stdout

    again = load_mnist("keras", cache_dir=cache_dir)
    assert again.cached and again.path == ds.path and isinstance(again.x_test, np.memmap)
    assert http_server.requests == ["/mnist.npz"]  # keras read its cache: no second download


def test_keras_bad_shapes(
    monkeypatch: pytest.MonkeyPatch,
    http_server: Server,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    small = make_arrays()
    flat = write_npz(tmp_path / "flat.npz", {**small, "x_train": small["x_train"].reshape(50, 784)})
    serve_to_keras(monkeypatch, http_server, flat, tmp_path / "keras-home")
    with pytest.raises(DataFormatError, match=r"x_train must have shape \(n, 28, 28\)"):
        load_mnist("keras", cache_dir=cache_dir)
    assert leftovers(cache_dir) == []


def test_keras_network_failure_is_a_download_error(
    monkeypatch: pytest.MonkeyPatch,
    http_server: Server,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    serve_to_keras(monkeypatch, http_server, None, tmp_path / "keras-home")  # 404
    with pytest.raises(DownloadError, match=r"URL fetch failure.*404"):
        load_mnist("keras", cache_dir=cache_dir)
    assert leftovers(cache_dir) == []
    assert not (tmp_path / "keras-home" / "datasets" / "mnist.npz").exists()


def test_keras_refusing_a_file_is_an_integrity_error(
    monkeypatch: pytest.MonkeyPatch,
    http_server: Server,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    npz = write_npz(tmp_path / "m.npz", make_arrays())
    serve_to_keras(monkeypatch, http_server, npz, tmp_path / "keras-home")
    write_npz(http_server.root / "mnist.npz", make_arrays(seed=3))  # other bytes, same name
    with pytest.raises(IntegrityError, match="hash"):
        load_mnist("keras", cache_dir=cache_dir)
    assert leftovers(cache_dir) == []


def test_same_arrays_same_digest_from_keras_as_from_files(
    monkeypatch: pytest.MonkeyPatch,
    http_server: Server,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    small: Arrays = make_arrays()
    npz = write_npz(tmp_path / "m.npz", small)
    serve_to_keras(monkeypatch, http_server, npz, tmp_path / "keras-home")
    from_keras = load_mnist("keras", cache_dir=cache_dir)
    from_npz = load_mnist(str(npz), cache_dir=cache_dir)
    assert from_keras.path != from_npz.path
    assert from_keras.digest == from_npz.digest == dataset_digest(small)
    assert_same(from_keras, small)


# --- a Keras user's ~/.keras/datasets/mnist.npz -----------------------------------------------

_REUSE = """
import json, sys
from pathlib import Path
from softmax_core.mnist import load_mnist, resolve_source
messages = []
ds = load_mnist(None, cache_dir=Path(sys.argv[1]), url=sys.argv[2], sha256=sys.argv[3],
                progress=messages.append)
print(json.dumps({"resolved": resolve_source(None), "source": ds.source, "digest": ds.digest,
                  "keras_imported": "keras" in sys.modules, "messages": messages}))
"""


def test_the_default_source_reuses_kerass_cached_file_without_keras_or_network(
    tmp_path: Path, cache_dir: Path
) -> None:
    """keras is installed, yet with its cached mnist.npz in place the default source reads
    that file, sha256-verified, and neither imports keras nor opens a connection (the URL
    is a closed port: any download would fail)."""
    small = make_arrays()
    home = tmp_path / "keras-home"
    npz = write_npz(home / "datasets" / "mnist.npz", small)
    url = f"http://127.0.0.1:{free_port()}/mnist.npz"
    done = subprocess.run(
        [sys.executable, "-c", _REUSE, str(cache_dir), url, file_sha256(npz)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "KERAS_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["resolved"] == "download" and got["source"] == f"download:{url}"
    assert got["digest"] == dataset_digest(small)
    assert got["keras_imported"] is False
    assert any(m.startswith(f"reusing keras's {npz}") for m in got["messages"]), got


def test_a_cached_file_that_is_not_the_published_one_is_downloaded_instead(
    monkeypatch: pytest.MonkeyPatch,
    http_server: Server,  # noqa: F811
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    good = make_arrays()
    served = write_npz(http_server.root / "mnist.npz", good)
    home = tmp_path / "keras-home"
    write_npz(home / "datasets" / "mnist.npz", make_arrays(seed=5))  # a different file
    monkeypatch.setenv("KERAS_HOME", str(home))
    assert resolve_source(None) == "download"
    messages: list[str] = []
    url = f"{http_server.url}/mnist.npz"
    ds = load_mnist(
        None, cache_dir=cache_dir, url=url, sha256=file_sha256(served), progress=messages.append
    )
    assert_same(ds, good)
    assert http_server.requests == ["/mnist.npz"]
    assert any("is not the published file" in m for m in messages), messages


def test_without_a_cached_file_the_default_is_keras(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    assert resolve_source(None) == "keras"  # keras 3 is installed (.[dev])


# --- keras 3's backend, chosen in a fresh process ------------------------------------------------

_IMPORT = """
import sys
from softmax_core.mnist import remote
chosen = remote.use_keras_backend() if sys.argv[1] == "choose" else None
import keras
print(chosen, keras.backend.backend())
"""


def fresh(argv: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in a clean environment (PATH, HOME and ``env`` only), keras's folder
    holding the keras.json a failed first import leaves: {"backend": "tensorflow"}."""
    keras_home = home / ".keras"
    keras_home.mkdir(parents=True, exist_ok=True)
    (keras_home / "keras.json").write_text('{"backend": "tensorflow"}')
    clean = {"PATH": os.environ["PATH"], "HOME": str(home), **env}
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=clean)


def test_a_fresh_process_starts_keras_on_jax_by_itself(tmp_path: Path) -> None:
    """keras 3 asks for TensorFlow, which .[keras] does not install: ``import keras`` fails
    in a fresh shell (the issue's ``No module named 'tensorflow'``). Chosen first, it
    starts on JAX; a backend the user sets is kept."""
    plain = fresh([sys.executable, "-c", _IMPORT, "as-is"], tmp_path)
    assert plain.returncode != 0 and "No module named 'tensorflow'" in plain.stderr
    chosen = fresh([sys.executable, "-c", _IMPORT, "choose"], tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.split() == ["jax", "jax"]
    theirs = fresh([sys.executable, "-c", _IMPORT, "choose"], tmp_path, KERAS_BACKEND="numpy")
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout.split() == ["None", "numpy"]


def test_the_cli_keras_source_imports_keras_in_a_fresh_shell(tmp_path: Path) -> None:
    """``softmax-pipe ingest --source keras`` in a clean environment gets as far as keras's
    own download (here refused by a proxy on a closed port: exit 4, a network failure),
    where it stopped at ``import keras`` before (exit 2)."""
    proxy = f"http://127.0.0.1:{free_port()}"
    cli = str(Path(sys.executable).parent / "softmax-pipe")
    cache = str(tmp_path / "cache")
    proxies = {name: proxy for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")}
    done = fresh([cli, "ingest", "--source", "keras", "--cache-dir", cache], tmp_path, **proxies)
    assert done.returncode == 4, done.stderr
    assert "keras backend: jax" in done.stderr
    assert "keras.datasets.mnist.load_data() failed" in done.stderr
    assert "could not import keras" not in done.stderr
