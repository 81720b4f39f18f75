import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc

SOLVERS = [
    pc.Euler(dt=0.05),
    pc.OptaxSolver(optax.sgd(0.05)),
    pc.OptaxSolver(optax.sgd(0.02, momentum=0.5)),
]
ENERGIES = [None, pc.CrossEntropy()]


def _batch(getkey, net, n=4):
    x = jax.random.normal(getkey(), (n, *net.input_shape))
    y = jax.random.randint(getkey(), (n,), 0, net.shapes[-1][0])
    return x, y


@pytest.mark.parametrize("solver", SOLVERS, ids=["euler", "sgd", "momentum"])
@pytest.mark.parametrize("output_energy", ENERGIES, ids=["gaussian", "ce"])
def test_conformance_energy_falls_and_clamps_hold(getkey, solver, output_energy):
    net = pc.mlp([5, 8, 8, 3], key=getkey(), output_energy=output_energy)
    x, y = _batch(getkey, net)
    state = pc.init_state(net, x, y)
    sol = pc.infer(net, state, solver=solver, steps=30, trace=True)
    assert int(sol.status) == 0
    assert float(sol.energy) < float(sol.energies[0])
    np.testing.assert_array_equal(sol.state.x[0], state.x[0])
    np.testing.assert_array_equal(sol.state.x[-1], state.x[-1])
    assert not np.allclose(sol.state.x[1], state.x[1])


def test_small_steps_lower_energy_monotonically(getkey):
    net = pc.mlp([6, 10, 10, 4], key=getkey())
    x, y = _batch(getkey, net, n=8)
    sol = pc.infer(net, pc.init_state(net, x, y), solver=pc.Euler(dt=0.02), steps=50, trace=True)
    diffs = np.diff(np.asarray(sol.energies))
    assert np.all(diffs <= 1e-7), diffs.max()
    assert diffs.sum() < 0


def test_linear_gaussian_chain_reaches_closed_form_equilibrium(getkey):
    with jax.enable_x64(True):
        net = pc.mlp([3, 5, 2], key=getkey(), activation=pc.identity, dtype=jnp.float64)
        x0 = jax.random.normal(getkey(), (1, 3), dtype=jnp.float64)
        x2 = jax.random.normal(getkey(), (1, 2), dtype=jnp.float64)
        sol = pc.infer(
            net, pc.init_state(net, x0, x2), solver=pc.Euler(dt=0.2), steps=5000, tol=1e-12
        )
        l1, l2 = net.nodes[0].modules[0], net.nodes[1].modules[0]
        w1, b1, w2, b2 = l1.weight, l1.bias, l2.weight, l2.bias
        # dF/dx1 = (x1 - W1 x0 - b1) - W2^T (x2 - W2 x1 - b2) = 0
        lhs = jnp.eye(5) + w2.T @ w2
        rhs = w1 @ x0[0] + b1 + w2.T @ (x2[0] - b2)
        expected = jnp.linalg.solve(lhs, rhs)
        np.testing.assert_allclose(sol.state.x[1][0], expected, atol=1e-9)
        assert int(sol.num_steps) < 5000


def test_partial_clamp_associative_recall_keeps_observed_units(getkey):
    net = pc.mlp([6, 8, 3], key=getkey())
    x = jax.random.normal(getkey(), (4, 6))
    mask = jnp.array([1, 1, 1, 0, 0, 0], dtype=jnp.float32)
    state = pc.init_state(net, x, jnp.arange(4) % 3, x_mask=mask)
    sol = pc.infer(net, state, solver=pc.Euler(dt=0.1), steps=40, trace=True)
    np.testing.assert_array_equal(sol.state.x[0][:, :3], x[:, :3])
    assert not np.allclose(sol.state.x[0][:, 3:], 0.0)
    assert float(sol.energy) < float(sol.energies[0])


def test_generative_mode_infers_the_input_from_the_label(getkey):
    net = pc.mlp([6, 8, 3], key=getkey())
    labels = jnp.array([0, 1, 2])
    state = pc.init_state(net, y=labels)
    assert state.clamps == ("free", "free", "clamped")
    sol = pc.infer(net, state, solver=pc.Euler(dt=0.1), steps=100, trace=True)
    assert float(sol.energy) < 0.5 * float(sol.energies[0])
    assert not np.allclose(sol.state.x[0], 0.0)
    np.testing.assert_array_equal(sol.state.x[2], jax.nn.one_hot(labels, 3))


def test_free_cross_entropy_top_sits_at_softmax(getkey):
    net = pc.mlp([5, 7, 3], key=getkey(), output_energy=pc.CrossEntropy())
    x = jax.random.normal(getkey(), (2, 5))
    sol = pc.infer(net, pc.init_state(net, x), steps=5)
    np.testing.assert_allclose(sol.state.x[2], pc.predict(net, x), rtol=1e-5)
    np.testing.assert_allclose(jnp.sum(sol.state.x[2], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pc.energy(net, sol.state), 0.0, atol=1e-6)


def test_unit_leak_equals_instant_errors_and_slow_leak_differs(getkey):
    key = getkey()
    instant = pc.mlp([4, 6, 6, 2], key=key)
    unit = pc.mlp([4, 6, 6, 2], key=key, tau_e=1.0)
    slow = pc.mlp([4, 6, 6, 2], key=key, tau_e=4.0)
    x = jax.random.normal(getkey(), (3, 4))
    y = jax.random.normal(getkey(), (3, 2))
    a = pc.infer(instant, pc.init_state(instant, x, y), steps=15)
    b = pc.infer(unit, pc.init_state(unit, x, y), steps=15)
    c = pc.infer(slow, pc.init_state(slow, x, y), steps=15)
    for i in (1, 2):
        np.testing.assert_allclose(a.state.x[i], b.state.x[i], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.state.x[1], c.state.x[1], atol=1e-4)


def test_batch_inference_equals_per_example_loop(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    x, y = _batch(getkey, net, n=5)
    batched = pc.infer(net, pc.init_state(net, x, y), steps=10)
    for b in range(5):
        single = pc.infer(net, pc.init_state(net, x[b : b + 1], y[b : b + 1]), steps=10)
        np.testing.assert_allclose(
            single.state.x[1][0], batched.state.x[1][b], rtol=1e-5, atol=1e-6
        )


def test_jit_equals_eager(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    x, y = _batch(getkey, net)
    state = pc.init_state(net, x, y)
    eager = pc.infer(net, state, steps=10, trace=True)
    jitted = eqx.filter_jit(pc.infer)(net, state, steps=10, trace=True)
    np.testing.assert_allclose(eager.state.x[1], jitted.state.x[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eager.energies, jitted.energies, rtol=1e-5, atol=1e-6)


def test_unrolled_steps_equal_the_loop(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    state = pc.init_state(net, jax.random.normal(getkey(), (5, 4)), jnp.array([0, 1, 2, 0, 1]))
    loop = pc.infer(net, state, steps=4, trace=True)
    flat = pc.infer(net, state, steps=4, trace=True, unroll=True)
    for a, b in zip(loop.state.x, flat.state.x):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loop.energies, flat.energies, rtol=1e-6)
    with pytest.raises(ValueError, match="`unroll=True` unrolls a fixed number of steps"):
        pc.infer(net, state, steps=4, tol=1e-3, unroll=True)


def test_tolerance_stop_and_max_steps_status(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    x, y = _batch(getkey, net)
    state = pc.init_state(net, x, y)
    loose = pc.infer(net, state, steps=500, tol=1e-3)
    assert int(loose.status) == pc.RESULTS.successful
    assert 1 < int(loose.num_steps) < 500
    capped = pc.infer(net, state, steps=2, tol=1e-12, throw=False)
    assert int(capped.status) == pc.RESULTS.max_steps_reached
    with pytest.raises(eqx.EquinoxRuntimeError, match="reached `steps` before the gradient norm"):
        pc.infer(net, state, steps=2, tol=1e-12)


def test_nan_input_is_reported_with_the_fix(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    x, y = _batch(getkey, net)
    with pytest.raises(
        ValueError, match=r"`x` holds NaN or inf in 1 example\(s\) \(batch index 0\)"
    ):
        pc.init_state(net, x.at[0, 0].set(jnp.nan), y)
    # A state whose data turned NaN after init_state checked it: inference reports it.
    state = pc.init_state(net, x, y)
    state = eqx.tree_at(lambda s: s.x[0], state, state.x[0].at[0, 0].set(jnp.nan))
    sol = pc.infer(net, state, steps=5, throw=False)
    assert int(sol.status) == pc.RESULTS.nonfinite
    with pytest.raises(eqx.EquinoxRuntimeError, match="non-finite energy.*check the data for NaN"):
        pc.infer(net, state, steps=5)


def test_divergence_is_reported(getkey):
    net = pc.mlp([4, 6, 6, 3], key=getkey())
    x, y = _batch(getkey, net)
    sol = pc.infer(net, pc.init_state(net, x, y), solver=pc.Euler(dt=3.0), steps=40, throw=False)
    assert int(sol.status) in (pc.RESULTS.diverged, pc.RESULTS.nonfinite)
    with pytest.raises(eqx.EquinoxRuntimeError, match="lower the solver's step size"):
        pc.infer(net, pc.init_state(net, x, y), solver=pc.Euler(dt=3.0), steps=40)


def test_wrong_shapes_and_options_name_the_node_and_fix(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    with pytest.raises(ValueError, match=r"`x` has shape \(2, 5\).*node 0 expects \(batch, 4\)"):
        pc.init_state(net, jnp.zeros((2, 5)), jnp.array([0, 1]))
    with pytest.raises(ValueError, match=r"top node \(node 2\) holds \(3,\)"):
        pc.init_state(net, jnp.zeros((2, 4)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="add a leading batch axis"):
        pc.init_state(net, jnp.zeros((4,)))
    state = pc.init_state(net, jnp.zeros((2, 4)), jnp.array([0, 1]))
    with pytest.raises(TypeError, match=r"pcastro.Euler\(dt=0.1\)|parameter 'solver'"):
        pc.infer(net, state, solver="euler")
    with pytest.raises(ValueError, match="`steps` must be a positive int"):
        pc.infer(net, state, steps=0)
    other = pc.mlp([4, 6, 6, 3], key=getkey())
    with pytest.raises(ValueError, match="The state has 3 nodes but the network has 4"):
        pc.infer(other, state)
