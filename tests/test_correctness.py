"""Regression tests for five places where the core's maths was once wrong.

Each test reproduces the failing case in float64 against a hand-written expectation.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc

SOLVERS = [
    pc.Euler(dt=0.1),
    pc.OptaxSolver(optax.sgd(0.1)),
    pc.OptaxSolver(optax.sgd(0.05, momentum=0.9)),
    pc.OptaxSolver(optax.adamw(0.1, weight_decay=0.5)),
]
SOLVER_IDS = ["euler", "sgd", "momentum", "adamw"]


@pytest.fixture
def f64():
    with jax.enable_x64(True):
        yield


def _setup(getkey, **kwargs):
    net = pc.mlp([3, 4, 2], key=getkey(), dtype=jnp.float64, **kwargs)
    x = jax.random.normal(getkey(), (2, 3), dtype=jnp.float64)
    y = jax.random.normal(getkey(), (2, 2), dtype=jnp.float64)
    return net, x, y


# 1. Leaky error neurons are read at the returned states.
def test_unit_leak_returns_the_instant_errors_of_the_returned_states(f64, getkey):
    key = getkey()
    instant, x, y = _setup(lambda: key)
    unit = pc.mlp([3, 4, 2], key=key, dtype=jnp.float64, tau_e=1.0)
    a = pc.infer(instant, pc.init_state(instant, x, y), steps=5).state
    b = pc.infer(unit, pc.init_state(unit, x, y), steps=5).state
    for i in (1, 2):
        np.testing.assert_allclose(a.x[i], b.x[i], atol=1e-12)
        np.testing.assert_allclose(a.e[i], b.e[i], atol=1e-12)
    # And the same weights after one training step.
    opt = optax.sgd(1.0)
    na, _, _ = pc.train_step(
        instant, opt.init(eqx.filter(instant, eqx.is_inexact_array)), x, y, optimizer=opt, steps=5
    )
    nb, _, _ = pc.train_step(
        unit, opt.init(eqx.filter(unit, eqx.is_inexact_array)), x, y, optimizer=opt, steps=5
    )
    for la, lb in zip(jax.tree_util.tree_leaves(na), jax.tree_util.tree_leaves(nb)):
        np.testing.assert_allclose(la, lb, atol=1e-12)


def test_slow_leak_errors_follow_the_integration_rule(f64, getkey):
    net, x, y = _setup(getkey, tau_e=3.0)
    state = pc.init_state(net, x, y)
    before = pc.infer(net, state, steps=4).state
    after = pc.infer(net, state, steps=5).state
    # The returned error neurons have integrated the error at the returned states once.
    instant = pc.errors(net, after)
    for i in (1, 2):
        expected = before.e[i] + (instant[i] - before.e[i]) / 3.0
        np.testing.assert_allclose(after.e[i], expected, atol=1e-12)


def test_leaky_inference_resumes_exactly(f64, getkey):
    net, x, y = _setup(getkey, tau_e=3.0)
    state = pc.init_state(net, x, y)
    # A solver without running state resumes from the states alone (AdaptiveEuler needs
    # its `solver_state` back, tested in test_solvers.py).
    euler = pc.Euler(dt=0.1)
    straight = pc.infer(net, state, solver=euler, steps=8).state
    half = pc.infer(net, state, solver=euler, steps=3).state
    resumed = pc.infer(net, half, solver=euler, steps=5).state
    for i in (1, 2):
        np.testing.assert_allclose(resumed.x[i], straight.x[i], atol=1e-12)
        np.testing.assert_allclose(resumed.e[i], straight.e[i], atol=1e-12)


# 2. Clamped units never move, whatever the solver.
@pytest.mark.parametrize("solver", SOLVERS, ids=SOLVER_IDS)
def test_partial_clamps_hold_under_every_solver(f64, getkey, solver):
    net, x, y = _setup(getkey)
    mask = jnp.array([1.0, 1.0, 0.0])
    state = pc.init_state(net, x, y, x_mask=mask)
    sol = pc.infer(net, state, solver=solver, steps=10)
    np.testing.assert_array_equal(sol.state.x[0][:, :2], x[:, :2])
    np.testing.assert_array_equal(sol.state.x[2], state.x[2])
    assert not np.allclose(sol.state.x[0][:, 2], 0.0)


# 3. The reported energy is the energy at the returned states.
@pytest.mark.parametrize("tol", [None, 1e-6])
@pytest.mark.parametrize("tau_e", [None, 2.0])
def test_solution_energy_is_at_the_returned_states(f64, getkey, tol, tau_e):
    net, x, y = _setup(getkey, tau_e=tau_e)
    sol = pc.infer(
        net, pc.init_state(net, x, y), solver=pc.Euler(dt=0.3), steps=3, tol=tol, throw=False
    )
    np.testing.assert_allclose(sol.energy, jnp.mean(pc.energy(net, sol.state)), rtol=1e-12)


def test_train_step_energy_is_at_the_relaxed_states(f64, getkey):
    net, x, y = _setup(getkey)
    opt = optax.sgd(0.1)
    _, _, info = pc.train_step(
        net,
        opt.init(eqx.filter(net, eqx.is_inexact_array)),
        x,
        y,
        optimizer=opt,
        solver=pc.Euler(dt=0.3),
        steps=3,
    )
    relaxed = pc.infer(net, pc.init_state(net, x, y), solver=pc.Euler(dt=0.3), steps=3)
    np.testing.assert_allclose(info.energy, jnp.mean(pc.energy(net, relaxed.state)), rtol=1e-12)


# 4. Associative recall needs information from above.
def test_recall_that_cannot_move_the_free_units_warns(f64, getkey):
    net = pc.mlp([3, 4, 2], key=getkey(), dtype=jnp.float64, output_energy=pc.CrossEntropy())
    x = jax.random.normal(getkey(), (2, 3), dtype=jnp.float64)
    state = pc.init_state(net, x, x_mask=jnp.array([1.0, 1.0, 0.0]))
    with pytest.warns(UserWarning, match="cannot move the free units of node 0"):
        pc.infer(net, state, steps=5)


def test_generative_completion_recovers_hidden_pixels(f64, getkey):
    # A linear generative model, latent -> hidden -> image, with the image partly observed
    # and the latent free: the exact completion through the observed units is unique, so
    # inference must recover the unobserved pixel.
    net = pc.mlp([2, 2, 4], key=getkey(), dtype=jnp.float64, activation=pc.identity)
    z = jax.random.normal(getkey(), (1, 2), dtype=jnp.float64)
    image = pc.predict(net, z)
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    state = pc.init_state(net, y=image, y_mask=mask)
    assert float(state.x[2][0, 3]) == 0.0
    sol = pc.infer(net, state, steps=20000, tol=1e-10, solver=pc.Euler(dt=0.2))
    np.testing.assert_array_equal(sol.state.x[2][:, :3], image[:, :3])
    np.testing.assert_allclose(sol.state.x[2], image, atol=1e-6)


# 5. A cross-entropy node must be a sink.
def test_hidden_cross_entropy_node_is_refused(f64, getkey):
    k1, k2 = getkey(), getkey()
    with pytest.raises(ValueError, match="Node 1 has a CrossEntropy energy but feeds node 2"):
        pc.Network(
            [
                pc.Node(eqx.nn.Linear(3, 3, key=k1), energy=pc.CrossEntropy()),
                pc.Node(eqx.nn.Linear(3, 2, key=k2), parents=1),
            ],
            input_shape=(3,),
        )


# Refusals asked for alongside the five.
def test_non_binary_mask_is_refused(getkey):
    net = pc.mlp([3, 4, 2], key=getkey())
    with pytest.raises(ValueError, match="`x_mask` must hold only 0 and 1"):
        pc.init_state(net, jnp.ones((2, 3)), x_mask=jnp.array([1.0, 0.5, 0.0]))


def test_fixed_predictions_with_leaky_errors_is_refused(getkey):
    net = pc.mlp([3, 4, 2], key=getkey(), tau_e=2.0)
    state = pc.init_state(net, jnp.ones((2, 3)), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="`fixed_predictions=True` assumes instant errors"):
        pc.infer(net, state, fixed_predictions=True)


def test_tolerance_counts_only_free_units(f64, getkey):
    # Half of the input is clamped: the tolerance is an RMS over the free units only.
    net, x, y = _setup(getkey)
    mask = jnp.array([1.0, 1.0, 0.0])
    state = pc.init_state(net, x, y, x_mask=mask)
    tol = 1e-4

    def free_rms(s):
        g = jax.grad(lambda xs: jnp.sum(pc.energy(net, eqx.tree_at(lambda t: t.x, s, xs))))(s.x)
        free = [g[0][:, 2], g[1]]
        return float(jnp.sqrt(sum(jnp.sum(v**2) for v in free) / sum(v.size for v in free)))

    sol = pc.infer(net, state, steps=5000, tol=tol, solver=pc.Euler(dt=0.2))
    n = int(sol.num_steps)
    assert free_rms(sol.state) < tol * 1.05
    # The gradient norm that stopped the loop was measured before the last step.
    before = pc.infer(net, state, steps=n - 1, solver=pc.Euler(dt=0.2)).state
    assert free_rms(before) < tol
    earlier = pc.infer(net, state, steps=n - 2, solver=pc.Euler(dt=0.2)).state
    assert free_rms(earlier) >= tol


def test_partial_clamp_hides_unobserved_units_from_the_feedforward_start(getkey):
    # The hidden states start at the prediction from the *observed* input only: the
    # values to be recalled must not leak into the start through the feedforward pass.
    net = pc.mlp([3, 4, 2], key=getkey())
    x = jax.random.normal(getkey(), (2, 3))
    mask = jnp.array([1.0, 1.0, 0.0])
    state = pc.init_state(net, x, x_mask=mask)
    expected = jax.vmap(lambda v: net.nodes[0].predict([v]))(x * mask)
    np.testing.assert_allclose(state.x[1], expected, rtol=1e-6)
    np.testing.assert_array_equal(state.x[0][:, 2], 0.0)
