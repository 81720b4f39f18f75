"""The one inference driver: relax the free states of a batch to (near) equilibrium."""

import math
import operator
import warnings
from typing import Any, SupportsFloat, SupportsIndex

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from .._custom_types import Array, Float, Int
from .._free_energy import local_energies, node_terms, summed_inputs
from .._network import Network
from .._state import (
    Clamp,
    PCState,
    amortised_nodes,
    check_clamps,
    errors,
    free_nodes,
)
from ._curvature import assemble, energy_curvature
from ._results import RESULTS, raise_if_failed
from ._solvers import AbstractSolver, AdaptiveEuler, within_noise


class Solution(eqx.Module):
    """The result of [`pcastro.infer`][].

    **Fields:**

    - `state`: the relaxed [`pcastro.PCState`][], its error neurons read at the
      returned states.
    - `status`: a code of [`pcastro.RESULTS`][]; 0 means success.
    - `num_steps`: how many inference steps ran.
    - `energy`: mean free energy per example at the returned states (and parameters).
    - `energies`: per-step mean energy before each step (with `trace=True`), else None;
      NaN after the last step of a tolerance-stopped solve.
    - `network`: the network at the end of the solve; a different one only when the
      solver learns ([`pcastro.IncrementalPC`][]).
    - `opt_state`: the parameter-optimiser state of a solver that learns, else None.
    - `solver_state`: the solver's running state, to resume the solve exactly.
    """

    state: PCState
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    energy: Float[Array, ""]
    energies: Float[Array, " steps"] | None
    network: Network
    opt_state: Any
    solver_state: Any


# A solve of at most this many steps is unrolled: without the loop XLA fuses across steps
# and the 3-step training step of an MLP runs about 10% faster on CPU, for the same compile
# time (benchmarks/compile_time.py); at 20 steps unrolling costs compile and step time.
_UNROLL_STEPS = 4


def _allowed_rise(solver: AbstractSolver, first: Array) -> Array:
    """The highest final energy that is not `diverged`: for a descent solver the start
    (beyond float noise), for others (momentum, Adam) ten times the start."""
    if solver.descends:
        return first + 1e-3 * (jnp.abs(first) + 1e-3)
    return 10.0 * first + 1.0


def _rose(energy: Array, last: Array) -> Array:
    """Whether an example's energy rose on a step by more than 0.1% (and float noise).
    Smaller rises are not overshoot: near a minimum of a ReLU network, units that cross
    their kink make even a tiny stable step chatter by ~1e-4 of the energy (measured on
    the 784-400-400-10 benchmark network at initialisation, 100 steps of Euler 0.02-0.1),
    while a step past 2 / lambda_max raises it by far more within a few steps."""
    return ~within_noise(energy, last + 1e-3 * jnp.abs(last)) & jnp.isfinite(last)


def _per_example(energies: dict, batch: int, dtype) -> Array:
    """Each example's energy summed over the nodes, shape `(batch,)`."""
    return sum(energies.values(), jnp.zeros((batch,), dtype))


def _check_solver_state(solver, solver_state, free_x0, params, opt_state) -> None:
    """A clear error for a running state from another solver or another problem: it
    would otherwise fail deep inside JAX or Optax (`'TraceState' object has no attribute
    'mu'`)."""
    if solver.learns and opt_state is None:
        return  # resuming a learning solver: its optimiser state travels in `solver_state`
    kwargs = {"curvature": None} if solver.measures_curvature else {}
    want = eqx.filter_eval_shape(
        lambda x0, p: solver.init(x0, p, opt_state, **kwargs), free_x0, params
    )
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
    if solver.learns and fixed_predictions:
        raise ValueError("`fixed_predictions` cannot be combined with a solver that learns.")
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
        for p in node.parents:
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


def _as_int(value, name: str):
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


def _rms(grads, keep) -> Array:
    """Root-mean-square of `dF/dx` over the free units only (clamped units excluded)."""
    sq = sum(jnp.sum(g**2) for g in grads)
    n = sum(g.size if m is None else jnp.sum(m) for g, m in zip(grads, keep))
    return jnp.sqrt(sq / jnp.maximum(n, 1))


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
    opt_state: Any = None,
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
      follows the measured curvature of the energy), [`pcastro.Euler`][] (a fixed step),
      [`pcastro.OptaxSolver`][] or [`pcastro.IncrementalPC`][] (which also updates the
      weights every step).
    - `steps`: the number of steps, or the maximum number with `tol`.
    - `tol`: gradient tolerance for early stopping, or None for exactly `steps` steps.
    - `fixed_predictions`: hold every prediction at its value in `state` (the
      fixed-prediction assumption of Millidge et al., 2022, under which PC computes
      backprop's gradients).
    - `trace`: record the mean energy before every step.
    - `throw`: raise on a non-finite energy, divergence or (with `tol`) `max_steps`;
      otherwise report it only in `Solution.status`.
    - `opt_state`: the parameters' optimiser state, for a solver that learns
      ([`pcastro.IncrementalPC`][]).
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
        opt_state=opt_state,
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
    opt_state: Any,
    solver_state: Any,
    unroll: bool,
) -> Solution:
    _check_inputs(net, state, solver, steps, tol, fixed_predictions, unroll)
    free = free_nodes(net, state.clamps)
    amortised = amortised_nodes(net, state.clamps)
    batch = state.batch_size
    free_x0 = tuple(state.x[i] for i in free)
    # Where a node is partly clamped, `keep` is 1 on its free units.
    keep = tuple(None if state.masks[i] is None else 1.0 - state.masks[i] for i in free)
    leaky0 = {i: state.e[i] for i, n in enumerate(net.nodes, start=1) if n.tau_e is not None}
    params, static = eqx.partition(net, eqx.is_inexact_array)

    # Predictions of nodes whose parents are all fully clamped do not change during
    # inference: compute them once, outside the loop (unless the weights move).
    clamped = [c is Clamp.CLAMPED for c in state.clamps]
    hoisted = {}
    if not solver.learns:
        hoisted = summed_inputs(
            net,
            state.x,
            skip=[
                i
                for i, node in enumerate(net.nodes, start=1)
                if i in amortised or not all(clamped[p] for p in node.parents)
            ],
        )
    if fixed_predictions:
        grad_fn = _fixed_prediction_grad(net, state, free, amortised)
    else:

        def grad_fn(free_xs, leaky, p, first):
            def drive(fx, p):
                model = eqx.combine(p, static) if solver.learns else net
                xs = assemble(state.x, free, fx)
                g, energies, new = node_terms(
                    model, xs, skip=amortised, pres=hoisted, leaky=leaky, integrate=~first
                )
                return g, (_per_example(energies, batch, net.dtype), new)

            argnums = (0, 1) if solver.learns else 0
            (_, (each, leaky)), g = jax.value_and_grad(drive, argnums, has_aux=True)(free_xs, p)
            g, pg = g if solver.learns else (g, None)
            return each, leaky, g, pg

    def one_step(carry):
        free_xs, leaky, inner, p, k, last, rose = carry
        each, leaky, g, pg = grad_fn(free_xs, leaky, p, k == 0)
        g = tuple(gi if m is None else gi * m for gi, m in zip(g, keep))
        # Any example whose energy rose on this step (a step that overshoots).
        rose = rose | jnp.any(_rose(each, last))
        if solver.monotone:
            new_xs, inner = solver.step(g, free_xs, inner, energy=each)
        else:
            new_xs, inner = solver.step(g, free_xs, inner)
        # A stateful solver (momentum, weight decay) can move a unit whose gradient is
        # zero: put the clamped units of partially clamped nodes back.
        new_xs = tuple(
            n if m is None else jnp.where(m > 0, n, x0) for n, m, x0 in zip(new_xs, keep, free_x0)
        )
        if solver.learns:
            pg = jax.tree_util.tree_map(lambda v: v / batch, pg)
            p, inner = solver.update_params(pg, p, inner)
        return (new_xs, leaky, inner, p, k + 1, each, rose), jnp.sum(each) / batch, _rms(g, keep)

    if solver_state is None and solver.measures_curvature:
        # Nothing free, nothing to measure (and nothing will move).
        curvature = (
            _probe_curvature(net, state, solver, free, amortised, hoisted, keep) if free else None
        )
        solver_state = solver.init(free_x0, params, opt_state, curvature=curvature)
    elif solver_state is None:
        solver_state = solver.init(free_x0, params, opt_state)
    else:
        _check_solver_state(solver, solver_state, free_x0, params, opt_state)
    # Fixed weights stay out of the loop carry.
    carry0 = (
        free_x0,
        leaky0,
        solver_state,
        params if solver.learns else None,
        jnp.asarray(0),
        jnp.full((batch,), jnp.inf, net.dtype),
        jnp.asarray(False),
    )
    if tol is None:
        carry, values = lax.scan(
            lambda c, _: one_step(c)[:2],
            carry0,
            None,
            length=steps,
            # unrolled on request (convolutions on CPU), and always for a few steps
            unroll=steps if unroll or steps <= _UNROLL_STEPS else 1,
        )
        num_steps, first = jnp.asarray(steps), values[0]
        energies = values if trace else None
        converged = jnp.asarray(True)
    else:

        def cond(loop):
            _, k, _, norm, value, _ = loop
            return (k < steps) & ~solver.terminate(norm, tol) & jnp.isfinite(value)

        def body(loop):
            carry, k, first, _, _, buf = loop
            carry, value, norm = one_step(carry)
            first = jnp.where(k == 0, value, first)
            return carry, k + 1, first, norm, value, buf.at[k].set(value)

        inf = jnp.asarray(jnp.inf, net.dtype)
        buf = jnp.full((steps,), jnp.nan, dtype=net.dtype)
        loop0 = (carry0, jnp.asarray(0), inf, inf, jnp.asarray(0.0, net.dtype), buf)
        carry, num_steps, first, norm, _, buf = lax.while_loop(cond, body, loop0)
        energies = buf if trace else None
        converged = solver.terminate(norm, tol)
    free_xs, leaky, solver_state, p, _, last, rose = carry
    if solver.learns:
        net = eqx.combine(p, static)
    if solver.monotone:
        # The final trial has not been compared yet: each example keeps its best point.
        trial = assemble(state.x, free, free_xs)
        _, trial_energies, _ = node_terms(net, trial, skip=amortised, pres=hoisted)
        free_xs, solver_state = solver.settle(
            free_xs, _per_example(trial_energies, batch, net.dtype), solver_state
        )
    new = _finalise(net, state, free, amortised, free_xs, leaky)
    each = jnp.sum(local_energies(net, new), axis=1)
    if not solver.monotone:
        rose = rose | jnp.any(_rose(each, last))
    final = jnp.mean(each)
    finite = jnp.isfinite(final) & jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(x)) for x in free_xs] or [True])
    )
    # Only a solver that is meant to descend on every step (plain Euler) oscillates; a
    # monotone solver rejects the trials that rose, and momentum may rise for a while.
    # Leaky error neurons and held predictions do not descend `F` itself: no check there.
    checks_rises = solver.descends and not solver.monotone and not leaky0
    oscillated = rose if (checks_rises and not fixed_predictions) else jnp.asarray(False)
    status = jnp.where(
        ~finite,
        RESULTS.nonfinite,
        jnp.where(
            final > _allowed_rise(solver, first),
            RESULTS.diverged,
            jnp.where(
                oscillated,
                RESULTS.oscillated,
                jnp.where(converged, RESULTS.successful, RESULTS.max_steps_reached),
            ),
        ),
    )
    return Solution(
        state=new,
        status=raise_if_failed(status, throw=throw),
        num_steps=num_steps,
        energy=final,
        energies=energies,
        network=net,
        opt_state=solver.postprocess(solver_state),
        solver_state=solver_state,
    )


def _probe_curvature(net, state, solver, free, amortised, hoisted, keep) -> Array:
    """`lambda_max` at the start of the solve, for each of the first `solver.probes`
    examples: a gradient and `solver.iterations` Hessian-vector products on those rows."""
    m = min(solver.probes, state.batch_size)
    return energy_curvature(
        net,
        [x[:m] for x in state.x],
        free,
        amortised,
        tuple(None if k is None else k[:m] for k in keep),
        iterations=solver.iterations,
        key=jax.random.key(0),
        pres={i: v[:m] for i, v in hoisted.items()},
    )


def _finalise(net, state, free, amortised, free_xs, leaky) -> PCState:
    """The relaxed state: free states put back, free cross-entropy nodes at their softmax,
    error neurons read at the returned states."""
    xs = assemble(state.x, free, free_xs)
    for i in amortised:
        node = net.nodes[i - 1]
        xs[i] = jax.vmap(node.predict)([xs[p] for p in node.parents])
    new = PCState(x=tuple(xs), e=state.e, masks=state.masks, clamps=state.clamps)
    instant = errors(net, new)
    # A leaky error neuron integrates the error at the returned states once more, so the
    # returned `e` is read at the returned `x` (and `tau_e=1` gives the instant errors).
    es = tuple(
        leaky[i] + (instant[i] - leaky[i]) / net.nodes[i - 1].tau_e if i in leaky else e
        for i, e in enumerate(instant)
    )
    return PCState(x=new.x, e=es, masks=state.masks, clamps=state.clamps)


def _fixed_prediction_grad(net: Network, state: PCState, free, amortised):
    """`dF/dx` with every prediction and its Jacobian held at the values in `state`."""
    pre0 = summed_inputs(net, state.x, skip=amortised)

    def pres_of(fx):
        return summed_inputs(net, assemble(state.x, free, fx), skip=amortised)

    _, pre_vjp = jax.vjp(pres_of, tuple(state.x[i] for i in free))

    def grad_fn(free_xs, leaky, p, first):
        def drive(fx, pres):
            g, energies, _ = node_terms(net, assemble(state.x, free, fx), skip=amortised, pres=pres)
            return g, _per_example(energies, state.batch_size, net.dtype)

        (_, each), (g_own, g_pre) = jax.value_and_grad(drive, argnums=(0, 1), has_aux=True)(
            free_xs, pre0
        )
        (from_children,) = pre_vjp(g_pre)
        g = tuple(a + b for a, b in zip(g_own, from_children))
        return each, leaky, g, None

    return grad_fn
