"""The store: a fixed-capacity buffer of stimuli with their states and local errors."""

import abc
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._custom_types import Array, ArrayLike, Bool, Float, Int
from .._network import Network
from .._state import ClampKind, PCState, errors, init_state
from ._regions import Regions, region_energies


class Store(eqx.Module):
    """A fixed-capacity, jit-compatible buffer of `K` slots (a value, never mutated).

    Each slot holds one stimulus: its clamps (stimulus `x`, target `y`), the free states
    of every node, the local energy `E_r` of every region (scalars, not the per-synapse
    error pattern), the number of inference steps its states have had, a priority, an
    occupied flag and a stimulus id. Ids increase monotonically over the life of a store,
    so a stimulus can be followed through evictions, recalls and consolidation.

    Make one with [`pcastro.astro.make_store`][]; fill it with
    [`pcastro.astro.snapshot`][]; read it with [`pcastro.astro.recall`][].

    **Fields:**

    - `x`: per node, the states of every slot, `(K, *shape)`: clamped values for
      clamped nodes, free states for the others.
    - `masks`: per node, `(K, *shape)` clamp masks for partially clamped nodes, else None.
    - `region_energy`: `E_r` of every slot, `(K, R)`.
    - `steps`: inference steps each slot's states have had, `(K,)`.
    - `priority`: replay priority, `(K,)`.
    - `occupied`: whether each slot holds a stimulus, `(K,)`.
    - `ids`: stimulus id of each slot, `(K,)`, -1 when empty.
    - `next_id`: the id the next snapshot receives.
    - `clamps`, `regions`: the clamp pattern and the regions (static).

    ??? cite "Reference"

        ```bibtex
        @article{lefton2025norepinephrine,
            title={Norepinephrine signals through astrocytes to modulate synapses},
            author={Lefton, Katheryn B. and others},
            journal={Science},
            year={2025}
        }
        ```
    """

    x: tuple[Array, ...]
    masks: tuple[Array | None, ...]
    region_energy: Float[Array, "capacity regions"]
    steps: Int[Array, " capacity"]
    priority: Float[Array, " capacity"]
    occupied: Bool[Array, " capacity"]
    ids: Int[Array, " capacity"]
    next_id: Int[Array, ""]
    clamps: tuple[ClampKind, ...] = eqx.field(static=True)
    regions: Regions = eqx.field(static=True)

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


def _default_clamps(num_nodes: int) -> tuple[ClampKind, ...]:
    return ("clamped",) + ("free",) * (num_nodes - 2) + ("clamped",)


def make_store(
    net: Network,
    regions: Regions,
    *,
    capacity: int,
    clamps: tuple[ClampKind, ...] | None = None,
) -> Store:
    """An empty store of `capacity` slots for stimuli of `net`.

    **Arguments:**

    - `net`: the [`pcastro.Network`][] whose states will be stored.
    - `regions`: its [`pcastro.astro.Regions`][].
    - `capacity`: `K`, the number of slots.
    - `clamps`: the clamp pattern of the states to store, as in `PCState.clamps`;
      default discriminative, `("clamped", "free", ..., "free", "clamped")`. Use
      `state.clamps` for generative (`"free"` input) or associative (`"partial"`
      input) states.

    **Returns:**

    An empty [`pcastro.astro.Store`][].

    **Raises:**

    `ValueError` when the regions do not match the network, the capacity is not a
    positive int, or the clamp pattern is not one `pcastro.init_state` produces.
    """
    if not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"`capacity` must be a positive int, got {capacity!r}.")
    if regions.shapes != tuple(net.shapes[1:]):
        raise ValueError(
            f"The regions cover node shapes {regions.shapes}, but the network's predicted "
            f"nodes have shapes {tuple(net.shapes[1:])}; build them with "
            "`make_regions(net)` from this network."
        )
    n = net.num_nodes
    clamps = _default_clamps(n) if clamps is None else tuple(clamps)
    ok = (
        len(clamps) == n
        and clamps[0] in ("clamped", "partial", "free")
        and all(c == "free" for c in clamps[1:-1])
        and clamps[-1] in ("clamped", "free")
    )
    if not ok:
        raise ValueError(
            f"`clamps` {clamps} is not a clamp pattern of `pcastro.init_state` for a "
            f"network of {n} nodes: the input 'clamped', 'partial' or 'free', hidden nodes "
            "'free', the top node 'clamped' or 'free'. Pass `clamps=state.clamps`."
        )
    dt = net.dtype

    def zeros(shape, dtype=dt, fill=0):
        # Built on the host and transferred: an empty store costs no compilation.
        return jnp.asarray(np.full(shape, fill, dtype))

    return Store(
        x=tuple(zeros((capacity, *s)) for s in net.shapes),
        masks=tuple(
            zeros((capacity, *s)) if c == "partial" else None
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
    )


def _check_state(store: Store, state: PCState) -> None:
    if state.clamps != store.clamps:
        raise ValueError(
            f"The state's clamps {state.clamps} differ from the store's {store.clamps}; "
            "make the store with `make_store(net, regions, capacity=..., "
            "clamps=state.clamps)`."
        )
    for i, (x, a) in enumerate(zip(state.x, store.x, strict=True)):
        if x.shape[1:] != a.shape[1:]:
            raise ValueError(
                f"Node {i} of the state has shape {x.shape}, but the store holds "
                f"{a.shape[1:]} per example; use a store made for this network."
            )


def _batched(value: ArrayLike, batch: int, dtype, name: str) -> Array:
    value = jnp.asarray(value, dtype)
    if value.ndim == 0:
        return jnp.broadcast_to(value, (batch,))
    if value.shape != (batch,):
        raise ValueError(
            f"`{name}` has shape {value.shape}; pass a scalar or one value per example, "
            f"shape ({batch},)."
        )
    return value


def snapshot(
    store: Store,
    state: PCState,
    *,
    energies: ArrayLike | None = None,
    priority: ArrayLike | None = None,
    step: ArrayLike = 0,
    policy: AbstractEvictionPolicy = EvictLowestPriority(),  # noqa: B008 (immutable)
) -> tuple[Store, Evicted]:
    """Write every example of a batched state into a slot of the store.

    Examples go, in batch order, into the first empty slot; when the store is full the
    `policy` decides which stimulus is dropped (a stored one, or the incoming one).
    Every drop is reported in the returned [`pcastro.astro.Evicted`][].

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].
    - `state`: a batched [`pcastro.PCState`][] with up-to-date error neurons, e.g.
      `infer(...).state`.
    - `energies`: `E_r` per example, `(batch, R)`; default computed from `state.e`
      with [`pcastro.astro.region_energies`][].
    - `priority`: replay priority, scalar or `(batch,)`; default the total local energy
      `sum_r E_r`.
    - `step`: inference steps the states have had, scalar or `(batch,)`.
    - `policy`: [`pcastro.astro.EvictLowestPriority`][] (default),
      [`pcastro.astro.EvictOldest`][] or [`pcastro.astro.RejectWhenFull`][].

    **Returns:**

    `(store, evicted)`.

    **Raises:**

    `ValueError` when the state does not fit the store, or an argument has the wrong
    shape; `TypeError` for a policy that is not a policy object.
    """
    if not isinstance(policy, AbstractEvictionPolicy):
        raise TypeError(
            "`policy` must be an eviction policy object such as "
            f"`pcastro.astro.EvictLowestPriority()`, got {policy!r}."
        )
    _check_state(store, state)
    as_array = lambda v: None if v is None else jnp.asarray(v)  # noqa: E731
    return _snapshot(
        store, state, as_array(energies), as_array(priority), jnp.asarray(step), policy
    )


@eqx.filter_jit
def _snapshot(store, state, energies, priority, step, policy):
    batch = state.batch_size
    num = store.regions.num_regions
    dtype = store.region_energy.dtype
    if energies is None:
        energies = region_energies(state, store.regions)
    energies = energies.astype(dtype)
    if energies.shape != (batch, num):
        raise ValueError(
            f"`energies` has shape {energies.shape}, expected (batch, R) = ({batch}, {num})."
        )
    if priority is None:
        priority = jnp.sum(energies, axis=1)
    priority = _batched(priority, batch, dtype, "priority")
    step = _batched(step, batch, jnp.int32, "step")

    def write(store: Store, item):
        xs, masks, energy, prio, stp = item
        has_free = ~jnp.all(store.occupied)
        victim, accept_full = policy.choose(store.priority, store.ids, prio)
        slot = jnp.where(has_free, jnp.argmin(store.occupied), victim)
        accept = has_free | accept_full
        evict = accept & ~has_free
        new_id = store.next_id
        report = (
            evict | ~accept,
            ~accept,
            jnp.where(evict, store.ids[slot], jnp.where(accept, -1, new_id)),
            jnp.where(evict, store.priority[slot], jnp.where(accept, jnp.nan, prio)),
            jnp.where(evict, store.region_energy[slot], jnp.where(accept, jnp.nan, energy)),
            jnp.where(evict, store.steps[slot], jnp.where(accept, 0, stp)),
            jnp.where(accept, slot, -1),
            new_id,
        )

        def put(arr, value):
            return arr.at[slot].set(jnp.where(accept, value, arr[slot]))

        store = Store(
            x=tuple(put(a, v) for a, v in zip(store.x, xs, strict=True)),
            masks=tuple(
                None if a is None else put(a, v) for a, v in zip(store.masks, masks, strict=True)
            ),
            region_energy=put(store.region_energy, energy),
            steps=put(store.steps, stp),
            priority=put(store.priority, prio),
            occupied=put(store.occupied, True),
            ids=put(store.ids, new_id),
            next_id=new_id + 1,
            clamps=store.clamps,
            regions=store.regions,
        )
        return store, report

    masks = tuple(
        None if a is None else jnp.broadcast_to(m, (batch, *a.shape[1:])).astype(a.dtype)
        for a, m in zip(store.masks, state.masks, strict=True)
    )
    xs = tuple(x.astype(a.dtype) for x, a in zip(state.x, store.x, strict=True))
    store, report = lax.scan(write, store, (xs, masks, energies, priority, step))
    return store, Evicted(*report)


def _slot_array(slots: ArrayLike) -> Array:
    slots = jnp.asarray(slots)
    if not jnp.issubdtype(slots.dtype, jnp.integer) or slots.ndim > 1:
        raise ValueError(
            f"`slots` must be an int or a 1-D array of ints (slot indices), got dtype "
            f"{slots.dtype} and shape {slots.shape}."
        )
    return slots


def _slots(store: Store, slots: Array, *, occupied: bool) -> Array:
    slots = jnp.atleast_1d(slots).astype(jnp.int32)
    k = store.capacity
    slots = eqx.error_if(
        slots,
        jnp.any((slots < 0) | (slots >= k)),
        f"A slot index is out of range: the store has slots 0 to {k - 1}.",
    )
    if occupied:
        slots = eqx.error_if(
            slots,
            ~jnp.all(store.occupied[slots]),
            "A requested slot is empty (see `store.occupied`); recall only occupied slots.",
        )
    return slots


def recall(store: Store, slots: ArrayLike, *, net: Network, fresh: bool = False) -> PCState:
    """Restore stored stimuli as a batched state, to continue inference and learning.

    With `fresh=False` the stored states come back exactly, so inference and learning
    continue where they stopped (the interruption invariant); the error neurons are
    recomputed from them with `net` (instant errors: a leaky error neuron restarts at
    `x_l - mu_l`). The state solver's own running state is not stored, so the
    continuation is exact for `pcastro.Euler` (and `IncrementalPC` over it, given the
    optimiser state), approximate for a solver with momentum. With `fresh=True` the
    stored clamps are re-presented and the free states start at a fresh feedforward pass
    through `net` (better once the weights have moved on and the stored states are
    stale); the slot's stored `E_r` stays in the store as its priority and gate drive.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].
    - `slots`: a slot index or a 1-D array of them (see `store.occupied`, `store.ids`).
    - `net`: the network that will continue from the recalled states.
    - `fresh`: start from a fresh feedforward pass instead of the stored states.

    **Returns:**

    A [`pcastro.PCState`][] with one example per slot, in the order given.

    **Raises:**

    `ValueError` when the network does not match the store; a runtime error (via
    `equinox.error_if`) for an out-of-range or empty slot.
    """
    if tuple(a.shape[1:] for a in store.x) != tuple(net.shapes):
        raise ValueError(
            f"The network's node shapes {tuple(net.shapes)} differ from the store's "
            f"{tuple(a.shape[1:] for a in store.x)}; recall with the network the store was "
            "made for."
        )
    return _recall(store, _slot_array(slots), net, fresh=fresh)


@eqx.filter_jit
def _recall(store: Store, slots: Array, net: Network, *, fresh: bool) -> PCState:
    return restore(store, _slots(store, slots, occupied=True), net, fresh=fresh)


def restore(store: Store, slots: Array, net: Network, *, fresh: bool) -> PCState:
    """`recall` without the occupancy check, for callers that guarantee it themselves.

    Under `jax.vmap` a `lax.cond` runs both branches, so a check inside the branch that
    replays a slot would also fire for the empty slots the other branch skips.
    """
    xs = tuple(a[slots] for a in store.x)
    masks = tuple(None if m is None else m[slots] for m in store.masks)
    if fresh:
        return init_state(
            net,
            None if store.clamps[0] == "free" else xs[0],
            xs[-1] if store.clamps[-1] == "clamped" else None,
            x_mask=masks[0],
            batch_size=slots.shape[0],
        )
    state = PCState(x=xs, e=(None,) * len(xs), masks=masks, clamps=store.clamps)
    return PCState(x=xs, e=errors(net, state), masks=masks, clamps=store.clamps)


def discard(store: Store, slots: ArrayLike) -> Store:
    """Empty the given slots ("once learning is complete, discard the error pattern").

    Discarding an empty slot changes nothing.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].
    - `slots`: a slot index or a 1-D array of them.

    **Returns:**

    The store with those slots empty (all their numbers zeroed, id -1).

    **Raises:**

    A runtime error (via `equinox.error_if`) for an out-of-range slot.
    """
    return _discard(store, _slot_array(slots))


@eqx.filter_jit
def _discard(store: Store, slots: Array) -> Store:
    slots = _slots(store, slots, occupied=False)
    return _clear(store, jnp.zeros(store.capacity, bool).at[slots].set(True))


def _clear(store: Store, which: Array) -> Store:
    """Empty every slot where the boolean `which` (shape `(K,)`) is True."""

    def zero(a):
        if a is None:
            return None
        w = which.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(w, jnp.zeros((), a.dtype), a)

    return Store(
        x=tuple(zero(a) for a in store.x),
        masks=tuple(zero(m) for m in store.masks),
        region_energy=zero(store.region_energy),
        steps=zero(store.steps),
        priority=zero(store.priority),
        occupied=store.occupied & ~which,
        ids=jnp.where(which, -1, store.ids),
        next_id=store.next_id,
        clamps=store.clamps,
        regions=store.regions,
    )


def _rewrite(store: Store, slot: Array, state: PCState, energy: Array, step: ArrayLike) -> Store:
    """Replace one occupied slot's states, `E_r`, step count and priority (`sum_r E_r`)."""
    return Store(
        x=tuple(
            a.at[slot].set(x[0].astype(a.dtype)) for a, x in zip(store.x, state.x, strict=True)
        ),
        masks=store.masks,
        region_energy=store.region_energy.at[slot].set(energy.astype(store.region_energy.dtype)),
        steps=store.steps.at[slot].set(step),
        priority=store.priority.at[slot].set(jnp.sum(energy).astype(store.priority.dtype)),
        occupied=store.occupied,
        ids=store.ids,
        next_id=store.next_id,
        clamps=store.clamps,
        regions=store.regions,
    )


class Footprint(NamedTuple):
    """Memory of a store, in bytes, beside the formula it must match.

    - `payload`: `K * (R + |x| + |clamps|) * itemsize`, the numbers that matter: `R`
      region energies, `|x|` free-state units and `|clamps|` clamped units per slot.
    - `metadata`: step counts, priorities, occupied flags, ids, the id counter and any
      partial-clamp masks.
    - `total`: `payload + metadata`, the bytes of every array in the store.
    - `capacity`, `regions`, `free_units`, `clamped_units`, `itemsize`: the terms of
      the formula.
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
    not one per synapse.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].

    **Returns:**

    A [`pcastro.astro.Footprint`][].
    """
    units = [math.prod(a.shape[1:]) for a in store.x]
    clamped = sum(u for u, c in zip(units, store.clamps, strict=True) if c != "free")
    free = sum(units) - clamped
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
