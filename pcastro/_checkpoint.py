"""Save and load a network, its optimiser state and a store: one file, bit-exact."""

import hashlib
import json
import os
import struct
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_MAGIC = b"PCASTRO-CHECKPOINT\n"
_FORMAT = "pcastro-checkpoint"
_VERSION = 1
_PREFIX = len(_MAGIC) + 8 + 32  # magic, header length (uint64 LE), header sha256


def _leaf_record(path: str, leaf: Any) -> tuple[dict, bytes]:
    if isinstance(leaf, (bool, int, float, complex)):
        arr = np.asarray(leaf)
        kind = type(leaf).__name__
    elif isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            raise TypeError(
                f"Leaf {path} is a typed PRNG key, which cannot be saved bit-exactly; store "
                "`jax.random.key_data(key)` instead."
            )
        arr = np.asarray(leaf)
        kind = "array"
    else:
        return {"path": path, "kind": "other", "type": type(leaf).__name__}, b""
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    data = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    record = {
        "path": path,
        "kind": kind,
        "dtype": jnp.dtype(arr.dtype).name,
        "shape": list(arr.shape),
        "nbytes": len(data),
    }
    return record, data


def _template_spec(leaf: Any) -> dict | None:
    """Kind, shape and dtype of a template leaf, without reading its values."""
    if isinstance(leaf, (bool, int, float, complex)):
        return {"kind": type(leaf).__name__, "shape": [], "dtype": np.asarray(leaf).dtype.name}
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)):
        return {"kind": "array", "shape": list(leaf.shape), "dtype": jnp.dtype(leaf.dtype).name}
    return None


_PARTS = ("net", "opt_state", "store")


def _flatten(parts: tuple) -> tuple[list[tuple[str, Any]], Any]:
    """Leaves of `(net, opt_state, store)` named like `store.x[0]`."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(parts)
    named = [(_PARTS[path[0].idx] + jax.tree_util.keystr(path[1:]), leaf) for path, leaf in leaves]
    return named, treedef


def save(path: str | os.PathLike, net: Any, opt_state: Any, store: Any) -> None:
    """Write a network, its optimiser state and a store to one file, bit-exact.

    The file is a small JSON header (format version, every array's path, shape and
    dtype, and the sha256 of the payload), itself protected by a sha256, followed by the
    raw little-endian bytes of every array. It is written to a temporary file in the
    same directory and moved into place with `os.replace`, so an interrupted or failed
    save leaves any previous file at `path` untouched.

    **Arguments:**

    - `path`: the file to write.
    - `net`, `opt_state`, `store`: any pytrees, usually a [`pcastro.Network`][], its
      Optax state and a [`pcastro.astro.Store`][] (or None).

    **Raises:**

    `TypeError` for a leaf that cannot be saved bit-exactly (a typed PRNG key).
    """
    path = os.fspath(path)
    records, chunks, offset = [], [], 0
    for leaf_path, leaf in _flatten((net, opt_state, store))[0]:
        record, data = _leaf_record(leaf_path, leaf)
        if "nbytes" in record:
            record["offset"] = offset
            offset += len(data)
        records.append(record)
        chunks.append(data)
    payload = b"".join(chunks)
    header = json.dumps(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "payload_bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "leaves": records,
        },
        separators=(",", ":"),
    ).encode()
    prefix = _MAGIC + struct.pack("<Q", len(header)) + hashlib.sha256(header).digest()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(prefix + header + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read(path: str) -> tuple[dict, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    name = repr(path)
    if data[: len(_MAGIC)] != _MAGIC[: len(data)]:
        raise ValueError(f"{name} is not a pcastro checkpoint (its first bytes are wrong).")
    if len(data) < _PREFIX:
        raise ValueError(
            f"{name} is truncated: {len(data)} bytes, shorter than the {_PREFIX}-byte prefix "
            "of a pcastro checkpoint."
        )
    (length,) = struct.unpack("<Q", data[len(_MAGIC) : len(_MAGIC) + 8])
    digest = data[len(_MAGIC) + 8 : _PREFIX]
    header_bytes = data[_PREFIX : _PREFIX + length]
    if len(header_bytes) < length:
        raise ValueError(
            f"{name} is truncated: its header needs {length} bytes but only "
            f"{len(header_bytes)} remain."
        )
    if hashlib.sha256(header_bytes).digest() != digest:
        raise ValueError(f"{name} is corrupt: header checksum mismatch (sha256).")
    header = json.loads(header_bytes)
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise ValueError(
            f"{name} has format {header.get('format')!r} version {header.get('version')!r}; "
            f"this pcastro reads {_FORMAT!r} version {_VERSION}."
        )
    payload = data[_PREFIX + length :]
    expected = header["payload_bytes"]
    if len(payload) < expected:
        raise ValueError(
            f"{name} is truncated: the payload should be {expected} bytes but only "
            f"{len(payload)} remain."
        )
    if len(payload) > expected:
        raise ValueError(
            f"{name} is corrupt: {len(payload) - expected} unexpected bytes after the payload."
        )
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise ValueError(
            f"{name} is corrupt: payload checksum mismatch (sha256); the file was changed "
            "after it was saved."
        )
    return header, payload


def load(path: str | os.PathLike, *, like: Any) -> tuple[Any, Any, Any]:
    """Read what [`pcastro.save`][] wrote, bit-exact, checked against a template.

    The file is fully verified (format, checksums, length) and every saved array is
    checked against the corresponding leaf of `like` (same path, shape and dtype)
    before anything is built; nothing is changed on disk.

    **Arguments:**

    - `path`: the file to read.
    - `like`: `(net, opt_state, store)` of the expected structure, shapes and dtypes,
      e.g. freshly made ones, or abstract ones from `equinox.filter_eval_shape` (no
      memory, no compute); non-array parts (activations, static fields) come from it.

    **Returns:**

    `(net, opt_state, store)`.

    **Raises:**

    `ValueError` naming the problem: not a checkpoint, truncated, checksum mismatch
    (corrupt), unsupported version, or a structure, shape or dtype mismatch with the
    expected template; `TypeError` when `like` is not a `(net, opt_state, store)` triple.
    """
    path = os.fspath(path)
    if not isinstance(like, (tuple, list)) or len(like) != 3:
        raise TypeError(
            f"`like` must be the template `(net, opt_state, store)`, got {type(like).__name__}."
        )
    header, payload = _read(path)
    template, treedef = _flatten(tuple(like))
    records = header["leaves"]
    if len(records) != len(template):
        raise ValueError(
            f"Structure mismatch with the expected template: {path!r} holds {len(records)} "
            f"leaves but `like` has {len(template)}; pass the network, optimiser state and "
            "store that were saved (same architecture, optimiser and capacity)."
        )
    leaves = []
    for record, (leaf_path, leaf) in zip(records, template, strict=True):
        if record["path"] != leaf_path:
            raise ValueError(
                f"Structure mismatch with the expected template: the file has leaf "
                f"{record['path']} where `like` has {leaf_path}."
            )
        if record["kind"] == "other":
            if _template_spec(leaf) is not None:
                raise ValueError(
                    f"Structure mismatch with the expected template at {leaf_path}: the file "
                    f"holds a {record['type']} but `like` holds an array."
                )
            leaves.append(leaf)
            continue
        want = _template_spec(leaf)
        if want is None:
            raise ValueError(
                f"Structure mismatch with the expected template at {leaf_path}: the file "
                f"holds an array but `like` holds a {type(leaf).__name__}."
            )
        if record["kind"] != want["kind"]:
            raise ValueError(
                f"Structure mismatch with the expected template at {leaf_path}: the file "
                f"holds a {record['kind']} but `like` holds a {want['kind']}."
            )
        if record["shape"] != want["shape"]:
            raise ValueError(
                f"Shape mismatch with the expected template at {leaf_path}: the file has "
                f"{tuple(record['shape'])}, `like` has {tuple(want['shape'])}."
            )
        if record["dtype"] != want["dtype"]:
            raise ValueError(
                f"Dtype mismatch with the expected template at {leaf_path}: the file has "
                f"{record['dtype']}, `like` has {want['dtype']}."
            )
        dtype = jnp.dtype(record["dtype"])
        raw = payload[record["offset"] : record["offset"] + record["nbytes"]]
        arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
        arr = arr.reshape(record["shape"])
        if record["kind"] != "array":
            leaves.append(type(leaf)(arr.item()))
        elif isinstance(leaf, np.generic):
            leaves.append(arr[()])
        elif isinstance(leaf, np.ndarray):
            leaves.append(arr.copy())
        else:
            leaves.append(jnp.asarray(arr))
    net, opt_state, store = jax.tree_util.tree_unflatten(treedef, leaves)
    return net, opt_state, store
