"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST."""

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

# IDX type codes (the third byte of the magic number) and their big-endian numpy dtypes.
_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_TO_CODE = {dtype.newbyteorder("="): code for code, dtype in _CODE_TO_DTYPE.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    # Detect gzip from its own magic bytes rather than the suffix, so that a renamed
    # file still loads.
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(
            f"IDX file {str(path)!r} starts like a gzip file but could not be decompressed "
            f"({type(e).__name__}: {e}). The file is probably truncated or corrupt: delete it "
            "and download it again."
        ) from e


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a numpy array.

    An IDX file starts with a big-endian magic number `0x0000TTNN`, where `TT` is the
    element type (`0x08` is `uint8`, also `0x09` int8, `0x0B` int16, `0x0C` int32,
    `0x0D` float32, `0x0E` float64) and `NN` is the number of dimensions; then `NN`
    big-endian `uint32` sizes; then the elements in row-major order. MNIST labels have
    magic 2049 (`uint8`, 1-D) and MNIST images magic 2051 (`uint8`, 3-D).

    **Arguments:**

    - `path`: the file. Compression is detected from the gzip magic bytes, not the suffix.

    **Returns:**

    An array in native byte order whose shape and dtype come from the header.

    **Raises:**

    - `ValueError` naming the file if the magic number is not a valid IDX magic number,
        if the file holds fewer bytes than its header promises (truncated), if it holds
        more (trailing bytes), or if a gzip file cannot be decompressed.
    - `FileNotFoundError` if `path` does not exist.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: it holds {len(data)} bytes, fewer than "
            "the 4-byte magic number. Delete it and download it again."
        )
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in _CODE_TO_DTYPE or ndim == 0:
        magic = int.from_bytes(data[:4], "big")
        raise ValueError(
            f"IDX file {str(path)!r} has bad magic number {magic} (0x{magic:08x}); expected "
            "0x0000TTNN with a type code TT in "
            f"{{{', '.join(f'0x{c:02x}' for c in _CODE_TO_DTYPE)}}} and NN >= 1 dimensions "
            "(2049 for labels, 2051 for images). Is this really an IDX file, or is it, for "
            "example, an HTML error page saved by a failed download?"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: its magic number announces {ndim} "
            f"dimensions, so the header needs {header_size} bytes, but the file holds "
            f"{len(data)}. Delete it and download it again."
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _CODE_TO_DTYPE[code]
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: its header promises shape {shape} of "
            f"{dtype.newbyteorder('=')} ({expected} bytes in all) but the file holds "
            f"{len(data)} bytes. Delete it and download it again."
        )
    if len(data) > expected:
        raise ValueError(
            f"IDX file {str(path)!r} has {len(data) - expected} trailing bytes: its header "
            f"promises shape {shape} of {dtype.newbyteorder('=')} ({expected} bytes in "
            f"all) but the file holds {len(data)} bytes. The file is corrupt: delete it "
            "and download it again."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an IDX file, gzip-compressed when `path` ends in `.gz`.

    **Arguments:**

    - `path`: where to write.
    - `array`: at least 1-D, of dtype `uint8` (as MNIST), `int8`, `int16`, `int32`,
        `float32` or `float64`.

    **Returns:**

    Nothing. `read_idx(path)` gives back an equal array.

    **Raises:**

    - `ValueError` if `array` is 0-D, has more than 255 dimensions or a size that does not
        fit a `uint32`, or has a dtype IDX cannot store.
    """
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _DTYPE_TO_CODE:
        raise ValueError(
            f"`write_idx` got an array of dtype {array.dtype}, which IDX cannot store; "
            f"expected one of {sorted(str(d) for d in _DTYPE_TO_CODE)}. Cast it first, "
            "for example `array.astype(np.uint8)`."
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(
            f"`write_idx` got an array with {array.ndim} dimensions; IDX stores 1 to 255."
        )
    if any(size >= 2**32 for size in array.shape):
        raise ValueError(
            f"`write_idx` got an array of shape {array.shape}; IDX sizes must fit a uint32."
        )
    code = _DTYPE_TO_CODE[dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        size.to_bytes(4, "big") for size in array.shape
    )
    body = np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    data = header + body
    if path.suffix == ".gz":
        # mtime=0 makes the output byte-for-byte reproducible.
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def load_idx_pair(
    images_path: str | Path, labels_path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file, checking that they belong together.

    **Arguments:**

    - `images_path`: an IDX file of at least 2 dimensions, e.g. `(n, 28, 28)`.
    - `labels_path`: a 1-D IDX file of `n` labels.

    **Returns:**

    A tuple `(images, labels)` as read by [`pcastro.data.read_idx`][].

    **Raises:**

    - `ValueError` naming both files if the labels are not 1-D, the images have fewer than
        2 dimensions, or the numbers of images and labels disagree; and whatever
        `read_idx` raises for either file.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise ValueError(
            f"Labels file {str(labels_path)!r} holds an array of shape {labels.shape}; "
            "expected a 1-D array of labels (magic number 2049). Did you swap the images "
            "and labels paths?"
        )
    if images.ndim < 2:
        raise ValueError(
            f"Images file {str(images_path)!r} holds an array of shape {images.shape}; "
            "expected at least 2 dimensions, e.g. (n, 28, 28) (magic number 2051). Did you "
            "swap the images and labels paths?"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Images file {str(images_path)!r} holds {images.shape[0]} images but labels "
            f"file {str(labels_path)!r} holds {labels.shape[0]} labels; they must match. "
            "Are the two files from the same split (train/t10k) and the same dataset?"
        )
    return images, labels
