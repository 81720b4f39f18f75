"""A small convolutional predictive-coding network (VGG-style blocks) built from Nodes."""

import operator
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from ._energy import AbstractEnergy, CrossEntropy
from ._network import Network, Node, identity


class Reshape(eqx.Module):
    """`x.reshape(shape)` as a layer of an `equinox.nn.Sequential` (`shape=(-1,)`
    flattens). The shape is static, so a network holding it is a pytree of arrays only
    and can be carried through `jax.lax.scan` (`equinox.nn.Lambda` holds a function leaf,
    which cannot)."""

    shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, x, *, key=None):
        return x.reshape(self.shape)


class Activation(eqx.Module):
    """An elementwise nonlinearity as a layer of an `equinox.nn.Sequential`; the function
    is static (see [`pcastro.Reshape`][])."""

    fn: Callable = eqx.field(static=True)

    def __call__(self, x, *, key=None):
        return self.fn(x)


class MaxPool(eqx.Module):
    """Max-pooling of a `(channels, height, width)` map over `window x window` patches
    with stride `window` (no padding), like `equinox.nn.MaxPool2d(window, window)` but
    with only static fields (see [`pcastro.Reshape`][])."""

    window: int = eqx.field(static=True)

    def __call__(self, x, *, key=None):
        w = self.window
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, w, w), (1, w, w), "VALID")


def _positive_ints(value, name: str, example: str) -> tuple[int, ...]:
    try:
        out = tuple(operator.index(v) for v in value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of ints such as {example}, got {value!r}."
        ) from None
    if not out or any(v < 1 for v in out):
        raise ValueError(f"`{name}` must be non-empty positive ints such as {example}, got {out}.")
    return out


def convnet(
    input_shape: Sequence[int],
    *,
    channels: Sequence[int] = (32, 64),
    num_classes: int = 10,
    hidden: Sequence[int] = (),
    kernel_size: int = 3,
    pool: int = 2,
    activation: Callable = jax.nn.relu,
    output_energy: AbstractEnergy = CrossEntropy(),
    tau_e: float | None = None,
    dtype=None,
    key,
) -> Network:
    r"""A VGG-style convolutional network: one node per convolutional block, then a
    linear read-out, e.g. `conv(1->32)+pool -> conv(32->64)+pool -> flatten -> linear -> 10`.

    Block `l` predicts its node from the one below,

    `mu_l = pool(activation(conv_l(x_{l-1})))`,

    with `conv_l` an `equinox.nn.Conv2d` (`kernel_size` square, stride 1, "same" padding)
    and `pool` a [`pcastro.MaxPool`][] of window and stride `pool`; the node's module is
    the `equinox.nn.Sequential` of the three, in the order of the pcx benchmark's VGG
    blocks (convolution, activation, pooling), and its own activation is the identity.
    The state of node `l` is the pooled feature map, `(channels[l - 1], H_l, W_l)`. The
    top node flattens its parent and applies an `equinox.nn.Linear`; `hidden` inserts
    linear nodes in between (`mu = activation(W x + b)`). Every hidden node has a
    Gaussian energy; the top node `output_energy` (cross-entropy by default, as the
    network is a classifier).

    One example is `(channels, height, width)`; batch with `jax.vmap` as for any node, or
    pass batches to [`pcastro.init_state`][] and [`pcastro.train_step`][]. Backprop on the
    same modules is [`pcastro.baselines.backprop_step`][].

    **Arguments:**

    - `input_shape`: one example's shape `(channels, height, width)`, e.g. `(1, 28, 28)`.
    - `channels`: output channels of each convolutional block.
    - `num_classes`: units of the top node.
    - `hidden`: sizes of linear hidden nodes between the last block and the top node.
    - `kernel_size`: the (odd) side of every convolution kernel.
    - `pool`: max-pooling window and stride of every block; 1 for no pooling.
    - `activation`: nonlinearity of the blocks and the linear hidden nodes.
    - `output_energy`: energy of the top node (its activation is the identity).
    - `tau_e`: leaky error-neuron time constant of every Gaussian node, or None.
    - `dtype`: parameter dtype (float32 by default).
    - `key`: a `jax.random` key for the weights (keyword-only).

    **Returns:**

    A [`pcastro.Network`][] with `len(channels) + len(hidden) + 1` predicted nodes.

    **Raises:**

    `ValueError` when `input_shape` is not `(channels, height, width)`, `kernel_size` is
    even, or the image becomes smaller than the pooling window before the last block;
    `TypeError` when a size is not an int.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{pinchetti2025benchmarking,
            title={Benchmarking Predictive Coding Networks -- Made Simple},
            author={Pinchetti, Luca and Qi, Chang and Lokshyn, Oleh and Oliviers, Gaspard
                    and Emde, Cornelius and Tang, Mufeng and M'Charrak, Amine and
                    Frieder, Simon and Menzat, Bayar and Bogacz, Rafal and
                    Lukasiewicz, Thomas and Salvatori, Tommaso},
            booktitle={International Conference on Learning Representations},
            year={2025}
        }
        ```
    """
    shape = _positive_ints(input_shape, "input_shape", "(1, 28, 28)")
    if len(shape) != 3:
        raise ValueError(
            f"`input_shape` must be one example's (channels, height, width), e.g. (1, 28, 28) "
            f"for MNIST, got {shape}; reshape flat images with "
            "`x.reshape(-1, channels, height, width)`."
        )
    channels = _positive_ints(channels, "channels", "(32, 64)")
    hidden = _positive_ints(hidden, "hidden", "(128,)") if len(hidden) else ()
    (num_classes,) = _positive_ints((num_classes,), "num_classes", "10")
    (kernel_size,) = _positive_ints((kernel_size,), "kernel_size", "3")
    (pool,) = _positive_ints((pool,), "pool", "2")
    if kernel_size % 2 == 0:
        raise ValueError(
            f"`kernel_size` must be odd so that 'same' padding keeps the image size, got "
            f"{kernel_size}; use 3 or 5."
        )
    size = shape[1:]
    for i in range(len(channels)):
        if min(size) < pool:
            raise ValueError(
                f"Convolutional block {i + 1} gets a {size[0]}x{size[1]} image, smaller than "
                f"the pooling window {pool}; use fewer blocks in `channels`, a smaller `pool` "
                "or larger images."
            )
        size = (size[0] // pool, size[1] // pool)
    keys = iter(jax.random.split(key, len(channels) + len(hidden) + 1))
    nodes = []
    for c_in, c_out in zip((shape[0], *channels[:-1]), channels):
        conv = eqx.nn.Conv2d(
            c_in, c_out, kernel_size, padding=kernel_size // 2, key=next(keys), dtype=dtype
        )
        layers = [conv, Activation(activation)]
        if pool > 1:
            layers.append(MaxPool(pool))
        nodes.append(Node(eqx.nn.Sequential(layers), tau_e=tau_e))
    width = channels[-1] * size[0] * size[1]
    for i, n_out in enumerate((*hidden, num_classes)):
        linear = eqx.nn.Linear(width, n_out, key=next(keys), dtype=dtype)
        module = eqx.nn.Sequential([Reshape((-1,)), linear]) if i == 0 else linear
        if i < len(hidden):
            nodes.append(Node(module, activation=activation, tau_e=tau_e))
        else:
            leaky = tau_e if output_energy is None or output_energy.leaky_errors else None
            nodes.append(Node(module, activation=identity, energy=output_energy, tau_e=leaky))
        width = n_out
    return Network(nodes, input_shape=shape, dtype=dtype)
