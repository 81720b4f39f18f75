"""Read-out of a trained network."""

import jax
import jax.numpy as jnp

from ._custom_types import Array, ArrayLike, Float
from ._network import Network


def predict(net: Network, x: ArrayLike) -> Array:
    """The feedforward prediction of the top node for a batch `x`.

    With the input clamped and every other node free, this is the equilibrium of
    inference for a chain (every error is zero), so no relaxation is needed.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `x`: input batch, `(batch, *input_shape)`.

    **Returns:**

    The top node's prediction `mu_L` for every example, `(batch, *top_shape)`
    (class probabilities for a [`pcastro.CrossEntropy`][] top node).
    """
    return jax.vmap(net)(jnp.asarray(x, net.dtype))


def accuracy(net: Network, x: ArrayLike, labels: ArrayLike) -> Float[Array, ""]:
    """Fraction of examples whose top-node argmax equals the integer label.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `x`: input batch, `(batch, *input_shape)`.
    - `labels`: integer labels, `(batch,)`.

    **Returns:**

    A scalar in `[0, 1]`.
    """
    return jnp.mean(jnp.argmax(predict(net, x), axis=-1) == labels)
