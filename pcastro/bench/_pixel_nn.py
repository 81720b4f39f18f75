"""Pixel nearest neighbour for the transfer protocol, computed in two parts.

The memory is the base training images plus the episode's support images. The nearest
base image of every evaluation image is the same in every episode, so it is computed once
(eagerly, while the episodes are being traced, when the evaluation images are constants);
per episode only the support images are compared. The labels equal
`pcastro.baselines.pixel_nearest_neighbour` on the whole memory (base images first, so
ties go to the base image), up to float rounding of the squared distances.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._learners import AbstractLearner


def _nearest(memory_x, memory_y, x):
    """Squared distance to, and label of, the nearest row of `memory_x` for each row of
    `x` (differences, as `pixel_nearest_neighbour` computes them)."""
    d = jnp.sum((x[:, None, :] - memory_x[None, :, :]) ** 2, axis=-1)
    i = jnp.argmin(d, axis=1)
    return jnp.take_along_axis(d, i[:, None], axis=1)[:, 0], memory_y[i]


@jax.jit
def _nearest_in_chunks(memory_x, memory_y, x):
    rows = 128
    pad = (-x.shape[0]) % rows
    chunks = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, rows, x.shape[1])
    d, y = jax.lax.map(lambda c: _nearest(memory_x, memory_y, c), chunks)
    return d.reshape(-1)[: x.shape[0]], y.reshape(-1)[: x.shape[0]]


class _TwoPartMemory(eqx.Module):
    base_x: Any
    base_y: Any
    x: Any
    y: Any


class PixelNNTwoPart(AbstractLearner):
    """The label of the nearest remembered image in pixel space (base + support)."""

    name: ClassVar[str] = "pixel_nn"
    episodes_in_parallel: ClassVar[bool] = True
    needs_base: ClassVar[bool] = True
    rule: None = None

    def grid(self):
        return {}

    def start(self, net, lr, *, base=None):
        if base is None:
            raise ValueError("The two-part pixel nearest neighbour needs base classes.")
        return _TwoPartMemory(jnp.asarray(base[0]), jnp.asarray(base[1]), None, None)

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        return _TwoPartMemory(state.base_x, state.base_y, x, y)

    def predict(self, state, x):
        # Evaluation images that are constants (base test or validation images) are
        # compared with the base memory once, while tracing; traced ones (an episode's
        # queries) are compared inside the compiled episode.
        with jax.ensure_compile_time_eval():
            d_base, y_base = _nearest_in_chunks(state.base_x, state.base_y, jnp.asarray(x))
        d_new, y_new = _nearest(state.x, state.y, jnp.asarray(x, state.x.dtype))
        return jnp.where(d_new < d_base, y_new, y_base.astype(y_new.dtype))

    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        return evaluate(self.learn(self.start(net, lr, base=base), x, y, {}, key=key))
