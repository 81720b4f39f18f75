"""The main job: one-shot digit learning, PC beside backprop and non-parametric baselines."""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .._sharding import make_mesh
from ..data import load_dataset
from ._compare import paired_differences
from ._config import (
    OmniglotConfig,
    OneShotConfig,
    ScratchConfig,
    TransferConfig,
    hidden_units,
    make_solver,
)
from ._learners import (
    PC,
    AbstractLearner,
    Backprop,
    BackpropReplay,
    BackpropRule,
    ClassMean,
    PCAstro,
    PCRule,
    PixelNN,
)
from ._methods import ONESHOT, method_names
from ._pixel_nn import PixelNNTwoPart
from ._readouts import coverage_of, pc_local_learners, readout_learners
from ._records import progress_bar
from ._report import payload, resolved_config
from ._scratch import run_scratch
from ._transfer import run_transfer

# The methods that run when `--methods` is not given, in the order they run and are
# reported in, per protocol; the baselines run in every run.
PROTOCOLS = {
    "scratch": (run_scratch, method_names("oneshot", protocol="scratch", default=True)),
    "transfer": (run_transfer, method_names("oneshot", protocol="transfer", default=True)),
}
BASELINES = tuple(name for name, method in ONESHOT.items() if method.always)


class LearnerParts(NamedTuple):
    """What the registered one-shot learners of a run are built from, handed to a
    script's own learners (see [`pcastro.bench.run_oneshot`][]`(..., extra=)`).

    - `config`: the run's [`pcastro.bench.OneShotConfig`][].
    - `rule`: the PC rule of the run (inference steps and solver).
    - `updates`: the update counts tuned on validation.
    - `hidden`: hidden units of the shared MLP.
    - `classes`: output units (the episode's ways in scratch, 10 in transfer).
    """

    config: OneShotConfig
    rule: PCRule
    updates: tuple[int, ...]
    hidden: int
    classes: int


ExtraLearners = Callable[[LearnerParts], Mapping[str, Sequence[AbstractLearner]]]
"""A script's own learners: from a run's [`pcastro.bench.LearnerParts`][], a mapping
name -> learners (one name may stand for several learners, e.g. a sweep). They run after
the registered methods, are tuned and scored by the same procedure and recorded under
their own names."""


def make_learners(
    cfg: ScratchConfig | TransferConfig,
    *,
    features: int = 64,
    extra: ExtraLearners | None = None,
) -> list[AbstractLearner]:
    """The learners `cfg` asks for, with the grids they are tuned over, in report order
    (`features`: input features, which set the default hidden width), then those of
    `extra` (a script's own)."""
    rule = PCRule(steps=cfg.inference_steps, solver=make_solver(cfg))
    scratch = isinstance(cfg, ScratchConfig)
    # Scratch: full-batch update counts, all read off one learning curve; transfer: updates
    # on each novel example as it arrives.
    if isinstance(cfg, ScratchConfig):
        updates, classes, per_class = tuple(range(1, cfg.max_updates + 1)), cfg.ways, 0
    else:
        updates, classes, per_class = cfg.updates_per_example, 10, cfg.replay_per_class
    learners = {
        "pc": PC(rule=rule, lrs=cfg.lrs, updates=updates),
        "pc_astro": PCAstro(rule=rule, lrs=cfg.lrs, rounds=cfg.astro_rounds),
        "backprop": Backprop(lrs=cfg.lrs, updates=updates),
        # Transfer: the same labels, with the base part of the memory compared once.
        "pixel_nn": PixelNN() if scratch else PixelNNTwoPart(),
        "class_mean": ClassMean(num_classes=classes),
    }
    if not scratch:
        learners["backprop_replay"] = BackpropReplay(
            lrs=cfg.lrs, updates=updates, per_class=per_class
        )
    learners = {name: [learner] for name, learner in learners.items()}
    # Read-outs run on the network of every pretraining rule (transfer), or on the fresh
    # network of each episode (scratch).
    rules = {"": None} if scratch else {"pc": rule, "bp": BackpropRule()}
    for name in method_names("oneshot", group="readout", protocol=cfg.protocol):
        learners[name] = readout_learners(
            name,
            rules=rules,
            lrs=cfg.lrs,
            updates=updates,
            replay_per_class=per_class,
            num_classes=classes,
        )
    shape = dict(hidden=hidden_units(cfg, features), classes=classes, blocks=cfg.hidden_columns)
    local = pc_local_learners(rule, lrs=cfg.sgd_lrs, updates=updates, **shape)
    learners.update({name: [learner] for name, learner in local.items()})
    wanted = set(cfg.methods or PROTOCOLS[cfg.protocol][1]) | set(BASELINES)
    order = PROTOCOLS[cfg.protocol][1]
    order += tuple(name for name in learners if name not in order)
    chosen = [learner for name in order if name in wanted for learner in learners[name]]
    if extra is None:
        return chosen
    parts = LearnerParts(cfg, rule, updates, shape["hidden"], shape["classes"])
    own = [learner for group in extra(parts).values() for learner in group]
    taken = {learner.name for learner in chosen} & {learner.name for learner in own}
    if taken:
        raise ValueError(f"A script's own learners reuse registered names: {sorted(taken)}.")
    return chosen + own


def run_oneshot(
    cfg: OneShotConfig, *, progress: bool = True, extra: ExtraLearners | None = None
) -> dict:
    """Run the one-shot benchmark and return the `results.json` payload.

    **Arguments:**

    - `cfg`: the protocol's config, a [`pcastro.bench.ScratchConfig`][],
      [`pcastro.bench.TransferConfig`][] or [`pcastro.bench.OmniglotConfig`][].
    - `progress`: show a progress bar.
    - `extra`: a script's own learners besides the registered methods: a function from
      the run's [`pcastro.bench.LearnerParts`][] to a mapping name -> learners (one name
      may stand for several, e.g. a sweep). They run after the registered methods, are
      tuned and scored by the same procedure and recorded under their own names (digits
      and MNIST, not Omniglot).

    **Returns:**

    A dict with `config`, `versions`, `device`, `devices` (how many the episodes were
    split over), `seed`, `results` (a list of `{method, metric, mean, ci95, n}`) and
    `details` (selected hyperparameters, timing).
    """
    mesh = make_mesh(cfg.devices)
    if isinstance(cfg, OmniglotConfig):
        from ._omniglot import run_omniglot

        if extra is not None:
            raise ValueError("A script's own learners (`extra`) run on digits and MNIST only.")
        t0 = time.perf_counter()
        with progress_bar(None, enabled=progress) as bar:
            results, details = run_omniglot(cfg, bar, mesh=mesh)
        details["wall_s"] = time.perf_counter() - t0
        details["paired"] = paired_differences(results)
        config = resolved_config(cfg, results, features=cfg.image_size**2)
        return payload(config, cfg.seed, results, details, devices=mesh.size)
    if not isinstance(cfg, (ScratchConfig, TransferConfig)):
        raise TypeError(
            f"`run_oneshot` needs a ScratchConfig, TransferConfig or OmniglotConfig, got "
            f"{type(cfg).__name__}."
        )
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    learners = make_learners(cfg, features=ds.x_train.shape[1], extra=extra)
    run = PROTOCOLS[cfg.protocol][0]
    total = 1 + sum(1 + bool(learner.grid()) for learner in learners)
    t0 = time.perf_counter()
    with progress_bar(total, enabled=progress) as bar:
        results, details = run(cfg, ds, learners, bar, mesh=mesh)
    details["wall_s"] = time.perf_counter() - t0
    covered = {learner.name: coverage_of(learner) for learner in learners}
    details["coverage"] = {name: mask for name, mask in covered.items() if mask is not None}
    details["paired"] = paired_differences(results)
    config = resolved_config(cfg, results, features=ds.x_train.shape[1])
    return payload(config, cfg.seed, results, details, devices=mesh.size)
