"""The one inference driver: relax the free states of a batch to (near) equilibrium."""

import math
import operator
import warnings
from typing import Any, SupportsFloat, SupportsIndex

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Int
from .._free_energy import local_energies, node_terms, summed_inputs
from .._network import Network
from .._state import Clamp, PCState, check_clamps
from ._curvature import assemble, energy_curvature
from ._loop import (
    Problem,
    finalise,
    hold_clamped,
    iterate,
    masked,
    per_example,
    pose,
    rms,
    rose,
    solve_status,
)
from ._results import raise_if_failed
from ._solvers import AbstractSolver, AdaptiveEuler


class Solution(eqx.Module):
    """The result of a solve: of [`pcastro.infer`][], and the `info` of
    [`pcastro.train_step`][] and [`pcastro.incremental_step`][].

    **Fields:**

    - `state`: the relaxed [`pcastro.PCState`][], its error neurons read at the
      returned states.
    - `status`: a code of [`pcastro.RESULTS`][]; 0 means success.
    - `num_steps`: how many inference steps ran.
    - `energy`: mean free energy per example at the returned states (and, after
      [`pcastro.incremental_step`][], the returned parameters).
    - `energies`: per-step mean energy before each step (with `trace=True`), else None;
      NaN after the last step of a tolerance-stopped solve.
    - `solver_state`: the solver's running state, to resume the solve exactly.
    """

    state: PCState
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    energy: Float[Array, ""]
    energies: Float[Array, " steps"] | None
    solver_state: Any


def _check_solver_state(solver, solver_state, free_x0, params) -> None:
    """A clear error for a running state from another solver or another problem: it
    would otherwise fail deep inside JAX or Optax (`'TraceState' object has no attribute
    'mu'`)."""
    kwargs = {"curvature": None} if solver.measures_curvature else {}
    want = eqx.filter_eval_shape(lambda x0, p: solver.init(x0, p, None, **kwargs), free_x0, params)
    shapes = lambda t: [(jnp.shape(v), jnp.result_type(v)) for v in jax.tree_util.tree_leaves(t)]  # noqa: E731
    got_def = jax.tree_util.tree_structure(solver_state)
    want_def = jax.tree_util.tree_structure(want)
    if got_def != want_def or shapes(solver_state) != shapes(want):
        owner = type(solver_state).__name__
        raise ValueError(
            f"`solver_state` does not fit {type(solver).__name__} on these states: it is a "
            f"{owner} whose structure or shapes differ from `{type(solver).__name__}.init` on "
            "this network and batch. Pass the `solution.solver_state` of an earlier solve "
            "with the same solver, network and batch size, or leave it out to start afresh."
        )


def _check_inputs(
    net: Network, state: PCState, solver, steps, tol, fixed_predictions, unroll
) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"`net` must be a pcastro.Network, got {type(net).__name__}.")
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            f"`solver` must be a pcastro solver such as `pcastro.Euler(dt=0.1)` or "
            f"`pcastro.OptaxSolver(optax.adam(0.1))`, got {solver!r}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    if tol is not None and not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"`tol` must be a positive number or None, got {tol!r}.")
    if not isinstance(unroll, bool):
        raise TypeError(f"`unroll` must be True or False, got {unroll!r}.")
    if unroll and tol is not None:
        raise ValueError(
            "`unroll=True` unrolls a fixed number of steps, but `tol` stops the loop early; "
            "pass `tol=None` to unroll, or `unroll=False` to stop at `tol`."
        )
    if len(state.x) != net.num_nodes:
        raise ValueError(
            f"The state has {len(state.x)} nodes but the network has {net.num_nodes}; "
            "create it with `pcastro.init_state(net, x, y)`."
        )
    for i, (x, shape) in enumerate(zip(state.x, net.shapes)):
        if x.shape[1:] != shape:
            raise ValueError(
                f"Node {i} of the state has shape {x.shape}, but the network expects "
                f"(batch, {', '.join(map(str, shape))}); create the state with "
                "`pcastro.init_state(net, x, y)`."
            )
    check_clamps(net, state)
    if solver.monotone and fixed_predictions:
        raise ValueError(
            f"`{type(solver).__name__}` compares energies between steps, but with "
            "`fixed_predictions=True` the states do not descend the energy; use "
            "`pcastro.Euler(dt=...)` for the fixed-prediction limit."
        )
    if solver.monotone and any(node.tau_e is not None for node in net.nodes):
        raise ValueError(
            f"`{type(solver).__name__}` compares energies between steps, but the network has "
            "leaky error neurons (`tau_e`), whose dynamics is not a descent on the energy; "
            "use `pcastro.Euler(dt=...)` with a step below 2 / `pcastro.max_curvature(...)`."
        )
    if fixed_predictions and any(node.tau_e is not None for node in net.nodes):
        raise ValueError(
            "`fixed_predictions=True` assumes instant errors, but the network has leaky error "
            "neurons (`tau_e`); build it without `tau_e` for the fixed-prediction limit."
        )
    _warn_if_stuck(net, state)


def _warn_if_stuck(net: Network, state: PCState) -> None:
    """Warn when free input units can receive no error from the nodes they feed.

    The input node has no parents, so its force comes only from its descendants'
    errors. If none of them is clamped, the feedforward start has zero energy and every
    gradient on the free input units is zero, so inference cannot move them.
    """
    clamped_below = [False] * net.num_nodes
    for i in range(net.num_nodes - 1, 0, -1):
        node = net.nodes[i - 1]
        here = state.clamps[i] is not Clamp.FREE or clamped_below[i]
        for p in node.parents:  # pyright: ignore[reportOptionalIterable]  # resolved by Network
            clamped_below[p] = clamped_below[p] or here
    if state.clamps[0] is not Clamp.CLAMPED and not clamped_below[0]:
        warnings.warn(
            "Inference cannot move the free units of node 0 (the input): no node that it "
            "feeds is clamped, so the feedforward start already has zero energy. For associative "
            "recall clamp the label as well (`init_state(net, x, y, x_mask=...)`) or use a "
            "generative network that predicts the data on its top node "
            "(`init_state(net, y=data, y_mask=...)`).",
            UserWarning,
            stacklevel=4,
        )


def _as_int(value, name: str) -> Any:
    try:
        return operator.index(value)  # numpy and 0-d integer arrays too
    except TypeError:
        return value  # left for the check that names the argument


def _as_float(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise TypeError(
            f"`{name}` must be a concrete number (it decides the loop's length or its stop), "
            f"got {value!r}; pass a Python float, not a traced array."
        ) from None


def infer(
    net: Network,
    state: PCState,
    *,
    solver: AbstractSolver = AdaptiveEuler(),
    steps: SupportsIndex = 20,
    tol: SupportsFloat | None = None,
    fixed_predictions: bool = False,
    trace: bool = False,
    throw: bool = True,
    solver_state: Any = None,
    unroll: bool = False,
) -> Solution:
    r"""Relax the free states of a batch by descending the free energy.

    `x <- solver(x, dF/dx)` on every free unit, with `F = sum_l E_l` summed over the
    batch; clamped units never move. With leaky error neurons (`Node(tau_e=...)`) the
    force uses the error neurons, `dx_l = -(e_l - J_{l+1}^T e_{l+1})`, and each
    `e_l <- e_l + ((x_l - mu_l) - e_l) / tau_e`.

    Predictions of nodes whose parents are all clamped are computed once, outside the
    loop. Runs `steps` steps in a `lax.scan`; with `tol`, a `lax.while_loop` stops early
    once the root-mean-square of `dF/dx` over the free units (pooled over the batch;
    clamped units of a partially clamped node not counted) falls below `tol`. That
    norm is measured at the states before each step, so the returned states are one step
    past the first point that met it.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `state`: a batched [`pcastro.PCState`][] from [`pcastro.init_state`][].
    - `solver`: a solver object: [`pcastro.AdaptiveEuler`][] (the default: its step
      follows the measured curvature of the energy), [`pcastro.Euler`][] (a fixed step)
      or [`pcastro.OptaxSolver`][]. The weights stay fixed; to update them at every
      step (incremental PC) use [`pcastro.incremental_step`][].
    - `steps`: the number of steps, or the maximum number with `tol`.
    - `tol`: gradient tolerance for early stopping, or None for exactly `steps` steps.
    - `fixed_predictions`: hold every prediction at its value in `state` (the
      fixed-prediction assumption of Millidge et al., 2022, under which PC computes
      backprop's gradients).
    - `trace`: record the mean energy before every step.
    - `throw`: raise on a non-finite energy, divergence or (with `tol`) `max_steps`;
      otherwise report it only in `Solution.status`.
    - `solver_state`: a running state from an earlier `Solution.solver_state`, to
      resume an interrupted solve exactly (momentum included); by default the solver
      starts afresh.
    - `unroll`: compile the `steps` steps one after another instead of as a loop (with
      `tol=None` only). Same result, longer compile; on CPU, XLA runs convolutions
      several times slower inside a loop than outside one (it keeps them in the
      channels-first layout there), so unroll a convolutional network's few steps.

    **Returns:**

    A [`pcastro.Solution`][].

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import pcastro as pc

    net = pc.mlp([4, 8, 3], key=jax.random.key(0))
    state = pc.init_state(net, jnp.ones((2, 4)), jnp.zeros((2, 3)))
    sol = pc.infer(net, state, solver=pc.Euler(dt=0.1), steps=50, trace=True)
    assert sol.status == pc.RESULTS.successful
    assert sol.energy < sol.energies[0]  # inference lowers the energy
    ```

    **Raises:**

    `ValueError`/`TypeError` for bad structure at trace time; with `throw=True`, a
    runtime error carrying the [`pcastro.RESULTS`][] message.

    ??? cite "Reference"

        ```bibtex
        @article{millidge2022predictive,
            title={Predictive Coding Approximates Backprop Along Arbitrary Computation
                   Graphs},
            author={Millidge, Beren and Tschantz, Alexander and Buckley, Christopher L.},
            journal={Neural Computation}, volume={34}, number={6}, pages={1329--1368},
            year={2022}
        }
        ```
    """
    # Normalised outside the compiled function: `steps` and `tol` shape the loop, so
    # they must be plain Python numbers (a NumPy int is accepted, a tracer is not).
    return _infer(
        net,
        state,
        solver=solver,
        steps=_as_int(steps, "steps"),
        tol=None if tol is None else _as_float(tol, "tol"),
        fixed_predictions=fixed_predictions,
        trace=trace,
        throw=throw,
        solver_state=solver_state,
        unroll=unroll,
    )


@eqx.filter_jit
def _infer(
    net: Network,
    state: PCState,
    *,
    solver: AbstractSolver,
    steps: int,
    tol: float | None,
    fixed_predictions: bool,
    trace: bool,
    throw: bool,
    solver_state: Any,
    unroll: bool,
) -> Solution:
    _check_inputs(net, state, solver, steps, tol, fixed_predictions, unroll)
    problem = pose(net, state)
    hoisted = _hoisted(net, state, problem)
    if fixed_predictions:
        gradient = _fixed_prediction_grad(net, state, problem)
    else:
        gradient = _state_grad(net, state, problem, hoisted)
    solver_state = _start(net, state, solver, problem, hoisted, solver_state)
    carry = (
        problem.free_x0,
        problem.leaky0,
        solver_state,
        jnp.asarray(0),
        jnp.full((problem.batch,), jnp.inf, net.dtype),
        jnp.asarray(False),
    )
    run = iterate(
        _stepper(solver, gradient, problem),
        carry,
        steps=steps,
        tol=tol,
        terminate=solver.terminate,
        trace=trace,
        unroll=unroll,
        dtype=net.dtype,
    )
    return _conclude(net, state, solver, problem, hoisted, run, fixed_predictions, throw)


def _conclude(net, state, solver, problem: Problem, hoisted, run, fixed_predictions, throw):
    """The `Solution` of a finished loop: the relaxed state, its energy and the status."""
    free_xs, leaky, solver_state, _, last, rose_ = run.carry
    if solver.monotone:
        free_xs, solver_state = _settle(net, state, solver, problem, hoisted, free_xs, solver_state)
    new = finalise(net, state, problem, free_xs, leaky)
    each = jnp.sum(local_energies(net, new), axis=1)
    if not solver.monotone:
        rose_ = rose_ | jnp.any(rose(each, last))
    final = jnp.mean(each)
    # Only a solver that is meant to descend on every step (plain Euler) oscillates; a
    # monotone solver rejects the trials that rose, and momentum may rise for a while.
    # Leaky error neurons and held predictions do not descend `F` itself: no check there.
    checks_rises = solver.descends and not solver.monotone
    status = solve_status(
        final=final,
        free_xs=free_xs,
        first=run.first,
        rose=rose_,
        converged=run.converged,
        descends=solver.descends,
        checks_rises=checks_rises and not problem.leaky0 and not fixed_predictions,
    )
    return Solution(
        state=new,
        status=raise_if_failed(status, throw=throw),
        num_steps=run.num_steps,
        energy=final,
        energies=run.energies,
        solver_state=solver_state,
    )


def _hoisted(net: Network, state: PCState, problem: Problem) -> dict:
    """The summed inputs of the nodes whose parents are all fully clamped: they do not
    change during inference, so they are computed once, outside the loop."""
    clamped = [c is Clamp.CLAMPED for c in state.clamps]
    skip = [
        i
        for i, node in enumerate(net.nodes, start=1)
        if i in problem.amortised or not all(clamped[p] for p in node.parents)  # pyright: ignore[reportOptionalIterable]  # resolved by Network
    ]
    return summed_inputs(net, state.x, skip=skip)


def _state_grad(net: Network, state: PCState, problem: Problem, hoisted: dict):
    """`gradient(free_xs, leaky, first) -> (energy per example, leaky, dF/dx)`; a leaky
    error neuron integrates on every step but the first."""

    def drive(free_xs, leaky, first):
        xs = assemble(state.x, problem.free, free_xs)
        g, energies, new = node_terms(
            net, xs, skip=problem.amortised, pres=hoisted, leaky=leaky, integrate=~first
        )
        return g, (per_example(energies, problem.batch, net.dtype), new)

    def gradient(free_xs, leaky, first):
        (_, (each, leaky)), g = jax.value_and_grad(drive, has_aux=True)(free_xs, leaky, first)
        return each, leaky, g

    return gradient


def _stepper(solver: AbstractSolver, gradient, problem: Problem):
    """One inference step on the loop's carry `(free_xs, leaky, solver_state, k, last
    energy per example, rose)`; returns the new carry, the mean energy before the step
    and the RMS of `dF/dx` over the free units."""

    def one_step(carry):
        free_xs, leaky, inner, k, last, rose_ = carry
        each, leaky, g = gradient(free_xs, leaky, k == 0)
        g = masked(g, problem.keep)
        # Any example whose energy rose on this step (a step that overshoots).
        rose_ = rose_ | jnp.any(rose(each, last))
        if solver.monotone:
            new_xs, inner = solver.step(g, free_xs, inner, energy=each)  # pyright: ignore[reportCallIssue]  # a monotone solver takes it
        else:
            new_xs, inner = solver.step(g, free_xs, inner)
        new_xs = hold_clamped(new_xs, problem.keep, problem.free_x0)
        carry = (new_xs, leaky, inner, k + 1, each, rose_)
        return carry, jnp.sum(each) / problem.batch, rms(g, problem.keep)

    return one_step


def _start(net, state, solver, problem: Problem, hoisted, solver_state):
    """The solver's running state: the one given (checked), or a fresh one, for which a
    solver that follows the curvature gets `lambda_max` measured at the start."""
    params = eqx.filter(net, eqx.is_inexact_array)
    if solver_state is not None:
        _check_solver_state(solver, solver_state, problem.free_x0, params)
        return solver_state
    if not solver.measures_curvature:
        return solver.init(problem.free_x0, params, None)
    # Nothing free, nothing to measure (and nothing will move).
    curvature = _probe_curvature(net, state, solver, problem, hoisted) if problem.free else None
    return solver.init(problem.free_x0, params, None, curvature=curvature)


def _settle(net, state, solver, problem: Problem, hoisted, free_xs, solver_state):
    """A monotone solver's final trial has not been compared yet: each example keeps its
    best point."""
    trial = assemble(state.x, problem.free, free_xs)
    _, trial_energies, _ = node_terms(net, trial, skip=problem.amortised, pres=hoisted)
    energy = per_example(trial_energies, problem.batch, net.dtype)
    return solver.settle(free_xs, energy, solver_state)


def _probe_curvature(net, state, solver, problem: Problem, hoisted) -> Array:
    """`lambda_max` at the start of the solve, for each of the first `solver.probes`
    examples: a gradient and `solver.iterations` Hessian-vector products on those rows."""
    m = min(solver.probes, state.batch_size)
    return energy_curvature(
        net,
        [x[:m] for x in state.x],
        problem.free,
        problem.amortised,
        tuple(None if k is None else k[:m] for k in problem.keep),
        iterations=solver.iterations,
        key=jax.random.key(0),
        pres={i: v[:m] for i, v in hoisted.items()},
    )


def _fixed_prediction_grad(net: Network, state: PCState, problem: Problem):
    """`dF/dx` with every prediction and its Jacobian held at the values in `state`, in
    the form of `_state_grad`'s `gradient`."""
    free, amortised = problem.free, problem.amortised
    pre0 = summed_inputs(net, state.x, skip=amortised)

    def pres_of(fx):
        return summed_inputs(net, assemble(state.x, free, fx), skip=amortised)

    _, pre_vjp = jax.vjp(pres_of, problem.free_x0)

    def drive(fx, pres):
        g, energies, _ = node_terms(net, assemble(state.x, free, fx), skip=amortised, pres=pres)
        return g, per_example(energies, problem.batch, net.dtype)

    def gradient(free_xs, leaky, first):
        (_, each), (g_own, g_pre) = jax.value_and_grad(drive, argnums=(0, 1), has_aux=True)(
            free_xs, pre0
        )
        (from_children,) = pre_vjp(g_pre)
        return each, leaky, tuple(a + b for a, b in zip(g_own, from_children))

    return gradient
