"""The one inference driver: relax the free states of a batch to (near) equilibrium."""

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from .._custom_types import Array, Float, Int
from .._energy import CrossEntropy
from .._free_energy import local_energies
from .._network import Network
from .._state import PCState, check_clamps, errors
from ._solvers import AbstractSolver, Euler, IncrementalPC


class RESULTS:
    """Status codes of an inference solve; `RESULTS.message(code)` is what users read."""

    successful = 0
    max_steps_reached = 1
    nonfinite = 2
    diverged = 3

    _messages = {
        0: "",
        1: (
            "Inference reached `steps` before the gradient norm fell below `tol`: raise "
            "`steps`, loosen `tol`, or pass `throw=False` to accept the approximate states."
        ),
        2: (
            "Inference produced a non-finite energy (NaN or inf): check the data for NaN, "
            "lower the solver's step size (e.g. `Euler(dt=0.05)`), or scale the inputs."
        ),
        3: (
            "Inference diverged (the energy grew more than tenfold): lower the solver's step "
            "size (e.g. `Euler(dt=0.05)`) or use `OptaxSolver(optax.sgd(...))`."
        ),
    }

    @classmethod
    def message(cls, code: int) -> str:
        return cls._messages[int(code)]


_DIVERGENCE_FACTOR = 10.0


class Solution(eqx.Module):
    """The result of [`pcastro.infer`][].

    **Fields:**

    - `state`: the relaxed [`pcastro.PCState`][], its error neurons up to date.
    - `status`: a code of [`pcastro.RESULTS`][]; 0 means success.
    - `num_steps`: how many inference steps ran.
    - `energy`: mean free energy per example at the returned states.
    - `energies`: per-step mean energy before each step (with `trace=True`), else None;
      NaN after the last step of a tolerance-stopped solve.
    - `network`, `opt_state`: the network and optimiser state, updated only by
      [`pcastro.IncrementalPC`][].
    """

    state: PCState
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    energy: Float[Array, ""]
    energies: Float[Array, " steps"] | None
    network: Network
    opt_state: Any


def _amortised(net: Network, state: PCState) -> tuple[int, ...]:
    return tuple(
        i
        for i, node in enumerate(net.nodes, start=1)
        if isinstance(node.energy, CrossEntropy) and state.clamps[i] == "free"
    )


def free_indices(net: Network, state: PCState) -> tuple[int, ...]:
    """Nodes whose states inference moves (not clamped, not held at a closed-form minimum)."""
    skip = set(_amortised(net, state))
    return tuple(i for i, c in enumerate(state.clamps) if c != "clamped" and i not in skip)


def _assemble(xs: tuple, free: tuple[int, ...], free_xs: tuple) -> list:
    out = list(xs)
    for i, x in zip(free, free_xs):
        out[i] = x
    return out


def summed_inputs(net: Network, xs, skip=(), given=None) -> dict[int, Array]:
    """Batched summed inputs `pre_l` of every node not in `skip`."""
    given = given or {}
    out = {}
    for i, node in enumerate(net.nodes, start=1):
        if i in skip:
            continue
        if i in given:
            out[i] = given[i]
        else:
            out[i] = jax.vmap(node.summed_input)([xs[p] for p in node.parents])
    return out


def batch_energy(net: Network, xs, *, skip=(), hoisted=None, leaky=None, first=False):
    """Total energy over the batch, with leaky error neurons entering linearly.

    Returns `(G, (F, leaky_new))`: `G` is what inference differentiates (equal to `F`
    with instant errors; a leaky error neuron first integrates,
    `e_l <- e_l + ((x_l - mu_l) - e_l) / tau_e`, and the term `<e_l, x_l - mu_l>` then
    gives the force `e_l - J^T e_{l+1}`), `F` the energy, `leaky_new` the updated
    leaky error neurons. On the `first` step the error neurons are taken as given: a
    state's `e` has already integrated the error at its own `x`.
    """
    pres = summed_inputs(net, xs, skip=skip, given=hoisted)
    surrogate = 0.0
    total = 0.0
    leaky_new = {}
    for i, pre in pres.items():
        node = net.nodes[i - 1]
        if leaky is not None and node.tau_e is not None:
            err = xs[i] - node.activation(pre)
            total = total + 0.5 * jnp.sum(err**2)
            # The error neuron integrates first, then drives the states.
            e_new = lax.stop_gradient(
                jnp.where(first, leaky[i], leaky[i] + (err - leaky[i]) / node.tau_e)
            )
            surrogate = surrogate + jnp.sum(e_new * err)
            leaky_new[i] = e_new
        else:
            e_i = jnp.sum(jax.vmap(lambda x, p, n=node: n.energy(x, p, n.activation))(xs[i], pre))
            total = total + e_i
            surrogate = surrogate + e_i
    return surrogate, (total, leaky_new)


def check_inputs(net: Network, state: PCState, solver, steps, tol) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"`net` must be a pcastro.Network, got {type(net).__name__}.")
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            f"`solver` must be a pcastro solver such as `pcastro.Euler(dt=0.1)` or "
            f"`pcastro.OptaxSolver(optax.adam(0.1))`, got {solver!r}."
        )
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    if tol is not None and not tol > 0:
        raise ValueError(f"`tol` must be positive or None, got {tol!r}.")
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
        here = state.clamps[i] != "free" or clamped_below[i]
        for p in node.parents:
            clamped_below[p] = clamped_below[p] or here
    if state.clamps[0] != "clamped" and not clamped_below[0]:
        warnings.warn(
            "Inference cannot move the free units of node 0 (the input): no node that it "
            "feeds is clamped, so the feedforward start already has zero energy. For associative "
            "recall clamp the label as well (`init_state(net, x, y, x_mask=...)`) or use a "
            "generative network that predicts the data on its top node "
            "(`init_state(net, y=data, y_mask=...)`).",
            UserWarning,
            stacklevel=4,
        )


def _rms(grads, keep) -> Array:
    """Root-mean-square of `dF/dx` over the free units only (clamped units excluded)."""
    sq = sum(jnp.sum(g**2) for g in grads)
    n = sum(g.size if m is None else jnp.sum(m) for g, m in zip(grads, keep))
    return jnp.sqrt(sq / jnp.maximum(n, 1))


@eqx.filter_jit
def infer(
    net: Network,
    state: PCState,
    *,
    solver: AbstractSolver = Euler(dt=0.1),
    steps: int = 20,
    tol: float | None = None,
    fixed_predictions: bool = False,
    trace: bool = False,
    throw: bool = True,
    opt_state: Any = None,
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
    - `solver`: a solver object: [`pcastro.Euler`][], [`pcastro.OptaxSolver`][] or
      [`pcastro.IncrementalPC`][] (which also updates the weights every step).
    - `steps`: the number of steps, or the maximum number with `tol`.
    - `tol`: gradient tolerance for early stopping, or None for exactly `steps` steps.
    - `fixed_predictions`: hold every prediction at its value in `state` (the
      fixed-prediction assumption of Millidge et al., 2022, under which PC computes
      backprop's gradients).
    - `trace`: record the mean energy before every step.
    - `throw`: raise on a non-finite energy, divergence or (with `tol`) `max_steps`;
      otherwise report it only in `Solution.status`.
    - `opt_state`: the parameters' optimiser state, needed by `IncrementalPC` only.

    **Returns:**

    A [`pcastro.Solution`][].

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
    check_inputs(net, state, solver, steps, tol)
    incremental = isinstance(solver, IncrementalPC)
    if incremental and opt_state is None:
        raise ValueError(
            "IncrementalPC updates the weights: pass `opt_state=solver.optimizer.init("
            "eqx.filter(net, eqx.is_inexact_array))`."
        )
    if incremental and fixed_predictions:
        raise ValueError("`fixed_predictions` and IncrementalPC cannot be combined.")
    if fixed_predictions and any(node.tau_e is not None for node in net.nodes):
        raise ValueError(
            "`fixed_predictions=True` assumes instant errors, but the network has leaky error "
            "neurons (`tau_e`); build it without `tau_e` for the fixed-prediction limit."
        )
    free_xs, leaky, net, opt_state, stats = relax(
        net,
        state,
        solver=solver,
        steps=steps,
        tol=tol,
        fixed_predictions=fixed_predictions,
        trace=trace,
        opt_state=opt_state,
    )
    new = finalise(net, state, free_xs, leaky, compute_errors=True)
    num_steps, status, energies, _ = stats
    final_energy = jnp.mean(jnp.sum(local_energies(net, new), axis=1))
    status = check_status(status, throw=throw)
    return Solution(
        state=new,
        status=status,
        num_steps=num_steps,
        energy=final_energy,
        energies=energies,
        network=net,
        opt_state=opt_state,
    )


def finalise(
    net: Network,
    state: PCState,
    free_xs,
    leaky,
    *,
    compute_errors: bool,
) -> PCState:
    """Put the relaxed free states back into a `PCState`.

    With `compute_errors=False` the instant error neurons are left as they were (a
    training step recomputes them with the parameter gradient, saving a forward pass).
    """
    free = free_indices(net, state)
    xs = _assemble(state.x, free, free_xs)
    for i in _amortised(net, state):
        node = net.nodes[i - 1]
        xs[i] = jax.vmap(node.predict)([xs[p] for p in node.parents])
    new = PCState(x=tuple(xs), e=state.e, masks=state.masks, clamps=state.clamps)
    instant = errors(net, new) if (compute_errors or leaky is not None) else state.e
    # A leaky error neuron integrates the error at the returned states once more, so the
    # returned `e` is read at the returned `x` (and `tau_e=1` gives the instant errors).
    es = tuple(
        leaky[i] + (instant[i] - leaky[i]) / net.nodes[i - 1].tau_e
        if (leaky is not None and i in leaky)
        else instant[i]
        for i in range(len(xs))
    )
    return PCState(x=new.x, e=es, masks=state.masks, clamps=state.clamps)


def check_status(status: Array, *, throw: bool) -> Array:
    """With `throw`, attach a runtime error carrying the message for a bad `status`."""
    if throw:
        # Tied to the scalar status (returned to the caller), so checking costs nothing
        # in the common case and no large array is routed through the error branch.
        for code in (RESULTS.nonfinite, RESULTS.diverged, RESULTS.max_steps_reached):
            status = eqx.error_if(status, status == code, RESULTS.message(code))
    return status


def relax(
    net: Network,
    state: PCState,
    *,
    solver: AbstractSolver,
    steps: int,
    tol: float | None,
    fixed_predictions: bool = False,
    trace: bool = False,
    opt_state: Any = None,
):
    """The inference loop itself; returns the free states without finalising the state.

    Returns `(free_xs, leaky_errors_or_None, net, opt_state, (num_steps, status,
    energies, final_energy))`.
    """
    free = free_indices(net, state)
    skip = _amortised(net, state)
    incremental = isinstance(solver, IncrementalPC)
    batch = state.batch_size
    free_x0 = tuple(state.x[i] for i in free)
    keep = tuple(None if state.masks[i] is None else 1.0 - state.masks[i] for i in free)
    leaky0 = None
    if any(node.tau_e is not None for node in net.nodes):
        leaky0 = {
            i: state.e[i] for i, node in enumerate(net.nodes, start=1) if node.tau_e is not None
        }
    clamped = [c == "clamped" for c in state.clamps]
    hoisted = None
    if not incremental:
        hoisted = summed_inputs(
            net,
            state.x,
            skip=[
                i
                for i, node in enumerate(net.nodes, start=1)
                if i in skip or not all(clamped[p] for p in node.parents)
            ],
        )

    if fixed_predictions:
        grad_fn = _fixed_prediction_grad(net, state, free, skip)
    else:

        def grad_fn(free_xs, leaky, params, first):
            def f(fx, p):
                model = eqx.combine(p, static) if incremental else net
                return batch_energy(
                    model,
                    _assemble(state.x, free, fx),
                    skip=skip,
                    hoisted=hoisted,
                    leaky=leaky,
                    first=first,
                )

            if incremental:
                (_, (value, leaky_new)), (g, pg) = jax.value_and_grad(
                    f, argnums=(0, 1), has_aux=True
                )(free_xs, params)
                return value, leaky_new, g, jax.tree_util.tree_map(lambda v: v / batch, pg)
            (_, (value, leaky_new)), g = jax.value_and_grad(f, has_aux=True)(free_xs, None)
            return value, leaky_new, g, None

    params, static = eqx.partition(net, eqx.is_inexact_array)

    def one_step(carry):
        free_xs, leaky, solver_state, params, opt_state, k = carry
        value, leaky_new, g, pg = grad_fn(free_xs, leaky, params, k == 0)
        g = tuple(gi if m is None else gi * m for gi, m in zip(g, keep))
        if leaky is not None:
            leaky = {i: leaky_new.get(i, e) for i, e in leaky.items()}
        new_xs, solver_state = solver.step(g, free_xs, solver_state)
        # A stateful solver (momentum, weight decay) can move a unit whose gradient is
        # zero: put the clamped units of partially clamped nodes back.
        new_xs = tuple(
            n if m is None else jnp.where(m > 0, n, x0) for n, m, x0 in zip(new_xs, keep, free_x0)
        )
        if incremental:
            updates, opt_state = solver.optimizer.update(pg, opt_state, params)
            params = optax.apply_updates(params, updates)
        carry = (new_xs, leaky, solver_state, params, opt_state, k + 1)
        return carry, value / batch, _rms(g, keep)

    if not incremental:
        params = None  # the weights stay fixed: keep them out of the loop carry
    carry0 = (free_x0, leaky0, solver.init(free_x0), params, opt_state, jnp.asarray(0))

    if tol is None:

        def scan_body(carry, _):
            carry, value, _ = one_step(carry)
            return carry, value

        carry, values = lax.scan(scan_body, carry0, None, length=steps)
        num_steps = jnp.asarray(steps)
        first, last = values[0], values[-1]
        energies = values if trace else None
        reached = jnp.asarray(False)
    else:
        trace_buf = jnp.full((steps,), jnp.nan, dtype=net.dtype)

        def cond(loop):
            _, k, _, norm, value, _ = loop
            return (k < steps) & (norm >= tol) & jnp.isfinite(value)

        def body(loop):
            carry, k, first, _, _, buf = loop
            carry, value, norm = one_step(carry)
            first = jnp.where(k == 0, value, first)
            buf = buf.at[k].set(value)
            return carry, k + 1, first, norm, value, buf

        inf = jnp.asarray(jnp.inf, net.dtype)
        carry, num_steps, first, norm, last, buf = lax.while_loop(
            cond, body, (carry0, jnp.asarray(0), inf, inf, jnp.asarray(0.0, net.dtype), trace_buf)
        )
        energies = buf if trace else None
        reached = (num_steps >= steps) & (norm >= tol)
    free_xs, leaky, _, params, opt_state, _ = carry
    finite = jnp.isfinite(last) & jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(x)) for x in free_xs] or [True])
    )
    status = jnp.where(
        ~finite,
        RESULTS.nonfinite,
        jnp.where(
            last > _DIVERGENCE_FACTOR * first + 1.0,
            RESULTS.diverged,
            jnp.where(reached, RESULTS.max_steps_reached, RESULTS.successful),
        ),
    )
    if incremental:
        net = eqx.combine(params, static)
    return free_xs, leaky, net, opt_state, (num_steps, status, energies, last)


def _fixed_prediction_grad(net: Network, state: PCState, free, skip):
    """`dF/dx` with every prediction and its Jacobian held at the values in `state`."""
    pre0 = summed_inputs(net, state.x, skip=skip)
    free_x0 = tuple(state.x[i] for i in free)

    def pres_of(fx):
        return summed_inputs(net, _assemble(state.x, free, fx), skip=skip)

    _, pre_vjp = jax.vjp(pres_of, free_x0)

    def grad_fn(free_xs, leaky, params, first):
        xs = _assemble(state.x, free, free_xs)

        def node_term(x, pre, node):
            return jnp.sum(jax.vmap(lambda a, b: node.energy(a, b, node.activation))(x, pre))

        value = 0.0
        d_pre = {}
        d_x = {}
        for i, pre in pre0.items():
            node = net.nodes[i - 1]
            v, (gx, gp) = jax.value_and_grad(node_term, argnums=(0, 1))(xs[i], pre, node)
            value = value + v
            d_pre[i] = gp
            d_x[i] = gx
        (from_children,) = pre_vjp(d_pre)
        g = tuple((d_x[i] if i in d_x else 0.0) + c for i, c in zip(free, from_children))
        return value, {}, g, None

    return grad_fn
