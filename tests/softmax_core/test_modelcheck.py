"""Hostile model files are refused with one clear line, cheaply, and never hang."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core import modelcheck
from softmax_core.errors import DataFormatError
from softmax_core.model import FORMAT, Model
from softmax_core.preprocess import Steps


def _npz(W: Any = None, b: Any = None, meta: Any = None) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float32) if W is None else W,
        b=np.zeros(10, np.float32) if b is None else b,
        meta=np.array(json.dumps({"format": FORMAT} if meta is None else meta)),
    )
    return buf.getvalue()


def test_a_good_model_loads() -> None:
    assert Model.from_bytes(_npz()).W.shape == (784, 10)


@pytest.mark.parametrize("shape", [(100, 3), (784, 0), (784, 12)], ids=["100x3", "784x0", "784x12"])
def test_weights_of_the_wrong_shape_are_refused(shape: tuple[int, int]) -> None:
    with pytest.raises(
        DataFormatError, match=r"expected float32 W \(784, k\) and b \(k,\), k 10 or 11"
    ):
        Model.from_bytes(_npz(W=np.zeros(shape, np.float32)))


def test_an_eleven_class_model_loads_and_its_biases_must_match() -> None:
    assert (
        Model.from_bytes(
            _npz(W=np.zeros((784, 11), np.float32), b=np.zeros(11, np.float32))
        ).n_classes
        == 11
    )
    with pytest.raises(DataFormatError, match="k 10 or 11"):
        Model.from_bytes(_npz(W=np.zeros((784, 11), np.float32)))  # b has 10


def test_huge_weights_that_make_nan_probabilities_are_refused() -> None:
    with pytest.raises(DataFormatError, match="exceed"):
        Model.from_bytes(_npz(W=np.full((784, 10), 3e38, np.float32)))


def test_a_text_file_or_a_plain_npy_says_what_it_is_and_never_mentions_pickles() -> None:
    for data, what in ((b"just text\n", "not a zip archive"), (_npy(), "a plain .npy array")):
        with pytest.raises(DataFormatError, match=what) as info:
            Model.from_bytes(data, origin="m.npz")
        assert "pickle" not in str(info.value)


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


def test_a_zip_bomb_is_refused_from_its_declared_size() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("b.npy", _member(np.zeros(10, np.float32)))
        zf.writestr("meta.npy", _member(np.array(json.dumps({"format": FORMAT}))))
        with zf.open("W.npy", "w", force_zip64=True) as f:  # 200 MB of zeros, ~200 KB packed
            f.write(_header((784, 10)))
            chunk = bytes(1 << 20)
            for _ in range(200):
                f.write(chunk)
    assert len(buf.getvalue()) < 2_000_000
    with pytest.raises(DataFormatError, match="over the cap"):
        Model.from_bytes(buf.getvalue())


def test_a_huge_declared_shape_is_refused_before_allocation() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("W.npy", _header((10**9, 10)))
        zf.writestr("b.npy", _member(np.zeros(10, np.float32)))
        zf.writestr("meta.npy", _member(np.array(json.dumps({"format": FORMAT}))))
    with pytest.raises(DataFormatError, match="too large"):
        Model.from_bytes(buf.getvalue())


def _member(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"format": FORMAT, "preprocessing": {"steps": ["scale"] + ["deskew"] * 100_000}}, "over"),
        ({"format": FORMAT, "preprocessing": {"steps": None}}, "steps must be a list"),
        ({"format": FORMAT, "preprocessing": {"steps": "scale"}}, "steps must be a list"),
        ({"format": FORMAT, "preprocessing": "scale"}, "steps must be a list"),
        ({"format": FORMAT, "params": [1, 2]}, "params must be an object"),
    ],
    ids=["100k-steps", "null-steps", "string-steps", "string-preprocessing", "list-params"],
)
def test_bad_metadata_is_one_clear_error(meta: dict[str, Any], match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        Model.from_bytes(_npz(meta=meta))


def test_the_recorded_steps_are_parsed_once_into_typed_steps() -> None:
    hog = Steps.named("hog")
    assert modelcheck.parse_steps({"preprocessing": {"steps": hog.to_json()}}, "m.npz") == hog
    assert modelcheck.parse_steps({}, "m.npz") == Steps.named("pixels")  # before steps existed
    with pytest.raises(DataFormatError, match=r"^m\.npz: unknown preprocessing step 'blur'"):
        modelcheck.parse_steps({"preprocessing": {"steps": ["scale", "blur"]}}, "m.npz")


def test_weights_are_checked_against_the_width_of_the_steps() -> None:
    modelcheck.check_weights(np.zeros((392, 10), np.float32), np.zeros(10, np.float32), 392, "m")
    with pytest.raises(
        DataFormatError, match=r"^m: weights have W\(784, 10\) float32.*W \(392, k\)"
    ):
        modelcheck.check_weights(
            np.zeros((784, 10), np.float32), np.zeros(10, np.float32), 392, "m"
        )
    with pytest.raises(DataFormatError, match="non-finite"):
        modelcheck.check_weights(
            np.full((4, 10), np.nan, np.float32), np.zeros(10, np.float32), 4, "m"
        )


def test_deeply_nested_metadata_is_refused() -> None:
    nested = '{"format": "' + FORMAT + '", "lineage": ' + '{"x": ' * 5000 + "1" + "}" * 5001
    buf = io.BytesIO()
    np.savez(
        buf,
        W=np.zeros((784, 10), np.float32),
        b=np.zeros(10, np.float32),
        meta=np.array(nested),
    )
    with pytest.raises(DataFormatError, match=r"not valid JSON|nests deeper"):
        Model.from_bytes(buf.getvalue())


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def load() -> None:
        try:
            Model.load(fifo)
        except BaseException as e:
            done.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(timeout=30)
    assert done and isinstance(done[0], DataFormatError) and "not a regular file" in str(done[0])
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")
    with pytest.raises(DataFormatError, match="not a regular file"):
        Model.load(link)
