"""Model files: round trip, no pickles, clear errors for anything else."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from softmax_core.errors import DataFormatError, DataNotFoundError, InvalidInputError
from softmax_core.modelfile import FORMAT, ModelFile


def make(steps: list[str] | None = None) -> ModelFile:
    rng = np.random.default_rng(0)
    return ModelFile(
        W=rng.normal(size=(784, 10)).astype(np.float32),
        b=rng.normal(size=10).astype(np.float32),
        meta={"preprocessing": {"steps": steps or ["scale", "deskew"]}, "params": {"seed": 1}},
    )


def test_round_trip(tmp_path: Path) -> None:
    mf = make()
    path = mf.save(tmp_path / "sub" / "m.npz")
    back = ModelFile.load(path)
    assert back.W.tobytes() == mf.W.tobytes() and back.b.tobytes() == mf.b.tobytes()
    assert back.meta["format"] == FORMAT
    assert back.steps == ("scale", "deskew")
    assert back.meta["params"] == {"seed": 1}
    assert list(tmp_path.glob("sub/.*tmp")) == []  # no temp file left behind


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float32),
        b=np.zeros(10, np.float32),
        meta=np.array([{"format": FORMAT}], dtype=object),
    )
    with pytest.raises(DataFormatError, match="holds Python objects"):
        ModelFile.from_bytes(buf.getvalue(), origin="evil.npz")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a zip archive"),
        (b"hello, not a zip", "not a zip archive"),
    ],
)
def test_garbage_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        ModelFile.from_bytes(data, origin="x.npz")


def test_wrong_format_and_missing_arrays(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, W=np.zeros((784, 10), np.float32))
    with pytest.raises(DataFormatError, match="missing arrays"):
        ModelFile.from_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float32),
        b=np.zeros(10, np.float32),
        meta=np.array('{"format": "other@9"}'),
    )
    with pytest.raises(DataFormatError, match="unsupported model format"):
        ModelFile.from_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float64),
        b=np.zeros(10, np.float32),
        meta=np.array(f'{{"format": "{FORMAT}"}}'),
    )
    with pytest.raises(DataFormatError, match="expected float32"):
        ModelFile.from_bytes(buf.getvalue())


def test_unknown_preprocessing_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown preprocessing step"):
        ModelFile.from_bytes(make(["scale", "sharpen"]).to_bytes())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        ModelFile.load(tmp_path / "nope.npz")


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path: Path) -> None:
    path = make().save(tmp_path / "m.npz")
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["W", "b", "meta"]
