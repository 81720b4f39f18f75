"""The state of a network on a batch: state neurons, error neurons and clamps."""

import enum

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ._checks import check_values, error_if_any
from ._custom_types import Array, ArrayLike
from ._network import Network


class Clamp(str, enum.Enum):
    """How a node's state is held during inference.

    - `FREE`: every unit is inferred;
    - `CLAMPED`: every unit is held at the data;
    - `PARTIAL`: units where the node's mask is 1 are held, the rest inferred.

    Members compare equal to their names in lower case (`Clamp.FREE == "free"`), so
    a clamp pattern reads as plain text in a repr or a checkpoint header.
    """

    FREE = "free"
    CLAMPED = "clamped"
    PARTIAL = "partial"


def known_nodes(net: Network, clamps: tuple[Clamp, ...]) -> tuple[bool, ...]:
    """Per node, whether its value is fixed by the data: clamped (fully or partly), or
    predicted from parents that are all known. The one answer to "is this node known?"."""
    known = [clamps[0] is not Clamp.FREE]
    for i, node in enumerate(net.nodes, start=1):
        known.append(clamps[i] is Clamp.CLAMPED or all(known[p] for p in node.parents))  # pyright: ignore[reportOptionalIterable]  # resolved by Network
    return tuple(known)


def amortised_nodes(net: Network, clamps: tuple[Clamp, ...]) -> tuple[int, ...]:
    """Free nodes of an amortised energy (e.g. cross-entropy): held at their prediction,
    the minimiser of their energy, never relaxed."""
    return tuple(
        i
        for i, node in enumerate(net.nodes, start=1)
        if node.energy.amortised and clamps[i] is Clamp.FREE
    )


def free_nodes(net: Network, clamps: tuple[Clamp, ...]) -> tuple[int, ...]:
    """Nodes that inference moves: not fully clamped, not held at a closed-form minimum.
    The one answer to "which nodes are free?"."""
    amortised = set(amortised_nodes(net, clamps))
    return tuple(i for i, c in enumerate(clamps) if c is not Clamp.CLAMPED and i not in amortised)


class PCState(eqx.Module):
    """State neurons `x`, error neurons `e` and clamps of every node, for a batch.

    A value: functions take one and return a new one; nothing is mutated.

    **Fields:**

    - `x`: state neurons per node, node 0 the input, each `(batch, *shape)`.
    - `e`: error neurons per node (`None` for the input).
    - `masks`: per node, `None` or an array (1 = clamped) for a partially clamped node.
    - `clamps`: per node, a [`pcastro.Clamp`][] (static).
    """

    x: tuple[Array, ...]
    e: tuple[Array | None, ...]
    masks: tuple[Array | None, ...]
    clamps: tuple[Clamp, ...] = eqx.field(static=True)

    def __init__(
        self,
        x: tuple[Array, ...],
        e: tuple[Array | None, ...],
        masks: tuple[Array | None, ...],
        clamps: tuple[Clamp | str, ...],
    ):
        self.x = tuple(x)
        self.e = tuple(e)
        self.masks = tuple(masks)
        try:
            self.clamps = tuple(Clamp(c) for c in clamps)
        except ValueError:
            raise ValueError(
                f"`clamps` must name one of {[c.value for c in Clamp]} per node, got {clamps!r}."
            ) from None

    @property
    def batch_size(self) -> int:
        """The number of examples in the batch."""
        return self.x[0].shape[0]


def checked_labels(y: Array, classes: int) -> Array:
    """Integer labels `y`, refused unless every one lies in `[0, classes)`."""
    return check_values(
        y,
        lambda xp, v: (v < 0) | (v >= classes),
        f"Integer labels must lie in [0, {classes}) for a top node of {classes} units; "
        "relabel the classes to 0..n-1 or widen the output layer.",
    )


def _as_target(net: Network, y: ArrayLike) -> Array:
    top_shape = net.shapes[-1]
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.integer) and y.ndim == 1 and len(top_shape) == 1:
        classes = top_shape[0]
        return jax.nn.one_hot(checked_labels(y, classes), classes, dtype=net.dtype)
    if y.shape[1:] != top_shape:
        raise ValueError(
            f"The target `y` has shape {y.shape}, but the top node (node "
            f"{net.num_nodes - 1}) holds {top_shape} per example; pass `y` as "
            f"(batch, {', '.join(map(str, top_shape))}) or integer labels of shape (batch,)."
        )
    return y.astype(net.dtype)


def _check_batch(name: str, node: int, arr: Array, shape: tuple[int, ...]) -> None:
    if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
        raise ValueError(
            f"`{name}` has shape {arr.shape}, but node {node} expects (batch, "
            f"{', '.join(map(str, shape))}); add a leading batch axis (use `x[None]` for "
            "one example) or reshape the data to match the network."
        )


def _finite_data(name: str, data: Array, mask: Array | None) -> Array:
    """Refuse NaN or inf in the clamped (observed) entries of the data, naming the examples.

    Non-finite data would pass inference with a successful status (its errors are NaN
    from the start) and be caught only at the weight update, whose check blames the
    learning rate. Unobserved entries (mask 0) are not read and may hold anything.
    """
    if isinstance(data, jax.core.Tracer) or isinstance(mask, jax.core.Tracer):
        bad = ~jnp.isfinite(data) if mask is None else ~jnp.isfinite(data) & (mask > 0)
        return error_if_any(
            data,
            jnp.any(bad),
            f"The data `{name}` holds NaN or inf in an observed entry: PC cannot infer or "
            "learn from it. Clean or drop those examples (e.g. `np.nan_to_num`), or mask "
            "the missing entries out with `x_mask`/`y_mask`.",
        )
    values = np.asarray(data)
    bad = ~np.isfinite(values)
    if mask is not None:
        bad &= np.asarray(mask) > 0
    if bad.any():
        examples = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        shown = ", ".join(map(str, examples[:5])) + (", ..." if len(examples) > 5 else "")
        raise ValueError(
            f"The data `{name}` holds NaN or inf in {len(examples)} example(s) (batch "
            f"index {shown}): PC cannot infer or learn from them. Clean or drop those "
            "examples (e.g. `np.nan_to_num`), or mask the missing entries out with "
            "`x_mask`/`y_mask`."
        )
    return data


def init_state(
    net: Network,
    x: ArrayLike | None = None,
    y: ArrayLike | None = None,
    *,
    x_mask: ArrayLike | None = None,
    y_mask: ArrayLike | None = None,
    batch_size: int | None = None,
    compute_errors: bool = True,
) -> PCState:
    """Clamp the data and initialise the free states by a feedforward pass.

    One network serves three modes; only the clamps differ:

    - discriminative: `init_state(net, x, y)` clamps the input and the target;
    - generative: `init_state(net, y=y)` clamps the top node and leaves the input free
      (free states start at zero where no parent can predict them);
    - associative recall: clamp only the observed units (`x_mask` for the input node,
      `y_mask` for the top node; 1 = observed) and infer the rest. Recall needs
      information that can reach the unobserved units: in a generative network (latent
      input, image on top) `init_state(net, y=image, y_mask=observed)` completes the
      image top-down; in a bottom-up classifier, missing input pixels move only when the
      label is clamped too, `init_state(net, x, y, x_mask=observed)`. With neither, the
      feedforward start already has zero energy and [`pcastro.infer`][] warns that it
      cannot move the free units.

    Free nodes start at their feedforward prediction `x_l = mu_l(x_parents)`; unobserved
    units of a partially clamped node, and nodes whose parents are unknown, start at 0.

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `x`: input batch `(batch, *input_shape)`, or None to leave the input free.
    - `y`: target batch for the top node (integer labels are one-hot encoded), or None.
    - `x_mask`: partial clamp of the input (broadcastable to `x`; 1 = clamped, 0 = free).
    - `y_mask`: partial clamp of the top node (broadcastable to `y`; Gaussian top only).
    - `batch_size`: needed only when neither `x` nor `y` is given.
    - `compute_errors`: fill the error neurons `e_l = x_l - mu_l` (one extra forward pass);
      a training step skips it because inference recomputes them.

    **Returns:**

    A [`pcastro.PCState`][].

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import pcastro as pc

    net = pc.mlp([4, 8, 3], key=jax.random.key(0))
    x = jnp.ones((2, 4))
    state = pc.init_state(net, x, jnp.array([0, 2]))  # discriminative
    assert state.clamps == (pc.Clamp.CLAMPED, pc.Clamp.FREE, pc.Clamp.CLAMPED)
    recall = pc.init_state(net, x, jnp.array([0, 2]), x_mask=jnp.array([1.0, 1.0, 0.0, 0.0]))
    assert recall.clamps[0] is pc.Clamp.PARTIAL
    ```

    **Raises:**

    `ValueError` naming the node and the expected shape when the data do not fit.
    """
    x, y, x_mask, y_mask, batch_size = _checked_data(net, x, y, x_mask, y_mask, batch_size)

    def clamp_of(data, mask):
        if data is None:
            return Clamp.FREE
        return Clamp.CLAMPED if mask is None else Clamp.PARTIAL

    top = net.num_nodes - 1
    clamps = [Clamp.FREE] * net.num_nodes
    clamps[0], clamps[top] = clamp_of(x, x_mask), clamp_of(y, y_mask)
    clamps = tuple(clamps)
    masks: list[Array | None] = [None] * net.num_nodes
    masks[0], masks[top] = x_mask, y_mask
    # Unobserved units of a partially clamped node start at zero, before the feedforward
    # pass reads them: the hidden states must not see the values that are to be recalled.
    if x_mask is not None:
        x = x * x_mask  # pyright: ignore[reportOptionalOperand]  # x_mask needs x
    if y_mask is not None:
        y = y * y_mask  # pyright: ignore[reportOptionalOperand]  # y_mask needs y
    states = _feedforward_states(net, x, y, known_nodes(net, clamps), batch_size)
    state = PCState(x=states, e=(None,) * net.num_nodes, masks=tuple(masks), clamps=clamps)
    if not compute_errors:
        return state
    return PCState(x=state.x, e=errors(net, state), masks=state.masks, clamps=state.clamps)


def _checked_data(net: Network, x, y, x_mask, y_mask, batch_size):
    """`init_state`'s data as arrays of the network's dtype, the masks broadcast and the
    batch size known; refuses shapes that do not fit, an empty batch and NaNs."""
    if y is not None:
        y = _as_target(net, y)
        _check_batch("y", net.num_nodes - 1, y, net.shapes[-1])
    if x is not None:
        x = jnp.asarray(x, dtype=net.dtype)
        _check_batch("x", 0, x, net.input_shape)
    if x is not None and y is not None and x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` has {x.shape[0]} examples but `y` has {y.shape[0]}; pass the same batch."
        )
    if batch_size is None:
        if x is None and y is None:
            raise ValueError("Give `x`, `y` or `batch_size` so the batch size is known.")
        batch_size = (x if x is not None else y).shape[0]  # pyright: ignore[reportOptionalMemberAccess]  # one is given
    if batch_size < 1:
        raise ValueError(
            "The batch is empty (0 examples); pass at least one example (`x[None]` for one)."
        )
    if x_mask is not None:
        if x is None:
            raise ValueError("`x_mask` needs the partially observed input `x`.")
        x_mask = _as_mask("x_mask", x_mask, x.shape, net.dtype)
    if y_mask is not None:
        if y is None:
            raise ValueError("`y_mask` needs the partially observed target `y`.")
        y_mask = _as_mask("y_mask", y_mask, y.shape, net.dtype)
    x = None if x is None else _finite_data("x", x, x_mask)
    y = None if y is None else _finite_data("y", y, y_mask)
    return x, y, x_mask, y_mask, batch_size


def _feedforward_states(net: Network, x, y, known, batch_size: int) -> tuple[Array, ...]:
    """The clamped data where given, the feedforward prediction at every node whose
    parents are known, zeros elsewhere."""
    top = net.num_nodes - 1
    states = [jnp.zeros((batch_size, *net.input_shape), net.dtype) if x is None else x]
    for i, node in enumerate(net.nodes, start=1):
        if i == top and y is not None:
            states.append(y)
        elif known[i]:
            mu = jax.vmap(node.predict)([states[p] for p in node.parents])  # pyright: ignore[reportOptionalIterable]  # resolved by Network
            states.append(mu.astype(net.dtype))
        else:
            states.append(jnp.zeros((batch_size, *net.shapes[i]), net.dtype))
    return tuple(states)


def _as_mask(name: str, mask: ArrayLike, shape: tuple[int, ...], dtype) -> Array:
    try:
        mask = jnp.broadcast_to(jnp.asarray(mask, dtype=dtype), shape)
    except ValueError:
        raise ValueError(
            f"`{name}` has shape {jnp.shape(mask)}, which does not broadcast to the data's "
            f"shape {shape}; give one mask per unit, e.g. of shape {shape[1:]}."
        ) from None
    return check_values(
        mask,
        lambda xp, m: (m != 0) & (m != 1),
        f"`{name}` must hold only 0 and 1 (1 = observed and clamped, 0 = free); got other "
        "values. Threshold a soft mask first, e.g. `(mask > 0.5)`.",
    )


def errors(net: Network, state: PCState) -> tuple[Array | None, ...]:
    """Instant errors `e_l = x_l - mu_l` of every node for a batch (None for the input).

    **Arguments:**

    - `net`: the [`pcastro.Network`][].
    - `state`: a batched [`pcastro.PCState`][] of that network.

    **Returns:**

    A tuple with one entry per node: `None` for the input, then `(batch, *shape)`.
    """
    out: list[Array | None] = [None]
    for i, node in enumerate(net.nodes, start=1):
        mu = jax.vmap(node.predict)([state.x[p] for p in node.parents])  # pyright: ignore[reportOptionalIterable]  # resolved by Network
        out.append(state.x[i] - mu)
    return tuple(out)


def check_clamps(net: Network, state: PCState) -> None:
    """Static checks on clamps that the energy cannot represent."""
    for i, node in enumerate(net.nodes, start=1):
        if node.energy.amortised and state.clamps[i] is Clamp.PARTIAL:
            raise ValueError(
                f"Node {i} has a {type(node.energy).__name__} energy and cannot be partially "
                "clamped; clamp the whole node or use a Gaussian energy."
            )
