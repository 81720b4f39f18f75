"""The per-example astrocyte gate: each example's gradient scaled by its own gate."""

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


def _rows(state, start, stop):
    return jax.tree_util.tree_map(lambda a: a[start:stop], state)


def _mean(trees):
    return jax.tree_util.tree_map(lambda *a: sum(a) / len(a), *trees)


@eqx.filter_jit
def _relax(net, x, y):
    return pc.infer(net, pc.init_state(net, x, y), steps=5).state


def _net(key, top):
    energy = pc.CrossEntropy() if top == "cross-entropy" else pc.Gaussian()
    return pc.mlp([4, 6, 3], key=key, output_energy=energy)


def _data(getkey, top, batch=4):
    x = jax.random.normal(getkey(), (batch, 4))
    if top == "cross-entropy":
        return x, jax.random.randint(getkey(), (batch,), 0, 3)
    return x, jax.random.normal(getkey(), (batch, 3))


def _gated(regions, *, first="sgd", **kwargs):
    cells = astro.Astrocytes(**{"tau_c": 2.0, "c_half": 0.05, **kwargs})
    opt = optax.sgd(0.1) if first == "sgd" else optax.adam(1e-2)
    return optax.chain(opt, astro.scale_by_astrocytes(cells, regions))


def _step(net, opt_state, state, *, optimizer, regions, ne, per_example=True):
    energy = astro.region_energies(state, regions, sense=_sense(opt_state))
    extra = {"per_example": True, "regions": regions} if per_example else {}
    return astro.apply_gated_grads(
        net, opt_state, state, optimizer=optimizer, region_energy=energy, ne=ne, **extra
    )


def _sense(opt_state):
    return optax.tree_utils.tree_get(opt_state, "astrocytes").sense


@pytest.mark.parametrize("top", ["gaussian", "cross-entropy"])
@pytest.mark.parametrize("columns", [(1, 1), (3, 1), (2, 3)])
def test_gated_gradients_are_the_per_example_gradients_gated_and_averaged(getkey, top, columns):
    net = _net(getkey(), top)
    regions = astro.make_regions(net, columns=columns)
    x, y = _data(getkey, top, batch=5)
    state = _relax(net, x, y)
    gates = jax.random.uniform(getkey(), (5, regions.num_regions))
    got = astro.gated_param_grads(net, state, gates=gates, regions=regions)
    # The definition, one example at a time: gate its own gradient, then average.
    want = _mean(
        [
            astro.gate_updates(pc.param_grads(net, _rows(state, b, b + 1)), gates[b], regions)
            for b in range(5)
        ]
    )
    for u, v in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)
    # Gates of 1 are the plain local gradient, bit for bit.
    ones = astro.gated_param_grads(net, state, gates=jnp.ones_like(gates), regions=regions)
    chex.assert_trees_all_equal(ones, pc.param_grads(net, state))


@pytest.mark.parametrize("sense", [astro.SquaredError(), astro.TargetExcess()])
@pytest.mark.parametrize("columns", [(1, 1), (2, 3)])
def test_a_batch_of_one_is_the_batch_gate_bit_for_bit(getkey, sense, columns):
    net = _net(getkey(), "cross-entropy")
    regions = astro.make_regions(net, columns=columns)
    opt = _gated(regions, first="adam", sense=sense, theta=0.01)
    x, y = _data(getkey, "cross-entropy", batch=1)
    runs = []
    for per_example in (False, True):
        model, opt_state = net, opt.init(_params(net))
        for ne in (1.0, 0.5, 0.0):  # calcium rises, then decays
            state = _relax(model, x, y)
            model, opt_state = _step(
                model, opt_state, state, optimizer=opt, regions=regions, ne=ne,
                per_example=per_example,
            )  # fmt: skip
        runs.append((_params(model), opt_state))
    assert np.any(np.asarray(optax.tree_utils.tree_get(runs[0][1], "calcium")) > 0)
    chex.assert_trees_all_equal(*runs)


def _pair_below_and_above(getkey, net, regions):
    """Two examples with the same input: the first far from its target, the second close
    to it, and a threshold per region between their energies."""
    x = jnp.repeat(jax.random.normal(getkey(), (1, 4)), 2, axis=0)
    mu = jax.vmap(net)(x)
    d = jax.random.normal(getkey(), (2, 3))
    d = d / jnp.linalg.norm(d, axis=1, keepdims=True)
    y = mu + jnp.array([[3.0], [0.1]]) * d  # in different directions
    state = _relax(net, x, y)
    energy = astro.region_energies(state, regions)
    assert np.all(energy[0] > 100 * energy[1]) and np.all(energy[1] > 0)
    return state, jnp.sqrt(energy[0] * energy[1])


@pytest.mark.parametrize("shut_by", ["ne", "threshold"])
def test_a_shut_example_adds_nothing_to_the_update(getkey, shut_by):
    net = _net(getkey(), "gaussian")
    regions = astro.make_regions(net)
    state, theta = _pair_below_and_above(getkey, net, regions)
    if shut_by == "ne":  # both above threshold, NE for the first example only
        theta, ne = 0.0, jnp.array([[1.0], [0.0]])
    else:  # the same NE for both, the second below threshold
        ne = 1.0
    opt = _gated(regions, theta=theta)  # g0 = 0: no calcium, no plasticity
    opt_state = opt.init(_params(net))
    pair, pair_state = _step(net, opt_state, state, optimizer=opt, regions=regions, ne=ne)
    first = _rows(state, 0, 1)
    alone, _ = _step(net, opt_state, first, optimizer=opt, regions=regions, ne=1.0)
    # The pair's update is the first example's alone, halved by the mean over two.
    for p0, p, a in zip(_leaves(net), _leaves(pair), _leaves(alone), strict=True):
        np.testing.assert_allclose(p - p0, 0.5 * (a - p0), rtol=1e-5, atol=1e-8)
    # The calcium is the mean of what each example alone would leave: half the first's.
    _, alone_state = _step(net, opt_state, first, optimizer=opt, regions=regions, ne=1.0)
    np.testing.assert_allclose(
        optax.tree_utils.tree_get(pair_state, "calcium"),
        0.5 * optax.tree_utils.tree_get(alone_state, "calcium"),
        rtol=1e-6,
    )
    if shut_by == "threshold":  # the batch gate lets the second example's gradient in
        batch, _ = _step(net, opt_state, state, optimizer=opt, regions=regions, ne=ne,
                         per_example=False)  # fmt: skip
        ratio = (_leaves(batch)[0] - _leaves(net)[0]) / (_leaves(alone)[0] - _leaves(net)[0])
        ratio = np.asarray(ratio).ravel()
        assert not np.allclose(ratio, ratio[0], rtol=1e-3)  # not a multiple of it


def _leaves(net):
    return jax.tree_util.tree_leaves(_params(net))


@pytest.mark.parametrize("columns", [(1, 1), (3, 1)])
def test_lefton_invariants_hold_per_example(getkey, columns):
    net = _net(getkey(), "gaussian")
    regions = astro.make_regions(net, columns=columns)
    x, y = _data(getkey, "gaussian")
    per_example_ne = jnp.array([[0.0], [5.0], [1.0], [2.0]])

    def learn(opt, ne, *, updates=3):
        model, opt_state = net, opt.init(_params(net))
        for _ in range(updates):
            state = _relax(model, x, y)
            if astro.has_gate(opt_state):
                model, opt_state = _step(
                    model, opt_state, state, optimizer=opt, regions=regions, ne=ne
                )
            else:
                model, opt_state = pc.apply_param_grads(model, opt_state, state, optimizer=opt)
        return model, opt_state

    # Ablated astrocytes: plain PC learning, bit for bit, whatever the NE.
    ablated = _gated(regions, first="adam", ablated=True)
    plain, _ = learn(optax.adam(1e-2), None)
    for ne in (0.0, 5.0, per_example_ne):
        chex.assert_trees_all_equal(_params(learn(ablated, ne)[0]), _params(plain))
    # No NE anywhere: no calcium, and with g0 = 0 no change at all.
    present = _gated(regions, first="adam")
    for ne in (0.0, jnp.zeros((4, 1)), jnp.zeros((4, regions.num_regions))):
        quiet, opt_state = learn(present, ne)
        np.testing.assert_array_equal(optax.tree_utils.tree_get(opt_state, "calcium"), 0.0)
        chex.assert_trees_all_equal(_params(quiet), _params(net))
    # With NE the same astrocytes learn; with a floor and no NE they learn too.
    assert not np.array_equal(_leaves(learn(present, per_example_ne)[0])[0], _leaves(net)[0])
    floor = _gated(regions, first="adam", g0=0.3)
    assert not np.array_equal(_leaves(learn(floor, 0.0)[0])[0], _leaves(net)[0])


def test_target_excess_columns_open_each_example_only_its_own_class(getkey):
    net = _net(getkey(), "cross-entropy")
    regions = astro.make_regions(net, columns=(2, 3))  # 2 hidden columns, 3 output units
    x = jax.random.normal(getkey(), (2, 4))
    y = jnp.array([0, 2])  # no example of class 1
    state = _relax(net, x, y)
    cells = dict(sense=astro.TargetExcess(), theta=0.0, k=2.0, c_half=0.05, tau_c=2.0)
    opt = _gated(regions, **cells)
    opt_state = opt.init(_params(net))
    new, new_state = _step(net, opt_state, state, optimizer=opt, regions=regions, ne=1.0)
    # The formulas by hand, from zero calcium: c^b = (dt / tau_c) k NE s(E^+_b - theta).
    excess = astro.region_energies(state, regions, sense=astro.TargetExcess())
    c = 0.5 * 2.0 * np.maximum(0.0, np.tanh(np.asarray(excess)))
    g = c / (c + 0.05)
    top = g[:, 2:]  # example x output unit
    assert np.all(top[[0, 1], [0, 2]] > 0) and np.all(top[[0, 0, 1, 1], [1, 2, 0, 1]] == 0)
    np.testing.assert_allclose(optax.tree_utils.tree_get(new_state, "calcium"), c.mean(0),
                               rtol=1e-6)  # fmt: skip
    # Plain SGD before the gate: the update is -lr times the mean of the gated gradients.
    grads = [pc.param_grads(net, _rows(state, b, b + 1)) for b in range(2)]
    want = _mean([astro.gate_updates(grads[b], jnp.asarray(g[b]), regions) for b in range(2)])
    for p0, p, d in zip(_leaves(net), _leaves(new), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(p - p0, -0.1 * d, rtol=1e-4, atol=1e-7)
    # Output unit 1 (class 1, not presented): its synapses stay exactly as they were;
    # unit 0 learns from example 0 alone, not from example 1's error there.
    top0, top1 = net.nodes[1].modules[0], new.nodes[1].modules[0]
    np.testing.assert_array_equal(top0.weight[1], top1.weight[1])
    alone = astro.gate_updates(grads[0], jnp.asarray(g[0]), regions).nodes[1].modules[0].weight
    np.testing.assert_allclose(top1.weight[0] - top0.weight[0], -0.1 * 0.5 * alone[0], rtol=1e-4)


def test_per_example_jit_equals_eager_and_traces_once(getkey):
    net = _net(getkey(), "gaussian")
    regions = astro.make_regions(net, columns=(3, 1))
    opt = _gated(regions, first="adam")
    x, y = _data(getkey, "gaussian")
    state = _relax(net, x, y)
    opt_state = opt.init(_params(net))

    @eqx.debug.assert_max_traces(max_traces=1)
    def update(n, s, ne):
        return _step(n, s, state, optimizer=opt, regions=regions, ne=ne)

    jitted = eqx.filter_jit(update)
    a = jitted(net, opt_state, jnp.full((4, 1), 2.0))
    jitted(net, opt_state, jnp.full((4, 1), 3.0))
    b = _step(net, opt_state, state, optimizer=opt, regions=regions, ne=jnp.full((4, 1), 2.0))
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


def test_per_example_errors_name_what_was_received(getkey):
    net = _net(getkey(), "gaussian")
    regions = astro.make_regions(net)
    opt = _gated(regions)
    x, y = _data(getkey, "gaussian")
    state = _relax(net, x, y)
    opt_state = opt.init(_params(net))
    energy = astro.region_energies(state, regions)

    def call(**kwargs):
        args = dict(optimizer=opt, region_energy=energy, ne=1.0, per_example=True, regions=regions)
        return astro.apply_gated_grads(net, opt_state, state, **{**args, **kwargs})

    with pytest.raises(ValueError, match=r"per_example=True\)` needs the regions"):
        call(regions=None)
    with pytest.raises(ValueError, match=r"\(regions=\.\.\.\)` is read only by the per-example"):
        call(per_example=False)
    with pytest.raises(ValueError, match=r"energies of every example, shape \(batch, 2\).*\(2,\)"):
        call(region_energy=energy.mean(0))
    with pytest.raises(ValueError, match=r"`region_energy` has 3 rows but the state holds 4"):
        call(region_energy=energy[:3])
    with pytest.raises(ValueError, match=r"`ne` has shape \(4,\).*per example, shape \(4, 1\)"):
        call(ne=jnp.ones(4))
    with pytest.raises(ValueError, match=r"`ne` has shape \(4, 1\); .*scalar or one value per"):
        call(ne=jnp.ones((4, 1)), per_example=False, regions=None)  # the batch gate
    twice = optax.chain(opt, astro.scale_by_astrocytes(astro.Astrocytes(), regions))
    with pytest.raises(ValueError, match="exactly one astrocyte gate.*holds 2"):
        astro.apply_gated_grads(
            net, twice.init(_params(net)), state, optimizer=twice, region_energy=energy,
            ne=1.0, per_example=True, regions=regions,
        )  # fmt: skip
    gate = astro.scale_by_astrocytes(astro.Astrocytes(), regions)
    with pytest.raises(ValueError, match="per-example gate .* reads every example"):
        gate.update(_params(net), gate.init(_params(net)), per_example=True)
    with pytest.raises(ValueError, match=r"`gates` has shape \(4, 3\).*shape \(4, 2\)"):
        astro.gated_param_grads(net, state, gates=jnp.ones((4, 3)), regions=regions)
