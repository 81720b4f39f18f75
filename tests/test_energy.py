"""The energy abstraction is closed: a new energy is one class, and the core trains it."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc
from pcastro.data import load_dataset


class LearnedPrecision(pc.AbstractEnergy):
    """Gaussian energy with a learnable diagonal precision `exp(log_precision)`:
    `E = 1/2 sum_i exp(s_i) (x_i - mu_i)^2 - 1/2 sum_i s_i`."""

    log_precision: jax.Array
    leaky_errors: ClassVar[bool] = False

    def __init__(self, size: int):
        self.log_precision = jnp.zeros((size,))

    def prediction(self, pre, activation):
        return activation(pre)

    def __call__(self, x, pre, activation):
        r = x - activation(pre)
        return 0.5 * jnp.sum(jnp.exp(self.log_precision) * r**2) - 0.5 * jnp.sum(self.log_precision)


def test_a_learnable_precision_energy_is_one_class_and_trains():
    data = load_dataset("digits")
    k1, k2 = jax.random.split(jax.random.key(0))
    net = pc.Network(
        [
            pc.Node(
                eqx.nn.Linear(64, 32, key=k1), activation=jnp.tanh, energy=LearnedPrecision(32)
            ),
            pc.Node(eqx.nn.Linear(32, 10, key=k2), energy=pc.CrossEntropy()),
        ],
        input_shape=(64,),
    )
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    step = eqx.filter_jit(pc.train_step)
    x, y = data.x_train[:256], data.y_train[:256]
    energies = []
    for _ in range(30):
        net, opt_state, info = step(net, opt_state, x, y, optimizer=optimizer, steps=5)
        assert int(info.status) == 0
        energies.append(float(info.energy))
    precision = np.asarray(net.nodes[0].energy.log_precision)
    # The precision is a parameter like any weight: it moved, and learning lowered the energy.
    assert np.all(np.isfinite(precision)) and np.abs(precision).max() > 1e-3
    assert energies[-1] < energies[0]
    assert float(pc.accuracy(net, data.x_test, data.y_test)) > 0.5
    # The gradient the core takes for it is the analytic one, at fixed states.
    state = pc.infer(net, pc.init_state(net, x, y), steps=5).state
    grads = pc.param_grads(net, state)
    r = state.x[1] - jnp.tanh(jax.vmap(net.nodes[0].modules[0])(state.x[0]))
    expected = jnp.mean(0.5 * jnp.exp(net.nodes[0].energy.log_precision) * r**2 - 0.5, axis=0)
    np.testing.assert_allclose(grads.nodes[0].energy.log_precision, expected, rtol=1e-4, atol=1e-6)


def test_energy_capabilities_are_class_attributes_not_type_checks():
    assert pc.CrossEntropy.amortised and pc.CrossEntropy.owns_activation
    assert not pc.CrossEntropy.leaky_errors and pc.Gaussian.leaky_errors
    with pytest.raises(ValueError, match=r"LearnedPrecision has none"):
        pc.Node(eqx.nn.Linear(3, 3, key=jax.random.key(0)), energy=LearnedPrecision(3), tau_e=2.0)
