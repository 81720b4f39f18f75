"""Read-out of a trained network."""

import jax
import jax.numpy as jnp

from ._custom_types import Array, ArrayLike, Float
from ._network import Network
from ._state import checked_labels


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
    """Fraction of examples whose top-node argmax equals the label.

    **Arguments:**

    - `net`: the network; `x`: the input batch.
    - `labels`: integer labels `(batch,)`, or one-hot targets `(batch, classes)` (read by
      their argmax).

    **Returns:**

    A scalar in `[0, 1]`.

    **Raises:**

    `ValueError` when the labels do not have one of those shapes, or an integer label
    lies outside `[0, classes)` (the same check as [`pcastro.init_state`][]).
    """
    labels = jnp.asarray(labels)
    scores = predict(net, x)
    if labels.shape == scores.shape:
        labels = jnp.argmax(labels, axis=-1)
    elif labels.shape != scores.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"`labels` has shape {labels.shape} and dtype {labels.dtype}; pass integer labels "
            f"of shape ({scores.shape[0]},) or one-hot targets of shape {scores.shape}."
        )
    elif scores.ndim == 2:
        labels = checked_labels(labels, scores.shape[-1])
    return jnp.mean(jnp.argmax(scores, axis=-1) == labels)
