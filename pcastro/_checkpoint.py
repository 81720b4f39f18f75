"""Save and load a network, its optimiser state and a store: one file, bit-exact."""

import dataclasses
import enum
import hashlib
import importlib.metadata
import json
import os
import struct
import tempfile
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

_MAGIC = b"PCASTRO-CHECKPOINT\n"
_FORMAT = "pcastro-checkpoint"
_VERSION = 1
_PREFIX = len(_MAGIC) + 8 + 32  # magic, header length (uint64 LE), header sha256


def _pcastro_version() -> str:
    try:
        return importlib.metadata.version("pcastro")
    except importlib.metadata.PackageNotFoundError:
        return "source"


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


def _describe(value: Any) -> Any:
    """A process-independent description of a static field (no memory addresses)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_describe(v) for v in value]
    if callable(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        module = getattr(value, "__module__", None)
        if name is not None:
            return f"{module}.{name}" if module else name
    if isinstance(value, eqx.Module):
        return _static_config(value, "")
    text = repr(value)
    return type(value).__name__ if " at 0x" in text else text


def _static_config(tree: Any, root: str) -> dict[str, Any]:
    """Class names and static fields of every Equinox module in `tree`, by path.

    These never appear among the saved arrays (activations, energies, clamps, region
    layouts), so they are recorded to refuse loading into a different architecture.
    """
    out: dict[str, Any] = {}

    def walk(obj, path):
        if isinstance(obj, eqx.Module):
            out[path + ".__class__"] = type(obj).__name__
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name, None)
                if f.metadata.get("static", False):
                    out[f"{path}.{f.name}"] = _describe(value)
                else:
                    walk(value, f"{path}.{f.name}")
        elif isinstance(obj, (tuple, list)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}[{k!r}]")

    walk(tree, root)
    return out


def _config_of(parts: tuple) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, part in zip(_PARTS, parts):
        config.update(_static_config(part, name))
    return config


def _store_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """The static configuration of a file, completed for files written before stores
    without states existed: every store in them kept its states."""
    prefixes = [k.removesuffix(".__class__") for k, v in saved.items() if v == "Store"]
    return {**{f"{p}.states": True for p in prefixes}, **saved}


def _check_store_kinds(saved: dict[str, Any], expected: dict[str, Any], name: str) -> None:
    """A store with states and one without hold different arrays: say which the file
    holds before the arrays are compared (a count of leaves would not say what to fix)."""
    for key, want in expected.items():
        prefix = key.removesuffix(".states")
        if prefix == key or expected.get(f"{prefix}.__class__") != "Store":
            continue
        got = saved.get(key)
        if isinstance(got, bool) and got != want:
            kind = {True: "with states", False: "without states"}
            raise ValueError(
                f"{name} holds a store {kind[got]} at {prefix}, but `like` holds one "
                f"{kind[want]}; the two keep different arrays. Build the template's store "
                f"as the saved one was made: `make_store(net, regions, capacity=..., "
                f"states={got})`."
            )


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
            "pcastro": _pcastro_version(),
            "static": _config_of((net, opt_state, store)),
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
        # mkstemp makes the file private (0600); give it the permissions of an ordinary
        # new file under the user's umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
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
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{name} is corrupt: its header is not valid JSON.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{name} is corrupt: its header is not a JSON object.")
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise ValueError(
            f"{name} has format {header.get('format')!r} version {header.get('version')!r}; "
            f"this pcastro reads {_FORMAT!r} version {_VERSION}."
        )
    _check_header_fields(header, name)
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


def _check_header_fields(header: dict, name: str) -> None:
    """A header whose checksum matches can still be forged: check every field's type."""
    ok = (
        isinstance(header.get("payload_bytes"), int)
        and isinstance(header.get("sha256"), str)
        and isinstance(header.get("leaves"), list)
        and isinstance(header.get("static", {}), dict)
        and all(
            isinstance(r, dict)
            and isinstance(r.get("path"), str)
            and r.get("kind") in ("array", "other", "bool", "int", "float", "complex")
            and (
                r["kind"] == "other"
                or (
                    isinstance(r.get("shape"), list)
                    and all(isinstance(d, int) and d >= 0 for d in r["shape"])
                    and isinstance(r.get("dtype"), str)
                    and isinstance(r.get("offset"), int)
                    and isinstance(r.get("nbytes"), int)
                )
            )
            for r in header.get("leaves", [])
        )
    )
    if not ok:
        raise ValueError(
            f"{name} is corrupt: its header lacks a field or holds one of the wrong type; "
            "it was not written by `pcastro.save`."
        )


def _leaf(record: dict, leaf_path: str, leaf: Any, payload: bytes) -> Any:
    """One saved leaf, checked against the template's `leaf` at the same path (kind, shape,
    dtype) and read bit-exact from `payload`; non-array leaves come from the template."""
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
        return leaf
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
    for key, shown in (("shape", tuple), ("dtype", str)):
        if record[key] != want[key]:
            raise ValueError(
                f"{key.capitalize()} mismatch with the expected template at {leaf_path}: the "
                f"file has {shown(record[key])}, `like` has {shown(want[key])}."
            )
    dtype = jnp.dtype(record["dtype"])
    raw = payload[record["offset"] : record["offset"] + record["nbytes"]]
    arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
    arr = arr.reshape(record["shape"])
    if record["kind"] != "array":
        return type(leaf)(arr.item())
    if isinstance(leaf, np.generic):
        return arr[()]
    if isinstance(leaf, np.ndarray):
        return arr.copy()
    return jnp.asarray(arr)


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
    (corrupt), unsupported version, a store with states saved where `like` has one
    without (or the reverse), or a structure, shape or dtype mismatch with the
    expected template; `TypeError` when `like` is not a `(net, opt_state, store)` triple.
    """
    path = os.fspath(path)
    if not isinstance(like, (tuple, list)) or len(like) != 3:
        raise TypeError(
            f"`like` must be the template `(net, opt_state, store)`, got {type(like).__name__}."
        )
    header, payload = _read(path)
    template, treedef = _flatten(tuple(like))
    saved_config = _store_defaults(header.get("static", {}))
    _check_store_kinds(saved_config, _config_of(tuple(like)), repr(path))
    records = header["leaves"]
    if len(records) != len(template):
        raise ValueError(
            f"Structure mismatch with the expected template: {path!r} holds {len(records)} "
            f"leaves but `like` has {len(template)}; pass the network, optimiser state and "
            "store that were saved (same architecture, optimiser and capacity)."
        )
    leaves = [
        _leaf(record, leaf_path, leaf, payload)
        for record, (leaf_path, leaf) in zip(records, template, strict=True)
    ]
    if "static" in header:
        expected = _config_of(tuple(like))
        saved = saved_config
        for key in sorted(set(saved) | set(expected)):
            if saved.get(key) != expected.get(key):
                raise ValueError(
                    f"Configuration mismatch with the expected template at {key}: the file "
                    f"was saved with {saved.get(key)!r}, `like` has {expected.get(key)!r}. "
                    "Build `like` with the same architecture (activations, energies, "
                    "clamps, regions) as the saved one."
                )
    net, opt_state, store = jax.tree_util.tree_unflatten(treedef, leaves)
    return net, opt_state, store
