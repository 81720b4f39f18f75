"""What every solve shares: the free units it moves, the loop, the relaxed state and the
status. [`pcastro.infer`][] runs it with a state solver; [`pcastro.incremental_step`][]
with a step that also moves the weights."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._custom_types import Array
from .._network import Network
from .._state import PCState, amortised_nodes, errors, free_nodes
from ._curvature import assemble
from ._results import RESULTS
from ._solvers import within_noise

# A solve of at most this many steps is unrolled: without the loop XLA fuses across steps
# and the 3-step training step of an MLP runs about 10% faster on CPU, for the same compile
# time (benchmarks/compile_time.py); at 20 steps unrolling costs compile and step time.
_UNROLL_STEPS = 4


class Problem(NamedTuple):
    """The units a solve moves, read once from the network and the clamps.

    - `free`: indices of the nodes with free units.
    - `amortised`: free nodes held at their prediction (a free cross-entropy node).
    - `free_x0`: the starting states of the free nodes.
    - `keep`: per free node, 1 on its free units where it is partly clamped, else None.
    - `leaky0`: the starting error neurons of the leaky nodes, by node index.
    - `batch`: the batch size.
    """

    free: tuple[int, ...]
    amortised: tuple[int, ...]
    free_x0: tuple[Array, ...]
    keep: tuple[Array | None, ...]
    leaky0: dict[int, Array]
    batch: int


def pose(net: Network, state: PCState) -> Problem:
    """The `Problem` of relaxing `state` on `net`."""
    free = free_nodes(net, state.clamps)
    return Problem(
        free=free,
        amortised=amortised_nodes(net, state.clamps),
        free_x0=tuple(state.x[i] for i in free),
        keep=tuple(None if (m := state.masks[i]) is None else 1.0 - m for i in free),
        leaky0={i: state.e[i] for i, n in enumerate(net.nodes, start=1) if n.tau_e is not None},  # pyright: ignore[reportArgumentType]  # set for leaky nodes
        batch=state.batch_size,
    )


def per_example(energies: dict, batch: int, dtype) -> Array:
    """Each example's energy summed over the nodes, shape `(batch,)`."""
    return sum(energies.values(), jnp.zeros((batch,), dtype))


def masked(grads, keep):
    """`dF/dx` on the free units only: zero on the clamped units of partly clamped nodes."""
    return tuple(g if m is None else g * m for g, m in zip(grads, keep))


def hold_clamped(new_xs, keep, free_x0):
    """The clamped units of partly clamped nodes put back: a stateful solver (momentum,
    weight decay) can move a unit whose gradient is zero."""
    return tuple(
        n if m is None else jnp.where(m > 0, n, x0) for n, m, x0 in zip(new_xs, keep, free_x0)
    )


def rose(energy: Array, last: Array) -> Array:
    """Whether an example's energy rose on a step by more than 0.1% (and float noise).
    Smaller rises are not overshoot: near a minimum of a ReLU network, units that cross
    their kink make even a tiny stable step chatter by ~1e-4 of the energy (measured on
    the 784-400-400-10 benchmark network at initialisation, 100 steps of Euler 0.02-0.1),
    while a step past 2 / lambda_max raises it by far more within a few steps."""
    return ~within_noise(energy, last + 1e-3 * jnp.abs(last)) & jnp.isfinite(last)


def rms(grads, keep) -> Array:
    """Root-mean-square of `dF/dx` over the free units only (clamped units excluded)."""
    sq = sum(jnp.sum(g**2) for g in grads)
    n = sum(g.size if m is None else jnp.sum(m) for g, m in zip(grads, keep))
    return jnp.sqrt(sq / jnp.maximum(n, 1))


class Run(NamedTuple):
    """What `iterate` hands back: the final carry, the number of steps, the mean
    energy before the first step, the per-step energies (or None) and whether the
    solve met `tol` (True without one)."""

    carry: Any
    num_steps: Array
    first: Array
    energies: Array | None
    converged: Array


def iterate(
    one_step: Callable[[Any], tuple[Any, Array, Array]],
    carry: Any,
    *,
    steps: int,
    tol: float | None,
    terminate: Callable[[Array, float], Array],
    trace: bool,
    unroll: bool,
    dtype,
) -> Run:
    """Run `one_step(carry) -> (carry, mean energy before the step, RMS of dF/dx)`.

    Exactly `steps` steps in a `lax.scan` without `tol`; with it, a `lax.while_loop`
    that stops once `terminate(norm, tol)`, after `steps` steps, or at a non-finite
    energy.
    """
    if tol is None:
        carry, values = lax.scan(
            lambda c, _: one_step(c)[:2],
            carry,
            None,
            length=steps,
            # unrolled on request (convolutions on CPU), and always for a few steps
            unroll=steps if unroll or steps <= _UNROLL_STEPS else 1,
        )
        energies = values if trace else None
        return Run(carry, jnp.asarray(steps), values[0], energies, jnp.asarray(True))

    def cond(loop):
        _, k, _, norm, value, _ = loop
        return (k < steps) & ~terminate(norm, tol) & jnp.isfinite(value)

    def body(loop):
        carry, k, first, _, _, buf = loop
        carry, value, norm = one_step(carry)
        first = jnp.where(k == 0, value, first)
        return carry, k + 1, first, norm, value, buf.at[k].set(value)

    inf = jnp.asarray(jnp.inf, dtype)
    buf = jnp.full((steps,), jnp.nan, dtype=dtype)
    loop0 = (carry, jnp.asarray(0), inf, inf, jnp.asarray(0.0, dtype), buf)
    carry, num_steps, first, norm, _, buf = lax.while_loop(cond, body, loop0)
    return Run(carry, num_steps, first, buf if trace else None, terminate(norm, tol))


def finalise(net: Network, state: PCState, problem: Problem, free_xs, leaky) -> PCState:
    """The relaxed state: free states put back, free cross-entropy nodes at their softmax,
    error neurons read at the returned states."""
    xs = assemble(state.x, problem.free, free_xs)
    for i in problem.amortised:
        node = net.nodes[i - 1]
        xs[i] = jax.vmap(node.predict)([xs[p] for p in node.parents])  # pyright: ignore[reportOptionalIterable]  # resolved by Network
    new = PCState(x=tuple(xs), e=state.e, masks=state.masks, clamps=state.clamps)
    instant = errors(net, new)
    # A leaky error neuron integrates the error at the returned states once more, so the
    # returned `e` is read at the returned `x` (and `tau_e=1` gives the instant errors).
    es = tuple(
        leaky[i] + (instant[i] - leaky[i]) / net.nodes[i - 1].tau_e if i in leaky else e
        for i, e in enumerate(instant)
    )
    return PCState(x=new.x, e=es, masks=state.masks, clamps=state.clamps)


def solve_status(
    *,
    final: Array,
    free_xs,
    first: Array,
    rose: Array,
    converged: Array,
    descends: bool,
    checks_rises: bool,
) -> Array:
    """The [`pcastro.RESULTS`][] code of a solve, the first that applies of: `nonfinite`
    (energy or a free state), `diverged` (the final mean energy above the start beyond
    float noise for a descent, more than tenfold otherwise), `oscillated` (an example's
    energy rose on some step, counted only with `checks_rises`), `max_steps_reached`
    (`tol` not met), `successful`."""
    finite = jnp.isfinite(final) & jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(x)) for x in free_xs] or [True])
    )
    allowed = first + 1e-3 * (jnp.abs(first) + 1e-3) if descends else 10.0 * first + 1.0
    oscillated = rose if checks_rises else jnp.asarray(False)
    return jnp.where(
        ~finite,
        RESULTS.nonfinite,
        jnp.where(
            final > allowed,
            RESULTS.diverged,
            jnp.where(
                oscillated,
                RESULTS.oscillated,
                jnp.where(converged, RESULTS.successful, RESULTS.max_steps_reached),
            ),
        ),
    )
