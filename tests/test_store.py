import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc
from pcastro import astro


def _params(net):
    return eqx.filter(net, eqx.is_inexact_array)


def _leaves(tree):
    return jax.tree_util.tree_leaves(_params(tree))


# One network shape and batch size throughout, so compiled code is shared between tests.
SIZES = [4, 6, 3]
BATCH = 4
infer = eqx.filter_jit(pc.infer)
OPT = optax.sgd(0.05)


def ipc(net, opt_state, state, *, steps):
    return pc.incremental_step(net, opt_state, state, optimizer=OPT, steps=steps)


def _setup(getkey, batch=BATCH):
    net = pc.mlp(SIZES, key=getkey())
    x = jax.random.normal(getkey(), (batch, SIZES[0]))
    y = jax.random.normal(getkey(), (batch, SIZES[-1]))
    return net, astro.make_regions(net), x, y


def _slots_of(store, ids):
    return jnp.array([int(jnp.argmax(store.ids == i)) for i in ids])


def test_interrupt_recall_continue_equals_the_uninterrupted_run(getkey):
    net, regions, x_a, y_a = _setup(getkey)
    _, _, x_b, y_b = _setup(getkey)
    opt_state = OPT.init(_params(net))
    total, k = 12, 5

    full_net, _, full = ipc(net, opt_state, pc.init_state(net, x_a, y_a), steps=total)

    part_net, part_opt, part = ipc(net, opt_state, pc.init_state(net, x_a, y_a), steps=k)
    store = astro.make_store(net, regions, capacity=8)
    store, evicted = astro.snapshot(store, part.state, step=k)
    a_ids = evicted.new_ids
    # Something else: B is processed (inference only, weights unchanged) and stored too.
    b = infer(part_net, pc.init_state(part_net, x_b, y_b), steps=7)
    store, _ = astro.snapshot(store, b.state, step=7)
    assert int(store.occupied.sum()) == 8

    slots = _slots_of(store, a_ids)
    remaining = total - int(store.steps[slots[0]])
    resumed_state = astro.recall(store, slots, net=part_net)
    resumed_net, _, resumed = ipc(part_net, part_opt, resumed_state, steps=remaining)
    for u, v in zip(resumed.state.x, full.state.x, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    for u, v in zip(_leaves(resumed_net), _leaves(full_net), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)

    # Without the store, A restarts from a fresh feedforward pass: a different result.
    restarted_net, _, restarted = ipc(
        part_net, part_opt, pc.init_state(part_net, x_a, y_a), steps=remaining
    )
    assert not np.allclose(restarted.state.x[1], full.state.x[1], rtol=1e-3, atol=1e-4)
    assert not np.allclose(_leaves(restarted_net)[0], _leaves(full_net)[0], rtol=1e-4, atol=1e-6)


def test_stored_region_energies_equal_those_of_the_recalled_state(getkey):
    net, _, x, y = _setup(getkey)
    regions = astro.make_regions(net, columns=(3, 1))
    state = infer(net, pc.init_state(net, x, y), steps=6).state
    store, _ = astro.snapshot(astro.make_store(net, regions, capacity=5), state)
    slots = jnp.array([2, 0, 3])
    recalled = astro.recall(store, slots, net=net)
    np.testing.assert_allclose(
        store.region_energy[slots], astro.region_energies(recalled, regions), rtol=1e-6
    )
    for u, v in zip(recalled.x, state.x, strict=True):
        np.testing.assert_array_equal(u, v[slots])
    np.testing.assert_allclose(store.priority[:4], store.region_energy[:4].sum(1), rtol=1e-6)


def test_fresh_recall_is_a_feedforward_pass_from_the_stored_clamps(getkey):
    net, regions, x, y = _setup(getkey)
    state = infer(net, pc.init_state(net, x, y), steps=6).state
    store, _ = astro.snapshot(astro.make_store(net, regions, capacity=4), state)
    fresh = astro.recall(store, jnp.arange(4), net=net, fresh=True)
    start = pc.init_state(net, x, y)
    for u, v in zip(fresh.x, start.x, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6)
    assert not np.allclose(fresh.x[1], state.x[1])  # the stored states had moved on
    np.testing.assert_allclose(  # the stored E_r stays, as priority and gate drive
        store.region_energy, astro.region_energies(state, regions), rtol=1e-6
    )


def test_partial_clamps_are_stored_and_recalled(getkey):
    net, regions, x, y = _setup(getkey)
    observed = jnp.array([1.0, 1.0, 0.0, 0.0])
    # The label is clamped too: without it the missing pixels could not move (see infer).
    state = infer(net, pc.init_state(net, x, y, x_mask=observed), steps=4).state
    store = astro.make_store(net, regions, capacity=4, clamps=state.clamps)
    store, _ = astro.snapshot(store, state)
    back = astro.recall(store, jnp.arange(4), net=net)
    assert back.clamps == state.clamps
    np.testing.assert_array_equal(back.masks[0], state.masks[0])
    for u, v in zip(back.x, state.x, strict=True):
        np.testing.assert_array_equal(u, v)
    fresh = astro.recall(store, jnp.arange(4), net=net, fresh=True)
    np.testing.assert_allclose(fresh.x[0], x * observed, rtol=1e-6)


@pytest.mark.parametrize(
    "policy, kept, dropped, rejected",
    [
        # priorities of ids 0..4: 3, 1, 2, 5, 0.5 (capacity 3)
        (astro.EvictLowestPriority(), {0, 2, 3}, [-1, -1, -1, 1, 4], [False] * 4 + [True]),
        (astro.EvictOldest(), {2, 3, 4}, [-1, -1, -1, 0, 1], [False] * 5),
        (astro.RejectWhenFull(), {0, 1, 2}, [-1, -1, -1, 3, 4], [False] * 3 + [True] * 2),
    ],
    ids=["lowest-priority", "oldest", "reject"],
)
def test_overflow_is_reported_per_policy_never_lost(getkey, policy, kept, dropped, rejected):
    net, regions, x, y = _setup(getkey, batch=5)
    state = pc.init_state(net, x, y)
    priority = jnp.array([3.0, 1.0, 2.0, 5.0, 0.5])
    store = astro.make_store(net, regions, capacity=3)
    store, evicted = astro.snapshot(store, state, priority=priority, policy=policy)
    assert set(np.asarray(store.ids).tolist()) == kept
    np.testing.assert_array_equal(evicted.ids, dropped)
    np.testing.assert_array_equal(evicted.rejected, rejected)
    np.testing.assert_array_equal(evicted.new_ids, jnp.arange(5))
    # Nothing disappears silently: stored + reported = presented.
    reported = {int(i) for i in evicted.ids if i >= 0}
    assert reported | kept == set(range(5)) and not reported & kept
    assert int(evicted.count) == 2
    lost = [int(i) for i in evicted.ids if i >= 0]
    np.testing.assert_allclose(evicted.priority[evicted.dropped], priority[jnp.array(lost)])
    # The store keeps each stimulus's own numbers.
    for slot in range(3):
        i = int(store.ids[slot])
        np.testing.assert_array_equal(store.x[0][slot], x[i])
        assert float(store.priority[slot]) == float(priority[i])


def test_discard_empties_slots_and_recall_refuses_empty_ones(getkey):
    net, regions, x, y = _setup(getkey)
    state = pc.init_state(net, x, y)
    store = astro.make_store(net, regions, capacity=4)
    store, _ = astro.snapshot(store, state, priority=jnp.array([1.0, 2.0, 3.0, 4.0]))
    store = astro.discard(store, jnp.array([0, 2]))
    np.testing.assert_array_equal(store.occupied, [False, True, False, True])
    np.testing.assert_array_equal(store.ids, [-1, 1, -1, 3])
    assert float(jnp.abs(store.x[1][0]).sum()) == 0.0
    with pytest.raises(RuntimeError, match="slot is empty"):
        astro.recall(store, jnp.array([0, 1]), net=net)
    with pytest.raises(RuntimeError, match="out of range"):
        astro.discard(store, 7)
    # A freed slot is reused, with a new id.
    store, evicted = astro.snapshot(store, state, priority=10.0)
    np.testing.assert_array_equal(evicted.slots, [0, 2, 1, 3])  # freed slots first
    np.testing.assert_array_equal(evicted.new_ids, [4, 5, 6, 7])
    np.testing.assert_array_equal(evicted.ids, [-1, -1, 1, 3])  # then the lowest priority


def test_snapshot_errors_name_the_problem(getkey):
    net, regions, x, y = _setup(getkey)
    store = astro.make_store(net, regions, capacity=3)
    with pytest.raises(ValueError, match="clamps .* differ from the store's"):
        astro.snapshot(store, pc.init_state(net, y=y))
    with pytest.raises(ValueError, match=r"`energies` has shape \(2, 5\), expected"):
        astro.snapshot(store, pc.init_state(net, x[:2], y[:2]), energies=jnp.ones((2, 5)))
    with pytest.raises(TypeError, match="policy"):
        astro.snapshot(store, pc.init_state(net, x, y), policy="oldest")
    with pytest.raises(ValueError, match="positive int"):
        astro.make_store(net, regions, capacity=0)


def test_snapshot_and_recall_jit_equal_eager_and_trace_once(getkey):
    net, regions, x, y = _setup(getkey)
    state = infer(net, pc.init_state(net, x, y), steps=6).state
    store = astro.make_store(net, regions, capacity=8)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def put_and_get(store, state):
        store, evicted = astro.snapshot(store, state, step=3)
        return store, evicted, astro.recall(store, evicted.slots, net=net)

    store_j, evicted_j, back_j = put_and_get(store, state)
    put_and_get(store_j, state)
    store_e, evicted_e = astro.snapshot(store, state, step=3)
    eq = jax.tree_util.tree_map(np.array_equal, store_j, store_e)
    assert all(jax.tree_util.tree_leaves(eq))
    np.testing.assert_array_equal(back_j.x[1], state.x[1])


@pytest.mark.parametrize("states", [True, False], ids=["states", "no-states"])
@pytest.mark.parametrize("columns, dtype", [(1, "float32"), (4, "float32"), (2, "float64")])
def test_footprint_matches_the_formula(getkey, columns, dtype, states):
    with jax.enable_x64(dtype == "float64"):
        # Only the shapes matter: build the network abstractly.
        net = eqx.filter_eval_shape(pc.mlp, [5, 8, 4, 3], key=getkey(), dtype=jnp.dtype(dtype))
        regions = astro.make_regions(net, columns=(columns, columns if 4 % columns == 0 else 1, 1))
        store = astro.make_store(net, regions, capacity=7, states=states)
        fp = astro.footprint_bytes(store)
    itemsize = jnp.dtype(dtype).itemsize
    r = regions.num_regions
    free = 8 + 4 if states else 0  # a store without states keeps no free state
    assert store.region_energy.dtype == jnp.dtype(dtype)
    assert (fp.free_units, fp.clamped_units, fp.regions) == (free, 5 + 3, r)
    assert fp.payload == 7 * (r + free + 8) * itemsize
    assert fp.total == sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(store))
    # Metadata: step (int32), priority (float), occupied (bool), id (int32), the id counter.
    assert fp.metadata == 7 * (4 + itemsize + 1 + 4) + 4
    assert fp.total == fp.payload + fp.metadata


def _snapshot_both(getkey, clamps):
    """The same stimuli snapshotted into a store with states and one without."""
    net, regions, x, y = _setup(getkey)
    observed = jnp.array([1.0, 1.0, 0.0, 0.0])
    start = {
        "discriminative": lambda: pc.init_state(net, x, y),
        "partial": lambda: pc.init_state(net, x, y, x_mask=observed),
        "generative": lambda: pc.init_state(net, y=y),
    }[clamps]()
    state = infer(net, start, steps=4).state
    stores = []
    for states in (True, False):
        store = astro.make_store(net, regions, capacity=6, clamps=state.clamps, states=states)
        store, evicted = astro.snapshot(store, state, step=4)
        # A second, overflowing batch: evictions must pick the same stimuli in both.
        store, _ = astro.snapshot(store, state, step=4, priority=jnp.arange(4.0))
        stores.append(store)
    return net, state, *stores


@pytest.mark.parametrize("clamps", ["discriminative", "partial", "generative"])
def test_recall_without_states_equals_a_fresh_recall_with_states(getkey, clamps):
    net, state, full, lean = _snapshot_both(getkey, clamps)
    assert lean.states is False and full.states is True
    for i, c in enumerate(state.clamps):
        assert (lean.x[i] is None) == (c is pc.Clamp.FREE)
    # Everything a store without states keeps equals the store with states, bit for bit.
    for name in ("region_energy", "steps", "priority", "occupied", "ids", "next_id"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name))
    for a, b in zip(lean.x, full.x, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    slots = jnp.flatnonzero(full.occupied)
    fresh = astro.recall(full, slots, net=net, fresh=True)
    lean_fresh = astro.recall(lean, slots, net=net, fresh=True)
    assert lean_fresh.clamps == fresh.clamps
    for u, v in zip(
        jax.tree_util.tree_leaves(lean_fresh), jax.tree_util.tree_leaves(fresh), strict=True
    ):
        np.testing.assert_array_equal(u, v)
    # Re-inferred from the stimulus, the states come back to the stored ones: the
    # weights have not moved, and inference from the same start is deterministic.
    again = infer(net, lean_fresh, steps=4).state
    stored = astro.recall(full, slots, net=net)
    for u, v in zip(again.x, stored.x, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_a_store_without_states_refuses_to_restart_from_stored_states(getkey):
    net, _, full, lean = _snapshot_both(getkey, "discriminative")
    with pytest.raises(ValueError, match=r"keeps no free states .* `recall\(store, slots, "):
        astro.recall(lean, jnp.array([0, 1]), net=net)
    with pytest.raises(TypeError, match="states"):
        astro.make_store(net, lean.regions, capacity=2, states="no")
    other = pc.mlp([SIZES[0], 7, SIZES[-1]], key=getkey())
    with pytest.raises(ValueError, match=r"node shapes .* differ from the store's"):
        astro.recall(lean, jnp.array([0]), net=other, fresh=True)
    # The slot operations work on a store without states.
    lean = astro.discard(lean, jnp.array([0]))
    assert not bool(lean.occupied[0]) and int(lean.ids[0]) == -1
    row = astro.recall(full, jnp.array([1]), net=net)
    lean = astro.overwrite(lean, 1, row, energies=jnp.array([1.0, 2.0]), step=9)
    assert float(lean.priority[1]) == 3.0 and int(lean.steps[1]) == 9


CONSOLIDATE = dict(steps=5, rounds=12)
REGIONS = astro.Regions(shapes=((6,), (3,)), columns=(1, 1))  # = make_regions(mlp(SIZES))
GATED_SGD = optax.chain(
    optax.sgd(0.1), astro.scale_by_astrocytes(astro.Astrocytes(tau_c=1.0), REGIONS)
)


def _consolidation_setup(getkey):
    net, regions, x, y = _setup(getkey)
    assert regions == REGIONS
    opt = GATED_SGD
    state = infer(net, pc.init_state(net, x, y), steps=5).state
    store, _ = astro.snapshot(astro.make_store(net, regions, capacity=5), state, step=5)
    return net, opt, opt.init(_params(net)), store


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "stored"])
def test_consolidation_discards_a_slot_once_its_error_is_below_tolerance(getkey, fresh):
    net, opt, opt_state, store = _consolidation_setup(getkey)
    run = dict(optimizer=opt, ne=1.0, fresh=fresh, **CONSOLIDATE)
    # A dry run that discards nothing shows how low each slot's error gets; the
    # tolerance then lies just above the lowest, so at least one slot must be discarded.
    *_, dry = astro.consolidate(net, opt_state, store, tol=0.0, **run)
    assert int((dry.discarded >= 0).sum()) == 0
    final = np.asarray(dry.region_energy[-1, :4]).max(axis=1)
    tol = float(np.sort(final)[0]) * 1.001
    new_net, _, new_store, report = astro.consolidate(net, opt_state, store, tol=tol, **run)

    assert report.energy.shape == (12,)
    assert float(report.energy[0]) > float(jnp.nanmin(report.energy))  # learning lowers E
    np.testing.assert_array_equal(report.order[0][:4], jnp.argsort(-store.priority[:4]))
    assert report.discarded_ids.size > 0
    for rnd, slot in zip(*np.nonzero(np.asarray(report.discarded) >= 0), strict=True):
        assert np.all(np.asarray(report.region_energy[rnd, slot]) < tol)
        assert not bool(new_store.occupied[slot])
        assert int(report.discarded[rnd, slot]) == int(store.ids[slot])
    for slot in np.nonzero(np.asarray(new_store.occupied))[0]:
        assert np.any(np.asarray(new_store.region_energy[slot]) >= tol)
        assert int(new_store.steps[slot]) == (5 if fresh else 5 + 5 * 12)
    assert not np.array_equal(_leaves(new_net)[0], _leaves(net)[0])


def test_consolidation_without_ne_and_with_closed_gates_does_not_learn(getkey):
    net, opt, opt_state, store = _consolidation_setup(getkey)
    new_net, _, new_store, report = astro.consolidate(
        net, opt_state, store, optimizer=opt, ne=0.0, tol=0.0, fresh=True, **CONSOLIDATE
    )
    for a, b in zip(_leaves(new_net), _leaves(net), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int((report.discarded >= 0).sum()) == 0
    assert bool(new_store.occupied[:4].all())


def test_consolidation_judges_a_slot_after_replaying_it(getkey):
    # A loose tolerance: every slot is learned, but only after one replay with the current
    # weights confirms it (a stored E_r can be stale), so each slot is replayed exactly once.
    net, opt, opt_state, store = _consolidation_setup(getkey)
    new_net, _, new_store, report = astro.consolidate(
        net, opt_state, store, optimizer=opt, ne=1.0, tol=1e9, fresh=False, **CONSOLIDATE
    )
    np.testing.assert_array_equal(np.sort(report.discarded_ids), [0, 1, 2, 3])
    assert not bool(new_store.occupied.any())
    first = np.asarray(report.region_energy[0])
    occupied = np.asarray(store.occupied)
    assert np.isfinite(first[occupied]).all()  # every occupied slot was replayed once
    assert np.isnan(np.asarray(report.region_energy[1:])).all()  # and never again
    assert any(
        not np.array_equal(a, b) for a, b in zip(_leaves(new_net), _leaves(net), strict=True)
    )


def test_consolidation_without_states_equals_fresh_consolidation_with_states(getkey):
    net, opt, opt_state, store = _consolidation_setup(getkey)
    state = infer(net, pc.init_state(net, store.x[0][:4], store.x[-1][:4]), steps=5).state
    lean = astro.make_store(net, store.regions, capacity=5, states=False)
    lean, _ = astro.snapshot(lean, state, step=5)
    run = dict(optimizer=opt, ne=1.0, fresh=True, **CONSOLIDATE)
    *_, dry = astro.consolidate(net, opt_state, store, tol=0.0, **run)
    # A tolerance between the slots' final errors: some are discarded, some stay.
    tol = float(np.median(np.asarray(dry.region_energy[-1, :4]).max(axis=1)))
    full_out = astro.consolidate(net, opt_state, store, tol=tol, **run)
    lean_out = astro.consolidate(net, opt_state, lean, tol=tol, **run)
    assert 0 < full_out[3].discarded_ids.size < 4
    full_net, full_opt, full_store, full_report = full_out
    lean_net, lean_opt, lean_store, lean_report = lean_out
    for u, v in zip(
        jax.tree_util.tree_leaves((full_net, full_opt, full_report)),
        jax.tree_util.tree_leaves((lean_net, lean_opt, lean_report)),
        strict=True,
    ):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
    for name in ("region_energy", "steps", "priority", "occupied", "ids"):
        np.testing.assert_allclose(getattr(lean_store, name), getattr(full_store, name), rtol=1e-6)
    with pytest.raises(
        ValueError, match=r"keeps no free states .*`consolidate\(\.\.\., fresh=True\)`"
    ):
        astro.consolidate(net, opt_state, lean, optimizer=opt, ne=1.0, tol=0.1, fresh=False)


def test_consolidation_rejects_bad_options(getkey):
    net, opt, opt_state, store = _consolidation_setup(getkey)
    with pytest.raises(ValueError, match=r"`tol` has shape \(3,\)"):
        astro.consolidate(net, opt_state, store, optimizer=opt, tol=jnp.ones(3), fresh=True)
