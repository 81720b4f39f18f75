"""Bad inputs, one row each: the exception type and the message that says the fix.

Nothing may be silently wrong: each case below once gave a plausible number, a NaN that
spread, or an error that did not name the argument.
"""

import hashlib
import json
import os
import struct

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import pcastro as pc
from pcastro import astro
from pcastro.cli import main

KEY = jax.random.key(0)


def _net():
    return pc.mlp([8, 6, 3], key=KEY, output_energy=pc.CrossEntropy())


def _data():
    x = np.random.default_rng(0).random((4, 8)).astype("f4")
    return x, np.array([0, 1, 2, 0])


def _params(net):
    return eqx.filter(net, eqx.is_inexact_array)


def _train(x, y, optimizer, **kw):
    net = _net()
    return pc.train_step(net, optimizer.init(_params(net)), x, y, optimizer=optimizer, **kw)


def _store_setup():
    net = _net()
    x, y = _data()
    state = pc.infer(net, pc.init_state(net, x, y), steps=3).state
    return net, state, astro.make_store(net, astro.make_regions(net), capacity=4)


# A gate that is always fully open (g0 = 1): the update is plain SGD's.
_OPEN_GATE_SGD = optax.chain(
    optax.sgd(1e4),
    astro.scale_by_astrocytes(astro.Astrocytes(g0=1.0), astro.make_regions(_net())),
)


def _gate_update(ne=0.0, energy=None):
    net = _net()
    regions = astro.make_regions(net)
    gate = astro.scale_by_astrocytes(astro.Astrocytes(), regions)
    grads = _params(net)
    energy = jnp.ones((regions.num_regions,)) if energy is None else energy
    return gate.update(grads, gate.init(grads), region_energy=energy, ne=ne)


CASES = {
    # learning checks what it produces
    # Was caught only at the weight update ("non-finite parameters"); now named as data.
    "inf input -> named as the data": (
        lambda: _train(_data()[0] * np.array([np.inf] + [1] * 7, "f4"), _data()[1], optax.sgd(0.1)),
        eqx.EquinoxRuntimeError,
        "The data `x` holds NaN or inf",
    ),
    "huge learning rate": (
        lambda: _train(*_data(), optax.sgd(1e4)),
        eqx.EquinoxRuntimeError,
        "learning rate of the optimiser is far too large",
    ),
    "optimiser state of another network": (
        lambda: pc.train_step(
            _net(),
            optax.adam(1e-3).init(_params(pc.mlp([8, 5, 3], key=KEY))),
            *_data(),
            optimizer=optax.adam(1e-3),
        ),
        ValueError,
        "`opt_state` does not fit this network and optimiser",
    ),
    "incremental_step with a solver that compares energies": (
        lambda: pc.incremental_step(
            _net(),
            optax.sgd(0.1).init(_params(_net())),
            pc.init_state(_net(), *_data()),
            optimizer=optax.sgd(0.1),
            solver=pc.AdaptiveEuler(),
        ),
        TypeError,
        "cannot be a solver that compares energies",
    ),
    "apply_gated_grads with a huge rate": (
        lambda: astro.apply_gated_grads(
            _net(),
            _OPEN_GATE_SGD.init(_params(_net())),
            pc.infer(_net(), pc.init_state(_net(), *_data())).state,
            optimizer=_OPEN_GATE_SGD,
            region_energy=jnp.ones((2,)),
            ne=0.0,
        ),
        eqx.EquinoxRuntimeError,
        "far too large",
    ),
    # values out of range
    "label out of range": (
        lambda: pc.init_state(_net(), _data()[0], np.array([0, 1, 3, 0])),
        ValueError,
        r"Integer labels must lie in \[0, 3\)",
    ),
    "negative dt": (lambda: pc.Euler(dt=-0.1), ValueError, "positive, finite step size"),
    "zero dt": (lambda: pc.Euler(dt=0.0), ValueError, "positive, finite step size"),
    "negative NE": (lambda: _gate_update(ne=-1.0), ValueError, "`ne` .* non-negative"),
    "NaN NE": (lambda: _gate_update(ne=jnp.nan), ValueError, "`ne` .* must be finite"),
    "NaN region energy": (
        lambda: _gate_update(energy=jnp.array([jnp.nan, 1.0])),
        ValueError,
        "`region_energy` must be finite",
    ),
    "NaN theta": (
        lambda: astro.Astrocytes(theta=float("nan")),
        ValueError,
        r"Astrocytes\(theta=...\)` must be finite",
    ),
    "NaN priority": (
        lambda: astro.snapshot(_store_setup()[2], _store_setup()[1], priority=jnp.nan),
        eqx.EquinoxRuntimeError,
        "`priority` is NaN or infinite",
    ),
    "energy rising under Euler": (
        lambda: pc.infer(
            _net(), pc.init_state(_net(), *_data()), solver=pc.Euler(dt=5.0), steps=30
        ),
        eqx.EquinoxRuntimeError,
        "diverged|non-finite",
    ),
    # wrong shapes and types
    "empty batch": (
        lambda: pc.init_state(_net(), _data()[0][:0], _data()[1][:0]),
        ValueError,
        "The batch is empty",
    ),
    "integer network dtype": (
        lambda: pc.mlp([8, 6, 3], key=KEY, dtype=jnp.int32),
        ValueError,
        "floating dtype",
    ),
    "labels of the wrong shape in accuracy": (
        lambda: pc.accuracy(_net(), _data()[0], np.zeros((4, 2), "i4")),
        ValueError,
        "pass integer labels of shape",
    ),
    # accuracy returned 0.0 for these while init_state refused them: same check, same message
    "labels out of range in accuracy": (
        lambda: pc.accuracy(_net(), _data()[0], _data()[1] + 100),
        ValueError,
        r"Integer labels must lie in \[0, 3\) for a top node of 3 units",
    ),
    "negative labels in accuracy": (
        lambda: pc.accuracy(_net(), _data()[0], _data()[1] - 1),
        ValueError,
        r"Integer labels must lie in \[0, 3\)",
    ),
    "mis-shaped x_mask": (
        lambda: pc.init_state(_net(), _data()[0], x_mask=np.ones(5)),
        ValueError,
        "`x_mask` has shape",
    ),
    "non-binary x_mask": (
        lambda: pc.init_state(_net(), _data()[0], x_mask=np.full(8, 0.5)),
        ValueError,
        "must hold only 0 and 1",
    ),
    "tol as a traced array": (
        lambda: jax.jit(lambda t: pc.infer(_net(), pc.init_state(_net(), *_data()), tol=t).energy)(
            1e-3
        ),
        TypeError,
        "`tol` must be a concrete number",
    ),
    "snapshot of a state without error neurons": (
        lambda: astro.snapshot(
            _store_setup()[2], pc.init_state(_net(), *_data(), compute_errors=False)
        ),
        ValueError,
        "has no error neurons",
    ),
    "hidden cross-entropy node": (
        lambda: pc.Network(
            [
                pc.Node(eqx.nn.Linear(3, 3, key=KEY), energy=pc.CrossEntropy()),
                pc.Node(eqx.nn.Linear(3, 2, key=KEY), parents=1),
            ],
            input_shape=(3,),
        ),
        ValueError,
        "must be a sink",
    ),
    "unknown clamp": (
        lambda: pc.PCState(x=(), e=(), masks=(), clamps=("fixed",)),
        ValueError,
        "`clamps` must name one of",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_refused_with_the_fix(case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        out = call()
        jax.block_until_ready(jax.tree_util.tree_leaves(eqx.filter(out, eqx.is_array)))


# Inputs that are unusual but legal: documented behaviour, not errors.
def test_numpy_ints_and_one_hot_labels_are_accepted():
    net = _net()
    x, y = _data()
    state = pc.init_state(net, x, y)
    assert int(pc.infer(net, state, steps=np.int64(3)).num_steps) == 3
    assert float(pc.accuracy(net, x, np.eye(3)[y])) == float(pc.accuracy(net, x, y))
    assert astro.make_store(net, astro.make_regions(net), capacity=np.int64(2)).capacity == 2
    assert pc.Network([pc.Node(eqx.nn.Linear(8, 3, key=KEY))], input_shape=8).input_shape == (8,)


# Checkpoints
def _checkpoint(tmp_path):
    net = _net()
    opt_state = optax.adam(1e-3).init(_params(net))
    path = tmp_path / "c.pcastro"
    pc.save(path, net, opt_state, None)
    return path, net, opt_state


def test_checkpoint_refuses_another_activation(tmp_path):
    path, _, opt_state = _checkpoint(tmp_path)
    relu = pc.mlp([8, 6, 3], key=KEY, output_energy=pc.CrossEntropy(), activation=jax.nn.relu)
    with pytest.raises(ValueError, match=r"Configuration mismatch .*nodes\[0\]\.activation"):
        pc.load(path, like=(relu, opt_state, None))


def test_forged_header_with_a_valid_checksum_is_a_value_error(tmp_path):
    path, net, opt_state = _checkpoint(tmp_path)
    data = path.read_bytes()
    magic = b"PCASTRO-CHECKPOINT\n"
    (length,) = struct.unpack("<Q", data[len(magic) : len(magic) + 8])
    header = json.loads(data[len(magic) + 40 : len(magic) + 40 + length])
    del header["payload_bytes"]
    forged = json.dumps(header).encode()
    prefix = magic + struct.pack("<Q", len(forged)) + hashlib.sha256(forged).digest()
    path.write_bytes(prefix + forged + data[len(magic) + 40 + length :])
    with pytest.raises(ValueError, match="header lacks a field"):
        pc.load(path, like=(net, opt_state, None))


def test_checkpoint_respects_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path, _, _ = _checkpoint(tmp_path)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640


# The CLI validates everything before the work.
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lrs", "nan"], "`--lrs` must be finite"),
        (["--lrs", "-1"], "`--lrs` must be finite and in"),
        (["--inference-steps", "0"], "`--inference-steps` must be an integer of at least 1"),
        (["--astro-rounds", "0"], "`--astro-rounds` must be an integer"),
        (["--dt", "0"], "`--dt` must be finite"),
    ],
)
def test_cli_rejects_bad_numbers_before_any_work(argv, message, capsys):
    assert main(["oneshot", *argv, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_an_output_that_is_a_file_before_any_work(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["oneshot", "--out", str(target), "--no-progress"]) == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err


def test_cli_rejects_nan_ne(capsys):
    assert main(["interrupt", "--ne", "nan", "--no-progress"]) == 2
    assert "`--ne` (norepinephrine) must be finite" in capsys.readouterr().err


def test_results_json_is_strict_even_with_nan(tmp_path):
    from pcastro.bench._report import save_json

    path = save_json(tmp_path, {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}


# Property-based: every generated bad input raises a pcastro error naming the argument;
# every good one runs and keeps the clamps.
@settings(max_examples=15, deadline=None)
@given(
    batch=st.integers(1, 5),
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    dtype=st.sampled_from([jnp.float32, jnp.float64]),
)
def test_good_inputs_run_and_keep_their_invariants(batch, sizes, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        net = pc.mlp(sizes, key=KEY, dtype=dtype)
        x = jnp.ones((batch, sizes[0]), dtype)
        y = jnp.zeros((batch, sizes[-1]), dtype)
        sol = pc.infer(net, pc.init_state(net, x, y), steps=3, throw=False)
        assert sol.state.x[1].dtype == dtype if len(sizes) > 2 else True
        np.testing.assert_array_equal(sol.state.x[0], x)
        np.testing.assert_array_equal(sol.state.x[-1], y)


@settings(max_examples=15, deadline=None)
@given(
    wrong=st.integers(1, 9).filter(lambda n: n != 4),
    batch=st.integers(1, 3),
    argument=st.sampled_from(["x", "y"]),
)
def test_generated_bad_shapes_name_the_argument(wrong, batch, argument):
    net = pc.mlp([4, 5, 3], key=KEY)
    x = jnp.ones((batch, 4))
    y = jnp.zeros((batch, 3))
    if argument == "x":
        x = jnp.ones((batch, wrong))
        match = r"`x` has shape"
    else:
        y = jnp.zeros((batch, wrong + (wrong >= 3)))
        match = r"The target `y` has shape"
    with pytest.raises(ValueError, match=match):
        pc.init_state(net, x, y)


def test_non_finite_data_is_named_where_it_is_first_seen():
    # Before: an inf pixel passed inference with status 0 and was caught only at the
    # weight update, whose message blamed the learning rate.
    x, y = _data()
    x[2, 5] = np.inf
    with pytest.raises(
        ValueError, match=r"`x` holds NaN or inf in 1 example\(s\) \(batch index 2\)"
    ):
        pc.init_state(_net(), x, y)
    with pytest.raises(Exception, match="The data `x` holds NaN or inf"):
        _train(x, y, optax.sgd(0.1))
    # A missing entry masked out is not read, so it may hold anything.
    mask = np.ones_like(x)
    mask[2, 5] = 0.0
    pc.init_state(_net(), x, y, x_mask=mask)
    target = np.eye(3, dtype="f4")[y]
    target[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"`y` holds NaN or inf .*batch index 0"):
        pc.init_state(_net(), x=None, y=target)


def test_non_finite_store_slots_are_named():
    net, state, store = _store_setup()
    store, _ = astro.snapshot(store, state, step=3)
    poisoned = eqx.tree_at(lambda s: s.x[1], store, store.x[1].at[2, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"Store slot\(s\) \[2\] hold NaN or inf"):
        astro.recall(poisoned, 2, net=net)
    astro.recall(poisoned, 1, net=net)  # the other slots stay usable
    opt = optax.sgd(0.1)
    with pytest.raises(ValueError, match=r"Store slot\(s\) \[2\] hold NaN or inf.*discard"):
        astro.consolidate(net, opt.init(_params(net)), poisoned, optimizer=opt, tol=0.1, steps=2)
    bad = eqx.tree_at(lambda s: s.x[1], state, state.x[1].at[0, 0].set(jnp.inf))
    bad = pc.PCState(x=bad.x, e=pc.errors(net, bad), masks=bad.masks, clamps=bad.clamps)
    with pytest.raises(Exception, match="A snapshot of states holding NaN or inf"):
        astro.snapshot(astro.make_store(net, astro.make_regions(net), capacity=4), bad)
