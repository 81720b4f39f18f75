"""Value checks that work on concrete and traced arrays alike."""

from collections.abc import Callable
from types import ModuleType

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array


def check_values(
    value: Array,
    bad: Callable[[ModuleType, Array | np.ndarray], Array | np.ndarray],
    message: str,
) -> Array:
    """Refuse bad values: with a `ValueError` at once when `value` is concrete, with a
    runtime error (`equinox.error_if`) when it is traced.

    `bad(xp, value)` says where the value is bad, written once for `xp` = NumPy or
    `jax.numpy`. A concrete array is checked with NumPy, so the check is not staged
    into a computation when it runs inside someone's trace.
    """
    if isinstance(value, jax.core.Tracer):
        return error_if_any(value, jnp.any(bad(jnp, value)), message)
    if bool(np.any(bad(np, np.asarray(value)))):
        raise ValueError(message)
    return value


def error_if_any(value: Array, flag: Array, message: str) -> Array:
    """`value`, carrying a runtime error (`equinox.error_if`) that fires when `flag` is
    true.

    The error is attached to a scalar one that multiplies `value`, not to `value`
    itself: an `error_if` on a sharded batch comes back replicated (its conditional has
    no sharding to propagate), which would undo data parallelism. Multiplying by one
    changes no value (signed zeros and infinities included).
    """
    if value.dtype == jnp.bool_:
        token = eqx.error_if(jnp.asarray(True), flag, message)
        return value & token
    token = eqx.error_if(jnp.ones((), value.dtype), flag, message)
    return value * token
