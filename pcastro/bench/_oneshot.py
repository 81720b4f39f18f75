"""The main job: one-shot digit learning, PC beside backprop and non-parametric baselines."""

import time
from dataclasses import asdict

from tqdm.auto import tqdm

from ..data import load_dataset
from ._config import OneShotConfig
from ._learners import (
    PC,
    AbstractLearner,
    Backprop,
    BackpropReplay,
    ClassMean,
    PCAstro,
    PCRule,
    PixelNN,
)
from ._report import payload
from ._scratch import run_scratch
from ._transfer import run_transfer

# The order methods run and are reported in, per protocol.
PROTOCOLS = {
    "scratch": (run_scratch, ("pc", "backprop", "pc_astro", "pixel_nn", "class_mean")),
    "transfer": (
        run_transfer,
        ("pc", "pc_astro", "backprop", "backprop_replay", "pixel_nn", "class_mean"),
    ),
}
BASELINES = ("pixel_nn", "class_mean")


def make_learners(cfg: OneShotConfig) -> list[AbstractLearner]:
    """The learners `cfg` asks for, with the grids they are tuned over, in report order."""
    rule = PCRule(steps=cfg.inference_steps, dt=cfg.dt)
    scratch = cfg.protocol == "scratch"
    # Scratch: full-batch update counts, all read off one learning curve; transfer: updates
    # on each novel example as it arrives.
    updates = tuple(range(1, cfg.max_updates + 1)) if scratch else cfg.updates_per_example
    learners = {
        "pc": PC(rule=rule, lrs=cfg.lrs, updates=updates),
        "pc_astro": PCAstro(rule=rule, lrs=cfg.lrs, rounds=cfg.astro_rounds),
        "backprop": Backprop(lrs=cfg.lrs, updates=updates),
        "backprop_replay": BackpropReplay(
            lrs=cfg.lrs, updates=updates, per_class=cfg.replay_per_class
        ),
        "pixel_nn": PixelNN(),
        "class_mean": ClassMean(num_classes=cfg.ways if scratch else 10),
    }
    wanted = set(cfg.methods or learners) | set(BASELINES)
    return [learners[name] for name in PROTOCOLS[cfg.protocol][1] if name in wanted]


def run_oneshot(cfg: OneShotConfig, *, progress: bool = True) -> dict:
    """Run the one-shot benchmark and return the `results.json` payload.

    **Arguments:**

    - `cfg`: a [`pcastro.bench.OneShotConfig`][].
    - `progress`: show a progress bar.

    **Returns:**

    A dict with `config`, `versions`, `device`, `seed`, `results` (a list of
    `{method, metric, mean, ci95, n}`) and `details` (selected hyperparameters, timing).
    """
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    learners = make_learners(cfg)
    run = PROTOCOLS[cfg.protocol][0]
    total = 1 + sum(1 + bool(learner.grid()) for learner in learners)
    t0 = time.perf_counter()
    with tqdm(total=total, disable=not progress, leave=False) as bar:
        results, details = run(cfg, ds, learners, bar)
    details["wall_s"] = time.perf_counter() - t0
    return payload(asdict(cfg), cfg.seed, results, details)
