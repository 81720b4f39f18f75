"""What a store costs in memory, beside the formula it must match."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._state import Clamp
from ._store import Store


class Footprint(NamedTuple):
    """Memory of a store, in bytes, beside the formula it must match.

    - `payload`: `K * (R + |x| + |clamps|) * itemsize`, the numbers that matter: `R`
      region energies, `|x|` free-state units and `|clamps|` clamped units per slot;
      `K * (R + |clamps|) * itemsize` for a store without states (`|x| = 0`).
    - `metadata`: step counts, priorities, occupied flags, ids, the id counter and any
      partial-clamp masks.
    - `total`: `payload + metadata`, the bytes of every array in the store.
    - `capacity`, `regions`, `free_units`, `clamped_units`, `itemsize`: the terms of
      the formula; `free_units` counts the free-state units a slot keeps (0 without
      states).
    """

    total: int
    payload: int
    metadata: int
    capacity: int
    regions: int
    free_units: int
    clamped_units: int
    itemsize: int


def footprint_bytes(store: Store) -> Footprint:
    """The memory of a store, and the formula `K * (R + |x| + |clamps|) * itemsize`.

    Far below per-synapse storage: a slot keeps one number per unit and per region,
    not one per synapse. A store without states (`make_store(..., states=False)`)
    keeps no free states, so its formula is `K * (R + |clamps|) * itemsize`: only what
    its slots hold is counted.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].

    **Returns:**

    A [`pcastro.astro.Footprint`][].
    """
    units = [0 if a is None else math.prod(a.shape[1:]) for a in store.x]
    clamped = sum(u for u, c in zip(units, store.clamps, strict=True) if c is not Clamp.FREE)
    free = sum(units) - clamped  # 0 for a store without states: it holds no free node
    k = store.capacity
    num = store.regions.num_regions
    itemsize = jnp.dtype(store.region_energy.dtype).itemsize
    payload = k * (num + free + clamped) * itemsize
    total = sum(
        math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize
        for leaf in jax.tree_util.tree_leaves(store)
    )
    return Footprint(
        total=total,
        payload=payload,
        metadata=total - payload,
        capacity=k,
        regions=num,
        free_units=free,
        clamped_units=clamped,
        itemsize=itemsize,
    )
