"""Reading an ``.npz`` archive that may be hostile: sizes and headers first, data last.

A model file or a dataset blob comes from whoever could write to the registry (or hand
over a file). A deflated member of a few MB can inflate to GB, and a ``.npy`` header can
declare any shape: ``np.load`` allocates what the header says before it reads a byte of
data. So, before an array is allocated, :func:`read_arrays`

1. refuses a member whose size in the archive's directory (``ZipInfo.file_size``, the
   most ``zipfile`` will ever inflate it to) is over ``max_bytes``;
2. reads each member's ``.npy`` header alone (``numpy.lib.format``), refusing object
   arrays (pickles) and a declared size (shape × item size) over ``max_bytes``, or one
   the member is too short to hold;
3. refuses the members together when their declared sizes add up to over ``max_bytes``;
4. hands the headers to the caller's ``check`` (shapes and dtypes it expects);

and only then reads each array (``allow_pickle=False``): numpy reads exactly the declared
bytes, so no more than ``max_bytes`` are inflated or allocated. Any problem is one
:class:`DataFormatError` naming ``origin``.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import DataFormatError

_DAMAGED = (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error)


@dataclass(frozen=True)
class Header:
    """A member's ``.npy`` header: what reading its data would allocate."""

    name: str  # the member without ``.npy``
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: never wraps


Check = Callable[[Mapping[str, Header]], None]


def read_arrays(
    data: bytes,
    names: Sequence[str],
    *,
    origin: str,
    what: str,
    max_bytes: int,
    optional: Sequence[str] = (),
    check: Check | None = None,
) -> dict[str, NDArray[Any]]:
    """The arrays ``names`` (and those of ``optional`` the archive has) from the .npz
    bytes of ``what`` ("a model file"), read as the module docstring says.
    DataFormatError when the bytes are no zip archive, a name is missing or a check
    fails; never an allocation over ``max_bytes``."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        kind = "a plain .npy array" if data.startswith(b"\x93NUMPY") else "not a zip archive"
        raise DataFormatError(
            f"{origin}: not {what}: it is {kind}; {what} is an .npz (zip) archive holding "
            f"the arrays {', '.join(names)}"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            missing = [n for n in names if f"{n}.npy" not in infos]
            if missing:
                raise DataFormatError(f"{origin}: not {what} (missing arrays {missing})")
            wanted = [*names, *(n for n in optional if f"{n}.npy" in infos)]
            headers = {n: _header(zf, infos[f"{n}.npy"], origin, max_bytes) for n in wanted}
            total = sum(h.nbytes for h in headers.values())
            if total > max_bytes:
                raise DataFormatError(
                    f"{origin}: its arrays declare {total:,} bytes, over the cap of {max_bytes:,}"
                )
            if check is not None:
                check(headers)
            return {n: _data(zf, infos[f"{n}.npy"]) for n in wanted}
    except DataFormatError:
        raise
    except _DAMAGED as e:
        raise DataFormatError(f"{origin}: a damaged .npz archive ({type(e).__name__})") from e


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, origin: str, max_bytes: int) -> Header:
    name = info.filename
    if info.file_size > max_bytes:
        raise DataFormatError(
            f"{origin}: {name} declares {info.file_size:,} bytes, over the cap of {max_bytes:,}"
        )
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        start = f.tell()
    if dtype.hasobject:
        raise DataFormatError(f"{origin}: {name} holds Python objects; only numbers and text")
    header = Header(name.removesuffix(".npy"), tuple(shape), dtype)
    if header.nbytes > max_bytes:
        raise DataFormatError(
            f"{origin}: {name} declares shape {header.shape} of {dtype}, "
            f"{header.nbytes:,} bytes: too large, over the cap of {max_bytes:,}"
        )
    if header.nbytes > info.file_size - start:
        raise DataFormatError(
            f"{origin}: {name} declares shape {header.shape} of {dtype}, more than it holds"
        )
    return header


def _data(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> NDArray[Any]:
    with zf.open(info) as f:
        out: NDArray[Any] = np.lib.format.read_array(f, allow_pickle=False)
    return out
