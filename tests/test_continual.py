"""The split-MNIST class-incremental protocol, run end to end on tiny settings (digits)."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pcastro as pc
from pcastro.bench import ContinualConfig
from pcastro.bench._continual import (
    CONTEXTS,
    collapsed_seeds,
    majority_fraction,
    make_network,
    make_stream,
    split_validation,
    status_summary,
    store_capacity,
)
from pcastro.bench._continual_methods import (
    AstrocyteStore,
    _remeasure,
    exemplar_bytes,
    reservoir_slots,
)
from pcastro.bench._continual_report import paired_rows
from pcastro.bench._learners import PCRule
from pcastro.cli import main

TINY = [
    "--dataset", "digits", "--seeds", "2", "--iterations", "30", "--eval-every", "15",
    "--batch", "8", "--replay-batch", "8", "--hidden", "16", "--budgets", "24",
    "--lrs", "0.01", "--pc-lrs", "0.01", "--tols", "0.02", "--no-progress",
]  # fmt: skip


def _uniform_draw(store, key, n):
    """The slots `AstrocyteStore.step` draws uniformly with `key` (its first subkey)."""
    logits = jnp.where(store.occupied, 0.0, -jnp.inf)
    return jax.random.categorical(jax.random.split(key, 3)[0], logits, shape=(n,))


def _last_rows(slots):
    """Each distinct drawn slot and the last replayed row that wrote it back."""
    last = np.unique(np.asarray(slots))
    return last, np.asarray([int(np.flatnonzero(np.asarray(slots) == s)[-1]) for s in last])


@pytest.mark.slow
def test_protocol_end_to_end_and_ablated_astrocytes_equal_plain_store_replay(tmp_path):
    methods = "backprop_finetune,pc_store_priority,pc_store_ablated"
    assert main(["continual", *TINY, "--methods", methods, "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    rows = {r["method"]: r for r in payload["results"]}
    assert set(rows) == set(methods.split(","))
    for r in rows.values():
        matrix = np.asarray(r["matrix_per_seed"])
        assert matrix.shape == (2, len(CONTEXTS), len(CONTEXTS))
        assert np.all((matrix >= 0) & (matrix <= 1))
        np.testing.assert_allclose(r["per_seed"], matrix[:, -1].mean(-1), rtol=1e-6)
        assert np.asarray(r["curve_mean"]).shape == (len(CONTEXTS), 2, len(CONTEXTS))
        majority = np.asarray(r["majority_fraction_per_seed"])
        assert majority.shape == (2,) and np.all((majority >= 0.1) & (majority <= 1))
        recall = np.asarray(r["class_recall_per_seed"])
        assert recall.shape == (2, 10) and np.all((recall >= 0) & (recall <= 1))
        want = collapsed_seeds(r["method"], majority, recall)
        assert r["collapsed_per_seed"] == want.tolist()
        assert r["collapsed_seeds"] == int(np.sum(want))
        # Every iteration's status is counted: successes plus failures per seed.
        assert r["iterations_per_seed"] == [len(CONTEXTS) * 30] * 2
        failed = sum(np.asarray(v) for v in r["status_counts_per_seed"].values())
        assert failed.tolist() == r["failed_per_seed"]
    # Every grid here has one value: nothing is chosen at the edge of a grid.
    assert all(sel["at_edge"] == [] for sel in payload["details"]["selected"].values())
    # The first context is learned; contexts not yet seen are not.
    first = np.asarray(rows["backprop_finetune"]["matrix_mean"])[0]
    assert first[0] > 0.9 and np.all(first[1:] == 0)
    # Silenced astrocytes: the gate is exactly 1, so the run equals store replay without it.
    assert rows["pc_store_ablated"]["per_seed"] == rows["pc_store_priority"]["per_seed"]
    assert (
        rows["pc_store_ablated"]["matrix_per_seed"] == rows["pc_store_priority"]["matrix_per_seed"]
    )
    # Equal bytes: the store never costs more than the exemplar buffer it is compared with.
    assert 0 < rows["pc_store_priority"]["memory_bytes"] <= 24 * (64 + 1) * 4
    for name in ("results.png", "curves.png", "matrices.png", "final.png", "table.txt"):
        if name != "results.png":
            assert (tmp_path / name).exists()


@pytest.mark.slow
def test_priority_exponent_zero_is_uniform_store_replay_exactly(tmp_path):
    # alpha = 0 flattens every priority to 1, and without discard (tol 0) the priority
    # variant then draws the same slots as uniform store replay: the runs are equal.
    args = [a if a != "0.02" else "0" for a in TINY]
    methods = "pc_store_uniform,pc_store_priority"
    cmd = ["continual", *args, "--priority-alphas", "0", "--methods", methods]
    assert main([*cmd, "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    assert rows["pc_store_priority"]["alpha"] == 0.0
    assert (
        rows["pc_store_priority"]["matrix_per_seed"] == rows["pc_store_uniform"]["matrix_per_seed"]
    )


def test_majority_fraction_flags_a_network_that_ignores_its_input(getkey):
    net = make_network(getkey(), (64, 8, 10))
    x = jax.random.uniform(getkey(), (50, 64))
    assert 0.1 <= float(majority_fraction(net, x)) <= 1.0
    # Dead hidden units (all biases very negative, ReLU): the output is the output bias,
    # the same class for every input.
    dead = eqx.tree_at(lambda n: n.nodes[0].modules[0].bias, net, -1e3 * jnp.ones(8))
    assert float(majority_fraction(dead, x)) == 1.0


def test_collapse_catches_a_network_that_predicts_two_classes_for_everything():
    majority = np.asarray([0.5, 0.5])
    # Seed 0 recalls every class; seed 1 predicts only classes 8 and 9 (majority 0.5, so
    # the majority rule alone misses it), as the run that ended at 0.154 did.
    recall = np.full((2, 10), 0.9)
    recall[1] = 0.0
    recall[1, 8:] = 0.8
    assert collapsed_seeds("pc_er", majority, recall).tolist() == [False, True]
    assert collapsed_seeds("backprop_joint", majority, recall).tolist() == [False, True]
    # Fine-tuning ends on its last context's two classes by design: forgetting, not collapse.
    assert collapsed_seeds("pc_finetune", majority, recall).tolist() == [False, False]
    assert collapsed_seeds("pc_finetune", np.asarray([0.95, 0.5]), recall).tolist() == [
        True,
        False,
    ]


def test_status_summary_counts_failures_and_flags_seeds():
    counts = np.zeros((2, len(pc.RESULTS)), int)
    counts[:, pc.RESULTS.successful] = [1000, 980]
    counts[1, pc.RESULTS.diverged] = 15
    counts[1, pc.RESULTS.oscillated] = 5
    summary = status_summary(counts)
    assert summary["failed_per_seed"] == [0, 20]
    assert summary["status_counts_per_seed"]["diverged"] == [0, 15]
    assert summary["status_counts_per_seed"]["oscillated"] == [0, 5]
    assert summary["flagged_seeds"] == 1  # 20 of 1000 is above 1%


def test_reservoir_keeps_the_first_items_then_samples():
    slots = reservoir_slots(jax.random.key(0), jnp.asarray(0), 5, 8)
    assert slots.tolist() == [0, 1, 2, 3, 4]
    late = reservoir_slots(jax.random.key(1), jnp.asarray(10_000), 4000, 8)
    kept = np.asarray(late) < 8
    # Item n is kept with probability K / (n + 1): about 8 * ln(14000 / 10000) = 2.7.
    assert 0 <= kept.sum() <= 12
    assert np.all(np.asarray(late)[~kept] == 8)


def test_streams_are_contexts_in_order_and_joint_streams_grow():
    y = np.repeat(np.arange(10), 30)
    stream = make_stream(3, y, iterations=4, batch=8)
    assert stream.shape == (5, 4, 8)
    for t in range(5):
        assert set(np.unique(y[stream[t]]) // 2) == {t}
    joint = make_stream(3, y, iterations=50, batch=8, joint=True)
    assert set(np.unique(y[joint[-1]])) == set(range(10))
    np.testing.assert_array_equal(stream, make_stream(3, y, iterations=4, batch=8))


def test_validation_split_is_held_out_per_class():
    y = np.repeat(np.arange(10), 20)
    train, val = split_validation(y, 0.1)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(y)
    assert np.all(np.bincount(y[val]) == 2)


def test_store_capacity_matches_exemplar_bytes():
    sizes = (784, 400, 400, 10)
    net = make_network(jax.random.key(0), sizes)
    assert exemplar_bytes(net) == 785 * 4
    k = store_capacity(2000, sizes)
    # A slot keeps the image, the label, 800 hidden states and 3 region energies.
    assert 950 <= k <= 1000
    # Without states: the image, the one-hot label, 3 region energies and 13 bytes of
    # step count, priority, occupied flag and id (and the store's 4-byte id counter,
    # which the one-slot probe counts as part of a slot).
    per_slot = (784 + 10 + 3) * 4 + 13
    lean = store_capacity(2000, sizes, states=False)
    assert lean == 2000 * 785 * 4 // (per_slot + 4)
    assert 1.9 * k < lean < 2000


def test_a_store_without_states_replays_the_same_stimuli_bit_for_bit(getkey):
    # Replay starts fresh, so the stored states are never read: at equal capacity the
    # store without them gives the same run.
    net = make_network(getkey(), (64, 16, 10))
    rule = PCRule(steps=2, solver=pc.Euler(dt=0.2))
    kwargs = dict(rule=rule, lr=1e-2, capacity=6, replay_batch=4, priority=True, tol=0.05)
    x = jax.random.uniform(getkey(), (5, 8, 64))
    y = jax.nn.one_hot(jax.random.randint(getkey(), (5, 8), 0, 10), 10)
    keys = jax.random.split(getkey(), 5)
    runs = []
    for states in (True, False):
        learner = AstrocyteStore(**kwargs, states=states)
        state = learner.init(net, key=None)
        step = eqx.filter_jit(learner.step)
        for i in range(5):
            state, _ = step(state, x[i], y[i], key=keys[i], iteration=i)
        runs.append(state)
    full, lean = runs
    assert lean.store.states is False and lean.store.x[1] is None
    for u, v in zip(jax.tree_util.tree_leaves(full.net), jax.tree_util.tree_leaves(lean.net)):
        np.testing.assert_array_equal(u, v)
    for name in ("region_energy", "priority", "occupied", "ids"):
        np.testing.assert_array_equal(getattr(full.store, name), getattr(lean.store, name))


def test_remeasured_slots_hold_their_current_energy_and_leave_uniform_replay_unchanged(getkey):
    # Every `refresh_every` iterations each slot's E_r is measured again at the current
    # network; a uniform store never reads E_r, so its run is unchanged bit for bit.
    net = make_network(getkey(), (64, 16, 10))
    rule = PCRule(steps=2, solver=pc.Euler(dt=0.2))
    x = jax.random.uniform(getkey(), (6, 8, 64))
    y = jax.nn.one_hot(jax.random.randint(getkey(), (6, 8), 0, 10), 10)
    keys = jax.random.split(getkey(), 6)
    runs = []
    for every in (0, 2):
        learner = AstrocyteStore(
            rule=rule, lr=1e-2, capacity=64, replay_batch=4, states=False, refresh_every=every
        )
        state = learner.init(net, key=None)
        step = eqx.filter_jit(learner.step)
        for i in range(6):
            state, status = step(state, x[i], y[i], key=keys[i], iteration=i)
            assert int(status) == int(pc.RESULTS.successful)
        runs.append(state)
    stale, fresh = runs
    for u, v in zip(jax.tree_util.tree_leaves(stale.net), jax.tree_util.tree_leaves(fresh.net)):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(stale.store.region_energy, fresh.store.region_energy)
    # After a re-measurement, a slot's E_r is what relaxing its stimulus alone gives.
    store, status = _remeasure(fresh.store, fresh.net, rule)
    assert int(status) == int(pc.RESULTS.successful)
    slot = int(np.flatnonzero(store.occupied)[0])
    alone, _ = rule.relax(fresh.net, store.x[0][slot : slot + 1], store.x[-1][slot : slot + 1])
    expected = pc.astro.region_energies(alone, store.regions)[0]
    np.testing.assert_allclose(store.region_energy[slot], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(store.priority[slot], jnp.sum(expected), rtol=1e-5)
    for name in ("occupied", "ids"):
        np.testing.assert_array_equal(getattr(store, name), getattr(fresh.store, name))
    empty = ~np.asarray(store.occupied)
    assert empty.sum() == 64 - 48  # 6 batches of 8 stimuli kept, the rest empty
    np.testing.assert_array_equal(store.region_energy[empty], fresh.store.region_energy[empty])


def test_the_refresh_stays_a_branch_when_seeds_are_vmapped(getkey):
    # The protocol vmaps the seeds; a re-measurement scheduled on the (batched) state would
    # turn into a select that re-measures the whole store at every iteration. Scheduled on
    # the stream's iteration, the same for every seed, it stays a `cond`.
    net = make_network(getkey(), (64, 16, 10))
    rule = PCRule(steps=2, solver=pc.Euler(dt=0.2))
    learner = AstrocyteStore(
        rule=rule, lr=1e-2, capacity=16, replay_batch=4, states=False, refresh_every=2,
        priority=True,
    )  # fmt: skip
    seeds = 3
    state = jax.vmap(lambda _: learner.init(net, key=None))(jnp.arange(seeds))
    x = jax.random.uniform(getkey(), (seeds, 8, 64))
    y = jax.nn.one_hot(jax.random.randint(getkey(), (seeds, 8), 0, 10), 10)
    keys = jax.random.split(getkey(), seeds)

    def step(state, x, y, key, iteration):
        return learner.step(state, x, y, key=key, iteration=iteration)

    vmapped = jax.vmap(step, in_axes=(0, 0, 0, 0, None))
    jaxpr = jax.make_jaxpr(vmapped)(state, x, y, keys, jnp.int32(4))
    assert "cond" in {eqn.primitive.name for eqn in jaxpr.jaxpr.eqns}
    # Seeds vmapped give what each seed's own step gives.
    together, _ = vmapped(state, x, y, keys, jnp.int32(4))
    for s in range(seeds):
        one = jax.tree_util.tree_map(lambda a, s=s: a[s], state)
        alone, _ = step(one, x[s], y[s], keys[s], 4)
        np.testing.assert_allclose(together.store.priority[s], alone.store.priority, rtol=1e-6)
        # Left out, the iteration is counted from the batches seen (0 here: also due).
        counted, _ = learner.step(one, x[s], y[s], key=keys[s])
        np.testing.assert_array_equal(counted.store.priority, alone.store.priority)


def test_a_resumed_replay_continues_each_slots_stored_states(getkey):
    # The replayed slots continue from their stored states for `resume_steps` steps, and
    # the states they reach (and their E_r) are written back for the next recall.
    net = make_network(getkey(), (64, 16, 10))
    rule = PCRule(steps=3, solver=pc.Euler(dt=0.2))
    learner = AstrocyteStore(rule=rule, lr=1e-2, capacity=64, replay_batch=4, resume_steps=1)
    x = jax.random.uniform(getkey(), (3, 8, 64))
    y = jax.nn.one_hot(jax.random.randint(getkey(), (3, 8), 0, 10), 10)
    keys = jax.random.split(getkey(), 3)
    step = eqx.filter_jit(learner.step)
    state = learner.init(net, key=None)
    for i in range(2):
        state, status = step(state, x[i], y[i], key=keys[i], iteration=i)
        assert int(status) == int(pc.RESULTS.successful)
    # The slots the next step draws (uniformly over the 16 occupied), continued by hand.
    slots = _uniform_draw(state.store, keys[2], 4)
    stored = pc.astro.recall(state.store, slots, net=state.net)
    expected, _ = rule.resume(state.net, stored, steps=1)
    after, status = step(state, x[2], y[2], key=keys[2], iteration=2)
    assert int(status) == int(pc.RESULTS.successful)
    last, rows = _last_rows(slots)
    np.testing.assert_allclose(after.store.x[1][last], expected.x[1][rows], rtol=1e-5, atol=1e-6)
    energies = pc.astro.region_energies(expected, state.store.regions)
    np.testing.assert_allclose(after.store.region_energy[last], energies[rows], rtol=1e-5)
    np.testing.assert_array_equal(after.store.steps[last], 1)
    with pytest.raises(ValueError, match=r"resume_steps=.*needs a store with states"):
        AstrocyteStore(rule=rule, lr=1e-2, capacity=4, replay_batch=2, resume_steps=1, states=False)


@pytest.mark.parametrize("ablated", [True, False])
def test_a_per_example_gated_store_runs_and_silenced_equals_the_batch_gate(getkey, ablated):
    # Silenced astrocytes gate every stimulus with exactly 1, per example or per batch.
    net = make_network(getkey(), (64, 16, 10))
    rule = PCRule(steps=2, solver=pc.Euler(dt=0.2))
    cells = pc.astro.Astrocytes(tau_c=2.0, c_half=0.05, ablated=ablated)
    kwargs = dict(rule=rule, lr=1e-2, capacity=6, replay_batch=4, astrocytes=cells, tol=0.05)
    x = jax.random.uniform(getkey(), (4, 8, 64))
    y = jax.nn.one_hot(jax.random.randint(getkey(), (4, 8), 0, 10), 10)
    keys = jax.random.split(getkey(), 4)
    runs = []
    for per_example in (False, True):
        learner = AstrocyteStore(**kwargs, per_example=per_example)
        state = learner.init(net, key=None)
        step = eqx.filter_jit(learner.step)
        for i in range(4):
            state, status = step(state, x[i], y[i], key=keys[i], iteration=i)
            assert int(status) == int(pc.RESULTS.successful)
        runs.append(state)
    batch, example = (jax.tree_util.tree_leaves(r.net) for r in runs)
    same = [np.array_equal(u, v) for u, v in zip(batch, example, strict=True)]
    # Silenced: equal bit for bit; present: gated per stimulus, the stream learns otherwise.
    assert all(same) if ablated else not all(same)
    with pytest.raises(ValueError, match=r"per_example=True\)` gates each stimulus.*astrocytes="):
        AstrocyteStore(rule=rule, lr=1e-2, capacity=6, replay_batch=4, per_example=True)


def test_paired_differences_use_the_same_seeds():
    base = {"budget": 10, "per_seed": [0.5, 0.6, 0.7]}
    rows = paired_rows(
        [
            {"method": "pc_store_uniform", **base},
            {"method": "pc_store_both", "budget": 10, "per_seed": [0.6, 0.7, 0.8]},
        ]
    )
    (row,) = rows
    assert row["control"] == "pc_store_uniform"
    assert row["mean_diff"] == pytest.approx(0.1) and row["ci95"] == pytest.approx(0.0, abs=1e-9)
    assert row["excludes_zero"]


def test_config_refuses_an_eval_interval_that_does_not_divide_the_iterations():
    with pytest.raises(ValueError, match="must divide"):
        ContinualConfig(iterations=10, eval_every=3)
    with pytest.raises(ValueError, match="Unknown methods"):
        ContinualConfig(methods=("pc_magic",))
    with pytest.raises(ValueError, match="--priority-alphas"):
        ContinualConfig(priority_alphas=(-1.0,))
    with pytest.raises(ValueError, match="--gate-floors"):
        ContinualConfig(gate_floors=(1.5,))


def test_the_solver_option_names_a_strategy_object():
    from pcastro.bench._config import make_solver

    assert make_solver(ContinualConfig()) == pc.AdaptiveEuler()
    assert make_solver(ContinualConfig(solver="euler", dt=0.05)) == pc.Euler(dt=0.05)
    with pytest.raises(ValueError, match="`--solver` must be one of adaptive, euler"):
        ContinualConfig(solver="rk4")


def test_budget_checks_name_the_flag_and_the_memory():
    from pcastro.bench._continual import check_budgets

    check_budgets((200, 1000), 4500, 784, seeds=5)
    with pytest.raises(ValueError, match=r"`--budgets` \[5000\] exceed the 4500 training"):
        check_budgets((200, 5000), 4500, 784)
    with pytest.raises(ValueError, match=r"needs about .* GiB of memory and this machine has"):
        check_budgets((1000,), 4500, 784, seeds=5, memory=2**20)


def test_a_validation_split_that_leaves_a_class_empty_is_refused():
    y = np.repeat(np.arange(10), 50)
    train, val = split_validation(y, 0.1)
    assert len(val) == 50 and len(train) == 450
    with pytest.raises(ValueError, match="holds out 0 of the 50 training images of class 0"):
        split_validation(y, 0.001)
    with pytest.raises(ValueError, match="without training images"):
        split_validation(y, 0.999)


def test_a_block_of_further_seeds_equals_those_seeds_of_one_run(tmp_path):
    # `--first-test-seed` runs more seeds of an earlier table: the same split, the same
    # selection, and each seed's run equals that seed's in one run over all of them.
    args = [*TINY, "--methods", "backprop_finetune"]
    assert main(["continual", *args, "--out", str(tmp_path / "all")]) == 0
    block = [a if a != "2" else "1" for a in args]
    assert main(["continual", *block, "--first-test-seed", "1", "--out", str(tmp_path / "b")]) == 0
    whole, part = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("all", "b"))
    assert whole["details"]["test_seeds"] == [1000, 1001]
    assert part["details"]["test_seeds"] == [1001]
    assert part["config"]["first_test_seed"] == 1
    assert part["results"][0]["matrix_per_seed"] == whole["results"][0]["matrix_per_seed"][1:]
    assert part["details"]["selected"] == whole["details"]["selected"]
    with pytest.raises(ValueError, match="`--first-test-seed` must be an integer of at least 0"):
        ContinualConfig(first_test_seed=-1)


def test_the_per_example_gated_lean_store_reads_each_stimulus_present_error(getkey):
    # `pc_store_gate_example_lean`: a store without states, uniform draws, each stimulus
    # gated by its own E_r as measured at this replay, selected on its own grid.
    from pcastro.bench._continual import _grid, _tuning_key, make_learner

    name = "pc_store_gate_example_lean"
    cfg = ContinualConfig(replay_batch=4, inference_steps=2, gate_floors=(0.0, 0.5))
    made = make_learner(name, lr=1e-2, budget=24, cfg=cfg, sizes=(64, 16, 10), g0=0.5)
    assert isinstance(made, AstrocyteStore) and made.astrocytes is not None
    assert (made.states, made.per_example, made.refresh, made.priority) == (
        False,
        True,
        True,
        False,
    )
    assert made.tol == 0.0 and made.astrocytes.g0 == 0.5
    assert _tuning_key(name) == name and set(_grid(name, cfg)) == {"lr", "g0"}

    net = make_network(getkey(), (64, 16, 10))
    rule = PCRule(steps=2, solver=pc.Euler(dt=0.2))
    x = jax.random.uniform(getkey(), (4, 8, 64))
    y = jax.nn.one_hot(jax.random.randint(getkey(), (4, 8), 0, 10), 10)
    keys = jax.random.split(getkey(), 4)
    kwargs = dict(rule=rule, lr=1e-2, capacity=64, replay_batch=4, states=False)
    gated = dict(per_example=True, refresh=True)

    def run(learner, n=4):
        state = learner.init(net, key=None)
        step = eqx.filter_jit(learner.step)
        for i in range(n):
            state, status = step(state, x[i], y[i], key=keys[i], iteration=i)
            assert int(status) == int(pc.RESULTS.successful)
        return state

    uniform = run(AstrocyteStore(**kwargs))
    cells = pc.astro.Astrocytes(tau_c=2.0, c_half=0.05)
    ablated = pc.astro.Astrocytes(tau_c=2.0, c_half=0.05, ablated=True)
    silenced = run(AstrocyteStore(**kwargs, **gated, astrocytes=ablated))
    present = run(AstrocyteStore(**kwargs, **gated, astrocytes=cells))
    leaves = [jax.tree_util.tree_leaves(s.net) for s in (uniform, silenced, present)]
    # Ablated astrocytes: plain uniform replay from the same store, bit for bit.
    for u, v in zip(leaves[0], leaves[1], strict=True):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(leaves[0], leaves[2], strict=True))

    # The replayed slots' E_r are those of this replay's relaxation (what the gate read).
    learner = AstrocyteStore(**kwargs, **gated, astrocytes=cells)
    state = run(learner, n=2)
    slots = _uniform_draw(state.store, keys[2], 4)
    both = (jnp.concatenate([x[2], state.store.x[0][slots]]),
            jnp.concatenate([y[2], state.store.x[-1][slots]]))  # fmt: skip
    relaxed, _ = rule.relax(state.net, *both)
    measured = pc.astro.region_energies(relaxed, state.store.regions)
    after, _ = eqx.filter_jit(learner.step)(state, x[2], y[2], key=keys[2], iteration=2)
    last, rows = _last_rows(slots)
    np.testing.assert_allclose(after.store.region_energy[last], measured[8 + rows], rtol=1e-5)
    assert not np.allclose(after.store.region_energy[last], state.store.region_energy[last])
