"""Scale-out with JAX's own sharding: a device mesh, and arrays placed on it.

pcastro builds no parallel scheme of its own. A batch (or a vmapped axis of episodes,
seeds or networks) is split over a `jax.sharding.Mesh` with a `NamedSharding`; the
parameters are replicated; `jax.jit` (XLA's SPMD partitioner) then runs the unchanged
`infer` / `train_step` on every device and inserts the all-reduce that the batch-mean
weight gradient needs. Across hosts the same code runs in every process after
`jax.distributed.initialize()`.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def make_mesh(devices: Sequence[jax.Device] | int | None = None, *, axis: str = "batch") -> Mesh:
    """A one-dimensional device mesh whose single axis is named `axis`.

    **Arguments:**

    - `devices`: the devices, or how many of `jax.devices()` to use (the first ones), or
      None for all of them (across every process after `jax.distributed.initialize`).
    - `axis`: the mesh axis name that [`pcastro.shard`][] splits along.

    **Returns:**

    A `jax.sharding.Mesh`.

    **Raises:**

    `ValueError` when more devices are asked for than exist.
    """
    available = jax.devices()
    if devices is None:
        devices = available
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"Asked for {devices} devices but {len(available)} are available "
                f"({available[0].platform}); pass at most {len(available)}, or set "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N for N virtual CPU devices."
            )
        devices = available[:devices]
    return Mesh(np.asarray(list(devices)), (axis,))


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


def shard(tree: Any, mesh: Mesh, *, axis: str = "batch") -> Any:
    """Split the leading axis of every array in `tree` over the mesh axis `axis`.

    Use it for a batch (`x`, `y`, a [`pcastro.PCState`][]) or for a vmapped axis of
    independent problems (episode keys, seeds, stacked networks). Non-array leaves are
    left as they are.

    **Arguments:**

    - `tree`: any pytree; its arrays must share a leading axis divisible by the number of
      devices on `axis`.
    - `mesh`: from [`pcastro.make_mesh`][].
    - `axis`: the mesh axis to split along.

    **Returns:**

    The same pytree, its arrays placed with `NamedSharding(mesh, PartitionSpec(axis))`.

    **Raises:**

    `ValueError` naming the array whose leading axis does not divide evenly.
    """
    size = mesh.shape[axis]
    sharding = NamedSharding(mesh, PartitionSpec(axis))

    def place(x):
        if not _is_array(x):
            return x
        if x.ndim == 0 or x.shape[0] % size:
            raise ValueError(
                f"Cannot split an array of shape {x.shape} over {size} devices: its leading "
                f"axis must be a multiple of {size}. Choose a batch (or number of episodes or "
                "seeds) divisible by the device count, or use fewer devices."
            )
        return jax.device_put(x, sharding)

    return jax.tree_util.tree_map(place, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a full copy of every array in `tree` on every device of `mesh` (parameters,
    optimiser states, stores).

    **Arguments:**

    - `tree`: any pytree, e.g. `eqx.filter(net, eqx.is_inexact_array)` or a network.
    - `mesh`: from [`pcastro.make_mesh`][].

    **Returns:**

    The same pytree, its arrays placed with `NamedSharding(mesh, PartitionSpec())`.
    """
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(x, sharding) if _is_array(x) else x, tree
    )


def shard_local(tree: Any, mesh: Mesh, *, axis: str = "batch") -> Any:
    """Assemble global arrays from each process's local rows (multi-host data parallelism).

    Every process passes its own slice of the batch (same shape in every process); the
    result is one global array per leaf whose leading axis is the concatenation over
    processes, split over `axis`. In a single process it equals [`pcastro.shard`][].

    **Arguments:**

    - `tree`: this process's rows, a pytree of arrays with a leading batch axis.
    - `mesh`: a mesh over all processes' devices ([`pcastro.make_mesh`][] after
      `jax.distributed.initialize`).
    - `axis`: the mesh axis to split along.

    **Returns:**

    The pytree of global, sharded arrays.
    """
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree_util.tree_map(
        lambda x: (
            jax.make_array_from_process_local_data(sharding, np.asarray(x)) if _is_array(x) else x
        ),
        tree,
    )
