"""Incremental PC: the weights move at every inference step (pcastro.incremental_step)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc


def _params(net):
    return eqx.filter(net, eqx.is_inexact_array)


@pytest.fixture
def f64():
    with jax.enable_x64(True):
        yield


def _setup(getkey, dtype=jnp.float32, batch=5):
    net = pc.mlp([4, 6, 6, 3], key=getkey(), dtype=dtype)
    x = jax.random.normal(getkey(), (batch, 4), dtype=dtype)
    y = jax.random.normal(getkey(), (batch, 3), dtype=dtype)
    return net, x, y


def _by_hand(net, x, y, *, dt, lr, steps):
    """iPC written out: at every step, one Euler step of the hidden states and one SGD
    step of the weights, both from the gradients of the summed energy at the same point
    (the weight gradient a batch mean)."""
    params, static = eqx.partition(net, eqx.is_inexact_array)
    hidden = list(pc.init_state(net, x, y).x[1:-1])
    batch = x.shape[0]

    def total(hidden, params):
        layers = [x, *hidden, y]
        model = eqx.combine(params, static)
        energy = 0.0
        for i, node in enumerate(model.nodes, start=1):
            mu = jax.vmap(node.predict)([layers[i - 1]])
            energy = energy + 0.5 * jnp.sum((layers[i] - mu) ** 2)
        return energy

    energies = []
    for _ in range(steps):
        energies.append(total(hidden, params) / batch)
        gx, gp = jax.grad(total, argnums=(0, 1))(hidden, params)
        hidden = [h - dt * g for h, g in zip(hidden, gx)]
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g / batch, params, gp)
    return eqx.combine(params, static), hidden, jnp.asarray(energies)


def test_incremental_step_is_one_state_step_and_one_weight_step_per_step(f64, getkey):
    net, x, y = _setup(getkey, jnp.float64)
    opt = optax.sgd(0.05)
    new, _, info = pc.incremental_step(
        net,
        opt.init(_params(net)),
        pc.init_state(net, x, y),
        optimizer=opt,
        solver=pc.Euler(dt=0.1),
        steps=7,
        trace=True,
    )
    want_net, want_hidden, want_energies = _by_hand(net, x, y, dt=0.1, lr=0.05, steps=7)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(want_net)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(info.state.x[1:-1], want_hidden):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(info.energies, want_energies, rtol=1e-12)
    # The reported energy is read at the returned states and the returned weights.
    np.testing.assert_allclose(info.energy, jnp.mean(pc.energy(new, info.state)), rtol=1e-12)
    assert int(info.status) == pc.RESULTS.successful and int(info.num_steps) == 7


def test_incremental_step_updates_weights_during_inference(getkey):
    net = pc.mlp([4, 6, 3], key=getkey())
    opt = optax.sgd(0.05)
    opt_state = opt.init(_params(net))
    x = jax.random.normal(getkey(), (8, 4))
    y = jax.random.randint(getkey(), (8,), 0, 3)
    state = pc.init_state(net, x, y)
    one, _, _ = pc.incremental_step(net, opt_state, state, optimizer=opt, steps=1)
    many, _, _ = pc.incremental_step(net, opt_state, state, optimizer=opt, steps=10)
    plain, _, _ = pc.train_step(net, opt_state, x, y, optimizer=opt, steps=10)
    # After one step only the top layer has an error (the hidden states start at the
    # feedforward pass); after ten, the hidden layer has learned too, during inference.
    top = lambda m: m.nodes[-1].modules[0].weight
    hidden = lambda m: m.nodes[0].modules[0].weight
    assert not np.allclose(top(one), top(net))
    np.testing.assert_array_equal(hidden(one), hidden(net))
    assert not np.allclose(hidden(many), hidden(net))
    assert not np.allclose(hidden(many), hidden(plain))


def test_incremental_step_resumes_exactly_with_its_solver_state(getkey):
    net, x, y = _setup(getkey)
    solver = pc.OptaxSolver(optax.sgd(0.05, momentum=0.9))
    opt = optax.adam(1e-2)
    args = dict(optimizer=opt, solver=solver)
    state = pc.init_state(net, x, y)
    straight = pc.incremental_step(net, opt.init(_params(net)), state, steps=10, **args)
    net4, s4, first = pc.incremental_step(net, opt.init(_params(net)), state, steps=4, **args)
    resumed = pc.incremental_step(
        net4, s4, first.state, steps=6, solver_state=first.solver_state, **args
    )
    for a, b in zip(
        jax.tree_util.tree_leaves(resumed[:2]), jax.tree_util.tree_leaves(straight[:2])
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(resumed[2].state.x, straight[2].state.x):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_incremental_step_keeps_partial_clamps_and_jits_once(getkey):
    net, x, y = _setup(getkey)
    opt = optax.sgd(0.05)
    mask = jnp.array([1.0, 1.0, 0.0, 0.0])
    state = pc.init_state(net, x, y, x_mask=mask)
    step = eqx.filter_jit(
        eqx.debug.assert_max_traces(pc.incremental_step, max_traces=1),
    )
    for _ in range(2):
        _, _, info = step(net, opt.init(_params(net)), state, optimizer=opt, steps=5)
    np.testing.assert_array_equal(info.state.x[0][:, :2], x[:, :2])
    np.testing.assert_array_equal(info.state.x[-1], state.x[-1])
    assert not np.allclose(info.state.x[0][:, 2:], 0.0)


def test_incremental_step_reports_what_fails(getkey):
    net, x, y = _setup(getkey)
    state = pc.init_state(net, x, y)
    sgd = optax.sgd(0.05)
    # A step size far too large: the states blow up, a status says so.
    _, _, info = pc.incremental_step(
        net, sgd.init(_params(net)), state, optimizer=sgd, solver=pc.Euler(dt=50.0), throw=False
    )
    assert int(info.status) in (pc.RESULTS.nonfinite, pc.RESULTS.diverged)
    with pytest.raises(Exception, match="non-finite|diverged"):
        _, _, info = pc.incremental_step(
            net, sgd.init(_params(net)), state, optimizer=sgd, solver=pc.Euler(dt=50.0)
        )
        info.status.block_until_ready()
    # A learning rate far too large: the solve may end, the weight update is reported.
    huge = optax.sgd(1e4)
    _, _, info = pc.incremental_step(
        net, huge.init(_params(net)), state, optimizer=huge, steps=2, throw=False
    )
    assert int(info.status) != pc.RESULTS.successful


def test_incremental_step_refuses_what_it_cannot_do(getkey):
    net, x, y = _setup(getkey)
    opt = optax.sgd(0.05)
    opt_state = opt.init(_params(net))
    state = pc.init_state(net, x, y)
    # Data instead of a state (under the tests' runtime type checks, jaxtyping says so).
    with pytest.raises(TypeError, match="takes the states to start from|parameter 'state'"):
        pc.incremental_step(net, opt_state, x, optimizer=opt)
    with pytest.raises(TypeError, match="cannot be a solver that compares energies"):
        pc.incremental_step(net, opt_state, state, optimizer=opt, solver=pc.AdaptiveEuler())
    with pytest.raises(ValueError, match="`opt_state` does not fit"):
        pc.incremental_step(net, optax.adam(1e-3).init(_params(net)), state, optimizer=opt)
    with pytest.raises(ValueError, match="`solver_state` does not fit"):
        pc.incremental_step(
            net,
            opt_state,
            state,
            optimizer=opt,
            solver=pc.OptaxSolver(optax.adam(0.1)),
            solver_state=(),
        )
