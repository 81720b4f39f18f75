"""Baselines that need no training: nearest neighbour and nearest class mean in pixel space."""

import equinox as eqx
import jax.numpy as jnp
from jax import ops
from jaxtyping import Array, ArrayLike, Int, Real


def _check_shapes(function, support_x, support_y, query_x):
    if support_x.ndim != 2 or query_x.ndim != 2 or support_y.ndim != 1:
        raise ValueError(
            f"`{function}` got support_x {support_x.shape}, support_y {support_y.shape} and "
            f"query_x {query_x.shape}; expected (support, features), (support,) and "
            "(query, features). For a batch of episodes, `jax.vmap` over the leading axis."
        )
    if support_x.shape[0] != support_y.shape[0] or support_x.shape[1] != query_x.shape[1]:
        raise ValueError(
            f"`{function}` got support_x {support_x.shape}, support_y {support_y.shape} and "
            f"query_x {query_x.shape}; support_x and support_y need the same number of "
            "rows, and support_x and query_x the same number of features."
        )
    if support_x.shape[0] == 0:
        raise ValueError(f"`{function}` got an empty support set; expected at least one example.")


def _squared_distances(query_x, points):
    # Differences rather than |q|^2 - 2 q.p + |p|^2: exact for equal rows (so ties are real
    # ties) and free of matmul precision modes. Memory is O(query * points * features),
    # which is small for episodes.
    return jnp.sum((query_x[:, None, :] - points[None, :, :]) ** 2, axis=-1)


def pixel_nearest_neighbour(
    support_x: Real[ArrayLike, "support features"],
    support_y: Int[ArrayLike, " support"],
    query_x: Real[ArrayLike, "query features"],
) -> Int[Array, " query"]:
    """Label each query with the label of its nearest support example.

    $\\hat y_q = y_{s^*}$ with $s^* = \\arg\\min_s \\lVert x_q - x_s \\rVert_2$, where
    $x_q$ are the rows of `query_x`, $x_s$ those of `support_x` and $y_s$ the entries of
    `support_y`. Ties go to the lowest support index.

    Pure `jax.numpy`: jit- and vmap-compatible (vmap over a batch of episodes).

    **Arguments:**

    - `support_x`: support examples, `(support, features)`.
    - `support_y`: their integer labels, `(support,)`.
    - `query_x`: query examples, `(query, features)`.

    **Returns:**

    The predicted labels, `(query,)`, with the dtype of `support_y`.

    **Raises:**

    - `ValueError` at trace time if the shapes do not fit together or the support is empty.
    """
    support_x, support_y, query_x = map(jnp.asarray, (support_x, support_y, query_x))
    _check_shapes("pixel_nearest_neighbour", support_x, support_y, query_x)
    nearest = jnp.argmin(_squared_distances(query_x, support_x), axis=1)
    return support_y[nearest]


def nearest_class_mean(
    support_x: Real[ArrayLike, "support features"],
    support_y: Int[ArrayLike, " support"],
    query_x: Real[ArrayLike, "query features"],
    *,
    num_classes: int,
) -> Int[Array, " query"]:
    """Label each query with the class whose support mean is nearest.

    $\\hat y_q = \\arg\\min_c \\lVert x_q - \\mu_c \\rVert_2$ with
    $\\mu_c = \\frac{1}{|S_c|} \\sum_{s \\in S_c} x_s$, where $x_q$ are the rows of
    `query_x`, $x_s$ those of `support_x`, $S_c$ the support examples whose `support_y` is
    $c$, and $c$ ranges over the classes `0, ..., num_classes - 1` that have at least one
    support example. Ties go to the lowest class.

    Pure `jax.numpy`: jit- and vmap-compatible (vmap over a batch of episodes).

    **Arguments:**

    - `support_x`: support examples, `(support, features)`.
    - `support_y`: their labels in `0, ..., num_classes - 1`, `(support,)`.
    - `query_x`: query examples, `(query, features)`.
    - `num_classes`: the number of classes (static).

    **Returns:**

    The predicted labels, `(query,)`, as `int32`.

    **Raises:**

    - `ValueError` at trace time if `num_classes < 1`, the shapes do not fit together or
        the support is empty.
    - An `eqx.error_if` runtime error if a label lies outside `0, ..., num_classes - 1`.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"`nearest_class_mean` got num_classes={num_classes!r}; expected a Python int "
            ">= 1, e.g. `ways` for an episode."
        )
    support_x, support_y, query_x = map(jnp.asarray, (support_x, support_y, query_x))
    _check_shapes("nearest_class_mean", support_x, support_y, query_x)
    support_y = eqx.error_if(
        support_y,
        (support_y < 0) | (support_y >= num_classes),
        f"`nearest_class_mean`: a support label lies outside 0..{num_classes - 1}; "
        "relabel the support set or raise `num_classes`.",
    )
    sums = ops.segment_sum(support_x, support_y, num_segments=num_classes)
    counts = ops.segment_sum(jnp.ones_like(support_y), support_y, num_segments=num_classes)
    means = sums / jnp.maximum(counts, 1)[:, None].astype(sums.dtype)
    distances = _squared_distances(query_x, means)
    # A class without support examples has no mean; it must never be predicted.
    distances = jnp.where(counts[None, :] > 0, distances, jnp.inf)
    return jnp.argmin(distances, axis=1).astype(jnp.int32)
