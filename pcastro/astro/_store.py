"""The store: a fixed-capacity buffer of stimuli with their local errors (and, in a
store with states, their free states), and the policies that decide what a full store
drops."""

import abc
from typing import SupportsIndex

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Bool, Float, Int
from .._network import Network
from .._state import Clamp
from ._regions import Regions


class Store(eqx.Module):
    """A fixed-capacity, jit-compatible buffer of `K` slots (a value, never mutated).

    Each slot holds one stimulus: its clamps (stimulus `x`, target `y`), the free states
    of every node (in a store with states), the local energy `E_r` of every region
    (scalars, not the per-synapse error pattern), the number of inference steps its
    states have had, a priority, an occupied flag and a stimulus id. Ids increase
    monotonically over the life of a store, so a stimulus can be followed through
    evictions, recalls and consolidation.

    Two kinds of store, set when it is made ([`pcastro.astro.make_store`][]`(...,
    states=...)`):

    - **with states** (`states=True`, the default): a slot costs
      `R + |x| + |clamps|` numbers, and [`pcastro.astro.recall`][] can give back the
      stored states exactly, so interrupted inference and learning continue where they
      stopped (the interruption invariant);
    - **without states** (`states=False`): a slot keeps only the clamps, `E_r`, the step
      count and the priority, `R + |clamps|` numbers (about half for an MLP whose hidden
      layers are as wide as its input), so the same bytes hold about twice the stimuli.
      Its states are re-inferred from the stimulus: recall gives a fresh feedforward
      start (`fresh=True`), from which inference runs again.

    Make one with [`pcastro.astro.make_store`][]; fill it with
    [`pcastro.astro.snapshot`][]; read it with [`pcastro.astro.recall`][].

    **Fields:**

    - `x`: per node, the states of every slot, `(K, *shape)`: clamped values for
      clamped nodes, free states for the others; None for the free nodes of a store
      without states.
    - `masks`: per node, `(K, *shape)` clamp masks for partially clamped nodes, else None.
    - `region_energy`: `E_r` of every slot, `(K, R)`.
    - `steps`: inference steps each slot's states have had, `(K,)`.
    - `priority`: replay priority, `(K,)`.
    - `occupied`: whether each slot holds a stimulus, `(K,)`.
    - `ids`: stimulus id of each slot, `(K,)`, -1 when empty.
    - `next_id`: the id the next snapshot receives.
    - `clamps`, `regions`: the clamp pattern and the regions (static).
    - `states`: whether the slots keep the free states (static).

    Grounded in Lefton et al. (*Science* 2025); the reference is on
    [`pcastro.astro.Astrocytes`][].
    """

    x: tuple[Array | None, ...]
    masks: tuple[Array | None, ...]
    region_energy: Float[Array, "capacity regions"]
    steps: Int[Array, " capacity"]
    priority: Float[Array, " capacity"]
    occupied: Bool[Array, " capacity"]
    ids: Int[Array, " capacity"]
    next_id: Int[Array, ""]
    clamps: tuple[Clamp, ...] = eqx.field(static=True)
    regions: Regions = eqx.field(static=True)
    states: bool = eqx.field(static=True, default=True)

    @property
    def capacity(self) -> int:
        """`K`, the number of slots."""
        return self.occupied.shape[0]


class Evicted(eqx.Module):
    """What a [`pcastro.astro.snapshot`][] dropped: nothing disappears silently.

    One row per incoming example, in batch order. For each, at most one stimulus is
    dropped: an older one evicted to make room, or the incoming one itself, rejected.

    **Fields:**

    - `dropped`: whether a stimulus was dropped for this example.
    - `rejected`: whether the dropped stimulus is the incoming example itself.
    - `ids`, `priority`, `region_energy`, `steps`: the dropped stimulus's id (-1 when
      nothing was dropped), priority, `E_r` and step count (NaN / 0 when nothing).
    - `slots`: the slot each incoming example was written to (-1 when rejected).
    - `new_ids`: the id given to each incoming example (also when rejected).
    """

    dropped: Bool[Array, " batch"]
    rejected: Bool[Array, " batch"]
    ids: Int[Array, " batch"]
    priority: Float[Array, " batch"]
    region_energy: Float[Array, "batch regions"]
    steps: Int[Array, " batch"]
    slots: Int[Array, " batch"]
    new_ids: Int[Array, " batch"]

    @property
    def count(self) -> Int[Array, ""]:
        """How many stimuli were dropped."""
        return jnp.sum(self.dropped)


class AbstractEvictionPolicy(eqx.Module):
    """What a full store does with an incoming stimulus: a strategy object."""

    @abc.abstractmethod
    def choose(self, priority: Array, ids: Array, incoming_priority: Array) -> tuple[Array, Array]:
        """For a full store: `(slot to evict, whether to accept the incoming stimulus)`."""


class EvictLowestPriority(AbstractEvictionPolicy):
    """Drop the lowest-priority stimulus among those stored and the incoming one.

    Ties go against the older stimulus (smaller id), so equal priorities behave first
    in, first out. An incoming stimulus whose priority is below every stored one is
    rejected.
    """

    def choose(self, priority, ids, incoming_priority):
        lowest = jnp.min(priority)
        victim = jnp.argmin(jnp.where(priority == lowest, ids, jnp.iinfo(ids.dtype).max))
        return victim, incoming_priority >= lowest


class EvictOldest(AbstractEvictionPolicy):
    """Drop the oldest stored stimulus (smallest id): first in, first out."""

    def choose(self, priority, ids, incoming_priority):
        return jnp.argmin(ids), jnp.asarray(True)


class RejectWhenFull(AbstractEvictionPolicy):
    """Keep what is stored; reject the incoming stimulus when the store is full."""

    def choose(self, priority, ids, incoming_priority):
        return jnp.asarray(0), jnp.asarray(False)


def _default_clamps(num_nodes: int) -> tuple[Clamp, ...]:
    return (Clamp.CLAMPED,) + (Clamp.FREE,) * (num_nodes - 2) + (Clamp.CLAMPED,)


def make_store(
    net: Network,
    regions: Regions,
    *,
    capacity: SupportsIndex,
    clamps: tuple[Clamp, ...] | None = None,
    states: bool = True,
) -> Store:
    """An empty store of `capacity` slots for stimuli of `net`.

    A slot of a store with states costs `R + |x| + |clamps|` numbers (`R` regions,
    `|x|` free-state units, `|clamps|` clamped units); one without states
    `R + |clamps|`: it gives its stimuli back only as fresh feedforward starts, from
    which their states are re-inferred (see [`pcastro.astro.Store`][]). Both also keep
    a step count, a priority, an occupied flag and an id per slot.

    **Arguments:**

    - `net`: the [`pcastro.Network`][] whose states will be stored.
    - `regions`: its [`pcastro.astro.Regions`][].
    - `capacity`: `K`, the number of slots.
    - `clamps`: the clamp pattern of the states to store, as in `PCState.clamps`;
      default discriminative, `("clamped", "free", ..., "free", "clamped")`. Use
      `state.clamps` for generative (`"free"` input) or associative (`"partial"`
      input) states.
    - `states`: keep the free states of every slot (True), or only the clamps, `E_r`,
      step count and priority (False: about twice the slots in the same bytes, but
      recall must re-infer the states from a fresh start).

    **Returns:**

    An empty [`pcastro.astro.Store`][].

    **Raises:**

    `ValueError` when the regions do not match the network, the capacity is not a
    positive int, or the clamp pattern is not one `pcastro.init_state` produces;
    `TypeError` when `states` is not True or False.
    """
    if isinstance(capacity, np.integer):
        capacity = int(capacity)  # a NumPy int is an int here
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"`capacity` must be a positive int, got {capacity!r}.")
    if not isinstance(states, bool):
        raise TypeError(f"`states` must be True or False, got {states!r}.")
    if regions.shapes != tuple(net.shapes[1:]):
        raise ValueError(
            f"The regions cover node shapes {regions.shapes}, but the network's predicted "
            f"nodes have shapes {tuple(net.shapes[1:])}; build them with "
            "`make_regions(net)` from this network."
        )
    n = net.num_nodes
    clamps = _default_clamps(n) if clamps is None else tuple(clamps)
    try:
        clamps = tuple(Clamp(c) for c in clamps)
    except ValueError:
        clamps = ()
    ok = len(clamps) == n and all(c is Clamp.FREE for c in clamps[1:-1])
    if not ok:
        raise ValueError(
            f"`clamps` {clamps} is not a clamp pattern of `pcastro.init_state` for a "
            f"network of {n} nodes: the input and the top node 'clamped', 'partial' or "
            "'free', hidden nodes 'free'. Pass `clamps=state.clamps`."
        )
    dt = net.dtype

    def zeros(shape, dtype=dt, fill=0):
        # Built on the host and transferred: an empty store costs no compilation.
        return jnp.asarray(np.full(shape, fill, dtype))

    return Store(
        x=tuple(
            zeros((capacity, *s)) if states or c is not Clamp.FREE else None
            for c, s in zip(clamps, net.shapes, strict=True)
        ),
        masks=tuple(
            zeros((capacity, *s)) if c is Clamp.PARTIAL else None
            for c, s in zip(clamps, net.shapes, strict=True)
        ),
        region_energy=zeros((capacity, regions.num_regions)),
        steps=zeros((capacity,), np.int32),
        priority=zeros((capacity,)),
        occupied=zeros((capacity,), bool),
        ids=zeros((capacity,), np.int32, -1),
        next_id=zeros((), np.int32),
        clamps=clamps,
        regions=regions,
        states=states,
    )
