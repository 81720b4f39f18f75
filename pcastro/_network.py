"""Nodes (a state neuron and an error neuron per unit) and their composition."""

import operator
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array
from ._energy import AbstractEnergy, Gaussian


def identity(x: Array) -> Array:
    """The identity activation.

    **Arguments:**

    - `x`: any array.

    **Returns:**

    `x`, unchanged.
    """
    return x


class Node(eqx.Module):
    r"""One layer of predictive-coding units: state neurons `x_l` and error neurons `e_l`.

    The node is predicted by its parents through one module per parent:

    `mu_l = activation(sum_k modules[k](x_{parents[k]}))`

    and pairs every state neuron with an error neuron `e_l = x_l - mu_l`. With
    `tau_e` set, the error neurons are leaky, `tau_e de_l/dt = (x_l - mu_l) - e_l`, and
    hold their value until read.

    **Arguments:**

    - `module`: any Equinox module or callable mapping one example of the parent's state
      to this node's summed input; or a sequence of them, one per parent.
    - `parents`: indices of the parent nodes (0 is the input). Defaults to the node just
      before this one, which composes a chain.
    - `activation`: elementwise nonlinearity applied to the summed input.
    - `energy`: a [`pcastro.Gaussian`][] (default) or [`pcastro.CrossEntropy`][] energy.
    - `tau_e`: time constant of leaky error neurons, in units of the inference step;
      `None` (default) gives instant error neurons.
    """

    modules: tuple[Any, ...]
    parents: tuple[int, ...] | None = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)
    energy: AbstractEnergy
    tau_e: float | None = eqx.field(static=True)

    def __init__(
        self,
        module: Any,
        *,
        parents: Sequence[int] | int | None = None,
        activation: Callable = identity,
        energy: AbstractEnergy | None = None,
        tau_e: float | None = None,
    ):
        modules = tuple(module) if isinstance(module, (list, tuple)) else (module,)
        if isinstance(parents, int):
            parents = (parents,)
        if parents is not None:
            parents = tuple(int(p) for p in parents)
            if len(parents) != len(modules):
                raise ValueError(
                    f"A node got {len(modules)} module(s) but {len(parents)} parent(s); "
                    "give one module per parent."
                )
        if energy is None:
            energy = Gaussian()
        if not isinstance(energy, AbstractEnergy):
            raise TypeError(
                f"`energy` must be a pcastro energy such as `pcastro.Gaussian()` or "
                f"`pcastro.CrossEntropy()`, got {energy!r}."
            )
        if energy.owns_activation and activation is not identity:
            raise ValueError(
                f"A {type(energy).__name__} node applies its own non-linearity (a softmax for "
                "CrossEntropy): leave `activation` as the identity (pcastro.identity)."
            )
        if tau_e is not None and not tau_e >= 1.0:
            raise ValueError(
                f"`tau_e` must be at least 1 (in inference steps) or None, got {tau_e}."
            )
        if tau_e is not None and not energy.leaky_errors:
            raise ValueError(
                f"Leaky error neurons (`tau_e`) need an energy with `leaky_errors = True` "
                f"(such as Gaussian); {type(energy).__name__} has none."
            )
        self.modules = modules
        self.parents = parents
        self.activation = activation
        self.energy = energy
        self.tau_e = tau_e

    def summed_input(self, parent_states: Sequence[Array]) -> Array:
        """`sum_k modules[k](x_{parents[k]})` for one example."""
        total = self.modules[0](parent_states[0])
        for module, x in zip(self.modules[1:], parent_states[1:]):
            total = total + module(x)
        return total

    def predict(self, parent_states: Sequence[Array]) -> Array:
        """The prediction `mu_l` for one example."""
        return self.energy.prediction(self.summed_input(parent_states), self.activation)


class Network(eqx.Module):
    r"""A predictive-coding network: an input node and a sequence of predicted nodes.

    Node 0 is the input `x_0`; node `l >= 1` is `nodes[l - 1]`. Each node may be
    predicted by several earlier nodes (skip connections); parents must come before
    their children, so the list is a topological order.

    **Arguments:**

    - `nodes`: the [`pcastro.Node`][]s, in topological order.
    - `input_shape`: shape of one input example, e.g. `(64,)`.

    **Raises:**

    `ValueError` when a parent index is out of range, or a module cannot take its
    parent's state (the message names the node and the shapes).
    """

    nodes: tuple[Node, ...]
    input_shape: tuple[int, ...] = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    dtype: Any = eqx.field(static=True)

    def __init__(self, nodes: Sequence, *, input_shape: Sequence[int] | int, dtype=None):
        if len(nodes) == 0:
            raise ValueError("A Network needs at least one Node.")
        self.nodes = _resolved_nodes(nodes)
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        try:
            self.input_shape = tuple(operator.index(s) for s in input_shape)
        except TypeError:
            raise TypeError(
                f"`input_shape` must be a tuple of ints such as (64,), got {input_shape!r}."
            ) from None
        if dtype is None:
            leaves = [x for x in jax.tree_util.tree_leaves(eqx.filter(nodes, eqx.is_inexact_array))]
            dtype = leaves[0].dtype if leaves else jnp.result_type(float)
        self.dtype = jnp.dtype(dtype)
        if not jnp.issubdtype(self.dtype, jnp.floating):
            raise ValueError(
                f"A Network computes in a floating dtype, got dtype={self.dtype}; the inputs "
                "would be truncated. Use float32 (the default) or float64."
            )
        self.shapes = _node_shapes(self.nodes, self.input_shape, self.dtype)

    @property
    def num_nodes(self) -> int:
        """Number of nodes including the input."""
        return len(self.nodes) + 1

    def __call__(self, x: Array) -> Array:
        """The feedforward pass for one example: the top node's prediction."""
        states = [x]
        for node in self.nodes:
            states.append(node.predict([states[p] for p in node.parents]))  # pyright: ignore[reportOptionalIterable]  # resolved by Network
        return states[-1]


def chain(
    modules: Sequence[Any],
    *,
    input_shape: Sequence[int],
    activation: Callable = jax.nn.tanh,
    output_activation: Callable = identity,
    output_energy: AbstractEnergy | None = None,
    tau_e: float | None = None,
) -> Network:
    """A chain network `x_0 -> x_1 -> ... -> x_L` built from one module per layer.

    **Arguments:**

    - `modules`: one Equinox module or callable per layer.
    - `input_shape`: shape of one input example.
    - `activation`: activation of the hidden layers.
    - `output_activation`: activation of the top layer (identity for `CrossEntropy`).
    - `output_energy`: energy of the top layer (default Gaussian).
    - `tau_e`: leaky error-neuron time constant for every layer whose energy has leaky
      errors (Gaussian; not cross-entropy), or None.

    **Returns:**

    A [`pcastro.Network`][].
    """
    nodes = []
    for i, module in enumerate(modules):
        top = i == len(modules) - 1
        energy = output_energy if top else None
        leaky = tau_e if energy is None or energy.leaky_errors else None
        nodes.append(
            Node(
                module,
                activation=output_activation if top else activation,
                energy=energy,
                tau_e=leaky,
            )
        )
    return Network(nodes, input_shape=input_shape)


def _resolved_nodes(nodes: Sequence) -> tuple[Node, ...]:
    """The nodes with their parents filled in (default: the node before), checked: parents
    come first, one module per parent, and no amortised (cross-entropy) node feeds another."""
    resolved = []
    for i, node in enumerate(nodes, start=1):
        if not isinstance(node, Node):
            raise TypeError(
                f"Network node {i} is a {type(node).__name__}; wrap modules in "
                "`pcastro.Node(module, activation=...)`."
            )
        parents = node.parents if node.parents is not None else (i - 1,)
        for p in parents:
            if not 0 <= p < i:
                raise ValueError(
                    f"Node {i} names parent {p}, but parents must be earlier nodes "
                    f"(0 to {i - 1}); order the nodes so that parents come first."
                )
        if len(parents) != len(node.modules):
            raise ValueError(f"Node {i} has {len(node.modules)} modules for parents {parents}.")
        resolved.append(
            Node(
                node.modules,
                parents=parents,
                activation=node.activation,
                energy=node.energy,
                tau_e=node.tau_e,
            )
        )
    for i, node in enumerate(resolved, start=1):
        for p in node.parents:
            if p >= 1 and resolved[p - 1].energy.amortised:
                raise ValueError(
                    f"Node {p} has a {type(resolved[p - 1].energy).__name__} energy but "
                    f"feeds node {i}. A free node of an amortised energy is held at its "
                    "prediction (a softmax for cross-entropy), which ignores the errors "
                    "of its children, so it must be a sink (an output node). Give node "
                    f"{p} a Gaussian energy, or feed node {i} from another node."
                )
    return tuple(resolved)


def _node_shapes(nodes, input_shape: tuple[int, ...], dtype) -> tuple[tuple[int, ...], ...]:
    """Every node's state shape (the input's first), by tracing each prediction."""
    shapes = [input_shape]
    for i, node in enumerate(nodes, start=1):
        parent_structs = [jax.ShapeDtypeStruct(shapes[p], dtype) for p in node.parents]
        try:
            out = eqx.filter_eval_shape(lambda n, xs: n.predict(xs), node, parent_structs)
        except Exception as err:  # noqa: BLE001 -- re-raised with the node named
            got = ", ".join(str(shapes[p]) for p in node.parents)
            raise ValueError(
                f"Node {i} cannot predict from its parents {node.parents} with state "
                f"shape(s) {got}: {err}. Check that each module's input size matches "
                "its parent's output size."
            ) from err
        shapes.append(tuple(out.shape))
    return tuple(shapes)


def mlp(
    sizes: Sequence[int],
    *,
    key,
    activation: Callable = jax.nn.tanh,
    output_activation: Callable = identity,
    output_energy: AbstractEnergy | None = None,
    tau_e: float | None = None,
    dtype=None,
) -> Network:
    """A chain of `equinox.nn.Linear` layers with the given sizes, e.g. `[64, 256, 10]`.

    **Arguments:**

    - `sizes`: input size, hidden sizes and output size.
    - `key`: a `jax.random` key for the weights (keyword-only).
    - the rest as for [`pcastro.chain`][].

    **Returns:**

    A [`pcastro.Network`][].

    **Raises:**

    `ValueError` when `sizes` has fewer than two entries.
    """
    if len(sizes) < 2:
        raise ValueError(f"`sizes` needs an input and an output size, got {list(sizes)}.")
    if dtype is not None and not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(
            f"A Network computes in a floating dtype, got dtype={jnp.dtype(dtype)}; use "
            "float32 (the default) or float64."
        )
    keys = jax.random.split(key, len(sizes) - 1)
    modules = [
        eqx.nn.Linear(a, b, key=k, dtype=dtype) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
    ]
    return chain(
        modules,
        input_shape=(sizes[0],),
        activation=activation,
        output_activation=output_activation,
        output_energy=output_energy,
        tau_e=tau_e,
    )
