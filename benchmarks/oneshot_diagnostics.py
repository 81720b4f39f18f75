"""Why does PC's local one-shot update lag weight imprinting? Variants of `pc_sgd` that
change one thing each, run beside the registered methods of `pcastro oneshot`.

    python benchmarks/oneshot_diagnostics.py --diagnostics list
    python benchmarks/oneshot_diagnostics.py --diagnostics pc_sgd_fresh,pc_sgd_target_fresh \\
        --dataset mnist5k --protocol transfer --methods pc_sgd,imprint --out DIR

Every option but `--diagnostics` is an option of `pcastro oneshot` (the same protocol,
selection on validation episodes, test episodes and `results.json`; the recorded command
names this script). The variants run in the transfer protocol only: they treat the
output rows of the classes absent from the pretraining apart from the base rows.

- `*_fresh`: the novel classes' output rows start from zero and their biases from the
  mean base bias, as imprinting's do, before PC's local updates add to them
  (pretraining on the base classes leaves those rows pointing away from the features, a
  deficit an additive update must undo);
- `pc_sgd_head`: only the output layer learns;
- `pc_sgd_novel` (`_fresh`): only the novel classes' output rows learn (base rows and
  hidden layers are left alone, as imprinting leaves them);
- `pc_sgd_target_fresh`: only the presented class's row learns, started afresh (PC's
  update restricted by hand as imprinting is).

The recorded runs that used them (`benchmarks/results/oneshot_*_fresh`,
`oneshot_*_target*`, `oneshot_target_seeds/`) were made when these were methods of
`pcastro oneshot` itself; the learners, their names and their numbers are unchanged.
"""

import argparse
import sys
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from pcastro.bench import PCLocal
from pcastro.bench._learners import Trained, _AbstractGradientLearner
from pcastro.bench._readouts import _base_rows, _masked_mean, _output_layer, pc_local_learners

# name -> (the registered learner it varies, what it changes)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "pc_sgd_fresh": ("pc_sgd", dict(fresh=True)),
    "pc_sgd_astro_columns_fresh": ("pc_sgd_astro_columns", dict(fresh=True)),
    "pc_sgd_head": ("pc_sgd", dict(plastic="output")),
    "pc_sgd_novel": ("pc_sgd", dict(plastic="novel")),
    "pc_sgd_novel_fresh": ("pc_sgd", dict(plastic="novel", fresh=True)),
    "pc_sgd_target_fresh": ("pc_sgd", dict(plastic="target", fresh=True)),
    "pc_astro_target_fresh": ("pc_astro_target", dict(fresh=True)),
}


class PCLocalVariant(_AbstractGradientLearner):
    """A `PCLocal` learner (`local`) with its novel output rows started afresh (`fresh`)
    and/or only some synapses learning (`plastic`): `"all"`, the output layer only
    (`"output"`), only the novel classes' output rows (`"novel"`), or only the row of
    the presented class (`"target"`). The update itself is `local`'s."""

    label: str = eqx.field(static=True)
    local: PCLocal
    fresh: bool = eqx.field(static=True, default=False)
    plastic: Literal["all", "output", "novel", "target"] = eqx.field(static=True, default="all")
    needs_base = True

    @property
    def name(self) -> str:
        return self.label

    @property
    def rule(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.local.rule

    @property
    def lrs(self) -> tuple[float, ...]:  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.local.lrs

    @property
    def updates(self) -> tuple[int, ...]:  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.local.updates

    @property
    def astrocytes(self):
        return self.local.astrocytes

    @property
    def columns(self):
        return self.local.columns

    def optimizer(self, lr, net):
        base = self.local.optimizer(lr, net)
        if self.plastic == "all":
            return base
        return optax.chain(base, restrict_plasticity())

    def start(self, net, lr, *, base=None):
        if base is None:
            raise ValueError(
                f"`{self.label}` treats the novel classes' output rows apart from the base "
                "classes', so it needs base classes: it runs in the transfer protocol only."
            )
        if self.fresh:
            net = fresh_novel_rows(net, base[1])
        state = super().start(net, lr, base=base)
        if self.plastic == "novel":
            rows = ~_base_rows(_output_layer(net).bias.shape[0], base[1])  # pyright: ignore[reportOptionalMemberAccess]
            state = _with_rows(state, rows)
        return state

    def step(self, state, x, y, *, key):
        if self.plastic == "target":  # only the rows of the classes presented now
            rows = jnp.zeros(_output_layer(state.net).bias.shape[0], bool).at[y].set(True)  # pyright: ignore[reportOptionalMemberAccess]
            state = _with_rows(state, rows)
        optimizer = self.optimizer(state.lr, state.net)
        return self.local.update(state, x, y, optimizer=optimizer), key


class _PlasticRows(NamedTuple):
    plastic_rows: Any  # one bool per output unit: may its row and bias learn?


def _with_rows(state: Trained, rows) -> Trained:
    opt_state = optax.tree_utils.tree_set(state.opt_state, plastic_rows=rows)
    return eqx.tree_at(lambda s: s.opt_state, state, opt_state)


def restrict_plasticity() -> optax.GradientTransformation:
    """Zero every update but the output layer's rows marked in the state `plastic_rows`:
    all rows after `init` (`plastic="output"`); the variant marks the novel classes' rows
    at `start` (`"novel"`) or the presented classes' rows at every step (`"target"`)."""

    def init_fn(params):
        return _PlasticRows(jnp.ones(_output_layer(params).bias.shape[0], bool))  # pyright: ignore[reportOptionalMemberAccess]

    def update_fn(updates, state, params=None):
        del params
        layer = _output_layer(updates)
        rows = state.plastic_rows
        kept = (layer.weight * rows[:, None], layer.bias * rows)  # pyright: ignore[reportOptionalMemberAccess]
        zeroed = jax.tree_util.tree_map(jnp.zeros_like, updates)
        out = eqx.tree_at(lambda u: (_output_layer(u).weight, _output_layer(u).bias), zeroed, kept)  # pyright: ignore[reportOptionalMemberAccess]
        return out, state

    return optax.GradientTransformation(init_fn, update_fn)


def fresh_novel_rows(net, base_labels):
    """`net` with the output rows of every class absent from `base_labels` set to zero
    and their biases to the mean bias of the base classes."""
    layer = _output_layer(net)
    known = _base_rows(layer.bias.shape[0], base_labels)  # pyright: ignore[reportOptionalMemberAccess]
    mean_bias = _masked_mean(layer.bias, known)
    return eqx.tree_at(
        lambda n: (_output_layer(n).weight, _output_layer(n).bias),  # pyright: ignore[reportOptionalMemberAccess]
        net,
        (
            jnp.where(known[:, None], layer.weight, 0.0),
            jnp.where(known, layer.bias, mean_bias),  # pyright: ignore[reportArgumentType]
        ),
    )


def diagnostic_learners(names, parts) -> dict[str, list[PCLocalVariant]]:
    """The variants `names`, built on the run's registered PC-native learners."""
    cfg = parts.config
    local = pc_local_learners(
        parts.rule, lrs=cfg.sgd_lrs, updates=parts.updates, hidden=parts.hidden,
        classes=parts.classes, blocks=cfg.hidden_columns,
    )  # fmt: skip
    out = {}
    for name in names:
        parent, changes = VARIANTS[name]
        out[name] = [PCLocalVariant(label=name, local=local[parent], **changes)]
    return out


def checked_names(text: str) -> tuple[str, ...]:
    names = tuple(n for n in text.split(",") if n)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise SystemExit(
            f"oneshot_diagnostics.py: unknown diagnostics {unknown}; choose from "
            f"{', '.join(VARIANTS)}."
        )
    return names


def main(argv=None) -> int:
    from pcastro.cli import main as pcastro_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--diagnostics", required=True, help="comma-separated, or `list`")
    args, rest = parser.parse_known_args(argv)
    if args.diagnostics == "list":
        for name, (parent, changes) in VARIANTS.items():
            what = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            print(f"  {name:<28}{parent} with {what}")
        return 0
    names = checked_names(args.diagnostics)
    return pcastro_main(["oneshot", *rest], extra=lambda parts: diagnostic_learners(names, parts))


if __name__ == "__main__":
    sys.exit(main())
