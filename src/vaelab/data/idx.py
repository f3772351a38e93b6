"""The IDX file format of MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017): read and write.

Layout (big-endian): a 4-byte magic number ``0x00 0x00 TT NN`` where TT is the element type code and NN the
number of dimensions, then NN uint32 sizes, then the elements in row-major order. Files may be gzip-compressed
(``.gz``). Image files are ``0x00000803`` (uint8, 3 dims: N, rows, cols); label files ``0x00000801`` (uint8,
1 dim: N).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError, data_error

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX element type code -> numpy dtype (big-endian)."""

_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def _read_bytes(path: Path, where: str | None) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise data_error(path, "not found", None, where) from None
    except (OSError, EOFError, zlib.error) as e:
        raise data_error(path, f"cannot be read or decompressed ({e})", "a readable (gzip) IDX file", where) from e


def parse_idx(
    data: bytes,
    source: str | Path,
    *,
    expect_magic: int | None = None,
    what: str = "",
    where: str | None = None,
) -> np.ndarray:
    """Decode IDX bytes into a native-endian numpy array; ``source`` names the file in errors.

    ``expect_magic`` (e.g. :data:`IMAGES_MAGIC`) makes any other type/dimension code an error that says what
    was expected (``what``, e.g. "uint8 images").
    """
    if len(data) < 4:
        raise data_error(source, f"truncated: {len(data)} bytes, shorter than the 4-byte IDX magic", None, where)
    magic = int.from_bytes(data[:4], "big")
    zeros, code, ndim = data[0] | data[1], data[2], data[3]
    expected = f"0x{expect_magic:08X} for {what}" if expect_magic is not None else "0x0000TTNN, a valid IDX magic"
    if zeros != 0 or code not in IDX_TYPES or (expect_magic is not None and magic != expect_magic):
        raise data_error(source, f"bad IDX magic 0x{magic:08X}", expected, where)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise data_error(source, f"truncated header: {len(data)} bytes, the magic announces {ndim} dims", None, where)
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[code]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    shape_txt = "x".join(map(str, dims))
    if have < need:
        raise data_error(
            source,
            f"truncated: header says {shape_txt} {_TYPE_NAMES[code]} = {need} bytes of data, file has {have}",
            None,
            where,
        )
    if have > need:
        hint = ""
        if len(data) >= header + 4:  # one more size field than the magic announces, and the data fit it exactly
            extra = int.from_bytes(data[header : header + 4], "big")
            if extra and need * extra == have - 4:
                hint = (
                    f"; the bytes fit {ndim + 1} dimensions ({shape_txt}x{extra}): the magic should be "
                    f"0x{(magic & ~0xFF) | (ndim + 1):08X}"
                )
        raise data_error(
            source,
            f"{have - need} unexpected bytes after the {shape_txt} {_TYPE_NAMES[code]} data: the header (magic "
            f"0x{magic:08X}, {ndim} dimension{'s' if ndim != 1 else ''}) declares {need} bytes, {have} follow it"
            + hint,
            None,
            where,
        )
    arr = np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(
    path: str | Path, *, expect_magic: int | None = None, what: str = "", where: str | None = None
) -> np.ndarray:
    """Read an IDX file (``.gz`` is decompressed) into a native-endian numpy array.

    Errors (:class:`~vaelab.data.base.DataError`) name the file: not found, bad magic (with the expected one
    when ``expect_magic`` is given), truncated data or trailing bytes. ``where`` is appended to messages (e.g.
    which setting chose the folder).
    """
    p = Path(path)
    return parse_idx(_read_bytes(p, where), p, expect_magic=expect_magic, what=what, where=where)


def read_idx_images(path: str | Path, where: str | None = None) -> np.ndarray:
    """uint8 images (N, H, W) from an IDX file with magic 0x00000803."""
    return read_idx(path, expect_magic=IMAGES_MAGIC, what="uint8 images", where=where)


def read_idx_labels(path: str | Path, where: str | None = None) -> np.ndarray:
    """uint8 labels (N,) from an IDX file with magic 0x00000801."""
    return read_idx(path, expect_magic=LABELS_MAGIC, what="uint8 labels", where=where)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``); returns the path."""
    arr = np.asarray(array)
    code = next((c for c, dt in IDX_TYPES.items() if dt.newbyteorder("=") == arr.dtype.newbyteorder("=")), None)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}; supported: {', '.join(_TYPE_NAMES.values())}")
    if arr.ndim > 255:
        raise ValueError("IDX stores at most 255 dimensions")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "wb", compresslevel=6) as f:
            f.write(payload)
    else:
        p.write_bytes(payload)
    return p


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (uncompressed first); None if neither."""
    for name in (stem, stem + ".gz"):
        p = folder / name
        if p.is_file():
            return p
    return None


__all__ = [
    "IDX_TYPES",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "DataError",
    "find_idx_file",
    "parse_idx",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "write_idx",
]
