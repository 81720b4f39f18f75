"""The store's operations: snapshot, recall, overwrite and discard slots."""

import dataclasses
import functools

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._custom_types import Array, ArrayLike
from .._network import Network
from .._state import Clamp, PCState, errors, init_state
from ._regions import region_energies
from ._store import AbstractEvictionPolicy, Evicted, EvictLowestPriority, Store


def _check_state(store: Store, state: PCState) -> None:
    if state.clamps != store.clamps:
        raise ValueError(
            f"The state's clamps {state.clamps} differ from the store's {store.clamps}; "
            "make the store with `make_store(net, regions, capacity=..., "
            "clamps=state.clamps)`."
        )
    for i, (x, a) in enumerate(zip(state.x, store.x, strict=True)):
        if a is not None and x.shape[1:] != a.shape[1:]:
            raise ValueError(
                f"Node {i} of the state has shape {x.shape}, but the store holds "
                f"{a.shape[1:]} per example; use a store made for this network."
            )


def held(arrays: tuple) -> list:
    """The arrays a store holds (a store without states holds None for free nodes)."""
    return [a for a in arrays if a is not None]


def _nonfinite_slots(store: Store, slots: Array | None = None) -> list[int]:
    """The occupied slots (of `slots`, default all) whose stored states or `E_r` hold NaN
    or inf; empty when the store is traced (inside a user's `jax.jit`)."""
    arrays = (*held(store.x), store.region_energy, store.occupied)
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        return []
    # Only the slots asked for travel to the host (a recall of one slot reads one row).
    idx = np.arange(store.capacity) if slots is None else np.unique(np.asarray(slots).ravel())
    bad = ~np.isfinite(np.asarray(store.region_energy[idx])).all(axis=1)
    for a in held(store.x):
        bad |= ~np.isfinite(np.asarray(a[idx])).reshape(len(idx), -1).all(axis=1)
    bad &= np.asarray(store.occupied[idx])
    return [int(i) for i in idx[bad]]


def check_finite_slots(store: Store, slots: Array | None = None) -> None:
    """Refuse to replay stored stimuli that hold NaN or inf, naming the slots."""
    bad = _nonfinite_slots(store, slots)
    if bad:
        raise ValueError(
            f"Store slot(s) {bad} hold NaN or inf (in their states or E_r): replaying them "
            "would turn every weight update non-finite. Discard them first, "
            f"`store = pcastro.astro.discard(store, jnp.array({bad}))`, and check the "
            "inference status of the batches that were snapshotted."
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
    energies, priority = _checked_energies(store, state, energies, priority)
    batch = state.batch_size
    step = _batched(step, batch, jnp.int32, "step")
    masks = tuple(
        None if a is None else jnp.broadcast_to(m, (batch, *a.shape[1:])).astype(a.dtype)
        for a, m in zip(store.masks, state.masks, strict=True)
    )
    xs = tuple(
        None if a is None else x.astype(a.dtype) for x, a in zip(state.x, store.x, strict=True)
    )
    write = functools.partial(_write, policy)
    store, report = lax.scan(write, store, (xs, masks, energies, priority, step))
    return store, Evicted(*report)


def _checked_energies(store, state, energies, priority):
    """The region energies (read off the state's errors unless given) and the priorities
    (their sums unless given), one per stimulus, refused when not finite."""
    batch = state.batch_size
    num = store.regions.num_regions
    dtype = store.region_energy.dtype
    if energies is None:
        if any(e is None for e in state.e[1:]):
            raise ValueError(
                "The state has no error neurons (`e` is None), so its region energies cannot "
                "be read; snapshot a state from `pcastro.infer` or `pcastro.init_state(..., "
                "compute_errors=True)`, or pass `energies=` yourself."
            )
        energies = region_energies(state, store.regions)
    energies = energies.astype(dtype)
    if energies.shape != (batch, num):
        raise ValueError(
            f"`energies` has shape {energies.shape}, expected (batch, R) = ({batch}, {num})."
        )
    if priority is None:
        priority = jnp.sum(energies, axis=1)
    priority = _batched(priority, batch, dtype, "priority")
    energies = eqx.error_if(
        energies,
        ~jnp.all(jnp.isfinite(energies)),
        "A snapshot of states holding NaN or inf (their region energies E_r are not "
        "finite): nothing can be learned by replaying them. Check the inference status of "
        "the batch (`infer(...).status`) and its data before snapshotting it.",
    )
    priority = eqx.error_if(
        priority,
        ~jnp.all(jnp.isfinite(priority)),
        "A snapshot's `priority` is NaN or infinite, which would make the eviction policy "
        "reject every later stimulus; check the region energies (the inference status).",
    )
    return energies, priority


def _write(policy, store: Store, item):
    """Write one stimulus into a free slot, or into the victim `policy` chooses if it
    accepts it; report what was evicted or refused."""
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

    store = dataclasses.replace(
        store,
        x=tuple(None if a is None else put(a, v) for a, v in zip(store.x, xs, strict=True)),
        masks=tuple(
            None if a is None else put(a, v) for a, v in zip(store.masks, masks, strict=True)
        ),
        region_energy=put(store.region_energy, energy),
        steps=put(store.steps, stp),
        priority=put(store.priority, prio),
        occupied=put(store.occupied, True),
        ids=put(store.ids, new_id),
        next_id=new_id + 1,
    )
    return store, report


def _slot_array(slots: ArrayLike) -> Array:
    slots = jnp.asarray(slots)
    if not jnp.issubdtype(slots.dtype, jnp.integer) or slots.ndim > 1:
        raise ValueError(
            f"`slots` must be an int or a 1-D array of ints (slot indices), got dtype "
            f"{slots.dtype} and shape {slots.shape}; for a boolean mask over the slots use "
            "`jnp.flatnonzero(mask)`, or `discard(store, mask)`."
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


def recall(
    store: Store, slots: ArrayLike, *, net: Network, fresh: bool = False, check: bool = True
) -> PCState:
    """Restore stored stimuli as a batched state, to continue inference and learning.

    With `fresh=False` the stored states come back exactly, so inference and learning
    continue where they stopped (the interruption invariant); the error neurons are
    recomputed from them with `net` (instant errors: a leaky error neuron restarts at
    `x_l - mu_l`). The state solver's own running state is not stored, so the
    continuation is exact for `pcastro.Euler` (and `pcastro.incremental_step` with it,
    given the optimiser state), approximate for a solver with momentum. With `fresh=True` the
    stored clamps are re-presented and the free states start at a fresh feedforward pass
    through `net` (better once the weights have moved on and the stored states are
    stale); the slot's stored `E_r` stays in the store as its priority and gate drive.

    A store without states (`make_store(..., states=False)`) keeps no free states to
    give back: recall from it needs `fresh=True`, and the states are re-inferred from
    the stimulus, a fresh feedforward start here followed by `pcastro.infer` (as
    [`pcastro.astro.consolidate`][] does), at the cost of those inference steps. The
    result equals `fresh=True` from a store with states holding the same stimuli.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].
    - `slots`: a slot index or a 1-D array of them (see `store.occupied`, `store.ids`).
    - `net`: the network that will continue from the recalled states.
    - `fresh`: start from a fresh feedforward pass instead of the stored states
      (required for a store without states).
    - `check`: raise for an out-of-range or empty slot (the default). Pass False only
      where the caller guarantees occupancy itself, e.g. inside a `lax.cond` branch
      under `jax.vmap`, where both branches run and the check would fire for the slot
      the other branch skips.

    **Returns:**

    A [`pcastro.PCState`][] with one example per slot, in the order given.

    **Raises:**

    `ValueError` when the network does not match the store, when `fresh=False` is asked
    of a store without states, or (with `check`) naming the slots whose stored states
    hold NaN or inf; a runtime error (via `equinox.error_if`) for an out-of-range or
    empty slot, with `check`.
    """
    check_shapes(store, net, "recall")
    if not fresh:
        check_states(store, "recall(store, slots, net=net, fresh=True)")
    slots = _slot_array(slots)
    if check:
        slots = _slots(store, slots, occupied=True)
        if not isinstance(slots, jax.core.Tracer):
            check_finite_slots(store, slots)
    return _recall(store, jnp.atleast_1d(slots), net, fresh=fresh)


def check_shapes(store: Store, net: Network, caller: str) -> None:
    """Refuse a network whose node shapes differ from those the store was made for."""
    # A store without states holds no array for a free node; the regions carry the
    # shapes of every predicted node, the input's is read where it is held.
    first = None if store.x[0] is None else store.x[0].shape[1:]
    if store.regions.shapes != tuple(net.shapes[1:]) or first not in (None, net.shapes[0]):
        held_shapes = (first if first is not None else "?", *store.regions.shapes)
        raise ValueError(
            f"The network's node shapes {tuple(net.shapes)} differ from the store's "
            f"{held_shapes}; {caller} with the network the store was made for."
        )


def check_states(store: Store, fix: str) -> None:
    """Refuse to start from stored states a store that keeps none (nothing is switched
    silently to a fresh start)."""
    if not store.states:
        raise ValueError(
            "This store keeps no free states (`make_store(..., states=False)`), so it "
            "cannot restart from stored states (`fresh=False`). Re-infer them from a fresh "
            f"feedforward start, `{fix}`, or make the store with `states=True` to keep "
            "them."
        )


@eqx.filter_jit
def _recall(store: Store, slots: Array, net: Network, *, fresh: bool) -> PCState:
    xs = tuple(None if a is None else a[slots] for a in store.x)
    masks = tuple(None if m is None else m[slots] for m in store.masks)
    if fresh:
        return init_state(
            net,
            None if store.clamps[0] is Clamp.FREE else xs[0],
            None if store.clamps[-1] is Clamp.FREE else xs[-1],
            x_mask=masks[0],
            y_mask=masks[-1],
            batch_size=slots.shape[0],
        )
    # A store that keeps states (checked by the callers) holds every node's.
    state = PCState(x=xs, e=(None,) * len(xs), masks=masks, clamps=store.clamps)  # pyright: ignore[reportArgumentType]
    return PCState(x=xs, e=errors(net, state), masks=masks, clamps=store.clamps)  # pyright: ignore[reportArgumentType]


def discard(store: Store, slots: ArrayLike) -> Store:
    """Empty the given slots ("once learning is complete, discard the error pattern").

    Discarding an empty slot changes nothing.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].
    - `slots`: a slot index, a 1-D array of them, or a boolean mask of shape `(K,)`
      (True = discard).

    **Returns:**

    The store with those slots empty (all their numbers zeroed, id -1).

    **Raises:**

    A runtime error (via `equinox.error_if`) for an out-of-range slot.
    """
    slots = jnp.asarray(slots)
    if slots.dtype == jnp.bool_:
        if slots.shape != (store.capacity,):
            raise ValueError(
                f"A boolean `slots` mask must have shape ({store.capacity},), one entry per "
                f"slot; got {slots.shape}."
            )
        return _clear(store, slots)
    slots = _slots(store, _slot_array(slots), occupied=False)
    return _clear(store, jnp.zeros(store.capacity, bool).at[slots].set(True))


@eqx.filter_jit
def _clear(store: Store, which: Array) -> Store:
    def zero(a):
        if a is None:
            return None
        w = which.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(w, jnp.zeros((), a.dtype), a)

    return dataclasses.replace(
        store,
        x=tuple(zero(a) for a in store.x),
        masks=tuple(zero(m) for m in store.masks),
        region_energy=zero(store.region_energy),
        steps=zero(store.steps),
        priority=zero(store.priority),
        occupied=store.occupied & ~which,
        ids=jnp.where(which, -1, store.ids),
    )


def overwrite(
    store: Store, slot: ArrayLike, state: PCState, *, energies: ArrayLike, step: ArrayLike
) -> Store:
    """Replace one occupied slot's states, `E_r`, step count and priority (`sum_r E_r`).

    Its clamps, id and occupancy stay; this is how a replayed stimulus's progress is
    written back (see [`pcastro.astro.consolidate`][]). A store without states keeps
    only the new `E_r`, step count and priority.

    **Arguments:**

    - `store`: the [`pcastro.astro.Store`][].
    - `slot`: the slot index (a scalar).
    - `state`: a batched state of one example, as recall returns it.
    - `energies`: its region energies `E_r`, shape `(R,)`.
    - `step`: the inference steps its states have had.

    **Returns:**

    The updated store.
    """
    energies = jnp.asarray(energies, store.region_energy.dtype)
    if energies.shape != (store.regions.num_regions,):
        raise ValueError(
            f"`energies` has shape {energies.shape}; pass the slot's E_r, shape "
            f"({store.regions.num_regions},)."
        )
    return dataclasses.replace(
        store,
        x=tuple(
            None if a is None else a.at[slot].set(x[0].astype(a.dtype))
            for a, x in zip(store.x, state.x, strict=True)
        ),
        region_energy=store.region_energy.at[slot].set(energies),
        steps=store.steps.at[slot].set(step),
        priority=store.priority.at[slot].set(jnp.sum(energies)),
    )
