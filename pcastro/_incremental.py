"""Incremental predictive coding: a learning rule that moves the weights at every
inference step, beside [`pcastro.train_step`][]."""

from typing import Any, SupportsFloat, SupportsIndex

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._free_energy import local_energies, node_terms
from ._inference import RESULTS, AbstractSolver, Euler, Solution
from ._inference._curvature import assemble
from ._inference._driver import _as_float, _as_int, _check_inputs, _check_solver_state
from ._inference._loop import (
    Problem,
    finalise,
    hold_clamped,
    iterate,
    masked,
    per_example,
    pose,
    rms,
    solve_status,
)
from ._inference._results import raise_if_failed
from ._inference._solvers import _check_optimizer
from ._learning import _check_opt_state, checked_update
from ._network import Network
from ._state import PCState


def incremental_step(
    net: Network,
    opt_state: Any,
    state: PCState,
    *,
    optimizer: optax.GradientTransformation,
    solver: AbstractSolver = Euler(dt=0.1),
    steps: SupportsIndex = 20,
    tol: SupportsFloat | None = None,
    trace: bool = False,
    throw: bool = True,
    solver_state: Any = None,
    unroll: bool = False,
) -> tuple[Network, Any, Solution]:
    r"""Incremental PC (iPC): the states and the weights move together at every step.

    At each of `steps` steps, both updates are taken from the gradients of the energy at
    the same point `(x_t, theta_t)`, in parallel as in iPC's algorithm (Salvatori et
    al., 2024), not one after the other:

    `x_{t+1} = solver(x_t, dF/dx(x_t, theta_t))`,
    `theta_{t+1} = theta_t + optimizer(dF/dtheta(x_t, theta_t) / batch)`.

    iPC is a learning rule, not a way of relaxing states, so it is a training step
    beside [`pcastro.train_step`][] (same `(net, opt_state, info)` in and out) that
    drives any state `solver`, rather than a solver that [`pcastro.infer`][] would have
    to special-case. It shares `infer`'s loop, tolerance and statuses. It takes a
    [`pcastro.PCState`][], not `x, y`: a presentation interrupted after some steps
    continues from its states (`info.state`, or one recalled with
    [`pcastro.astro.recall`][]) and its running `solver_state`, exactly as if it had
    not stopped; start one with `pcastro.init_state(net, x, y)`.

    Learning checks what it produces: `info.status` is that of the solve (`nonfinite`;
    `diverged` when the final energy is more than ten times the start, since the
    energy of moving weights need not fall on every step; `max_steps_reached` with
    `tol`) or, when the solve succeeded, that of the total weight change (see
    [`pcastro.RESULTS`][]); with `throw=True` a failure raises with its message. An
    astrocyte gate ([`pcastro.astro.scale_by_astrocytes`][]) in `optimizer` is given
    no NE and no energies here: it holds its calcium and applies it (set the calcium
    between presentations with `optax.tree_utils.tree_set(opt_state, calcium=...)`).

    **Arguments:**

    - `net`, `opt_state`: the network and `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`.
    - `state`: a batched [`pcastro.PCState`][], e.g. `pcastro.init_state(net, x, y)`.
    - `optimizer`: any Optax transformation for the weights, e.g. `optax.sgd(0.05)`.
    - `solver`: the state solver, [`pcastro.Euler`][] (the default, `dt=0.1`) or
      [`pcastro.OptaxSolver`][]; not one that compares energies between steps
      ([`pcastro.AdaptiveEuler`][]), since the weights change between the points.
    - `steps`, `tol`, `trace`, `throw`, `unroll`: as for [`pcastro.infer`][].
    - `solver_state`: the state solver's running state from an earlier
      `info.solver_state`, to continue a presentation exactly.

    **Returns:**

    `(net, opt_state, info)`: the network and optimiser state after the last step, and
    a [`pcastro.Solution`][] whose `energy` is read at the returned states and weights.

    **Raises:**

    `TypeError`/`ValueError` for bad arguments (as [`pcastro.infer`][] and
    [`pcastro.train_step`][]); with `throw=True`, a runtime error carrying the
    [`pcastro.RESULTS`][] message.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax
    import pcastro as pc

    net = pc.mlp([4, 8, 3], key=jax.random.key(0))
    opt = optax.sgd(0.05)
    opt_state = opt.init(eqx.filter(net, eqx.is_inexact_array))
    state = pc.init_state(net, jnp.ones((2, 4)), jnp.zeros((2, 3)))
    net, opt_state, info = pc.incremental_step(net, opt_state, state, optimizer=opt, steps=10)
    assert info.status == pc.RESULTS.successful
    ```

    ??? cite "Reference"

        ```bibtex
        @inproceedings{salvatori2024stable,
            title={A Stable, Fast, and Fully Automatic Learning Algorithm for
                   Predictive Coding Networks},
            author={Salvatori, Tommaso and Song, Yuhang and Yordanov, Yordan and
                    Millidge, Beren and Xu, Zhenghua and Sha, Lei and Emde, Cornelius and
                    Bogacz, Rafal and Lukasiewicz, Thomas},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }
        ```
    """
    if not isinstance(state, PCState):
        raise TypeError(
            "`incremental_step(net, opt_state, state, ...)` takes the states to start from, "
            f"a pcastro.PCState, got {type(state).__name__}; for data pass "
            "`pcastro.init_state(net, x, y)`."
        )
    return _incremental_step(
        net,
        opt_state,
        state,
        optimizer=optimizer,
        solver=solver,
        steps=_as_int(steps, "steps"),
        tol=None if tol is None else _as_float(tol, "tol"),
        trace=trace,
        throw=throw,
        solver_state=solver_state,
        unroll=unroll,
    )


def _check_rule(net: Network, opt_state, optimizer, solver) -> None:
    _check_optimizer(optimizer, "incremental_step")
    if isinstance(solver, AbstractSolver) and (solver.measures_curvature or solver.monotone):
        raise TypeError(
            "`incremental_step(solver=...)` cannot be a solver that compares energies "
            "between steps, such as `AdaptiveEuler`: the weights change between the points "
            "it compares. Use `pcastro.Euler(dt=0.1)`."
        )
    _check_opt_state(net, opt_state, optimizer)


@eqx.filter_jit
def _incremental_step(
    net, opt_state, state, *, optimizer, solver, steps, tol, trace, throw, solver_state, unroll
):
    _check_inputs(net, state, solver, steps, tol, False, unroll)
    _check_rule(net, opt_state, optimizer, solver)
    problem = pose(net, state)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    if solver_state is None:
        solver_state = solver.init(problem.free_x0, params, None)
    else:
        _check_solver_state(solver, solver_state, problem.free_x0, params)
    carry = (problem.free_x0, problem.leaky0, solver_state, params, opt_state, jnp.asarray(0))
    run = iterate(
        _stepper(solver, optimizer, _gradient(net, state, problem), problem),
        carry,
        steps=steps,
        tol=tol,
        terminate=solver.terminate,
        trace=trace,
        unroll=unroll,
        dtype=net.dtype,
    )
    free_xs, leaky, solver_state, new_params, opt_state, _ = run.carry
    new_net = eqx.combine(new_params, static)
    new = finalise(new_net, state, problem, free_xs, leaky)
    final = jnp.mean(jnp.sum(local_energies(new_net, new), axis=1))
    status = solve_status(
        final=final,
        free_xs=free_xs,
        first=run.first,
        rose=jnp.asarray(False),
        converged=run.converged,
        descends=False,
        checks_rises=False,
    )
    change = jax.tree_util.tree_map(lambda a, b: a - b, new_params, params)
    update_status = checked_update(params, change)[1]
    status = jnp.where(status != RESULTS.successful, status, update_status)
    info = Solution(
        state=new,
        status=raise_if_failed(status, throw=throw),
        num_steps=run.num_steps,
        energy=final,
        energies=run.energies,
        solver_state=solver_state,
    )
    return new_net, opt_state, info


def _gradient(net: Network, state: PCState, problem: Problem):
    """`gradient(free_xs, leaky, params, first) -> (energy per example, leaky, dF/dx,
    dF/dtheta)`, both gradients at the same point. Nothing is hoisted out of the loop:
    every prediction changes with the weights."""
    static = eqx.filter(net, eqx.is_inexact_array, inverse=True)

    def drive(free_xs, params, leaky, first):
        xs = assemble(state.x, problem.free, free_xs)
        g, energies, new = node_terms(
            eqx.combine(params, static),
            xs,
            skip=problem.amortised,
            leaky=leaky,
            integrate=~first,
        )
        return g, (per_example(energies, problem.batch, net.dtype), new)

    def gradient(free_xs, leaky, params, first):
        (_, (each, leaky)), (g, pg) = jax.value_and_grad(drive, argnums=(0, 1), has_aux=True)(
            free_xs, params, leaky, first
        )
        return each, leaky, g, pg

    return gradient


def _stepper(solver: AbstractSolver, optimizer, gradient, problem: Problem):
    """One iPC step on the carry `(free_xs, leaky, solver_state, params, opt_state, k)`:
    the state step and the weight step from the same gradients."""

    def one_step(carry):
        free_xs, leaky, inner, params, opt_state, k = carry
        each, leaky, g, pg = gradient(free_xs, leaky, params, k == 0)
        g = masked(g, problem.keep)
        new_xs, inner = solver.step(g, free_xs, inner)
        new_xs = hold_clamped(new_xs, problem.keep, problem.free_x0)
        # The batch mean, as `pcastro.param_grads` gives `train_step`'s optimiser.
        pg = jax.tree_util.tree_map(lambda v: v / problem.batch, pg)
        updates, opt_state = optimizer.update(pg, opt_state, params)
        params = optax.apply_updates(params, updates)
        carry = (new_xs, leaky, inner, params, opt_state, k + 1)
        return carry, jnp.sum(each) / problem.batch, rms(g, problem.keep)

    return one_step
