"""The largest curvature of the energy in the free states: what bounds a stable Euler step."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, PRNGKeyArray
from .._free_energy import node_terms
from .._network import Network
from .._state import PCState, amortised_nodes, free_nodes


def assemble(xs, free, free_xs) -> list:
    """Every node's states, with the free nodes' taken from `free_xs`."""
    out = list(xs)
    for i, x in zip(free, free_xs):
        out[i] = x
    return out


def _dot(a, b) -> Array:
    """Per-example inner product of two tuples of `(batch, ...)` arrays."""
    return sum(jnp.sum((u * v).reshape(u.shape[0], -1), axis=1) for u, v in zip(a, b))  # pyright: ignore[reportReturnType]  # never empty


def max_curvature(
    net: Network, state: PCState, *, iterations: int = 20, key: PRNGKeyArray | None = None
) -> Float[Array, " batch"]:
    r"""The largest eigenvalue `lambda_max` of the Hessian of the energy in the free
    states, for every example of a batch.

    Plain Euler relaxation, `x <- x - dt * dF/dx`, is stable only while
    `dt * lambda_max < 2`; `lambda_max` grows as a network trains, so a step that works
    at initialisation can overshoot later ([`pcastro.RESULTS`][]`.oscillated`). The
    examples of a batch are independent, so the Hessian is block-diagonal over them and
    each block has its own `lambda_max`; the batch's stable step is set by the largest.

    Estimated by `iterations` steps of power iteration on Hessian-vector products
    (`H v = d/de dF/dx(x + e v)`, forward-over-reverse), each example's vector
    normalised separately, and returned as the Rayleigh quotient `v^T H v` of the last
    vector. Power iteration finds the eigenvalue of largest magnitude; near a minimum of
    the energy (the usual case) that is `lambda_max`. Partially clamped units are held.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `state`: a batched [`pcastro.PCState`][], e.g. `pcastro.init_state(net, x, y)` or
      `infer(...).state`.
    - `iterations`: power-iteration steps (each costs about two gradient evaluations).
    - `key`: the random start vector's key (default `jax.random.key(0)`).

    **Returns:**

    An array of shape `(batch,)`: each example's `lambda_max` estimate. A stable Euler
    step for the batch is any `dt < 2 / max(...)`.

    **Example:**

    ```python
    import jax, jax.numpy as jnp
    import pcastro as pc

    net = pc.mlp([4, 8, 3], key=jax.random.key(0))
    state = pc.init_state(net, jnp.ones((2, 4)), jnp.zeros((2, 3)))
    lam = pc.max_curvature(net, state)
    dt = 1.0 / float(lam.max())  # half the largest stable Euler step
    ```
    """
    if not isinstance(net, Network):
        raise TypeError(f"`net` must be a pcastro.Network, got {type(net).__name__}.")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"`iterations` must be a positive int, got {iterations!r}.")
    key = jax.random.key(0) if key is None else key
    return _max_curvature(net, state, iterations, key)


def _normalise(vs):
    """Each example's vector scaled to unit norm (a zero vector stays zero)."""
    norm = jnp.sqrt(_dot(vs, vs))
    scale = jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)
    return tuple(v * scale.reshape((-1,) + (1,) * (v.ndim - 1)).astype(v.dtype) for v in vs)


def power_iteration(grad, x, start, iterations: int, key) -> Array:
    """`lambda_max` of the Hessian of the function whose gradient is `grad`, at `x`,
    per example: `iterations` Hessian-vector products from `start` (mixed with a little
    noise, so that a zero start still finds the top mode), Rayleigh quotient at the end."""
    keys = jax.random.split(key, len(x))
    noise = _normalise(tuple(jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, x)))
    start = _normalise(start)
    v = _normalise(tuple(a + 0.3 * b for a, b in zip(start, noise)))

    def hvp(v):
        return jax.jvp(grad, (x,), (v,))[1]

    v = jax.lax.fori_loop(0, iterations - 1, lambda _, v: _normalise(hvp(v)), v)
    return _dot(v, hvp(v))


def held(vs, keep):
    """`vs` with the clamped units of partially clamped nodes zeroed."""
    return tuple(v if m is None else v * m for v, m in zip(vs, keep))


def energy_curvature(net, xs, free, amortised, keep, *, iterations, key, pres=None, start=None):
    """`lambda_max` of the Hessian of the energy in the free nodes `free` of the batch of
    states `xs`, per example (`pres`: summed inputs held fixed, as the driver hoists them;
    `keep`: 1 on the free units of partially clamped nodes). The power iteration starts
    from `start`, by default from the gradient."""

    def grad(fx):
        def total(fx):
            return node_terms(net, assemble(xs, free, fx), skip=amortised, pres=pres)[0]

        return held(jax.grad(total)(fx), keep)

    x0 = tuple(xs[i] for i in free)
    k_start, k_noise = jax.random.split(key)
    start = grad(x0) if start is None else held(start(k_start, x0), keep)
    return power_iteration(grad, x0, start, iterations, k_noise)


def _random_start(key, x0):
    keys = jax.random.split(key, len(x0))
    return tuple(jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, x0))


@eqx.filter_jit
def _max_curvature(net, state, iterations, key):
    free = free_nodes(net, state.clamps)
    if not free:
        raise ValueError(
            "Every node of the state is clamped, so the energy has no free states and no "
            "curvature; free at least one node (`pcastro.init_state(net, x)`)."
        )
    keep = tuple(None if state.masks[i] is None else 1.0 - state.masks[i] for i in free)
    amortised = amortised_nodes(net, state.clamps)
    return energy_curvature(
        net, state.x, free, amortised, keep, iterations=iterations, key=key, start=_random_start
    )
