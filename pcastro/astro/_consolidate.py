"""Consolidation: replay stored stimuli by priority with gated learning."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from .._checks import check_values
from .._custom_types import Array, ArrayLike, Float, Int
from .._inference import RESULTS, AbstractSolver, AdaptiveEuler, infer
from .._learning import check_gate_arguments, checked_update, param_grads, raise_on_params
from .._network import Network
from .._state import PCState, errors
from ._gate import AstrocyteGateState
from ._regions import AbstractSense, SquaredError, region_energies
from ._slots import check_finite_slots, check_shapes, check_states, discard, overwrite, recall
from ._store import Store


class ConsolidationReport(eqx.Module):
    """What [`pcastro.astro.consolidate`][] did, round by round.

    **Fields:**

    - `energy`: per round, the mean total local energy `sum_r E_r` of the slots replayed
      in that round, measured after their update (NaN when none was replayed).
    - `region_energy`: per round and slot, `E_r` after that slot's replay, shape
      `(rounds, K, R)` (NaN for slots not replayed).
    - `order`: per round, the slots in the order they were visited (highest priority
      first; empty slots last).
    - `discarded`: per round and slot, the id of the stimulus discarded from that slot
      in that round, -1 elsewhere.
    """

    energy: Float[Array, " rounds"]
    region_energy: Float[Array, "rounds capacity regions"]
    order: Int[Array, "rounds capacity"]
    discarded: Int[Array, "rounds capacity"]

    @property
    def discarded_ids(self) -> Array:
        """The ids discarded over all rounds, sorted, -1 entries removed (not jittable)."""
        ids = self.discarded.reshape(-1)
        return jnp.sort(ids[ids >= 0])


def consolidate(
    net: Network,
    opt_state: Any,
    store: Store,
    *,
    optimizer: optax.GradientTransformation,
    ne: ArrayLike | None = None,
    steps: int = 20,
    rounds: int = 1,
    tol: ArrayLike,
    fresh: bool = False,
    solver: AbstractSolver = AdaptiveEuler(),  # noqa: B008 (immutable)
    throw: bool = True,
) -> tuple[Network, Any, Store, ConsolidationReport]:
    """Replay stored stimuli by priority with gated learning; discard the learned ones.

    Each round visits the occupied slots from the highest priority down. For each slot:

    1. recall it ([`pcastro.astro.recall`][], stored or `fresh` states), run
       `steps` steps of PC inference with its clamps, and apply one parameter update
       through `optimizer` with `region_energy` = the slot's stored `E_r` and `ne`
       (the stored error keeps driving the astrocyte gate, whatever the start). A
       gate whose astrocytes sense something other than the squared error
       ([`pcastro.astro.TargetExcess`][]) cannot read that from the stored `E_r` (a
       sum of squares has lost the sign of the error), so it is fed its own signal,
       sensed on the replayed stimulus's inferred errors before the update;
    2. store the inferred states, the new `E_r` (measured at those states with the
       updated weights), the priority `sum_r E_r` and the step count;
    3. discard the slot once every region's `E_r` is below `tol` ("once learning is
       complete, discard the error pattern").

    Every occupied slot is replayed before it is judged: a stored `E_r` goes stale once
    other stimuli have been learned since the snapshot.

    The gate lives in `optimizer`: pass
    `optax.chain(optax.adam(1e-3), scale_by_astrocytes(astrocytes, store.regions))`
    (the gate after a stateful optimiser) and its state. A plain optimiser without a
    gate gives the ungated replay control; ablated astrocytes, plain PC learning.

    Runs under `jax.jit` (`eqx.filter_jit`); the slot loop is a `lax.scan`.

    **Arguments:**

    - `net`, `opt_state`: the network and `optimizer`'s state.
    - `store`: the [`pcastro.astro.Store`][].
    - `optimizer`: any Optax transformation, usually containing
      [`pcastro.astro.scale_by_astrocytes`][].
    - `ne`: norepinephrine during consolidation, scalar or per region: required when
      `optimizer` holds a gate (0.0 for none), refused when it does not.
    - `steps`: inference steps per replay.
    - `rounds`: passes over the store.
    - `tol`: a slot is discarded once `E_r < tol` in every region (scalar or `(R,)`,
      `>= 0`; 0 replays without discarding).
    - `fresh`: start every replay from a fresh feedforward pass (True) or from the
      stored states (False, the default: it measured better on validation episodes of
      `pcastro interrupt` on digits and mnist5k, see `benchmarks/README.md`). A store
      without states (`make_store(..., states=False)`) needs `fresh=True`: its states
      are re-inferred at every replay, and the result equals `fresh=True` on a store
      with states holding the same stimuli.
    - `solver`: the state solver for inference, e.g. `pcastro.Euler(dt=0.1)`
      (consolidation makes one gated update per replay).

    **Returns:**

    `(net, opt_state, store, report)` with a [`pcastro.astro.ConsolidationReport`][].

    **Raises:**

    `ValueError`/`TypeError` for bad options, or for `fresh=False` on a store without
    states; a runtime error if inference diverges.

    Grounded in Lefton et al. (*Science* 2025); the reference is on
    [`pcastro.astro.Astrocytes`][].
    """
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            "`consolidate` makes one gated update per replay; pass a state solver such as "
            f"`pcastro.Euler(dt=0.1)` as `solver`, got {solver!r}."
        )
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be a positive int, got {rounds!r}.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    if not isinstance(fresh, bool):
        raise TypeError(f"`fresh` must be True or False, got {fresh!r}.")
    check_shapes(store, net, "consolidate")
    if not fresh:
        check_states(store, "consolidate(..., fresh=True)")
    num = store.regions.num_regions
    tol = jnp.asarray(tol, store.region_energy.dtype)
    if tol.shape not in ((), (num,)):
        raise ValueError(f"`tol` has shape {tol.shape}; pass a scalar or shape ({num},).")
    tol = check_values(
        tol,
        lambda xp, t: ~(t >= 0),
        "`consolidate(tol=...)` must be a number >= 0: a slot is discarded once its E_r "
        "falls below `tol` in every region, which a NaN or negative tolerance would never "
        "allow, silently. Pass 0 to replay without discarding, or e.g. a fraction of the "
        "stored energies, `tol=0.5 * float(store.region_energy[store.occupied].mean())`.",
    )
    check_gate_arguments(opt_state, ne, "consolidate")
    check_finite_slots(store)
    sense = _gate_sense(opt_state)
    ne = jnp.asarray(0.0 if ne is None else ne, store.region_energy.dtype)
    return _consolidate(
        net,
        opt_state,
        store,
        ne,
        tol,
        optimizer=optax.with_extra_args_support(optimizer),
        steps=steps,
        rounds=rounds,
        fresh=fresh,
        solver=solver,
        throw=throw,
        sense=sense,
    )


def _gate_sense(opt_state: Any) -> AbstractSense | None:
    """The sense of the astrocyte gate in `opt_state` when it needs the inferred errors
    (not the squared error the store keeps), else None."""
    gates = [
        leaf
        for leaf in jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda s: isinstance(s, AstrocyteGateState)
        )
        if isinstance(leaf, AstrocyteGateState)
    ]
    senses = {type(g.astrocytes.sense) for g in gates}
    if len(senses) > 1:
        raise ValueError(
            "`consolidate` got an optimiser with several astrocyte gates that sense "
            f"different signals ({sorted(t.__name__ for t in senses)}); one region energy "
            "is passed per replay, so use one gate or gates with the same `sense`."
        )
    if not gates or isinstance(gates[0].astrocytes.sense, SquaredError):
        return None
    return gates[0].astrocytes.sense


def _round_stats(energy, gone, order):
    """One round's `(mean energy, E_r per slot, order, discarded ids)`, from the values
    recorded in replay order (`order`) put back in slot order."""
    inverse = jnp.argsort(order)
    energy, gone = energy[inverse], gone[inverse]
    totals = jnp.sum(energy, axis=1)
    replayed = ~jnp.isnan(totals)
    mean = jnp.sum(jnp.where(replayed, totals, 0.0)) / jnp.sum(replayed)
    return mean, energy, order, gone


@eqx.filter_jit
def _consolidate(
    net, opt_state, store, ne, tol, *, optimizer, steps, rounds, fresh, solver, throw, sense
):
    regions = store.regions
    num = regions.num_regions
    params, static = eqx.partition(net, eqx.is_inexact_array)
    k = store.capacity

    def replay(carry):
        params, opt_state, store, slot, worst = carry
        model = eqx.combine(params, static)
        # Occupancy is guaranteed by the `lax.cond` below; under `jax.vmap` both branches
        # run, so the recall's own check would fire for the skipped empty slots.
        state = recall(store, slot[None], net=model, fresh=fresh, check=False)
        relaxed = infer(model, state, solver=solver, steps=steps).state
        if sense is None:
            sensed = store.region_energy[slot]
        else:
            sensed = region_energies(relaxed, regions, sense=sense)[0]
        updates, opt_state = optimizer.update(
            param_grads(model, relaxed), opt_state, params, region_energy=sensed, ne=ne
        )
        params, status = checked_update(params, updates)
        model = eqx.combine(params, static)
        relaxed = PCState(
            x=relaxed.x, e=errors(model, relaxed), masks=relaxed.masks, clamps=relaxed.clamps
        )
        energy = region_energies(relaxed, regions)[0]
        done = 0 if fresh else store.steps[slot]
        store = overwrite(store, slot, relaxed, energies=energy, step=done + steps)
        return (params, opt_state, store, slot, jnp.maximum(worst, status)), energy

    def skip(carry):
        return carry, jnp.full((num,), jnp.nan, store.region_energy.dtype)

    def visit(carry, slot):
        params, opt_state, store, worst = carry
        occupied = store.occupied[slot]
        # Every occupied slot is replayed: its stored E_r may be stale (other stimuli
        # were learned since the snapshot), so only the error measured after this
        # replay, with the current weights, decides whether it is learned.
        (params, opt_state, store, _, worst), energy = lax.cond(
            occupied, replay, skip, (params, opt_state, store, slot, worst)
        )
        now = jnp.where(jnp.isnan(energy), store.region_energy[slot], energy)
        finished = occupied & jnp.all(now < tol)
        gone = jnp.where(finished, store.ids[slot], -1)
        store = discard(store, (jnp.arange(k) == slot) & finished)
        return (params, opt_state, store, worst), (energy, gone)

    def one_round(carry, _):
        store = carry[2]
        order = jnp.argsort(jnp.where(store.occupied, -store.priority, jnp.inf), stable=True)
        carry, (energy, gone) = lax.scan(visit, carry, order)
        return carry, _round_stats(energy, gone, order)

    worst = jnp.asarray(RESULTS.successful)
    (params, opt_state, store, worst), stats = lax.scan(
        one_round, (params, opt_state, store, worst), None, length=rounds
    )
    net = raise_on_params(eqx.combine(params, static), worst, throw)
    return net, opt_state, store, ConsolidationReport(*stats)
