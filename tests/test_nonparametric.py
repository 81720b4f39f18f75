import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcastro.baselines import nearest_class_mean, pixel_nearest_neighbour

WAYS = 5
# Jitted once here; every test uses the same shapes, so each compiles once.
nearest_neighbour_jit = jax.jit(pixel_nearest_neighbour)
class_mean_jit = jax.jit(nearest_class_mean, static_argnames="num_classes")


def _episode(seed, *, shots=3, queries=7, features=10):
    rng = np.random.default_rng(seed)
    support_x = rng.normal(size=(WAYS * shots, features)).astype(np.float32)
    support_y = rng.permutation(np.repeat(np.arange(WAYS), shots)).astype(np.int32)
    query_x = rng.normal(size=(WAYS * queries, features)).astype(np.float32)
    return support_x, support_y, query_x


def _brute_nearest_neighbour(support_x, support_y, query_x):
    predictions = []
    for q in query_x.astype(np.float64):
        best, best_distance = None, np.inf
        for s, label in zip(support_x.astype(np.float64), support_y, strict=True):
            distance = np.sqrt(np.sum((q - s) ** 2))
            if distance < best_distance:  # strict: ties keep the lowest index
                best, best_distance = label, distance
        predictions.append(best)
    return np.array(predictions)


def _brute_class_mean(support_x, support_y, query_x, num_classes):
    means = {
        c: support_x[support_y == c].astype(np.float64).mean(axis=0)
        for c in range(num_classes)
        if np.any(support_y == c)
    }
    return np.array(
        [min(means, key=lambda c: np.linalg.norm(q - means[c])) for q in query_x.astype(np.float64)]
    )


@pytest.mark.parametrize("seed", range(5))
def test_nearest_neighbour_matches_brute_force(seed):
    episode = _episode(seed)
    expected = _brute_nearest_neighbour(*episode)
    np.testing.assert_array_equal(nearest_neighbour_jit(*episode), expected)


@pytest.mark.parametrize("seed", range(5))
def test_nearest_class_mean_matches_brute_force(seed):
    episode = _episode(seed)
    expected = _brute_class_mean(*episode, WAYS)
    predicted = class_mean_jit(*episode, num_classes=WAYS)
    assert predicted.dtype == jnp.int32
    np.testing.assert_array_equal(predicted, expected)


def test_nearest_neighbour_ties_go_to_lowest_index():
    support_x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    support_y = np.array([2, 0, 1, 3], dtype=np.int32)
    query_x = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    # Query 0 ties rows 0 and 2; query 1 ties all four; query 2 ties rows 0, 1 and 2.
    np.testing.assert_array_equal(nearest_neighbour_jit(support_x, support_y, query_x), [2, 2, 2])


def test_nearest_class_mean_skips_empty_classes():
    # Class 1 has no support examples; its would-be mean (0/0, or the origin, which is
    # nearest to query 0) must never win.
    support_x = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    support_y = np.array([0, 0, 2], dtype=np.int32)
    query_x = np.array([[0.0, 0.5], [3.0, 0.1], [0.1, 2.0]], dtype=np.float32)
    predicted = class_mean_jit(support_x, support_y, query_x, num_classes=4)
    np.testing.assert_array_equal(predicted, [2, 0, 2])
    np.testing.assert_array_equal(
        predicted, _brute_class_mean(support_x, support_y, query_x, num_classes=4)
    )


def test_vmap_over_episodes_equals_loop():
    episodes = [_episode(seed) for seed in range(4)]
    support_x, support_y, query_x = (np.stack(parts) for parts in zip(*episodes, strict=True))
    nn = jax.jit(jax.vmap(pixel_nearest_neighbour))(support_x, support_y, query_x)
    ncm = jax.jit(jax.vmap(lambda sx, sy, qx: nearest_class_mean(sx, sy, qx, num_classes=WAYS)))(
        support_x, support_y, query_x
    )
    for i, episode in enumerate(episodes):
        np.testing.assert_array_equal(nn[i], nearest_neighbour_jit(*episode))
        np.testing.assert_array_equal(ncm[i], class_mean_jit(*episode, num_classes=WAYS))


def test_errors():
    support_x, support_y, query_x = _episode(0)
    with pytest.raises(ValueError, match="num_classes=0; expected a Python int >= 1"):
        nearest_class_mean(support_x, support_y, query_x, num_classes=0)
    with pytest.raises(ValueError, match="got an empty support set"):
        pixel_nearest_neighbour(support_x[:0], support_y[:0], query_x)
    # Inside a plain `jax.jit` the runtime error surfaces as a JaxRuntimeError carrying
    # the same message.
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"support label lies outside 0\.\.2"):
        class_mean_jit(support_x, support_y, query_x, num_classes=3)
