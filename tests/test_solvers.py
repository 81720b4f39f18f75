"""The solver contract: resumable running state, a user's own solver, statuses."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc


def _setup(getkey):
    net = pc.mlp([4, 6, 6, 3], key=getkey())
    x = jax.random.normal(getkey(), (5, 4))
    y = jax.random.randint(getkey(), (5,), 0, 3)
    return net, pc.init_state(net, x, y)


@pytest.mark.parametrize(
    "solver",
    [pc.OptaxSolver(optax.sgd(0.05, momentum=0.9)), pc.OptaxSolver(optax.adam(0.05))],
    ids=["momentum", "adam"],
)
def test_interrupted_solve_resumes_exactly_with_its_solver_state(getkey, solver):
    net, state = _setup(getkey)
    straight = pc.infer(net, state, solver=solver, steps=12)
    first = pc.infer(net, state, solver=solver, steps=5)
    resumed = pc.infer(net, first.state, solver=solver, steps=7, solver_state=first.solver_state)
    restarted = pc.infer(net, first.state, solver=solver, steps=7)
    for i in (1, 2):
        np.testing.assert_allclose(resumed.state.x[i], straight.state.x[i], rtol=1e-6, atol=1e-7)
    # Without the running state, the momentum is lost and the result differs.
    assert not np.allclose(restarted.state.x[1], straight.state.x[1], atol=1e-5)


def test_incremental_pc_resumes_exactly_with_its_solver_state(getkey):
    net, state = _setup(getkey)
    solver = pc.IncrementalPC(optax.adam(1e-2))
    opt_state = solver.optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    straight = pc.infer(net, state, solver=solver, steps=10, opt_state=opt_state)
    first = pc.infer(net, state, solver=solver, steps=4, opt_state=opt_state)
    resumed = pc.infer(
        first.network, first.state, solver=solver, steps=6, solver_state=first.solver_state
    )
    for a, b in zip(
        jax.tree_util.tree_leaves(resumed.network), jax.tree_util.tree_leaves(straight.network)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(
        jax.tree_util.tree_leaves(resumed.opt_state), jax.tree_util.tree_leaves(straight.opt_state)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class _Heun(pc.AbstractStateSolver):
    """A user's own solver: a damped step, written against the public contract only."""

    dt: float = 0.1
    damping: float = 0.5

    def init(self, states, params, opt_state):
        return jax.tree_util.tree_map(jnp.zeros_like, states)

    def step(self, grads, states, solver_state):
        velocity = jax.tree_util.tree_map(
            lambda v, g: self.damping * v - self.dt * g, solver_state, grads
        )
        return jax.tree_util.tree_map(lambda x, v: x + v, states, velocity), velocity


def test_a_users_solver_runs_in_infer_and_train_step(getkey):
    net, state = _setup(getkey)
    sol = pc.infer(net, state, solver=_Heun(), steps=30, trace=True)
    assert int(sol.status) == pc.RESULTS.successful
    assert float(sol.energy) < float(sol.energies[0])
    np.testing.assert_array_equal(sol.state.x[0], state.x[0])
    opt = optax.sgd(0.1)
    new, _, info = pc.train_step(
        net,
        opt.init(eqx.filter(net, eqx.is_inexact_array)),
        state.x[0],
        state.x[-1],
        optimizer=opt,
        solver=_Heun(),
        steps=10,
    )
    assert not np.allclose(new.nodes[0].modules[0].weight, net.nodes[0].modules[0].weight)
    np.testing.assert_allclose(info.energy, jnp.mean(pc.energy(net, info.state)), rtol=1e-5)


def test_results_carry_their_messages():
    assert pc.RESULTS.successful == 0 and pc.RESULTS.successful.message == ""
    for result in pc.RESULTS:
        if result is not pc.RESULTS.successful:
            assert len(result.message) > 20
    assert pc.RESULTS(2) is pc.RESULTS.nonfinite
    assert "step size" in pc.RESULTS.diverged.message


def test_clamps_are_an_enum_that_reads_as_text(getkey):
    net, state = _setup(getkey)
    assert state.clamps == (pc.Clamp.CLAMPED, pc.Clamp.FREE, pc.Clamp.FREE, pc.Clamp.CLAMPED)
    assert state.clamps == ("clamped", "free", "free", "clamped")
    with pytest.raises(ValueError, match="`clamps` must name one of"):
        pc.PCState(x=state.x, e=state.e, masks=state.masks, clamps=("fixed",) * 4)


def test_a_solver_that_learns_cannot_consolidate(getkey):
    from pcastro import astro

    net, _ = _setup(getkey)
    regions = astro.make_regions(net)
    store = astro.make_store(net, regions, capacity=2)
    opt = optax.sgd(0.1)
    with pytest.raises(ValueError, match="not `IncrementalPC`"):
        astro.consolidate(
            net,
            opt.init(eqx.filter(net, eqx.is_inexact_array)),
            store,
            optimizer=opt,
            tol=1e-3,
            solver=pc.IncrementalPC(opt),
        )
