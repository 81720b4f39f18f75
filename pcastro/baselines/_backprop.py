"""Backprop on the very same network: the like-for-like baseline for every PC result."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._custom_types import Array, ArrayLike, Float
from .._free_energy import node_terms
from .._network import Network
from .._state import init_state


def backprop_loss(net: Network, x: ArrayLike, y: ArrayLike) -> Float[Array, ""]:
    r"""The top node's energy at the feedforward pass, averaged over the batch.

    `L = mean_b E_L(y_b, pre_L(x_b))`: `1/2 ||y - mu_L||^2` for a Gaussian top node and the
    cross-entropy for a `CrossEntropy` top node, so backprop minimises exactly the loss
    that PC's clamped top layer carries.

    **Arguments:**

    - `net`: the [`pcastro.Network`][] (the same object PC trains).
    - `x`: input batch; `y`: targets or integer labels.

    **Returns:**

    The mean loss, a scalar.
    """
    # The network's one energy, evaluated for the top node only, at the feedforward
    # states (every hidden error is zero there, so this is the whole free energy).
    state = init_state(net, x, y, compute_errors=False)
    top = net.num_nodes - 1
    _, energies, _ = node_terms(net, state.x, skip=range(1, top))
    return jnp.mean(energies[top])


def backprop_step(
    net: Network,
    opt_state: Any,
    x: ArrayLike,
    y: ArrayLike,
    *,
    optimizer: optax.GradientTransformation,
) -> tuple[Network, Any, Float[Array, ""]]:
    """One backprop training step on the network's modules: `jax.grad` of
    [`pcastro.baselines.backprop_loss`][] through `optimizer`.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `opt_state`: `optimizer.init(eqx.filter(net, eqx.is_inexact_array))`.
    - `x`: input batch; `y`: targets or integer labels.
    - `optimizer`: any Optax transformation.

    **Returns:**

    `(net, opt_state, loss)`.
    """
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss_fn(p):
        return backprop_loss(eqx.combine(p, static), x, y)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    # optax types its updates as arrays, not as the Equinox module they are here.
    return eqx.combine(optax.apply_updates(params, updates), static), opt_state, loss  # pyright: ignore[reportReturnType]
