"""Backprop on the very same network: the like-for-like baseline for every PC result."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._custom_types import Array, ArrayLike, Float
from .._network import Network
from .._state import _as_target


def backprop_loss(net: Network, x: ArrayLike, y: ArrayLike) -> Float[Array, ""]:
    r"""The top node's energy at the feedforward pass, averaged over the batch.

    `L = mean_b E_L(y_b, pre_L(x_b))`: `1/2 ||y - mu_L||^2` for a Gaussian top node and the
    cross-entropy for a `CrossEntropy` top node, so backprop minimises exactly the loss
    that PC's clamped top layer carries.

    **Arguments:**

    - `net`: the [`pcastro.Network`][] (the same object PC trains).
    - `x`: input batch; `y`: targets or integer labels.
    """
    y = _as_target(net, y)
    x = jnp.asarray(x, net.dtype)
    top = net.nodes[-1]

    def one(xb, yb):
        states = [xb]
        for node in net.nodes[:-1]:
            states.append(node.predict([states[p] for p in node.parents]))
        pre = top.summed_input([states[p] for p in top.parents])
        return top.energy(yb, pre, top.activation)

    return jnp.mean(jax.vmap(one)(x, y))


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

    **Returns:**

    `(net, opt_state, loss)`.
    """
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss_fn(p):
        return backprop_loss(eqx.combine(p, static), x, y)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return eqx.combine(optax.apply_updates(params, updates), static), opt_state, loss
