"""Scale-out with JAX's own sharding: a device mesh, and arrays placed on it.

pcastro builds no parallel scheme of its own. A batch (or a vmapped axis of episodes,
seeds or networks) is split over a `jax.sharding.Mesh` with a `NamedSharding`; the
parameters are replicated; `jax.jit` (XLA's SPMD partitioner) then runs the unchanged
`infer` / `train_step` on every device and inserts the all-reduce that the batch-mean
weight gradient needs. Across hosts the same code runs in every process after
`jax.distributed.initialize()`. Independent problems (the episodes or seeds of a
benchmark) are split with `split_leading_axis`: `jax.shard_map` runs each device's block,
with nothing crossing devices.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def make_mesh(devices: Sequence[jax.Device] | int | None = None, *, axis: str = "batch") -> Mesh:  # pyright: ignore[reportInvalidTypeForm]  # jax.Device is an alias
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
        return _put(x, sharding)

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
    return jax.tree_util.tree_map(lambda x: _put(x, sharding) if _is_array(x) else x, tree)


def _put(x: jax.Array | np.ndarray, sharding: NamedSharding) -> jax.Array:
    """`x` placed with `sharding`. A sharding over the devices of several processes gets
    each process's blocks from that process's own copy of `x` (every process of a run
    computes the same values), so no data crosses processes; `jax.device_put` refuses
    an array that an earlier computation committed to a device."""
    if sharding.is_fully_addressable or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


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


def gather(tree: Any) -> Any:
    """Every array of `tree` whole, in every process, however it is split.

    An array split over the devices of several processes (after
    `jax.distributed.initialize`) is gathered from all of them as NumPy; every process
    must call this, with the same tree. Arrays held whole in this process (one process,
    or replicated) are returned as they are.

    **Arguments:**

    - `tree`: any pytree, e.g. the outputs of a `jax.jit` over a mesh of every process.

    **Returns:**

    The same pytree, every array complete in this process.
    """
    from jax.experimental import multihost_utils

    def whole(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return x

    return jax.tree_util.tree_map(whole, tree)


@dataclass(frozen=True)
class LeadingAxisSplit:
    """How `size` independent problems along a leading axis (episodes, seeds, grid
    points) are split over devices: `per_device` problems on each device of `mesh`.

    Built by `split_leading_axis`; `place` puts the arguments on the devices and `spread`
    wraps the function that maps over them.
    """

    mesh: Mesh
    """The devices that get problems (a prefix of the mesh the split was made for)."""
    size: int
    """The number of problems."""
    per_device: int
    """Problems on each device; the last device's block is padded to this many."""
    axis: str = "batch"
    """The mesh axis the problems are split along."""

    @property
    def devices(self) -> int:
        """How many devices get problems."""
        return self.mesh.size

    def place(self, args: tuple, in_axes: tuple) -> tuple:
        """Pad and split the arguments whose `in_axes` entry is 0; replicate the others.

        Padding repeats problems from the start (index `i mod size`), so every padded
        problem is a valid one; `spread` drops its outputs.
        """
        _check_in_axes(in_axes, args)
        padded = self.devices * self.per_device
        index = np.arange(padded) % self.size

        def pad(x):
            if not _is_array(x):
                return x
            if x.ndim == 0 or x.shape[0] != self.size:
                raise ValueError(
                    f"Every mapped argument must have {self.size} rows (the split's size), "
                    f"got an array of shape {x.shape}."
                )
            return x if padded == self.size else x[index]

        return tuple(
            shard(jax.tree_util.tree_map(pad, a), self.mesh, axis=self.axis)
            if ax == 0
            else replicate(a, self.mesh)
            for a, ax in zip(args, in_axes)
        )

    def spread(self, fn: Callable, in_axes: tuple) -> Callable:
        """`fn` (a map over the leading axis of its `in_axes == 0` arguments: a
        `jax.vmap`, or a `lax.map` that runs one problem after another) run on every
        device's block at once, its outputs stacked and the padding dropped. Jit it, and
        call it on the arguments from `place`."""
        specs = tuple(PartitionSpec(self.axis) if ax == 0 else PartitionSpec() for ax in in_axes)
        # Each device runs its own block of independent problems and nothing crosses
        # devices (no collectives), so the variance check that guards collectives has
        # nothing to guard; it would only reject loop carries that start replicated
        # (a shared network) and become per-problem.
        mapped = jax.shard_map(
            fn, mesh=self.mesh, in_specs=specs, out_specs=PartitionSpec(self.axis),
            check_vma=False,
        )  # fmt: skip

        def run(*args):
            _check_in_axes(in_axes, args)
            out = mapped(*args)
            return jax.tree_util.tree_map(lambda x: x[: self.size], out)

        return run


def _check_in_axes(in_axes: tuple, args: tuple) -> None:
    if len(in_axes) != len(args) or any(ax not in (0, None) for ax in in_axes):
        raise ValueError(
            f"`in_axes` must give 0 (mapped) or None (shared) for each of the {len(args)} "
            f"arguments, got {in_axes!r}."
        )


def split_leading_axis(size: int, mesh: Mesh, *, axis: str = "batch") -> LeadingAxisSplit:
    """Split `size` independent problems over the devices of `mesh`, so that the
    numbers equal a one-device run.

    Each device gets `ceil(size / N)` problems (`N` devices on `axis`), on as few devices
    as that needs: 200 episodes on 8 devices are 25 per device, 10 are 2 on each of 5
    devices, 20 are 3 on each of 7 devices with one padded problem. Uneven lengths are
    padded with repeats of the first problems whose outputs are dropped (never truncated
    or resized), so every problem is counted once, whatever the device count. One device
    is the same code with one block. A mesh over several processes (after
    `jax.distributed.initialize`) gives every device a block, padded ones included, as
    every process takes part in every computation: 10 episodes on 2 processes of 4
    devices are 2 on each of the 8.

    **Arguments:**

    - `size`: the length of the mapped axis.
    - `mesh`: a one-dimensional mesh from [`pcastro.make_mesh`][].
    - `axis`: the mesh axis to split along.

    **Returns:**

    A `LeadingAxisSplit`.

    **Raises:**

    `ValueError` when `size` is not a positive integer.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"`size` must be a positive number of problems, got {size!r}.")
    per_device = -(-size // mesh.shape[axis])
    devices = list(mesh.devices.reshape(-1))
    # Every process of a multi-process run must take part in every computation, so
    # there the blocks of padding fill all devices; each device's block is the same.
    if len({d.process_index for d in devices}) == 1:
        devices = devices[: -(-size // per_device)]
    return LeadingAxisSplit(make_mesh(devices, axis=axis), size, per_device, axis)
