import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc
from pcastro.baselines import backprop_loss, backprop_step


def _params(net):
    return eqx.filter(net, eqx.is_inexact_array)


def _tiny(key, **kwargs):
    return pc.convnet((1, 8, 8), channels=(2, 3), num_classes=4, key=key, **kwargs)


def test_convnet_shapes_and_blocks_match_the_hand_written_network(getkey):
    # The default network, built abstractly (shapes only, no weights drawn).
    net = eqx.filter_eval_shape(lambda k: pc.convnet((1, 28, 28), key=k), getkey())
    assert net.shapes == ((1, 28, 28), (32, 14, 14), (64, 7, 7), (10,))
    assert isinstance(net.nodes[-1].energy, pc.CrossEntropy)
    net = _tiny(getkey(), hidden=(5,))
    assert net.shapes == ((1, 8, 8), (2, 4, 4), (3, 2, 2), (5,), (4,))
    x = jax.random.normal(getkey(), (1, 8, 8))
    conv1 = net.nodes[0].modules[0].layers[0]
    conv2 = net.nodes[1].modules[0].layers[0]
    assert isinstance(conv1, eqx.nn.Conv2d) and conv1.weight.shape == (2, 1, 3, 3)

    def pool(a):  # 2x2 max-pooling, stride 2, written out
        c, h, w = a.shape
        return a.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))

    x1 = pool(jax.nn.relu(conv1(x)))
    x2 = pool(jax.nn.relu(conv2(x1)))
    hidden = net.nodes[2].modules[0].layers[1]
    x3 = jax.nn.relu(hidden.weight @ x2.ravel() + hidden.bias)
    top = net.nodes[3].modules[0]
    expected = jax.nn.softmax(top.weight @ x3 + top.bias)
    np.testing.assert_allclose(eqx.filter_jit(net)(x), expected, rtol=1e-5, atol=1e-6)


def test_pc_train_step_on_a_conv_net_lowers_the_energy_under_jit(getkey):
    net = _tiny(getkey())
    x = jax.random.uniform(getkey(), (6, 1, 8, 8))
    y = jnp.arange(6) % 4
    opt = optax.adam(1e-2)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(net, opt_state):
        return pc.train_step(net, opt_state, x, y, optimizer=opt, steps=3, trace=True, unroll=True)

    opt_state = opt.init(_params(net))
    loss = eqx.filter_jit(backprop_loss)
    before = loss(net, x, y)
    for _ in range(5):
        net, opt_state, info = step(net, opt_state)
        # Inference lowers the energy from the feedforward start at every step.
        assert info.energy < info.energies[0]
    assert int(info.status) == 0
    assert loss(net, x, y) < before


def test_fixed_prediction_limit_on_conv_modules_equals_backprop_on_them(getkey):
    net = _tiny(getkey())
    x = jax.random.normal(getkey(), (3, 1, 8, 8))
    y = jnp.array([0, 2, 3])
    start = pc.init_state(net, x, y)
    sol = pc.infer(net, start, solver=pc.Euler(dt=1.0), steps=3, fixed_predictions=True)
    pc_grads = eqx.filter_jit(pc.param_grads)(net, sol.state, reference=start)
    bp_grads = eqx.filter_jit(eqx.filter_grad(backprop_loss))(net, x, y)
    assert jax.tree_util.tree_structure(pc_grads) == jax.tree_util.tree_structure(bp_grads)
    for a, b in zip(jax.tree_util.tree_leaves(pc_grads), jax.tree_util.tree_leaves(bp_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_backprop_baseline_trains_the_same_modules(getkey):
    net = _tiny(getkey())
    x = jax.random.uniform(getkey(), (6, 1, 8, 8))
    y = jnp.arange(6) % 4
    opt = optax.adam(1e-2)
    new, _, _ = eqx.filter_jit(backprop_step)(net, opt.init(_params(net)), x, y, optimizer=opt)
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(net)
    conv = lambda n: n.nodes[0].modules[0].layers[0].weight  # noqa: E731
    assert not np.allclose(conv(new), conv(net))
    assert new.shapes == net.shapes


def test_bad_input_shapes_are_explained(getkey):
    net = _tiny(getkey())
    opt = optax.sgd(0.1)
    flat = jnp.zeros((4, 64))
    with pytest.raises(
        ValueError, match=r"`x` has shape \(4, 64\), but node 0 expects \(batch, 1, 8, 8\)"
    ):
        pc.train_step(net, opt.init(_params(net)), flat, jnp.zeros(4, int), optimizer=opt)
    with pytest.raises(ValueError, match=r"must be one example's \(channels, height, width\)"):
        pc.convnet((28, 28), key=getkey())
    with pytest.raises(ValueError, match="smaller than the pooling window 2"):
        pc.convnet((1, 4, 4), channels=(2, 2, 2), key=getkey())
    with pytest.raises(ValueError, match="`kernel_size` must be odd"):
        pc.convnet((1, 8, 8), kernel_size=4, key=getkey())


def test_a_conv_net_is_arrays_only_and_trains_inside_lax_scan(getkey):
    # Its reshape and activation layers keep their functions static, so the network can
    # be the carry of `lax.scan` (an `equinox.nn.Lambda` leaf would be rejected there).
    net = _tiny(getkey(), hidden=(5,))
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(net))
    x = jax.random.uniform(getkey(), (6, 1, 8, 8))
    y = jnp.arange(6) % 4
    opt = optax.sgd(1e-2)

    def body(carry, _):
        net, opt_state = carry
        net, opt_state, _ = pc.train_step(net, opt_state, x, y, optimizer=opt, steps=2)
        return (net, opt_state), None

    carry = (net, opt.init(_params(net)))
    scanned, _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=3))(carry)
    looped = carry
    for _ in range(3):
        looped, _ = body(looped, None)
    for a, b in zip(jax.tree_util.tree_leaves(scanned[0]), jax.tree_util.tree_leaves(looped[0])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_reshape_layer_flattens_and_unflattens():
    x = jnp.arange(12.0)
    np.testing.assert_array_equal(pc.Reshape((1, 3, 4))(x), x.reshape(1, 3, 4))
    np.testing.assert_array_equal(pc.Reshape((-1,))(x.reshape(3, 4)), x)
    np.testing.assert_array_equal(pc.Activation(jax.nn.relu)(x - 5), jax.nn.relu(x - 5))


def test_maxpool_equals_equinox_maxpool2d(getkey):
    x = jax.random.normal(getkey(), (3, 8, 6))
    np.testing.assert_allclose(pc.MaxPool(2)(x), eqx.nn.MaxPool2d(2, 2)(x))
