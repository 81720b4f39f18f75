"""Parametrisations (standard, μPC) and the residual MLP of the μPC paper."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc

from .helpers import digits_split


def _weights(net):
    """The wrapped `Linear` of every weight layer, in node order."""
    return [m.module for node in net.nodes for m in node.modules if isinstance(m, pc.Scaled)]


def test_shallow_forward_pass_is_the_documented_formula(getkey):
    D, N, K, L = 5, 4, 3, 3
    net = pc.residual_mlp(in_size=D, width=N, depth=L, out_size=K, key=getkey())
    W1, W2, W3 = (lin.weight for lin in _weights(net))
    x = jax.random.normal(getkey(), (D,))
    z1 = W1 @ x / math.sqrt(D)
    z2 = z1 + W2 @ jax.nn.relu(z1) / math.sqrt(N * L)
    out = W3 @ jax.nn.relu(z2) / N
    np.testing.assert_allclose(net(x), out, rtol=1e-5, atol=1e-6)
    assert net.nodes[1].parents == (1, 1)  # weights and identity skip from the same parent


def test_mupc_draws_unit_gaussian_weights_and_zero_biases(getkey):
    net = pc.residual_mlp(in_size=64, width=256, depth=4, out_size=10, key=getkey(), use_bias=True)
    for lin in _weights(net):
        assert abs(float(jnp.std(lin.weight)) - 1.0) < 0.05
        assert float(jnp.max(jnp.abs(lin.bias))) == 0.0


@pytest.mark.parametrize("depth", [8, 128])
def test_mupc_keeps_activations_order_one_at_depth(getkey, depth):
    # The property μPC is built for: every layer's feedforward activity has O(1) RMS at
    # initialisation whatever the depth; the standard parametrisation of the same residual
    # graph grows with depth.
    x = jax.random.normal(getkey(), (32, 784))
    key = getkey()
    rms = {}
    for param in (pc.MuPC(), pc.Standard()):
        net = pc.residual_mlp(
            in_size=784, width=128, depth=depth, out_size=10, key=key, parametrisation=param
        )
        state = pc.init_state(net, x)
        rms[type(param).__name__] = [float(jnp.sqrt(jnp.mean(z**2))) for z in state.x[1:-1]]
    assert all(0.5 < r < 2.0 for r in rms["MuPC"]), rms["MuPC"]
    if depth == 128:
        assert max(rms["Standard"]) > 50.0, max(rms["Standard"])


def test_parametrise_sets_each_position_multiplier(getkey):
    mlp = pc.mlp([20, 16, 16, 3], key=getkey())
    net = pc.parametrise(mlp, pc.MuPC(), key=getkey())
    scales = [node.modules[0].scale for node in net.nodes]
    assert scales == pytest.approx([1 / math.sqrt(20), 1 / math.sqrt(16), 1 / 16])
    assert [n.activation for n in net.nodes] == [n.activation for n in mlp.nodes]
    # a hidden node with an identity skip from its parent is a residual layer
    graph = pc.Network(
        [
            pc.Node(eqx.nn.Linear(20, 16, key=getkey())),
            pc.Node([eqx.nn.Linear(16, 16, key=getkey()), eqx.nn.Identity()], parents=[1, 1]),
            pc.Node(eqx.nn.Linear(16, 3, key=getkey())),
        ],
        input_shape=(20,),
    )
    res = pc.parametrise(graph, pc.MuPC(), key=getkey())
    assert res.nodes[1].modules[0].scale == pytest.approx(1 / math.sqrt(16 * 3))
    assert isinstance(res.nodes[1].modules[1], eqx.nn.Identity)


def test_parametrise_scales_convolutions_by_their_fan_in(getkey):
    conv = eqx.nn.Conv2d(2, 4, kernel_size=3, padding=1, key=getkey())
    head = eqx.nn.Sequential([eqx.nn.Lambda(jnp.ravel), eqx.nn.Linear(4 * 5 * 5, 3, key=getkey())])
    net = pc.Network([pc.Node(conv, activation=jax.nn.relu), pc.Node(head)], input_shape=(2, 5, 5))
    with pytest.raises(TypeError, match="no `weight` array"):
        pc.parametrise(net, pc.MuPC(), key=getkey())
    net = pc.Network(
        [pc.Node(conv, activation=jax.nn.relu), pc.Node(pc.Scaled(head, 0.01))],
        input_shape=(2, 5, 5),
    )
    with pytest.raises(TypeError, match="already `pcastro.Scaled`"):
        pc.parametrise(net, pc.MuPC(), key=getkey())
    only_conv = pc.Network([pc.Node(conv)], input_shape=(2, 5, 5))
    out = pc.parametrise(only_conv, pc.MuPC(), key=getkey())
    assert out.nodes[0].modules[0].scale == pytest.approx(1 / math.sqrt(2 * 3 * 3))


def test_standard_parametrisation_keeps_the_function(getkey):
    mlp = pc.mlp([6, 5, 2], key=getkey())
    net = pc.parametrise(mlp, pc.Standard(), key=getkey())
    x = jax.random.normal(getkey(), (6,))
    np.testing.assert_allclose(net(x), mlp(x), rtol=1e-6)


def test_scale_is_configuration_not_a_parameter(getkey):
    net = pc.residual_mlp(in_size=6, width=5, depth=3, out_size=2, key=getkey())
    params = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
    assert len(params) == 3  # one weight matrix per layer, no bias, no multiplier
    state = pc.init_state(net, jnp.ones((2, 6)), jnp.array([0, 1]))
    grads = pc.param_grads(net, state)
    assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_checkpoint_round_trip_keeps_the_multipliers(tmp_path, getkey):
    net = pc.residual_mlp(in_size=6, width=5, depth=4, out_size=2, key=getkey())
    pc.save(tmp_path / "mupc.ckpt", net, None, None)
    like = pc.residual_mlp(in_size=6, width=5, depth=4, out_size=2, key=getkey())
    loaded, _, _ = pc.load(tmp_path / "mupc.ckpt", like=(like, None, None))
    x = jnp.ones((6,))
    np.testing.assert_array_equal(loaded(x), net(x))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"depth": 1}, ValueError, "`depth` must be at least 2"),
        ({"width": 0}, ValueError, "`width` must be a positive int"),
    ],
)
def test_residual_mlp_rejects_bad_sizes(getkey, kwargs, error, match):
    sizes = {"in_size": 4, "width": 4, "depth": 3, "out_size": 2} | kwargs
    with pytest.raises(error, match=match):
        pc.residual_mlp(**sizes, key=getkey())


def test_bad_parametrisation_arguments_raise(getkey):
    with pytest.raises(ValueError, match="`scale` must be a positive finite"):
        pc.Scaled(eqx.nn.Identity(), 0.0)
    with pytest.raises(TypeError, match="parametrisation"):
        pc.parametrise(pc.mlp([3, 2], key=getkey()), "mupc", key=getkey())
    # (under the tests' runtime type checks the `Literal` annotation answers first)
    with pytest.raises((ValueError, TypeError), match="middle"):
        pc.MuPC().multiplier("middle", fan_in=4, depth=2)
    with pytest.raises(ValueError, match="`batch_size` must be at least 1"):
        pc.MuPC().inference_dt(0)


def _train_digits(param, *, depth, width, iters, key):
    """Digits, standardised; Gaussian output on one-hot labels; Adam on the weights; Euler
    inference for `depth` steps at the reference step size — the μPC settings."""
    x_train, x_test, y_train, y_test = digits_split()
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    batch = 64
    net = pc.residual_mlp(
        in_size=64, width=width, depth=depth, out_size=10, key=key, parametrisation=param
    )
    mupc = pc.MuPC()
    opt = optax.adam(mupc.learning_rate)
    solver = pc.Euler(dt=mupc.inference_dt(batch))
    order = np.random.default_rng(0).permutation(np.tile(np.arange(len(x_train)), 3))
    idx = order[: iters * batch].reshape(iters, batch)
    xb, yb = x_train[idx], np.eye(10, dtype=np.float32)[y_train[idx]]
    params, static = eqx.partition(net, eqx.is_inexact_array)

    @jax.jit
    def fit(params, opt_state):
        def body(carry, b):
            net = eqx.combine(carry[0], static)
            net, opt_state, _ = pc.train_step(
                net,
                carry[1],
                b[0],
                b[1],
                optimizer=opt,
                solver=solver,
                steps=depth,
                throw=False,
            )
            return (eqx.filter(net, eqx.is_inexact_array), opt_state), None

        return jax.lax.scan(body, (params, opt_state), (xb, yb))[0][0]

    params = fit(params, opt.init(params))
    return float(pc.accuracy(eqx.combine(params, static), x_test, y_test))


def test_deep_mupc_network_learns_where_standard_pc_does_not(getkey):
    # 32 layers on the digits, the same settings for both: μPC learns, the standard
    # parametrisation of the same residual graph does not get off the ground.
    key = getkey()
    mupc = _train_digits(pc.MuPC(), depth=32, width=32, iters=60, key=key)
    standard = _train_digits(pc.Standard(), depth=32, width=32, iters=60, key=key)
    assert mupc > 0.8, mupc
    assert mupc - standard > 0.3, (mupc, standard)
