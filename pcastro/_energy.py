"""Energies of one node, written for one example."""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from ._custom_types import Array, Scalar


class AbstractEnergy(eqx.Module):
    """The energy a node contributes, `E_l(x_l, pre_l)`, for one example.

    `pre_l` is the summed input of the node's modules before the activation; the
    prediction `mu_l` is `prediction(pre_l, activation)`.

    **The contract.** A new energy is one subclass; nothing in the core names a concrete
    energy. It implements:

    - `prediction(pre, activation)`: the prediction `mu_l`; the error neuron holds
      `e_l = x_l - mu_l` (what the astrocytes' region energies read).
    - `__call__(x, pre, activation)`: the scalar energy of one example. Inference
      descends its gradient in `x`; learning its gradient in the module parameters and
      in any array field of the energy itself (a learnable precision, say), so an
      energy's own parameters are trained by `train_step` like any weight.

    and may set three class attributes (defaults in brackets):

    - `amortised` (False): a free node is held at its prediction, the minimiser of the
      energy in `x`, instead of being relaxed. Such a node must be a sink (its children's
      errors would be ignored) and cannot be partially clamped.
    - `owns_activation` (False): the energy applies its own non-linearity to `pre` (a
      softmax, say), so the node's `activation` must be the identity.
    - `leaky_errors` (False): leaky error neurons (`Node(tau_e=...)`) integrate
      `x_l - mu_l` for this energy; only set it where that is the error the energy's
      gradient uses.
    """

    amortised: ClassVar[bool] = False
    owns_activation: ClassVar[bool] = False
    leaky_errors: ClassVar[bool] = False

    @abc.abstractmethod
    def prediction(self, pre: Array, activation) -> Array:
        """The prediction `mu_l` made from the node's summed input `pre_l`."""

    @abc.abstractmethod
    def __call__(self, x: Array, pre: Array, activation) -> Scalar:
        """The energy of state `x` given the summed input `pre`."""


class Gaussian(AbstractEnergy):
    r"""Gaussian energy `E_l = 1/2 ||x_l - mu_l||^2` with `mu_l = activation(pre_l)`.

    The error neuron is `e_l = x_l - mu_l`; this is the energy of Rao & Ballard (1999)
    with unit variance.

    ??? cite "Reference"

        ```bibtex
        @article{rao1999predictive,
            title={Predictive coding in the visual cortex: a functional interpretation
                   of some extra-classical receptive-field effects},
            author={Rao, Rajesh P. N. and Ballard, Dana H.},
            journal={Nature Neuroscience},
            volume={2}, number={1}, pages={79--87}, year={1999}
        }
        ```
    """

    leaky_errors: ClassVar[bool] = True

    def prediction(self, pre: Array, activation) -> Array:
        return activation(pre)

    def __call__(self, x: Array, pre: Array, activation) -> Scalar:
        return 0.5 * jnp.sum((x - activation(pre)) ** 2)


class CrossEntropy(AbstractEnergy):
    r"""Cross-entropy energy for a top node holding class probabilities.

    `E_l = sum_i x_i (log x_i - log softmax(pre_l)_i)`, the KL divergence from the
    predicted distribution to the state; for a clamped one-hot target it is the usual
    cross-entropy `-log softmax(pre_l)_y`. The prediction is `softmax(pre_l)` and the
    error neuron `e_l = x_l - softmax(pre_l)`. The node's activation must be the identity
    (the softmax is part of the energy). A free cross-entropy node is held at its minimiser
    `x_l = softmax(pre_l)` (energy zero) instead of being relaxed by gradient steps; it
    may not be partially clamped.
    """

    amortised: ClassVar[bool] = True
    owns_activation: ClassVar[bool] = True

    def prediction(self, pre: Array, activation) -> Array:
        return jax.nn.softmax(pre)

    def __call__(self, x: Array, pre: Array, activation) -> Scalar:
        return jnp.sum(xlogy(x, x) - x * jax.nn.log_softmax(pre))
