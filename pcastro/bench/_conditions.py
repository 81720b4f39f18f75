"""The conditions of the interruption benchmark, by name: a learner and a schedule each."""

import dataclasses

from ._learners import PC, AbstractLearner, Backprop, PixelNN, default_astrocytes
from ._methods import method_names
from ._schedules import (
    AbstractSchedule,
    Consolidate,
    InterleavedReplay,
    Interrupted,
    Joint,
    Relearn,
    Sequential,
)

CONDITIONS = method_names("interrupt")


def make_conditions(
    pc: PC, backprop: Backprop, *, ne: float, fresh: bool, tol: float
) -> dict[str, tuple[AbstractLearner, AbstractSchedule]]:
    """Every condition, in the order of `CONDITIONS`.

    **Arguments:**

    - `pc`, `backprop`: the (tuned) PC and backprop learners.
    - `ne`: norepinephrine at presentation and consolidation.
    - `fresh`, `tol`: the store's start and discard tolerance chosen on validation, for
        the conditions that do not fix them.
    """

    def gated(*, ablated=False):
        return dataclasses.replace(pc, astrocytes=default_astrocytes(ablated=ablated), ne=ne)

    # NE reaches only a gated learner: the ungated store conditions take none.
    def store(*, fresh=fresh, ne=None):
        return Interrupted(resume=Consolidate(fresh=fresh, tol=tol, ne=ne))

    conditions = {
        "backprop_sequential": (backprop, Sequential()),
        "backprop_interrupted": (backprop, Interrupted(resume=Relearn())),
        "backprop_joint": (backprop, Joint()),
        "backprop_rehearse": (backprop, Interrupted(rehearse=True)),
        "pc_no_store": (pc, Interrupted()),
        "pc_replay": (pc, Interrupted(resume=InterleavedReplay())),
        "pc_store_stored": (pc, store(fresh=False)),
        "pc_store_fresh": (pc, store(fresh=True)),
        "pc_store_ne": (gated(), store(ne=ne)),
        # A and B are still presented under NE; only consolidation runs without it.
        "pc_store_no_ne": (gated(), store(ne=0.0)),
        "pc_astro_ablated": (gated(ablated=True), store(ne=ne)),
        "pixel_nn": (PixelNN(), Joint()),
    }
    if tuple(conditions) != CONDITIONS:  # a condition added in one place and not the other
        raise RuntimeError(
            f"make_conditions builds {tuple(conditions)}, CONDITIONS says {CONDITIONS}."
        )
    return conditions
