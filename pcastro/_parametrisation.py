r"""Width- and depth-aware parametrisations of a network (standard, μPC).

A parametrisation decides two things for every weight layer of a network: how its
weights are drawn, and a fixed multiplier on its output. μPC (Innocenti, Achour &
Buckley, NeurIPS 2025) is Depth-μP (Yang et al., 2023; Bordelon et al., 2023) applied
to predictive coding: weights drawn from `N(0, 1)` and the width and depth moved into
the forward pass, so that activations, errors and the activity Hessian keep their scale
as a residual network grows to 100+ layers.
"""

import abc
import math
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array
from ._energy import AbstractEnergy
from ._network import Network, Node, identity

Position = Literal["input", "hidden", "residual", "output"]


class Scaled(eqx.Module):
    r"""A module with a fixed output multiplier and an optional pre-activation:
    `scale * module(activation(x))`.

    The multiplier is static configuration, not a parameter: learning changes the
    wrapped module's weights, never `scale`. Putting the activation *before* the weights
    (`W phi(x)`) is the residual-network convention that μPC's scalings assume: the
    node's state is then the residual stream itself.

    **Arguments:**

    - `module`: any Equinox module or callable (typically `equinox.nn.Linear` or
      `equinox.nn.Conv2d`).
    - `scale`: the output multiplier.
    - `activation`: applied to the input before `module` (default: the identity).
    """

    module: Any
    scale: float = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)

    def __init__(self, module: Any, scale: float, *, activation: Callable = identity):
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"`scale` must be a positive finite number, got {scale}.")
        self.module = module
        self.scale = scale
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        """`scale * module(activation(x))` for one example."""
        return self.scale * self.module(self.activation(x))


class AbstractParametrisation(eqx.Module):
    """How the weight layers of a network are initialised and scaled.

    A parametrisation answers, for one weight layer, its output multiplier (from the
    layer's fan-in, the network's depth and the layer's position) and the initial
    weights. [`pcastro.parametrise`][] applies it to every weight layer of a network.
    """

    @abc.abstractmethod
    def multiplier(self, position: Position, *, fan_in: int, depth: int) -> float:
        """The output multiplier of a weight layer.

        **Arguments:**

        - `position`: `"input"` (fed by the input node), `"hidden"`, `"residual"` (a
          hidden node that also has an identity skip from its parent) or `"output"`
          (the top node).
        - `fan_in`: inputs per output unit (`in_features`, or `in_channels * kernel size`).
        - `depth`: the number of weight layers (predicted nodes) of the network.

        **Returns:**

        The multiplier, a positive float.
        """

    @abc.abstractmethod
    def init(self, module: Any, *, key) -> Any:
        """The module with its initial weights under this parametrisation.

        **Arguments:**

        - `module`: a module with a `weight` (and optionally a `bias`) array.
        - `key`: a `jax.random` key.

        **Returns:**

        The re-initialised module (same structure and dtype).
        """


class Standard(AbstractParametrisation):
    """The standard parametrisation: every multiplier is 1 and the module keeps the
    weights it was built with (Equinox's default `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
    for `Linear` and `Conv`). The reference point for [`pcastro.MuPC`][].
    """

    def multiplier(self, position: Position, *, fan_in: int, depth: int) -> float:
        """1, whatever the layer (see [`pcastro.AbstractParametrisation.multiplier`][])."""
        del position, fan_in, depth
        return 1.0

    def init(self, module: Any, *, key) -> Any:
        """The module unchanged (see [`pcastro.AbstractParametrisation.init`][])."""
        del key
        return module


class MuPC(AbstractParametrisation):
    r"""μPC: the Depth-μP parametrisation for predictive coding (Innocenti et al., 2025).

    Weights are drawn from `N(0, 1)`, biases start at 0, and each weight layer's output
    is multiplied by

    | position | multiplier |
    |---|---|
    | input (fed by the data, fan-in `D`) | `1 / sqrt(D)` |
    | hidden, no skip (fan-in `N`) | `1 / sqrt(N)` |
    | residual: hidden with an identity skip, in a network of `L` weight layers | `1 / sqrt(N L)` |
    | output (fan-in `N`) | `1 / N` |

    so a residual layer computes `z_l = z_{l-1} + W_l phi(z_{l-1}) / sqrt(N L)`. The
    `1/sqrt(L)` on the residual branches keeps the forward pass `O(1)` at any depth; the
    `1/N` read-out is μP's, which keeps the output from exploding with width during
    training. Build a μPC residual network with [`pcastro.residual_mlp`][], or apply
    the scalings to any network with [`pcastro.parametrise`][].

    With these scalings the activity and weight learning rates transfer across widths
    and depths (the paper's zero-shot transfer). The reference implementation (jpc's μPC
    tutorial, ReLU, width 128, batch 64) relaxes the activities for as many steps as the
    network has layers with plain gradient descent at rate 0.5 on the *batch-mean*
    energy, i.e. `pcastro.Euler(dt=0.5 / batch_size)` on pcastro's per-example energy,
    and learns the weights with `optax.adam(0.1)`; `inference_dt` and `learning_rate`
    carry those values as a starting point, to be tuned on validation data.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{innocenti2025mupc,
            title={$\mu$PC: Scaling Predictive Coding to 100+ Layer Networks},
            author={Innocenti, Francesco and Achour, El Mehdi and Buckley, Christopher L.},
            booktitle={Advances in Neural Information Processing Systems},
            year={2025},
            note={arXiv:2505.13124}
        }
        ```
    """

    inference_dt_per_batch: float = eqx.field(static=True, default=0.5)
    learning_rate: float = eqx.field(static=True, default=0.1)

    def multiplier(self, position: Position, *, fan_in: int, depth: int) -> float:
        """The μPC multiplier of the table above
        (see [`pcastro.AbstractParametrisation.multiplier`][])."""
        if fan_in < 1 or depth < 1:
            raise ValueError(f"`fan_in` and `depth` must be positive, got {fan_in}, {depth}.")
        if position == "input" or position == "hidden":
            return 1.0 / math.sqrt(fan_in)
        if position == "residual":
            return 1.0 / math.sqrt(fan_in * depth)
        if position == "output":
            return 1.0 / fan_in
        raise ValueError(
            f"Unknown layer position {position!r}; expected 'input', 'hidden', "
            "'residual' or 'output'."
        )

    def init(self, module: Any, *, key) -> Any:
        """Weights from `N(0, 1)`, biases 0 (see [`pcastro.AbstractParametrisation.init`][])."""
        weight = module.weight
        module = eqx.tree_at(
            lambda m: m.weight, module, jax.random.normal(key, weight.shape, weight.dtype)
        )
        if getattr(module, "bias", None) is not None:
            module = eqx.tree_at(lambda m: m.bias, module, jnp.zeros_like(module.bias))
        return module

    def inference_dt(self, batch_size: int) -> float:
        """The reference implementation's inference step in pcastro's units.

        **Arguments:**

        - `batch_size`: examples per training batch.

        **Returns:**

        `inference_dt_per_batch / batch_size`: the reference descends the batch-mean
        energy, pcastro's [`pcastro.Euler`][] the per-example energy.
        """
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
        return self.inference_dt_per_batch / batch_size


def _has_params(module: Any) -> bool:
    return len(jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array))) > 0


def _position(net: Network, index: int, parent: int) -> Position:
    node = net.nodes[index - 1]
    if parent == 0:
        return "input"
    if index == len(net.nodes):
        return "output"
    skips = [p == parent and not _has_params(m) for m, p in zip(node.modules, node.parents)]  # pyright: ignore[reportArgumentType]  # resolved by Network
    return "residual" if any(skips) else "hidden"


def parametrise(net: Network, parametrisation: AbstractParametrisation, *, key) -> Network:
    r"""Apply a parametrisation to every weight layer of a network.

    Every module that holds parameters (an `equinox.nn.Linear`, `Conv`, or any module
    with a `weight` array whose first axis is the output) is re-initialised by
    `parametrisation.init` and wrapped in [`pcastro.Scaled`][] with the multiplier for
    its position: fed by the input node, the top node, a hidden node with an identity
    skip from the same parent (a module without parameters, such as
    [`pcastro.identity`][]) or a plain hidden node. The depth is the number of
    predicted nodes. Modules without parameters (skips) are left as they are; the
    nodes' activations, energies and parents are kept.

    **Arguments:**

    - `net`: any [`pcastro.Network`][], e.g. from [`pcastro.mlp`][] or [`pcastro.chain`][].
    - `parametrisation`: [`pcastro.MuPC`][] or [`pcastro.Standard`][] (or your own
      [`pcastro.AbstractParametrisation`][]).
    - `key`: a `jax.random` key for the new weights (keyword-only).

    **Returns:**

    The re-parametrised [`pcastro.Network`][].

    **Raises:**

    `TypeError` when a module with parameters has no `weight` array (wrap it in
    [`pcastro.Scaled`][] yourself with the multiplier you want), or when it is already
    [`pcastro.Scaled`][] (a network is parametrised once).
    """
    if not isinstance(parametrisation, AbstractParametrisation):
        raise TypeError(
            "`parametrisation` must be a pcastro parametrisation such as `pcastro.MuPC()` "
            f"or `pcastro.Standard()`, got {parametrisation!r}."
        )
    depth = len(net.nodes)
    nodes = []
    keys = jax.random.split(key, depth)
    for index, (node, node_key) in enumerate(zip(net.nodes, keys), start=1):
        modules = []
        module_keys = jax.random.split(node_key, len(node.modules))
        for module, parent, module_key in zip(node.modules, node.parents, module_keys):  # pyright: ignore[reportArgumentType]  # resolved by Network
            if not _has_params(module):
                modules.append(module)
                continue
            if isinstance(module, Scaled):
                raise TypeError(
                    f"Node {index}'s module is already `pcastro.Scaled`: a network is "
                    "parametrised once. Build it from plain modules and parametrise that."
                )
            weight = getattr(module, "weight", None)
            if not isinstance(weight, jax.Array) or weight.ndim < 2:
                raise TypeError(
                    f"Node {index}'s module {type(module).__name__} has parameters but no "
                    "`weight` array with the output on its first axis, so its fan-in is "
                    "unknown. Wrap it in `pcastro.Scaled(module, scale)` with the "
                    "multiplier you want instead."
                )
            fan_in = weight.size // weight.shape[0]
            scale = parametrisation.multiplier(
                _position(net, index, parent), fan_in=fan_in, depth=depth
            )
            modules.append(Scaled(parametrisation.init(module, key=module_key), scale))
        nodes.append(
            Node(
                modules,
                parents=node.parents,
                activation=node.activation,
                energy=node.energy,
                tau_e=node.tau_e,
            )
        )
    return Network(nodes, input_shape=net.input_shape, dtype=net.dtype)


def residual_mlp(
    *,
    in_size: int,
    width: int,
    depth: int,
    out_size: int,
    key,
    activation: Callable = jax.nn.relu,
    parametrisation: AbstractParametrisation | None = None,
    output_energy: AbstractEnergy | None = None,
    use_bias: bool = False,
    dtype=None,
) -> Network:
    r"""The residual MLP of the μPC paper, as a predictive-coding graph.

    `depth` weight layers of `width` units, with an identity skip around every hidden
    layer but the first:

    - node 1: `z_1 = a_1 W_1 x`;
    - node `l = 2 .. depth-1`: `z_l = z_{l-1} + a_l W_l phi(z_{l-1})`, a
      [`pcastro.Node`][] with two parents (`l-1` through the weights, `l-1` through an
      `equinox.nn.Identity()` skip);
    - node `depth`: `z_L = a_L W_L phi(z_{L-1})`.

    The multipliers `a_l` and the initial weights come from `parametrisation`
    ([`pcastro.MuPC`][] by default; [`pcastro.Standard`][] gives the same graph with
    multipliers 1 and Equinox's default initialisation). The activation sits before the
    weights (inside [`pcastro.Scaled`][]), so every node's own activation is the identity
    and its state is the residual stream.

    **Arguments:**

    - `in_size`, `width`, `out_size`: input, hidden and output sizes.
    - `depth`: the number of weight layers (at least 2).
    - `key`: a `jax.random` key (keyword-only).
    - `activation`: `phi`, ReLU by default as in the paper.
    - `parametrisation`: [`pcastro.MuPC`][] (default) or [`pcastro.Standard`][].
    - `output_energy`: energy of the top node (default Gaussian, as in the paper).
    - `use_bias`: biases in the linear layers (off by default, as in the paper).
    - `dtype`: the weights' floating dtype (default float32).

    **Returns:**

    A [`pcastro.Network`][] of `depth` predicted nodes.

    **Raises:**

    `ValueError` when `depth < 2` or a size is not positive.

    **Example:**

    ```python
    import jax
    import pcastro as pc

    net = pc.residual_mlp(in_size=784, width=128, depth=32, out_size=10, key=jax.random.key(0))
    assert len(net.nodes) == 32 and net.nodes[5].parents == (5, 5)
    ```

    ??? cite "Reference"

        ```bibtex
        @inproceedings{innocenti2025mupc,
            title={$\mu$PC: Scaling Predictive Coding to 100+ Layer Networks},
            author={Innocenti, Francesco and Achour, El Mehdi and Buckley, Christopher L.},
            booktitle={Advances in Neural Information Processing Systems},
            year={2025},
            note={arXiv:2505.13124}
        }
        ```
    """
    if depth < 2:
        raise ValueError(f"`depth` must be at least 2 (input and output layers), got {depth}.")
    for name, size in (("in_size", in_size), ("width", width), ("out_size", out_size)):
        if int(size) < 1:
            raise ValueError(f"`{name}` must be a positive int, got {size}.")
    if parametrisation is None:
        parametrisation = MuPC()
    keys = jax.random.split(key, 2 * depth)
    sizes = [in_size] + [width] * (depth - 1) + [out_size]
    nodes = []
    for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        linear = eqx.nn.Linear(a, b, use_bias=use_bias, key=keys[2 * index - 2], dtype=dtype)
        linear = parametrisation.init(linear, key=keys[2 * index - 1])
        position: Position = "input" if index == 1 else "output" if index == depth else "residual"
        scale = parametrisation.multiplier(position, fan_in=a, depth=depth)
        branch = Scaled(linear, scale, activation=identity if index == 1 else activation)
        if position == "residual":
            nodes.append(Node([branch, eqx.nn.Identity()], parents=[index - 1] * 2))
        else:
            nodes.append(Node(branch, energy=output_energy if index == depth else None))
    return Network(nodes, input_shape=(in_size,), dtype=dtype)
