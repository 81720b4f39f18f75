import os
import random

import jax
import pytest

# The CLI caches compiled programs in the user's cache folder by default; the tests run
# cold and leave no files behind (tests/test_cli.py checks the cache on its own folder).
os.environ.setdefault("PCASTRO_COMPILATION_CACHE", "off")


@pytest.fixture
def getkey(request):
    """A fresh `jax.random` key per call, seeded per test; the seed is printed on failure."""
    seed = random.Random(request.node.nodeid).randrange(2**31)
    print(f"test seed: {seed}")
    key = jax.random.key(seed)

    def next_key():
        nonlocal key
        key, sub = jax.random.split(key)
        return sub

    return next_key


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after every test module. One process runs the whole
    suite, and XLA's CPU backend maps memory for every executable it keeps: past a few
    thousand programs the process nears the kernel's limit on memory mappings and a later
    compilation crashes (a segmentation fault in `backend_compile_and_load`)."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="module")
def digits_transfer_episode():
    """A one-shot transfer episode on digits: one support image of each of 5-9, three
    queries each (original labels), and 60 base images of 0-4."""
    import numpy as np

    from pcastro.data import load_dataset, sample_episode

    ds = load_dataset("digits")
    ep = sample_episode(
        jax.random.key(0), ds.x_test, ds.y_test, ways=5, shots=1, queries=3, classes=(5, 6, 7, 8, 9)
    )
    base = np.isin(ds.y_train, (0, 1, 2, 3, 4))
    return (
        ep.support_x,
        ep.classes[ep.support_y],
        ep.query_x,
        ep.classes[ep.query_y],
        (ds.x_train[base][:60], ds.y_train[base][:60]),
    )
