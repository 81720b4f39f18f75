import chex
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


def _data(getkey, batch=4):
    x = jax.random.normal(getkey(), (batch, 4))
    y = jax.random.normal(getkey(), (batch, 3))
    return x, y


@eqx.filter_jit
def _relax(net, x, y):
    return pc.infer(net, pc.init_state(net, x, y), steps=5).state


def _gated_step(net, opt_state, x, y, ne, *, optimizer, regions):
    state = _relax(net, x, y)
    energy = astro.region_energies(state, regions)
    return astro.apply_gated_grads(
        net, opt_state, state, optimizer=optimizer, region_energy=energy, ne=ne
    )


def _learn(net, optimizer, regions, x, y, ne, *, updates=3):
    """`updates` gated updates under NE `ne`; with a plain optimiser, plain PC updates
    (`ne` unused: no gate listens)."""
    opt_state = optimizer.init(_params(net))
    if not astro.has_gate(opt_state):
        for _ in range(updates):
            net, opt_state = pc.apply_param_grads(
                net, opt_state, _relax(net, x, y), optimizer=optimizer
            )
        return net, opt_state
    for _ in range(updates):
        net, opt_state = _gated_step(
            net, opt_state, x, y, jnp.asarray(ne, jnp.float32), optimizer=optimizer, regions=regions
        )
    return net, opt_state


def test_region_energies_are_half_summed_squared_errors_per_block(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    x, y = _data(getkey)
    state = _relax(net, x, y)
    e1, e2 = state.e[1], state.e[2]
    per_node = astro.region_energies(state, astro.make_regions(net))
    expected = jnp.stack([0.5 * jnp.sum(e1**2, 1), 0.5 * jnp.sum(e2**2, 1)], axis=1)
    np.testing.assert_allclose(per_node, expected, rtol=1e-6)
    cols = astro.region_energies(state, astro.make_regions(net, columns=(3, 1)))
    expected = jnp.stack(
        [
            0.5 * jnp.sum(e1[:, 0:2] ** 2, 1),
            0.5 * jnp.sum(e1[:, 2:4] ** 2, 1),
            0.5 * jnp.sum(e1[:, 4:6] ** 2, 1),
            0.5 * jnp.sum(e2**2, 1),
        ],
        axis=1,
    )
    np.testing.assert_allclose(cols, expected, rtol=1e-6)
    # The regions of a node add up to its Gaussian energy.
    np.testing.assert_allclose(cols[:, :3].sum(1), pc.local_energies(net, state)[:, 0], rtol=1e-5)


def test_make_regions_rejects_bad_columns(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    with pytest.raises(ValueError, match="6 units .* positive divisor of 6"):
        astro.make_regions(net, columns=(4, 1))
    with pytest.raises(ValueError, match="3 entries but the network has 2 predicted nodes"):
        astro.make_regions(net, columns=(1, 1, 1))
    assert astro.make_regions(net, columns=(2, 3)).num_regions == 5


def test_calcium_step_and_gate_follow_the_written_formulas():
    a = astro.Astrocytes(
        tau_c=4.0, k=2.0, theta=jnp.array([1.0, 0.5]), slope=3.0, g0=0.2, c_half=0.5
    )
    c = jnp.array([0.3, 0.1])
    energy = jnp.array([0.4, 2.0])  # region 0 below threshold, region 1 above
    new = a.step(c, energy, 1.5)
    s = np.maximum(0.0, np.tanh(3.0 * (np.asarray(energy) - np.array([1.0, 0.5]))))
    expected = np.asarray(c) + (1.0 / 4.0) * (-np.asarray(c) + 2.0 * 1.5 * s)
    np.testing.assert_allclose(new, expected, rtol=1e-6)
    assert s[0] == 0.0  # exactly no drive below threshold
    gate = a.gate(new)
    np.testing.assert_allclose(gate, 0.2 + 0.8 * expected / (expected + 0.5), rtol=1e-6)
    assert float(a.gate(jnp.array(0.0))) == pytest.approx(0.2)
    silenced = astro.Astrocytes(tau_c=4.0, k=2.0, ablated=True)
    np.testing.assert_array_equal(silenced.gate(new), jnp.ones(2))
    np.testing.assert_array_equal(silenced.step(c, energy, 5.0), silenced.step(c, energy, 0.0))


def test_ablated_astrocytes_make_ne_exactly_ineffective(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)

    opts = {
        ablated: optax.chain(
            optax.adam(1e-2),
            astro.scale_by_astrocytes(astro.Astrocytes(ablated=ablated), regions),
        )
        for ablated in (True, False)
    }

    def run(ablated, ne):
        return _learn(net, opts[ablated], regions, x, y, ne)[0]

    quiet, aroused = run(True, 0.0), run(True, 5.0)
    chex.assert_trees_all_equal(_params(quiet), _params(aroused))  # bit for bit
    # Ablated = plain PC learning with the same optimiser, bit for bit.
    plain = _learn(net, optax.adam(1e-2), regions, x, y, 0.0)[0]
    chex.assert_trees_all_equal(_params(quiet), _params(plain))
    # With the astrocytes present, the same NE contrast does change learning.
    present_quiet, present_aroused = run(False, 0.0), run(False, 5.0)
    assert not np.array_equal(_leaves(present_quiet)[0], _leaves(present_aroused)[0])


def test_ne_changes_learning_only_where_the_gate_opens(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)

    # Region 0 (node 1) gets a threshold a little above its error, region 1 (node 2) zero.
    start = astro.region_energies(_relax(net, x, y), regions).mean(axis=0)
    theta = jnp.array([float(start[0]) + 1.0, 0.0])

    def gated_sgd(g0):
        cells = astro.Astrocytes(theta=theta, g0=g0, tau_c=2.0)
        return optax.chain(optax.sgd(0.1), astro.scale_by_astrocytes(cells, regions))

    opts = {0.0: gated_sgd(0.0), 0.3: gated_sgd(0.3)}

    def run(ne, g0=0.0):
        return _learn(net, opts[g0], regions, x, y, ne)

    def node(n, i):
        return jax.tree_util.tree_leaves(_params(n).nodes[i - 1])

    quiet, _ = run(0.0)
    aroused, state = run(5.0)
    calcium = optax.tree_utils.tree_get(state, "calcium")
    assert calcium[0] == 0.0 and calcium[1] > 0.0
    for a, b, c in zip(node(net, 1), node(quiet, 1), node(aroused, 1), strict=True):
        np.testing.assert_array_equal(a, b)  # below threshold: no change, with or without NE
        np.testing.assert_array_equal(a, c)
    for a, b, c in zip(node(net, 2), node(quiet, 2), node(aroused, 2), strict=True):
        np.testing.assert_array_equal(a, b)  # no NE, g0 = 0: no learning
        assert not np.allclose(a, c)  # NE opens the gate above threshold
    floor, _ = run(0.0, g0=0.3)  # without NE the floor sets the learning
    assert not np.allclose(node(net, 2)[0], node(floor, 2)[0])


def test_uncovered_regions_learn_as_without_astrocytes(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net, columns=(3, 1))  # 4 regions: 3 hidden columns, output
    x, y = _data(getkey)
    mask = jnp.array([True, False, True, False])

    def gated(covered=True, ablated=False):
        cells = astro.Astrocytes(tau_c=2.0, g0=0.0, covered=covered, ablated=ablated)
        return optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(cells, regions))

    def rows(n, region):
        linear = n.nodes[0].modules[0] if region < 3 else n.nodes[1].modules[0]
        sl = slice(2 * region, 2 * region + 2) if region < 3 else slice(None)
        return np.asarray(linear.weight[sl]), np.asarray(linear.bias[sl])

    # One update: the same errors everywhere, so each region's synapses can be compared.
    partial, state = _learn(net, gated(mask), regions, x, y, 5.0, updates=1)
    full, _ = _learn(net, gated(True), regions, x, y, 5.0, updates=1)
    plain, _ = _learn(net, optax.adam(1e-2), regions, x, y, 0.0, updates=1)
    quiet, _ = _learn(net, gated(mask), regions, x, y, 0.0, updates=1)
    calcium = optax.tree_utils.tree_get(state, "calcium")
    np.testing.assert_array_equal(calcium[~mask], 0.0)  # no astrocyte, no calcium
    assert np.all(calcium[mask] > 0.0)
    for region, covered in enumerate(np.asarray(mask)):
        ref = full if covered else plain
        for a, b in zip(rows(partial, region), rows(ref, region), strict=True):
            np.testing.assert_array_equal(a, b)
        if not covered:  # NE has no effect where no astrocyte sits
            for a, b in zip(rows(partial, region), rows(quiet, region), strict=True):
                np.testing.assert_array_equal(a, b)
    # No region covered = ablated astrocytes = plain learning, over several updates.
    none, _ = _learn(net, gated(jnp.zeros(4, bool)), regions, x, y, 5.0)
    ablated, _ = _learn(net, gated(ablated=True), regions, x, y, 5.0)
    plain, _ = _learn(net, optax.adam(1e-2), regions, x, y, 5.0)
    chex.assert_trees_all_equal(_params(none), _params(ablated), _params(plain))


def test_coverage_masks_are_checked():
    with pytest.raises(ValueError, match=r"covered=.*boolean mask.*dtype float32"):
        astro.Astrocytes(covered=jnp.ones(3))
    with pytest.raises(ValueError, match=r"covered=.*shape \(2, 2\)"):
        astro.Astrocytes(covered=jnp.ones((2, 2), bool))
    net = pc.mlp([4, 6, 3], key=jax.random.key(0))
    regions = astro.make_regions(net)
    with pytest.raises(ValueError, match=r"covered=.*shape \(3,\).*2 regions"):
        astro.scale_by_astrocytes(astro.Astrocytes(covered=jnp.ones(3, bool)), regions)


def _closed_first_region_optimizer(order, regions, theta):
    cells = astro.Astrocytes(theta=theta, tau_c=1.0)
    gate = astro.scale_by_astrocytes(cells, regions)
    if order == "sgd-after-gate":
        return optax.chain(gate, optax.sgd(0.1))
    return optax.chain(optax.adam(1e-2), gate)


@pytest.mark.parametrize("order", ["sgd-after-gate", "gate-after-adam"])
@pytest.mark.parametrize("columns", [1, 3])
def test_a_closed_gate_gives_exactly_no_parameter_change(getkey, order, columns):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net, columns=(columns, 1))
    theta = jnp.zeros(regions.num_regions).at[0].set(1e6)  # region 0 never opens
    opt = _closed_first_region_optimizer(order, regions, theta)
    x, y = _data(getkey)
    learned, _ = _learn(net, opt, regions, x, y, 5.0)
    before, after = net.nodes[0].modules[0], learned.nodes[0].modules[0]
    rows = 6 // columns  # the output units of region 0
    np.testing.assert_array_equal(before.weight[:rows], after.weight[:rows])
    np.testing.assert_array_equal(before.bias[:rows], after.bias[:rows])
    if columns > 1:  # the other columns of the same layer learn
        assert not np.allclose(before.weight[rows:], after.weight[rows:])
    other = (net.nodes[1].modules[0].weight, learned.nodes[1].modules[0].weight)
    assert not np.allclose(*other)


def test_the_gate_goes_after_adam_because_momentum_leaks_before_it(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)
    cells = astro.Astrocytes(tau_c=1.0)  # calcium follows NE within one update
    gate = astro.scale_by_astrocytes(cells, regions)

    def open_then_close(opt):
        opt_state = opt.init(_params(net))
        model = net
        for ne in (5.0, 5.0, 5.0, 0.0):  # learn, then NE stops: the gate closes
            before = model
            model, opt_state = _gated_step(
                model, opt_state, x, y, jnp.asarray(ne), optimizer=opt, regions=regions
            )
        assert float(optax.tree_utils.tree_get(opt_state, "calcium").max()) == 0.0
        return before, model

    before, after = open_then_close(optax.chain(optax.adam(1e-2), gate))
    for a, b in zip(_leaves(before), _leaves(after), strict=True):
        np.testing.assert_array_equal(a, b)
    before, after = open_then_close(optax.chain(gate, optax.adam(1e-2)))
    moved = [not np.array_equal(a, b) for a, b in zip(_leaves(before), _leaves(after), strict=True)]
    assert all(moved)  # Adam's momentum keeps moving the closed regions


def test_a_small_gate_before_adam_is_normalised_away(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)
    nearly_closed = astro.scale_by_astrocytes(astro.Astrocytes(g0=0.01), regions)
    full = _learn(net, optax.adam(1e-2), regions, x, y, 0.0, updates=1)[0]
    before = _learn(
        net, optax.chain(nearly_closed, optax.adam(1e-2)), regions, x, y, 0.0, updates=1
    )[0]
    after = _learn(
        net, optax.chain(optax.adam(1e-2), nearly_closed), regions, x, y, 0.0, updates=1
    )[0]
    w0 = net.nodes[0].modules[0].weight
    step = lambda n: np.abs(n.nodes[0].modules[0].weight - w0).mean()  # noqa: E731
    assert step(before) > 0.5 * step(full)  # the gate barely slowed Adam
    np.testing.assert_allclose(step(after), 0.01 * step(full), rtol=1e-3)


def test_columns_on_a_module_without_mappable_outputs_raise(getkey):
    def build(key1, key2):
        modules = [eqx.nn.MLP(4, 6, 8, 1, key=key1), eqx.nn.Linear(6, 3, key=key2)]
        return pc.chain(modules, input_shape=(4,))

    net = eqx.filter_eval_shape(build, getkey(), getkey())  # only the structure matters
    regions = astro.make_regions(net, columns=(2, 1))
    gate = astro.scale_by_astrocytes(astro.Astrocytes(), regions)
    with pytest.raises(
        ValueError, match="Node 1 is split into columns=2, but its module 0 is a MLP"
    ):
        gate.init(_params(net))
    # One region per node works with any module.
    per_node = astro.scale_by_astrocytes(astro.Astrocytes(), astro.make_regions(net))
    per_node.init(_params(net))


def test_columns_reach_a_linear_behind_a_reshape_as_they_reach_it_alone(getkey):
    # A conv body's first dense layer is `Sequential([Reshape((-1,)), Linear])`: its
    # output units are the Linear's rows, so column gating must act on it exactly as on
    # the bare Linear.
    net = pc.mlp([4, 6, 3], key=getkey())
    wrapped = eqx.tree_at(
        lambda n: n.nodes[0].modules,
        net,
        (eqx.nn.Sequential([pc.Reshape((-1,)), net.nodes[0].modules[0]]),),
    )
    regions = astro.make_regions(net, columns=(3, 1))
    x, y = _data(getkey)
    cells = astro.Astrocytes(tau_c=2.0, g0=0.0, covered=jnp.array([True, False, True, True]))

    def gated():
        return optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(cells, regions))

    # One update: the same errors everywhere, so each column's rows can be compared.
    bare, _ = _learn(net, gated(), regions, x, y, 5.0, updates=1)
    behind, _ = _learn(wrapped, gated(), regions, x, y, 5.0, updates=1)
    plain, _ = _learn(net, optax.adam(1e-2), regions, x, y, 0.0, updates=1)
    linear = behind.nodes[0].modules[0].layers[-1]
    np.testing.assert_allclose(linear.weight, bare.nodes[0].modules[0].weight, rtol=1e-6)
    np.testing.assert_allclose(linear.bias, bare.nodes[0].modules[0].bias, rtol=1e-6)
    # The gate acted: column 1 (rows 2-3, uncovered) learns as without astrocytes, the
    # covered columns do not.
    np.testing.assert_array_equal(linear.weight[2:4], plain.nodes[0].modules[0].weight[2:4])
    assert not np.allclose(linear.weight[:2], plain.nodes[0].modules[0].weight[:2])
    # Parameters before the Linear cannot be mapped to its output units: refused.
    two = eqx.tree_at(
        lambda n: n.nodes[0].modules,
        net,
        (eqx.nn.Sequential([eqx.nn.Linear(4, 4, key=getkey()), net.nodes[0].modules[0]]),),
    )
    gate = astro.scale_by_astrocytes(astro.Astrocytes(), regions)
    with pytest.raises(ValueError, match="module 0 is a Sequential: .* whose other layers"):
        gate.init(_params(two))


def test_gate_errors_name_what_was_received(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    gate = astro.scale_by_astrocytes(astro.Astrocytes(), regions)
    params = _params(net)
    state = gate.init(params)
    with pytest.raises(ValueError, match=r"`region_energy` has shape \(3,\).*2 regions"):
        gate.update(params, state, params, region_energy=jnp.ones(3), ne=1.0)
    with pytest.raises(ValueError, match=r"`ne` has shape \(5,\)"):
        gate.update(params, state, params, region_energy=jnp.ones(2), ne=jnp.ones(5))
    with pytest.raises(TypeError, match="expects parameters shaped like"):
        gate.init({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"theta=.*shape \(3,\).*2 regions"):
        astro.scale_by_astrocytes(astro.Astrocytes(theta=jnp.ones(3)), regions)
    with pytest.raises(ValueError, match=r"dt=.*in \(0, tau_c\]"):
        astro.Astrocytes(tau_c=1.0, dt=2.0)
    with pytest.raises(ValueError, match=r"g0=.*in \[0, 1\]"):
        astro.Astrocytes(g0=1.5)


def test_gated_update_jit_equals_eager_and_traces_once(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net, columns=(2, 1))
    opt = optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(astro.Astrocytes(), regions))
    x, y = _data(getkey)
    opt_state = opt.init(_params(net))
    state = _relax(net, x, y)
    energy = astro.region_energies(state, regions)

    @eqx.debug.assert_max_traces(max_traces=1)
    def update(n, s, ne):
        return astro.apply_gated_grads(n, s, state, optimizer=opt, region_energy=energy, ne=ne)

    jitted = eqx.filter_jit(update)
    a = jitted(net, opt_state, jnp.asarray(2.0))
    jitted(net, opt_state, jnp.asarray(3.0))
    b = astro.apply_gated_grads(net, opt_state, state, optimizer=opt, region_energy=energy, ne=2.0)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


def test_inside_incremental_pc_the_gate_holds_its_calcium(getkey):
    # `incremental_step` passes no extra arguments: the gate applies the calcium it
    # holds, which the caller sets between presentations.
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)
    opt = optax.chain(optax.sgd(0.1), astro.scale_by_astrocytes(astro.Astrocytes(), regions))
    closed = opt.init(_params(net))
    node_1_only = optax.tree_utils.tree_set(closed, calcium=jnp.array([1.0, 0.0]))
    for opt_state, learns in ((closed, (False, False)), (node_1_only, (True, False))):
        new, new_opt_state, _ = pc.incremental_step(
            net, opt_state, pc.init_state(net, x, y), optimizer=opt, steps=3
        )
        np.testing.assert_array_equal(
            optax.tree_utils.tree_get(new_opt_state, "calcium"),
            optax.tree_utils.tree_get(opt_state, "calcium"),
        )
        for i, moved in enumerate(learns):
            a = net.nodes[i].modules[0].weight
            b = new.nodes[i].modules[0].weight
            assert moved != np.array_equal(a, b)


def test_train_step_with_a_gate_needs_ne_and_then_learns(getkey):
    # The silent failure this guards: a gate chained into `train_step` got no NE, kept its
    # calcium at 0, and with g0 = 0 left the network bit for bit unchanged.
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)
    opt = optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(astro.Astrocytes(), regions))
    opt_state = opt.init(_params(net))
    with pytest.raises(ValueError, match="contains an astrocyte gate.*Pass `ne=`"):
        pc.train_step(net, opt_state, x, y, optimizer=opt, steps=3)
    with pytest.raises(ValueError, match="contains an astrocyte gate"):
        pc.apply_param_grads(net, opt_state, _relax(net, x, y), optimizer=opt)
    new, new_state, info = pc.train_step(net, opt_state, x, y, optimizer=opt, steps=3, ne=1.0)
    assert int(info.status) == 0
    calcium = optax.tree_utils.tree_get(new_state, "calcium")
    assert np.all(np.asarray(calcium) > 0)
    assert not np.array_equal(_leaves(new)[0], _leaves(net)[0])
    # The gate read the relaxed states' own region energies: the same as feeding them.
    state = pc.infer(net, pc.init_state(net, x, y), steps=3).state
    fed, fed_state = astro.apply_gated_grads(
        net, opt_state, state, optimizer=opt, region_energy=astro.region_energies(state, regions),
        ne=1.0,
    )  # fmt: skip
    np.testing.assert_allclose(
        np.asarray(optax.tree_utils.tree_get(fed_state, "calcium")), np.asarray(calcium),
        rtol=1e-6,
    )  # fmt: skip


def test_ne_without_a_gate_is_refused(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)
    opt = optax.adam(1e-2)
    opt_state = opt.init(_params(net))
    with pytest.raises(ValueError, match="no astrocyte gate to listen"):
        pc.train_step(net, opt_state, x, y, optimizer=opt, steps=3, ne=1.0)
    state = _relax(net, x, y)
    with pytest.raises(ValueError, match="`apply_gated_grads` got `ne`.*no astrocyte gate"):
        astro.apply_gated_grads(
            net, opt_state, state, optimizer=opt,
            region_energy=astro.region_energies(state, regions), ne=1.0,
        )  # fmt: skip
    store = astro.make_store(net, regions, capacity=2)
    store, _ = astro.snapshot(store, state, step=3)
    with pytest.raises(ValueError, match="`consolidate` got `ne`"):
        astro.consolidate(net, opt_state, store, optimizer=opt, ne=1.0, tol=0.1, steps=2)
    gated = optax.chain(opt, astro.scale_by_astrocytes(astro.Astrocytes(), regions))
    with pytest.raises(ValueError, match="optimiser of `consolidate` contains an astrocyte"):
        astro.consolidate(net, gated.init(_params(net)), store, optimizer=gated, tol=0.1, steps=2)
    # The gate itself: NE without energies (or the reverse) cannot advance the calcium.
    gate = astro.scale_by_astrocytes(astro.Astrocytes(), regions)
    with pytest.raises(ValueError, match="needs both the region energies"):
        gate.update(_params(net), gate.init(_params(net)), ne=1.0)


@pytest.mark.parametrize("tol", [float("nan"), -1.0])
def test_consolidate_refuses_a_tolerance_that_discards_nothing(getkey, tol):
    net = pc.mlp([4, 6, 3], key=getkey())
    regions = astro.make_regions(net)
    x, y = _data(getkey)
    store, _ = astro.snapshot(astro.make_store(net, regions, capacity=2), _relax(net, x, y), step=3)
    opt = optax.adam(1e-2)
    with pytest.raises(
        ValueError, match=r"must be a number >= 0.*Pass 0 to replay without discarding"
    ):
        astro.consolidate(net, opt.init(_params(net)), store, optimizer=opt, tol=tol, steps=2)
