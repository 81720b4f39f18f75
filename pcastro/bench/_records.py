"""One validation selector, one result record and one timing record for every protocol."""

import contextlib
import contextvars
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from .._sharding import gather, make_mesh, split_leading_axis
from ._stats import mean_ci95


def select_on_validation(scores, grid: Mapping[str, Sequence]) -> tuple[dict[str, Any], float]:
    """The hyperparameters with the best mean validation score.

    **Arguments:**

    - `scores`: validation scores, one axis per entry of `grid`, in the order of `grid`.
    - `grid`: hyperparameter name -> the values tried along that axis.

    **Returns:**

    `(chosen, score)`: the chosen value of every hyperparameter, and its score. Ties go to
    the first candidate in row-major order (the first axis of `grid` varies slowest), so
    a learner's grid order says which setting wins a tie.
    """
    scores = np.asarray(scores)
    shape = tuple(len(v) for v in grid.values())
    if scores.shape != shape:
        raise ValueError(
            f"`scores` has shape {scores.shape} but the grid {list(grid)} has shape {shape}; "
            "give one axis per hyperparameter, in the order of `grid`."
        )
    # np.argmax returns the first maximum of the flattened (row-major) table; a NaN score
    # (a candidate that collapsed or could not be scored) is never chosen over a number.
    filled = np.where(np.isnan(scores), -np.inf, scores)
    index = np.unravel_index(int(np.argmax(filled)), shape)
    chosen = {name: _plain(values[int(i)]) for (name, values), i in zip(grid.items(), index)}
    return chosen, float(scores[index])


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def grid_edges(chosen: Mapping[str, object], grid: Mapping[str, Sequence]) -> list[str]:
    """The hyperparameters of `chosen` at the edge of their grid: the smallest or largest
    value of a numeric `grid` axis with more than one value. The best setting may then
    lie outside the grid, so the selection is flagged (`at_edge` in `results.json`)
    rather than trusted. Axes of booleans or strings, and single values, have no edge.

    **Arguments:**

    - `chosen`: hyperparameter name -> the chosen value, as `select_on_validation`
      returns it.
    - `grid`: hyperparameter name -> the values tried along that axis.

    **Returns:**

    The names at an edge, in the order of `grid`.
    """
    edges = []
    for name, values in grid.items():
        values = [_plain(v) for v in values]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if name in chosen and numeric and len(set(values)) > 1:
            if _plain(chosen[name]) in (min(values), max(values)):
                edges.append(name)
    return edges


def result_row(method: str, values, **labels) -> dict:
    """The result record: `{method, **labels, mean, ci95, n, values}` over episodes;
    `values` keeps the per-episode scores (in episode order) for paired comparisons."""
    mean, ci, n = mean_ci95(values)
    per_episode = [round(float(v), 6) for v in np.asarray(values, dtype=np.float64).ravel()]
    return {"method": method, **labels, "mean": mean, "ci95": ci, "n": n, "values": per_episode}


@dataclass(frozen=True)
class Timing:
    """Compile and run time of one method over `episodes` test episodes, split over
    `devices` devices."""

    compile_s: float
    run_s: float
    episodes: int
    devices: int

    def record(self, **extra) -> dict:
        return {
            "compile_s": self.compile_s,
            "run_s": self.run_s,
            "episodes_per_s": self.episodes / self.run_s,
            "devices": self.devices,
            **extra,
        }


def _mapped_size(args, in_axes) -> int:
    sizes = {
        leaf.shape[0]
        for a, ax in zip(args, in_axes)
        if ax == 0
        for leaf in jax.tree_util.tree_leaves(a)
    }
    if len(sizes) != 1:
        raise ValueError(
            f"The mapped arguments must share one leading (episode) axis, got lengths {sizes}."
        )
    return sizes.pop()


_BAR: contextvars.ContextVar = contextvars.ContextVar("progress_bar", default=None)


@contextlib.contextmanager
def progress_bar(total: int | None, *, enabled: bool):
    """A tqdm bar that `timed` tells what it is doing ("compiling", "running"), so a
    long compilation does not look like a frozen bar. It shows the elapsed time, not an
    estimate of the rest: the steps take very unequal times, so tqdm's ETA misleads."""
    fmt = "{desc}{n_fmt}/{total_fmt} done [{elapsed}{postfix}]"  # desc ends in ": "
    with tqdm(total=total, disable=not enabled, leave=False, bar_format=fmt) as bar:
        token = _BAR.set(bar)
        try:
            yield bar
        finally:
            _BAR.reset(token)


def _say(text: str) -> None:
    bar = _BAR.get()
    if bar is not None:
        bar.set_postfix_str(text, refresh=True)


def timed(fn, *args, in_axes: tuple, mesh: Mesh | None = None):
    """Compile `fn` apart, then run it: returns `(output, Timing)`.

    `fn` maps over the leading axis of the arguments whose `in_axes` entry is 0
    (episodes, seeds or grid points; a `jax.vmap` or `over_episodes`); that axis is split
    over the devices of `mesh` (default: all devices) and the other arguments are
    replicated, as `pcastro._sharding.split_leading_axis` says: the outputs equal a
    one-device run. Over the devices of several processes, every process gets all the
    outputs (gathered after the timed run).
    """
    split = split_leading_axis(_mapped_size(args, in_axes), mesh or make_mesh())
    args = split.place(args, in_axes)
    t0 = time.perf_counter()
    _say("compiling")
    compiled = jax.jit(split.spread(fn, in_axes)).lower(*args).compile()
    t1 = time.perf_counter()
    _say(f"running (compiled in {t1 - t0:.0f} s)")
    out = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    _say("")
    return gather(out), Timing(t1 - t0, t2 - t1, split.size, split.devices)


def failures(state):
    """How many of a learner's updates failed (a [`pcastro.RESULTS`][] failure of the
    solve or the update), 0 for a learner that makes none."""
    failed = getattr(state, "failed", None)
    return jnp.zeros((), jnp.int32) if failed is None else failed


def run_test_episodes(learner, fn, episodes, hp: dict, *, mesh: Mesh | None = None):
    """`fn(episode, lr) -> (scores, failed updates)` over the test `episodes` at the
    selected learning rate (0 for a learner without one), compiled apart and split over
    the devices of `mesh`: returns `(scores as NumPy, timing record)`; the timing record
    also holds `failed_updates`, the failed updates summed over the episodes, and
    `failed_episodes`, the episodes with at least one (counted, never dropped)."""
    lr = np.float32(hp.get("lr", 0.0))
    (out, failed), t = timed(over_episodes(learner, fn), episodes, lr, in_axes=(0, None), mesh=mesh)
    failed = np.asarray(failed)
    record = t.record(failed_updates=int(failed.sum()), failed_episodes=int((failed > 0).sum()))
    return np.asarray(out), record


def over_episodes(learner, fn):
    """`fn(episode, lr)` over episodes (a tuple of arrays with a leading episode axis) at
    one learning rate: vmapped, or one episode after another (`lax.map`) for learners
    whose memory of base images makes all episodes at once too large (split over
    devices, each device runs its own episodes one after another)."""
    if learner.episodes_in_parallel:
        return jax.vmap(fn, in_axes=(0, None))
    return lambda episodes, lr: jax.lax.map(lambda e: fn(e, lr), episodes)


def tune(learner, sweep, episodes, *, score=lambda out: out, mesh: Mesh | None = None):
    """Tune `learner` on validation `episodes`: `sweep(episode, lr)` is the learner's sweep
    over its static grid on one episode; it runs over all episodes and learning rates
    (episodes split over the devices of `mesh`), and the grid point with the best mean
    `score` is chosen by `select_on_validation`.

    **Returns:**

    `(chosen, val_score)`: chosen hyperparameters, including `lr`, and their mean score.
    """
    grid = learner.grid()
    out = sweep_grid(learner, sweep, episodes, mesh=mesh)
    table = np.asarray(score(out)).mean(axis=len(grid))
    return select_on_validation(table, grid)


def sweep_grid(learner, sweep, episodes, *, chunk: int | None = None, mesh: Mesh | None = None):
    """`sweep(episode, lr)` over all `episodes` and the learning rates of `learner.grid()`
    (a learner without `lr` in its grid is swept once, with `lr = 0`), the episodes split
    over the devices of `mesh` (default: all devices).

    **Returns:**

    A numpy array with one axis per grid entry, in the order of the grid, then the
    episode axis, then the axes of `sweep`'s output. With `chunk`, episodes run `chunk`
    at a time (the last chunk padded), which bounds memory for many episodes.
    """
    grid = learner.grid()
    lrs = jax.numpy.asarray(grid.get("lr", (0.0,)))
    num = jax.tree_util.tree_leaves(episodes)[0].shape[0]
    size = num if chunk is None else min(chunk, num)
    split = split_leading_axis(size, mesh or make_mesh())
    in_axes = (0, None)
    run = jax.jit(
        split.spread(jax.vmap(jax.vmap(sweep, in_axes=(None, 0)), in_axes=in_axes), in_axes)
    )
    parts = []
    for start in range(0, num, size):
        idx = np.arange(start, start + size) % num  # pad the last chunk by wrapping
        part = jax.tree_util.tree_map(lambda a, idx=idx: a[idx], episodes)
        out = gather(run(*split.place((part, lrs), in_axes)))  # whole in every process
        parts.append(np.asarray(out)[: min(size, num - start)])
    out = np.concatenate(parts)  # (episodes, lrs, *static grid, ...)
    static = len(grid) - ("lr" in grid)
    out = np.moveaxis(out, 0, 1 + static)  # (lrs, *static grid, episodes, ...)
    if "lr" not in grid:
        return out[0]
    return np.moveaxis(out, 0, list(grid).index("lr"))
