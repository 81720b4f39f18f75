import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pcastro as pc


def test_two_layer_energy_matches_hand_written(getkey):
    net = pc.mlp([3, 4, 2], key=getkey(), activation=jnp.tanh)
    x0 = jax.random.normal(getkey(), (3,))
    x1 = jax.random.normal(getkey(), (4,))
    x2 = jax.random.normal(getkey(), (2,))
    l1, l2 = net.nodes[0].modules[0], net.nodes[1].modules[0]
    e1 = x1 - jnp.tanh(l1.weight @ x0 + l1.bias)
    e2 = x2 - (l2.weight @ x1 + l2.bias)
    expected = 0.5 * jnp.sum(e1**2) + 0.5 * jnp.sum(e2**2)
    got = pc.node_energies(net, [x0, x1, x2])
    np.testing.assert_allclose(got, [0.5 * jnp.sum(e1**2), 0.5 * jnp.sum(e2**2)], rtol=1e-6)
    state = pc.PCState(
        x=(x0[None], x1[None], x2[None]),
        e=(None, None, None),
        masks=(None, None, None),
        clamps=("clamped", "free", "clamped"),
    )
    np.testing.assert_allclose(pc.energy(net, state), [expected], rtol=1e-6)
    np.testing.assert_allclose(pc.local_energies(net, state)[0], got, rtol=1e-6)


def test_cross_entropy_energy_is_cross_entropy_for_one_hot(getkey):
    net = pc.mlp([5, 3], key=getkey(), output_energy=pc.CrossEntropy())
    x0 = jax.random.normal(getkey(), (5,))
    y = jax.nn.one_hot(2, 3)
    lin = net.nodes[0].modules[0]
    expected = -jax.nn.log_softmax(lin.weight @ x0 + lin.bias)[2]
    np.testing.assert_allclose(pc.node_energies(net, [x0, y])[0], expected, rtol=1e-6)


def test_skip_connection_node_sums_its_parents(getkey):
    a = eqx.nn.Linear(3, 4, key=getkey())
    b = eqx.nn.Linear(4, 2, key=getkey())
    skip = eqx.nn.Linear(3, 2, key=getkey())
    net = pc.Network(
        [pc.Node(a, activation=jnp.tanh), pc.Node((b, skip), parents=(1, 0))], input_shape=(3,)
    )
    assert net.shapes == ((3,), (4,), (2,))
    x0 = jax.random.normal(getkey(), (3,))
    x1 = jax.random.normal(getkey(), (4,))
    x2 = jax.random.normal(getkey(), (2,))
    e2 = x2 - (b(x1) + skip(x0))
    np.testing.assert_allclose(
        pc.node_energies(net, [x0, x1, x2])[1], 0.5 * jnp.sum(e2**2), rtol=1e-6
    )


def test_conv_and_custom_callables_compose(getkey):
    conv = eqx.nn.Conv2d(1, 2, kernel_size=3, padding=1, key=getkey())
    head = eqx.nn.Linear(2 * 8 * 8, 10, key=getkey())
    net = pc.Network(
        [
            pc.Node(conv, activation=jax.nn.relu),
            pc.Node(eqx.nn.Sequential([eqx.nn.Lambda(jnp.ravel), head]), energy=pc.CrossEntropy()),
        ],
        input_shape=(1, 8, 8),
    )
    assert net.shapes == ((1, 8, 8), (2, 8, 8), (10,))
    x = jax.random.normal(getkey(), (5, 1, 8, 8))
    sol = pc.infer(net, pc.init_state(net, x, jnp.arange(5)), steps=5)
    assert sol.state.x[1].shape == (5, 2, 8, 8)
    assert int(sol.status) == 0


def test_module_shape_mismatch_names_the_node(getkey):
    with pytest.raises(ValueError, match="Node 2 cannot predict from its parents"):
        pc.chain(
            [eqx.nn.Linear(3, 4, key=getkey()), eqx.nn.Linear(5, 2, key=getkey())],
            input_shape=(3,),
        )


def test_bad_parents_and_options_are_explained(getkey):
    lin = eqx.nn.Linear(3, 3, key=getkey())
    with pytest.raises(ValueError, match="parents must be earlier nodes"):
        pc.Network([pc.Node(lin, parents=(1,))], input_shape=(3,))
    with pytest.raises(ValueError, match="one module per parent"):
        pc.Node((lin, lin), parents=(0,))
    # Without the test suite's runtime type checker the message is pcastro's own; with it,
    # the checker names the parameter first. Both are TypeErrors that say what is expected.
    with pytest.raises(TypeError, match=r"pcastro.Gaussian|parameter 'energy'"):
        pc.Node(lin, energy="gaussian")
    with pytest.raises(ValueError, match="applies its own non-linearity"):
        pc.Node(lin, activation=jnp.tanh, energy=pc.CrossEntropy())
    with pytest.raises(TypeError, match="wrap modules in"):
        pc.Network([lin], input_shape=(3,))


def test_dtype_is_preserved_in_float64(getkey):
    with jax.enable_x64(True):
        net = pc.mlp([4, 6, 3], key=getkey(), dtype=jnp.float64)
        x = jax.random.normal(getkey(), (2, 4), dtype=jnp.float64)
        sol = pc.infer(net, pc.init_state(net, x, jnp.array([0, 1])), steps=3)
        assert all(v.dtype == jnp.float64 for v in sol.state.x)
        assert sol.energy.dtype == jnp.float64
