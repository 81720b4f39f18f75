import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcastro.data import Episode, base_novel_split, sample_episode, sample_episodes

# Six classes of uneven sizes (the smallest, class 4, has 7 examples), shuffled; each row
# of `x` holds its own index so that rows can be traced back.
SIZES = {0: 9, 1: 12, 2: 10, 3: 8, 4: 7, 5: 11}
# Most tests share one configuration, so that the episode sampler compiles few times.
CONFIG = dict(ways=3, shots=2, queries=4)
NUM = 200


@pytest.fixture(scope="module")
def data():
    y = np.concatenate([np.full(n, c, dtype=np.int32) for c, n in SIZES.items()])
    y = np.random.default_rng(0).permutation(y)
    x = np.stack([np.arange(len(y)), np.arange(len(y)) * 2], axis=1).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def batch(data):
    x, y = data
    return sample_episodes(jax.random.key(7), x, y, num=NUM, **CONFIG)


def _assert_valid(episode, x, y, *, ways, shots, queries):
    assert episode.support_x.shape == (ways * shots, 2)
    assert episode.query_x.shape == (ways * queries, 2)
    np.testing.assert_array_equal(episode.support_y, np.repeat(np.arange(ways), shots))
    np.testing.assert_array_equal(episode.query_y, np.repeat(np.arange(ways), queries))
    classes = np.asarray(episode.classes)
    assert len(set(classes.tolist())) == ways
    support, query = np.asarray(episode.support_indices), np.asarray(episode.query_indices)
    np.testing.assert_array_equal(episode.support_x, x[support])
    np.testing.assert_array_equal(episode.query_x, x[query])
    # Relabelled label c is original class classes[c].
    np.testing.assert_array_equal(y[support], classes[np.asarray(episode.support_y)])
    np.testing.assert_array_equal(y[query], classes[np.asarray(episode.query_y)])
    # No example twice, and support and query disjoint.
    assert len(set(support.tolist()) | set(query.tolist())) == len(support) + len(query)


def _episode(batch, i):
    return jax.tree.map(lambda leaf: np.asarray(leaf)[i], batch)


def test_batch_of_episodes(data, batch):
    x, y = data
    assert isinstance(batch, Episode)
    assert batch.support_x.shape == (NUM, 6, 2)
    assert batch.query_y.shape == (NUM, 12)
    for i in range(NUM):
        _assert_valid(_episode(batch, i), x, y, **CONFIG)


@pytest.mark.parametrize("ways,shots,queries", [(6, 5, 2), (2, 1, 0)])
def test_episode_contents(data, ways, shots, queries):
    x, y = data
    for seed in range(5):
        episode = sample_episode(
            jax.random.key(seed), x, y, ways=ways, shots=shots, queries=queries
        )
        _assert_valid(episode, x, y, ways=ways, shots=shots, queries=queries)


def test_every_example_and_class_can_be_drawn(data, batch):
    x, y = data
    drawn = np.concatenate([np.ravel(batch.support_indices), np.ravel(batch.query_indices)])
    assert set(drawn.tolist()) == set(range(len(y)))
    # Each class is chosen in about half of the episodes (3 of 6 classes each time).
    chosen = np.bincount(np.ravel(batch.classes), minlength=6)
    assert np.all(np.abs(chosen - NUM / 2) < 40), chosen


def test_same_key_same_episode(data):
    x, y = data
    a = sample_episode(jax.random.key(3), x, y, **CONFIG)
    b = sample_episode(jax.random.key(3), x, y, **CONFIG)
    assert eqx.tree_equal(a, b)


def test_different_keys_differ(data, batch):
    first = np.asarray(batch.support_indices[0])
    assert all(not np.array_equal(first, batch.support_indices[i]) for i in range(1, NUM))


def test_vmap_equals_loop(data, batch):
    x, y = data
    keys = jax.random.split(jax.random.key(7), NUM)
    for i in (0, 1, NUM - 1):
        single = sample_episode(keys[i], x, y, **CONFIG)
        assert eqx.tree_equal(_episode(batch, i), jax.tree.map(np.asarray, single))
    vmapped = jax.vmap(lambda k: sample_episode(k, x, y, **CONFIG))(keys)
    assert eqx.tree_equal(vmapped, batch)


def test_jit_equals_eager_and_traces_once(data):
    x, y = data

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def sample(key):
        return sample_episode(key, x, y, **CONFIG)

    for seed in range(3):
        key = jax.random.key(seed)
        assert eqx.tree_equal(sample(key), sample_episode(key, x, y, **CONFIG))


def test_classes_restriction(data):
    x, y = data
    drawn = set()
    for seed in range(20):
        episode = sample_episode(jax.random.key(seed), x, y, **CONFIG, classes=(1, 3, 5))
        _assert_valid(episode, x, y, **CONFIG)
        drawn |= set(np.asarray(episode.classes).tolist())
    assert drawn == {1, 3, 5}
    # Restricted to classes of at least 8 examples, shots + queries = 8 becomes possible.
    episode = sample_episode(
        jax.random.key(0), x, y, ways=2, shots=2, queries=6, classes=np.array([1, 3, 5])
    )
    _assert_valid(episode, x, y, ways=2, shots=2, queries=6)
    assert set(np.asarray(episode.classes).tolist()) <= {1, 3, 5}
    with pytest.raises(ValueError, match="class 4 has only 7"):
        sample_episode(jax.random.key(0), x, y, ways=2, shots=2, queries=6)


def test_too_many_shots(data):
    x, y = data
    with pytest.raises(ValueError, match=r"class 4 has only 7.*At most shots \+ queries = 7"):
        sample_episode(jax.random.key(0), x, y, ways=2, shots=3, queries=5)


def test_too_many_ways(data):
    x, y = data
    with pytest.raises(ValueError, match=r"ways=4, but only 3 classes are eligible"):
        sample_episode(jax.random.key(0), x, y, ways=4, shots=1, queries=1, classes=(0, 1, 2))
    with pytest.raises(ValueError, match=r"ways=7, but only 6 classes"):
        sample_episodes(jax.random.key(0), x, y, num=2, ways=7, shots=1, queries=1)


def test_bad_requests(data):
    x, y = data
    with pytest.raises(ValueError, match=r"classes \[9\] do not occur in `y`"):
        sample_episode(jax.random.key(0), x, y, ways=2, shots=1, queries=1, classes=(0, 9))
    with pytest.raises(ValueError, match=r"classes=\(1, 1\); expected a non-empty 1-D"):
        sample_episode(jax.random.key(0), x, y, ways=1, shots=1, queries=1, classes=(1, 1))
    with pytest.raises(ValueError, match=r"shots=0; expected an integer >= 1"):
        sample_episode(jax.random.key(0), x, y, ways=2, shots=0, queries=1)
    with pytest.raises(ValueError, match=r"queries=-1; expected an integer >= 0"):
        sample_episode(jax.random.key(0), x, y, ways=2, shots=1, queries=-1)
    with pytest.raises(ValueError, match=r"num=0; expected an integer >= 1"):
        sample_episodes(jax.random.key(0), x, y, num=0, ways=2, shots=1, queries=1)
    with pytest.raises(TypeError, match="must be concrete"):
        jax.jit(lambda key, y: sample_episode(key, x, y, ways=2, shots=1, queries=1))(
            jax.random.key(0), jnp.asarray(y)
        )


def test_base_novel_split():
    y = np.array([0, 5, 9, 4, 7, 2, 5, 1, 3, 6, 8])
    base, novel = base_novel_split(y)
    np.testing.assert_array_equal(np.flatnonzero(base), [0, 3, 5, 7, 8])
    np.testing.assert_array_equal(novel, ~base)
    base, novel = base_novel_split(y, base=[2], novel=np.array([5, 9]))
    np.testing.assert_array_equal(np.flatnonzero(base), [5])
    np.testing.assert_array_equal(np.flatnonzero(novel), [1, 2, 6])
    with pytest.raises(ValueError, match=r"share classes \[5\]"):
        base_novel_split(y, base=(0, 5), novel=(5, 7))
    with pytest.raises(ValueError, match=r"classes \[3\] .* do not occur"):
        base_novel_split(y[:5], base=(3,), novel=(5,))
