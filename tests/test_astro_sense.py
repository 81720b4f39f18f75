"""What an astrocyte senses: the squared error, or the target-directed excess."""

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc
from pcastro import astro

CLASSES = 5


def _params(net):
    return eqx.filter(net, eqx.is_inexact_array)


def _net(getkey):
    """A small classifier with a softmax (cross-entropy) top, as in one-shot learning."""
    return pc.mlp([6, 8, CLASSES], key=getkey(), output_energy=pc.CrossEntropy())


def _column_setup(net, sense, *, ablated=False):
    """One astrocyte per output unit (column) and one on the hidden layer; gate after
    plain SGD, floor 0: plasticity only where calcium is."""
    regions = astro.make_regions(net, columns=(1, CLASSES))
    cells = astro.Astrocytes(tau_c=2.0, c_half=0.05, sense=sense, ablated=ablated)
    optimizer = optax.chain(optax.sgd(0.1), astro.scale_by_astrocytes(cells, regions))
    return regions, optimizer, optimizer.init(_params(net))


def _output_rows_changed(before, after):
    layer = lambda n: n.nodes[-1].modules[0]  # noqa: E731
    moved = jnp.any(layer(after).weight != layer(before).weight, axis=1)
    return np.asarray(moved | (layer(after).bias != layer(before).bias))


def test_target_excess_is_half_the_summed_squared_positive_errors(getkey):
    net = _net(getkey)
    x = jax.random.normal(getkey(), (3, 6))
    state = pc.infer(net, pc.init_state(net, x, jnp.array([0, 2, 4])), steps=5).state
    regions = astro.make_regions(net, columns=(2, CLASSES))
    sensed = astro.region_energies(state, regions, sense=astro.TargetExcess())
    squared = astro.region_energies(state, regions)
    for name, got in (("excess", sensed), ("squared", squared)):
        expected = []
        for node, c in ((1, 2), (2, CLASSES)):
            blocks = np.asarray(state.e[node]).reshape(3, c, -1)
            kept = np.maximum(blocks, 0.0) if name == "excess" else blocks
            expected.append(0.5 * np.sum(kept**2, axis=-1))
        np.testing.assert_allclose(got, np.concatenate(expected, axis=1), rtol=1e-6)
    # At the clamped one-hot top only the target unit is in excess: e = y - softmax.
    top = np.asarray(sensed[:, 2:])
    assert np.all(top[np.arange(3), [0, 2, 4]] > 0)
    assert np.count_nonzero(top) == 3
    # The default sense is the squared error, and sensing it explicitly changes nothing.
    np.testing.assert_array_equal(
        squared, astro.region_energies(state, regions, sense=astro.SquaredError())
    )


def test_one_presentation_opens_only_the_presented_column(getkey):
    net = _net(getkey)
    x = jax.random.normal(getkey(), (1, 6))
    label = 3
    regions, optimizer, opt_state = _column_setup(net, astro.TargetExcess())
    new, opt_state, _ = pc.train_step(
        net, opt_state, x, jnp.array([label]), optimizer=optimizer, ne=1.0
    )
    calcium = np.asarray(optax.tree_utils.tree_get(opt_state, "calcium"))
    output = calcium[1:]  # region 0 is the hidden layer
    assert output[label] > 0
    assert np.all(np.delete(output, label) == 0.0)
    # With the gate floor at 0, only the presented class's output row learned.
    changed = _output_rows_changed(net, new)
    np.testing.assert_array_equal(changed, np.arange(CLASSES) == label)


def test_the_squared_error_opens_the_wrongly_predicted_columns_too(getkey):
    """The contrast that motivates the target-directed sense: `1/2 e^2` is large at the
    unit the network predicted wrongly, so one presentation opens several columns."""
    net = _net(getkey)
    x = jax.random.normal(getkey(), (1, 6))
    regions, optimizer, opt_state = _column_setup(net, astro.SquaredError())
    _, opt_state, _ = pc.train_step(net, opt_state, x, jnp.array([3]), optimizer=optimizer, ne=1.0)
    output = np.asarray(optax.tree_utils.tree_get(opt_state, "calcium"))[1:]
    assert np.count_nonzero(output) == CLASSES


def test_ablated_target_astrocytes_are_plain_pc_bit_for_bit(getkey):
    net = _net(getkey)
    x = jax.random.normal(getkey(), (4, 6))
    y = jnp.array([0, 1, 3, 3])
    _, optimizer, opt_state = _column_setup(net, astro.TargetExcess(), ablated=True)
    gated, _, _ = pc.train_step(net, opt_state, x, y, optimizer=optimizer, ne=5.0)
    plain_opt = optax.sgd(0.1)
    plain, _, _ = pc.train_step(net, plain_opt.init(_params(net)), x, y, optimizer=plain_opt)
    chex.assert_trees_all_equal(_params(gated), _params(plain))  # bit for bit


def test_no_ne_means_no_calcium_and_no_learning(getkey):
    net = _net(getkey)
    x = jax.random.normal(getkey(), (2, 6))
    _, optimizer, opt_state = _column_setup(net, astro.TargetExcess())
    new, opt_state, _ = pc.train_step(
        net, opt_state, x, jnp.array([1, 2]), optimizer=optimizer, ne=0.0
    )
    np.testing.assert_array_equal(optax.tree_utils.tree_get(opt_state, "calcium"), 0.0)
    chex.assert_trees_all_equal(_params(new), _params(net))


def test_consolidate_feeds_a_target_gate_the_replayed_errors(getkey):
    """The store keeps `E_r = 1/2 sum e^2`, whose sign is lost; a target-directed gate is
    fed its own signal of the replayed stimulus, so consolidation opens only the stored
    stimulus's column as a live presentation does."""
    net = _net(getkey)
    x = jax.random.normal(getkey(), (1, 6))
    label = 2
    regions, optimizer, opt_state = _column_setup(net, astro.TargetExcess())
    state = pc.infer(net, pc.init_state(net, x, jnp.array([label])), steps=5).state
    store, _ = astro.snapshot(astro.make_store(net, regions, capacity=2), state, step=5)
    new, opt_state, _, _ = astro.consolidate(
        net, opt_state, store, optimizer=optimizer, ne=1.0, steps=5, tol=0.0
    )
    output = np.asarray(optax.tree_utils.tree_get(opt_state, "calcium"))[1:]
    assert output[label] > 0 and np.all(np.delete(output, label) == 0.0)
    np.testing.assert_array_equal(_output_rows_changed(net, new), np.arange(CLASSES) == label)


def test_a_state_made_by_another_sense_is_refused(getkey):
    net = _net(getkey)
    regions = astro.make_regions(net)
    gate = astro.scale_by_astrocytes(astro.Astrocytes(sense=astro.TargetExcess()), regions)
    other = astro.scale_by_astrocytes(astro.Astrocytes(), regions).init(_params(net))
    energy = jnp.ones((regions.num_regions,))
    with pytest.raises(ValueError, match="sense SquaredError, but the gate's sense TargetExcess"):
        gate.update(_params(net), other, region_energy=energy, ne=1.0)


def test_a_sense_must_be_a_sense_object():
    # Under the tests' runtime type checks the annotation refuses it first; both name the type.
    with pytest.raises(TypeError, match="AbstractSense"):
        astro.Astrocytes(sense="excess")
