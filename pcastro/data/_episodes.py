"""Few-shot episodes: `ways` classes, `shots` support and `queries` query examples each."""

import functools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, Shaped

# Class ids as a tuple/list of ints or an integer numpy array.
_ClassIds = Sequence[int | np.integer] | Int[np.ndarray, " _"]


class Episode(eqx.Module):
    """One few-shot classification episode.

    Examples are ordered by class: `support_x[c * shots + s]` is shot `s` of class `c`,
    and `query_x[c * queries + q]` query `q` of class `c`. Labels are relabelled
    `0, ..., ways - 1` in the order of `classes`.

    [`pcastro.data.sample_episodes`][] returns an `Episode` whose every field has an extra
    leading axis of size `num`.

    **Fields:**

    - `support_x`: the support examples, `(ways * shots, features)`.
    - `support_y`: their labels in `0, ..., ways - 1`, `(ways * shots,)`.
    - `query_x`: the query examples, `(ways * queries, features)`.
    - `query_y`: their labels in `0, ..., ways - 1`, `(ways * queries,)`.
    - `classes`: the original class id of each relabelled class: label `c` is original
        class `classes[c]`, `(ways,)`.
    - `support_indices`, `query_indices`: the rows of the `x` the episode was drawn from,
        so that `support_x == x[support_indices]`; support and query never share a row.
    """

    support_x: Shaped[Array, "support features"]
    support_y: Int[Array, " support"]
    query_x: Shaped[Array, "query features"]
    query_y: Int[Array, " query"]
    classes: Int[Array, " ways"]
    support_indices: Int[Array, " support"]
    query_indices: Int[Array, " query"]


def _concrete_labels(y, function: str) -> np.ndarray:
    try:
        y = np.asarray(y)
    except jax.errors.TracerArrayConversionError as e:
        raise TypeError(
            f"`{function}` got labels `y` that are a JAX tracer (inside jit or vmap); they "
            "must be concrete, because the per-class index table is built on the host. "
            "Pass `y` as a numpy array or close over it, and trace only `key`, e.g. "
            f"`jax.jit(lambda key: {function}(key, x, y, ...))`."
        ) from e
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"`{function}` got labels `y` of shape {y.shape} and dtype {y.dtype}; expected a "
            "1-D integer array with one label per row of `x`."
        )
    return y


def _index_table(
    y: np.ndarray,
    *,
    ways: int,
    shots: int,
    queries: int,
    classes: _ClassIds | None,
    function: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the request and build, on the host, the padded per-class index table."""
    for arg_name, value, minimum in (
        ("ways", ways, 1),
        ("shots", shots, 1),
        ("queries", queries, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(
                f"`{function}` got {arg_name}={value!r}; expected an integer >= {minimum}."
            )
    present = np.unique(y)
    if classes is None:
        eligible = present
    else:
        requested = np.asarray(classes)
        eligible = np.unique(requested)
        if (
            requested.ndim != 1
            or len(eligible) != len(requested)
            or not np.issubdtype(requested.dtype, np.integer)
        ):
            raise ValueError(
                f"`{function}` got classes={classes!r}; expected a non-empty 1-D sequence of "
                "distinct integer class ids, e.g. `classes=(5, 6, 7, 8, 9)`."
            )
        absent = np.setdiff1d(eligible, present)
        if absent.size:
            raise ValueError(
                f"`{function}` got classes={classes!r}, but classes {absent.tolist()} do "
                f"not occur in `y` (which holds classes {present.tolist()}). Pass only "
                "classes that occur in `y`."
            )
    if ways > len(eligible):
        raise ValueError(
            f"`{function}` got ways={ways}, but only {len(eligible)} classes are eligible "
            f"({eligible.tolist()}). Lower `ways` to at most {len(eligible)}"
            + (" or allow more `classes`." if classes is not None else ".")
        )
    members = [np.flatnonzero(y == c) for c in eligible]
    counts = np.array([len(m) for m in members])
    smallest = int(counts.min())
    if shots + queries > smallest:
        rarest = eligible[int(counts.argmin())]
        raise ValueError(
            f"`{function}` got shots={shots} and queries={queries}, so needs "
            f"{shots + queries} distinct examples per class, but class {rarest} has only "
            f"{smallest}. At most shots + queries = {smallest} examples are available in "
            "every eligible class: lower `shots` or `queries`, or restrict `classes` to "
            "larger classes."
        )
    table = np.zeros((len(eligible), int(counts.max())), dtype=np.int32)
    valid = np.zeros(table.shape, dtype=bool)
    for row, m in enumerate(members):
        table[row, : len(m)] = m
        valid[row, : len(m)] = True
    return eligible.astype(np.int32), table, valid


# `_uniforms` and `_select` are jitted so that eager calls run two compiled programs
# (cached per shape) rather than a dozen op-by-op dispatches; inside a caller's jit or vmap
# they simply inline. They are separate because the random number generator is slow to
# compile and depends only on the table's shape, not on `ways`, `shots` or `queries`.
@functools.partial(jax.jit, static_argnames=("shape",))
def _uniforms(key: PRNGKeyArray, shape: tuple[int, int]) -> Float[Array, "rows columns"]:
    return jax.random.uniform(key, shape)


def _draw(
    key: PRNGKeyArray,
    x: Shaped[Array, "n features"],
    eligible: Int[Array, " eligible"],
    table: Int[Array, "eligible padded"],
    valid: Bool[Array, "eligible padded"],
    *,
    ways: int,
    shots: int,
    queries: int,
) -> Episode:
    # Random permutations as argsorts of uniforms, all from one draw: column 0 orders the
    # classes, the other columns order each class's rows, with the padding pushed to the
    # end. Fixed shapes throughout, so this traces once and vmaps.
    uniforms = _uniforms(key, (table.shape[0], 1 + table.shape[1]))
    return _select(uniforms, x, eligible, table, valid, ways=ways, shots=shots, queries=queries)


@functools.partial(jax.jit, static_argnames=("ways", "shots", "queries"))
def _select(
    uniforms: Float[Array, "eligible padded_plus_one"],
    x: Shaped[Array, "n features"],
    eligible: Int[Array, " eligible"],
    table: Int[Array, "eligible padded"],
    valid: Bool[Array, "eligible padded"],
    *,
    ways: int,
    shots: int,
    queries: int,
) -> Episode:
    chosen = jnp.argsort(uniforms[:, 0])[:ways]
    scores = jnp.where(valid[chosen], uniforms[chosen, 1:], jnp.inf)
    order = jnp.argsort(scores, axis=1)[:, : shots + queries]
    drawn = jnp.take_along_axis(table[chosen], order, axis=1)
    # Support and query are disjoint slices of one permutation, so never share a row.
    support_indices = drawn[:, :shots].reshape(-1)
    query_indices = drawn[:, shots:].reshape(-1)
    labels = jnp.arange(ways, dtype=jnp.int32)
    return Episode(
        support_x=x[support_indices],
        support_y=jnp.repeat(labels, shots),
        query_x=x[query_indices],
        query_y=jnp.repeat(labels, queries),
        classes=eligible[chosen],
        support_indices=support_indices,
        query_indices=query_indices,
    )


def _prepare(x, y, *, ways, shots, queries, classes, function):
    y = _concrete_labels(y, function)
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`{function}` got `x` of shape {x.shape} and `y` of shape {y.shape}; expected "
            "`x` of shape (n, features) and `y` of shape (n,). Flatten images first, e.g. "
            "`x.reshape(len(x), -1)`."
        )
    eligible, table, valid = _index_table(
        y, ways=ways, shots=shots, queries=queries, classes=classes, function=function
    )
    return x, jnp.asarray(eligible), jnp.asarray(table), jnp.asarray(valid)


def sample_episode(
    key: PRNGKeyArray,
    x: Shaped[ArrayLike, "n features"],
    y: Int[ArrayLike, " n"],
    *,
    ways: int,
    shots: int,
    queries: int,
    classes: _ClassIds | None = None,
) -> Episode:
    """Draw one `ways`-way `shots`-shot episode with `queries` queries per class.

    First `ways` distinct classes are drawn uniformly from the eligible ones (all classes
    in `y`, or `classes`); then, for each, `shots + queries` distinct examples are drawn
    uniformly without replacement: the first `shots` form the support set, the rest the
    query set, so the two never share an example.

    The episode is a deterministic function of `key`. Labels `y` are read on the host
    (they must be concrete) to build a padded per-class index table; everything that
    depends on `key` has fixed shapes, so `jax.jit(lambda key: sample_episode(key, x, y,
    ...))` traces once and `jax.vmap` over keys works (see
    [`pcastro.data.sample_episodes`][]).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `x`: the examples, `(n, features)`. Pass a JAX array (`jnp.asarray(x)` once) when
        sampling many episodes from a large `x`, so it is not copied to the device on
        every call.
    - `y`: their integer class ids, `(n,)`; must be concrete (not traced).
    - `ways`: the number of classes per episode.
    - `shots`: support examples per class.
    - `queries`: query examples per class (may be 0).
    - `classes`: if given, only these original class ids may be drawn, e.g. the novel
        classes of [`pcastro.data.base_novel_split`][].

    **Returns:**

    An [`pcastro.data.Episode`][].

    **Raises:**

    - `ValueError` (before anything is traced) if `shots + queries` exceeds the size of
        the smallest eligible class, if `ways` exceeds the number of eligible classes, if
        `classes` names classes absent from `y`, or if shapes or counts are invalid.
    - `TypeError` if `y` is a tracer.
    """
    x, eligible, table, valid = _prepare(
        x, y, ways=ways, shots=shots, queries=queries, classes=classes, function="sample_episode"
    )
    return _draw(key, x, eligible, table, valid, ways=ways, shots=shots, queries=queries)


def sample_episodes(
    key: PRNGKeyArray,
    x: Shaped[ArrayLike, "n features"],
    y: Int[ArrayLike, " n"],
    *,
    num: int,
    ways: int,
    shots: int,
    queries: int,
    classes: _ClassIds | None = None,
) -> Episode:
    """Draw `num` episodes at once, one per key of `jax.random.split(key, num)`.

    Episode `i` equals `sample_episode(jax.random.split(key, num)[i], x, y, ...)`: this is
    `jax.vmap` of [`pcastro.data.sample_episode`][] over those keys, with the host-side
    validation and index table done once.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `num`: the number of episodes.
    - the rest: as for [`pcastro.data.sample_episode`][].

    **Returns:**

    An [`pcastro.data.Episode`][] whose fields have a leading axis of size `num`; e.g.
    `support_x` has shape `(num, ways * shots, features)`.

    **Raises:**

    As [`pcastro.data.sample_episode`][], and `ValueError` if `num < 1`.
    """
    if isinstance(num, bool) or not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"`sample_episodes` got num={num!r}; expected an integer >= 1.")
    x, eligible, table, valid = _prepare(
        x, y, ways=ways, shots=shots, queries=queries, classes=classes, function="sample_episodes"
    )
    keys = jax.random.split(key, num)
    draw = functools.partial(_draw, ways=ways, shots=shots, queries=queries)
    return jax.vmap(draw, in_axes=(0, None, None, None, None))(keys, x, eligible, table, valid)


def base_novel_split(
    y: Int[ArrayLike, " n"],
    *,
    base: _ClassIds = (0, 1, 2, 3, 4),
    novel: _ClassIds = (5, 6, 7, 8, 9),
) -> tuple[Bool[np.ndarray, " n"], Bool[np.ndarray, " n"]]:
    """Split examples into base classes (to pre-train on) and novel classes (to test on).

    Use the masks to select the data, e.g. `x[base_mask]`, and `classes=novel` in
    [`pcastro.data.sample_episode`][] to draw episodes from the novel classes only.

    **Arguments:**

    - `y`: integer class ids, `(n,)`.
    - `base`: the base class ids.
    - `novel`: the novel class ids; must not overlap `base`.

    **Returns:**

    A tuple `(base_mask, novel_mask)` of boolean numpy arrays of shape `(n,)`: whether each
    example belongs to a base or to a novel class. Examples of classes in neither are in
    neither mask.

    **Raises:**

    - `ValueError` if `base` and `novel` overlap, if either is empty, or if any of their
        classes does not occur in `y`.
    """
    y = _concrete_labels(y, "base_novel_split")
    base_ids, novel_ids = np.asarray(base).reshape(-1), np.asarray(novel).reshape(-1)
    if base_ids.size == 0 or novel_ids.size == 0:
        raise ValueError(
            f"`base_novel_split` got base={base!r} and novel={novel!r}; both must name at "
            "least one class."
        )
    overlap = np.intersect1d(base_ids, novel_ids)
    if overlap.size:
        raise ValueError(
            f"`base_novel_split` got base={base!r} and novel={novel!r}, which share classes "
            f"{overlap.tolist()}; a class must be either base or novel. Remove them from one."
        )
    absent = np.setdiff1d(np.concatenate([base_ids, novel_ids]), y)
    if absent.size:
        raise ValueError(
            f"`base_novel_split`: classes {absent.tolist()} of base={base!r} / "
            f"novel={novel!r} do not occur in `y` (which holds classes "
            f"{np.unique(y).tolist()})."
        )
    return np.isin(y, base_ids), np.isin(y, novel_ids)
