import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import pcastro as pc
from pcastro import astro

# One optimiser object and one shape throughout, so compiled code is shared between tests.
SIZES = [4, 6, 3]
REGIONS = astro.Regions(shapes=((6,), (3,)), columns=(2, 1))
OPT = optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(astro.Astrocytes(), REGIONS))


def _empty(key, hidden=6, capacity=4):
    net = pc.mlp([4, hidden, 3], key=key)
    regions = astro.make_regions(net, columns=(2, 1))
    opt = optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(astro.Astrocytes(), regions))
    opt_state = opt.init(eqx.filter(net, eqx.is_inexact_array))  # the same state as OPT's
    return net, opt_state, astro.make_store(net, regions, capacity=capacity)


def _template(getkey, **kwargs):
    """An abstract `like`: shapes and dtypes only, no memory and no compute."""
    return eqx.filter_eval_shape(_empty, getkey(), **kwargs)


def _checkpoint(getkey):
    """A network, optimiser state and store that have all been used."""
    net, opt_state, store = _empty(getkey())
    x = jax.random.normal(getkey(), (4, 4))
    y = jax.random.normal(getkey(), (4, 3))
    state = pc.init_state(net, x, y)
    energy = astro.region_energies(state, REGIONS)
    net, opt_state = astro.apply_gated_grads(
        net, opt_state, state, optimizer=OPT, region_energy=energy, ne=1.0
    )
    store, _ = astro.snapshot(store, state, step=4)
    return net, opt_state, store


def _bits(leaf):
    arr = np.asarray(leaf)
    return arr.dtype, arr.shape, arr.tobytes()


def test_save_load_round_trip_is_bit_exact(getkey, tmp_path):
    saved = _checkpoint(getkey)
    path = tmp_path / "run.pcastro"
    astro.save(path, *saved)
    fresh = _empty(getkey())  # same structure, other values
    for like in (fresh, _template(getkey)):
        loaded = astro.load(path, like=like)
        a, b = jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(loaded)
        assert len(a) == len(b) > 0
        for u, v in zip(a, b, strict=True):
            assert isinstance(v, jax.Array)
            assert _bits(u) == _bits(v)
        assert jax.tree_util.tree_structure(saved) == jax.tree_util.tree_structure(loaded)
    assert not all(
        _bits(u) == _bits(v)
        for u, v in zip(
            jax.tree_util.tree_leaves(fresh), jax.tree_util.tree_leaves(saved), strict=True
        )
    )
    # The loaded network and store work.
    net, _, store = loaded
    assert net(jnp.ones(4)).shape == (3,)
    assert int(store.occupied.sum()) == 4
    assert os.listdir(tmp_path) == ["run.pcastro"]  # no temporary files left behind


@pytest.mark.parametrize("where", ["header", "payload"])
def test_a_corrupted_byte_is_a_checksum_mismatch(getkey, tmp_path, where):
    saved = _checkpoint(getkey)
    path = tmp_path / "run.pcastro"
    astro.save(path, *saved)
    data = bytearray(path.read_bytes())
    index = 100 if where == "header" else len(data) - 10
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"corrupt: {where} checksum mismatch"):
        astro.load(path, like=saved)
    assert path.read_bytes() == bytes(data)  # loading changes nothing


@pytest.mark.parametrize("keep", [10, 40, 200, -3])
def test_a_truncated_file_is_reported(getkey, tmp_path, keep):
    saved = _checkpoint(getkey)
    path = tmp_path / "run.pcastro"
    astro.save(path, *saved)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ValueError, match="is truncated"):
        astro.load(path, like=saved)


def test_a_mismatched_template_is_reported(getkey, tmp_path):
    saved = _checkpoint(getkey)
    path = tmp_path / "run.pcastro"
    astro.save(path, *saved)
    with pytest.raises(ValueError, match=r"Shape mismatch with the expected template at net"):
        astro.load(path, like=_template(getkey, hidden=8))
    with pytest.raises(
        ValueError,
        match=r"Shape mismatch .* at store.x\[0\]: the file has \(4, 4\), `like` has \(5, 4\)",
    ):
        astro.load(path, like=_template(getkey, capacity=5))
    net, _, store = saved
    other_opt = optax.sgd(0.1).init(eqx.filter(net, eqx.is_inexact_array))
    with pytest.raises(ValueError, match="Structure mismatch with the expected template"):
        astro.load(path, like=(net, other_opt, store))
    int8_ids = eqx.tree_at(lambda s: s.ids, store, store.ids.astype(jnp.int8))
    with pytest.raises(ValueError, match="Dtype mismatch .* at store.ids: the file has int32"):
        astro.load(path, like=(net, saved[1], int8_ids))


def test_a_failed_save_leaves_the_previous_file_untouched(getkey, tmp_path):
    saved = _checkpoint(getkey)
    path = tmp_path / "run.pcastro"
    astro.save(path, *saved)
    before = path.read_bytes()
    net, opt_state, _ = saved
    with pytest.raises(TypeError, match="typed PRNG key"):
        astro.save(path, net, opt_state, {"key": jax.random.key(0)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.pcastro"]
    (tmp_path / "other.bin").write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(ValueError, match="not a pcastro checkpoint"):
        astro.load(tmp_path / "other.bin", like=saved)


def test_a_checkpoint_remembers_how_its_astrocytes_were_configured(getkey, tmp_path):
    # Before: `ablated` and the gate's hyperparameters lived in the optimiser only, so a
    # checkpoint of an ablated run loaded into a gated one without a word.
    net = pc.mlp(SIZES, key=getkey())
    params = eqx.filter(net, eqx.is_inexact_array)

    def gated(**kwargs):
        return optax.chain(
            optax.adam(1e-2), astro.scale_by_astrocytes(astro.Astrocytes(**kwargs), REGIONS)
        )

    path = tmp_path / "ablated.pcastro"
    astro.save(path, net, gated(ablated=True).init(params), None)
    with pytest.raises(ValueError, match=r"Configuration mismatch .*ablated"):
        astro.load(path, like=(net, gated(ablated=False).init(params), None))
    _, opt_state, _ = astro.load(path, like=(net, gated(ablated=True).init(params), None))
    assert optax.tree_utils.tree_get(opt_state, "astrocytes").ablated

    # Other hyperparameters load from the file; the gate refuses a state made by others.
    path = tmp_path / "g0.pcastro"
    astro.save(path, net, gated(g0=0.3).init(params), None)
    _, opt_state, _ = astro.load(path, like=(net, gated().init(params), None))
    x = jax.random.normal(getkey(), (4, 4))
    y = jax.random.normal(getkey(), (4, 3))
    with pytest.raises(eqx.EquinoxRuntimeError, match="made by astrocytes with other hyper"):
        pc.train_step(net, opt_state, x, y, optimizer=gated(), steps=2, ne=1.0)
    new, _, info = pc.train_step(net, opt_state, x, y, optimizer=gated(g0=0.3), steps=2, ne=1.0)
    assert int(info.status) == 0


def _stateless(key, capacity=4):
    net, opt_state, _ = _empty(key, capacity=capacity)
    regions = astro.make_regions(net, columns=(2, 1))
    return net, opt_state, astro.make_store(net, regions, capacity=capacity, states=False)


def test_a_store_without_states_round_trips_and_is_not_taken_for_one_with(getkey, tmp_path):
    net, opt_state, full = _checkpoint(getkey)
    x = jax.random.normal(getkey(), (4, 4))
    y = jax.random.normal(getkey(), (4, 3))
    lean = _stateless(getkey())[2]
    lean, _ = astro.snapshot(lean, pc.init_state(net, x, y), step=4)
    path = tmp_path / "lean.pcastro"
    astro.save(path, net, opt_state, lean)
    for like in (_stateless(getkey()), eqx.filter_eval_shape(_stateless, getkey())):
        loaded = astro.load(path, like=like)
        a, b = jax.tree_util.tree_leaves((net, opt_state, lean)), jax.tree_util.tree_leaves(loaded)
        assert len(a) == len(b) > 0
        assert all(_bits(u) == _bits(v) for u, v in zip(a, b, strict=True))
        assert loaded[2].states is False and loaded[2].x[1] is None
    # Each kind refuses the other's template, saying what to build.
    into_full = r"holds a store without states .* `like` holds one with states.*states=False"
    with pytest.raises(ValueError, match=into_full):
        astro.load(path, like=_empty(getkey()))
    full_path = tmp_path / "full.pcastro"
    astro.save(full_path, net, opt_state, full)
    into_lean = r"holds a store with states .* `like` holds one without states.*states=True"
    with pytest.raises(ValueError, match=into_lean):
        astro.load(full_path, like=_stateless(getkey()))


def test_a_checkpoint_from_before_stores_without_states_loads_as_one_with(
    getkey, tmp_path, monkeypatch
):
    from pcastro import _checkpoint as module

    saved = _checkpoint(getkey)
    path = tmp_path / "old.pcastro"
    config_of = module._config_of

    def without_states_field(parts):
        return {k: v for k, v in config_of(parts).items() if k != "store.states"}

    # A file written before `Store.states` existed: its static record lacks the field.
    monkeypatch.setattr(module, "_config_of", without_states_field)
    astro.save(path, *saved)
    monkeypatch.undo()
    loaded = astro.load(path, like=_empty(getkey()))
    assert loaded[2].states is True
    assert all(
        _bits(u) == _bits(v)
        for u, v in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(loaded))
    )
    with pytest.raises(ValueError, match="holds a store with states"):
        astro.load(path, like=_stateless(getkey()))
