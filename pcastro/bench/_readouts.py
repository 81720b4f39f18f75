"""Few-shot read-outs on a network's hidden features, and PC-native one-shot learners.

The read-outs are the baselines a few-shot researcher tries first. They keep the network's
body (every node below the output) fixed and decide with a linear head on its features
`h(x)` (the state of the output node's parent at the feedforward pass):

- nearest prototype, cosine or Euclidean: base prototypes are the means of the base
  training features, a novel prototype is the mean feature of its support images;
- weight imprinting (Qi, Brown & Lowe, CVPR 2018): the novel rows of the network's own
  output layer are set to `s * h / ||h||` of the support image, the scale `s` chosen on
  validation;
- output-layer-only fine-tuning (Adam on the cross-entropy of the head), with or without
  a replay buffer of base images.

The PC-native learner, [`PCLocal`][], presents each novel example with its label clamped;
after inference the local update of the output layer is `lr * e_out h^T`: the error at the
output units times the inferred hidden state, an imprinting-like outer product that PC
computes locally. Optionally an astrocyte gate over column regions (one per output unit and
per block of hidden units) lets plasticity through only where the local error is large.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ..astro import (
    Astrocytes,
    TargetExcess,
    make_regions,
    region_energies,
    scale_by_astrocytes,
)
from ._learners import (
    AbstractLearner,
    AbstractRule,
    PCRule,
    Trained,
    _AbstractGradientLearner,
    counted,
    default_astrocytes,
    local_update,
)
from ._methods import method_names

NOVEL_BIASES = (0.0, -0.05, 0.05, -0.1, 0.1, -0.2, 0.2, -0.4, 0.4)
"""Offsets added to the scores of classes learned in the episode (relative to the spread
of the base scores), so that a read-out can trade novel-class recall for base retention;
chosen on validation. 0 comes first so that ties (scratch: every class is novel) pick it."""

IMPRINT_SCALES = (1.0, 0.25, 0.35, 0.5, 0.75, 1.5, 2.0, 3.0)
"""Imprinting scales `s`, in units of the mean norm of the base rows of the output layer."""

_UNSEEN = -1e9  # score of a class that has no prototype yet


def hidden_features(net, x):
    """`h(x)`: the feedforward state of the output node's parents, flattened, for a batch."""

    def one(example):
        states = [example]
        for node in net.nodes[:-1]:
            states.append(node.predict([states[p] for p in node.parents]))
        return jnp.concatenate([states[p].reshape(-1) for p in net.nodes[-1].parents])

    return jax.vmap(one)(jnp.asarray(x, net.dtype))


def _output_layer(net) -> eqx.nn.Linear:
    (module,) = net.nodes[-1].modules
    if not isinstance(module, eqx.nn.Linear):
        raise TypeError(
            "The read-outs set rows of the output layer, so it must be one `eqx.nn.Linear`; "
            f"got {type(module).__name__}."
        )
    return module


def _base_rows(num: int, labels):
    """One bool per output unit: is its class among `labels` (the base classes)?"""
    return jnp.zeros(num, bool).at[jnp.asarray(np.unique(labels))].set(True)


def _masked_mean(values, mask):
    """The mean of `values` over the entries where `mask` holds (0 if none does)."""
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(mask.sum(), 1)


def _normalise(h):
    return h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-12)


class Head(eqx.Module):
    """A read-out's state: the fixed body `net` and a linear head on its features (rows
    `weight`, `bias`; `known` marks classes that have a row), plus what fine-tuning
    carries (learning rate, optimiser state, a replay buffer of base features)."""

    net: Any
    weight: Any
    bias: Any
    known: Any
    spread: Any
    lr: Any = None
    opt_state: Any = None
    buffer_h: Any = None
    buffer_y: Any = None


def _class_means(h, y, num_classes):
    onehot = jax.nn.one_hot(y, num_classes, dtype=h.dtype)
    counts = onehot.sum(0)
    return (onehot.T @ h) / jnp.maximum(counts, 1.0)[:, None], counts > 0


class _AbstractReadout(AbstractLearner):
    """Read-outs on the fixed body of a (pretrained) network."""

    rule: eqx.AbstractVar[AbstractRule | None]
    label: eqx.AbstractVar[str]
    episodes_in_parallel: ClassVar[bool] = True
    needs_base: ClassVar[bool] = False
    normalise: ClassVar[bool] = False

    @property
    def name(self) -> str:  # one class, several names: one per pretrained network
        return self.label

    def features(self, net, x):
        h = hidden_features(net, x)
        return _normalise(h) if self.normalise else h

    def predict(self, state, x):
        scores = self.features(state.net, x) @ state.weight.T + state.bias
        return jnp.argmax(jnp.where(state.known, scores, _UNSEEN), axis=-1)

    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        grid = {k: v for k, v in self.grid().items() if k != "lr"}
        state = self.start(net, lr, base=base)
        names, values = list(grid), list(grid.values())
        shape = tuple(len(v) for v in values)
        out = [
            evaluate(
                self.learn(
                    state,
                    x,
                    y,
                    {"lr": lr, **{n: v[i] for n, v, i in zip(names, values, index)}},
                    key=key,
                    one_at_a_time=one_at_a_time,
                )
            )
            for index in np.ndindex(shape)
        ]
        return jnp.stack(out).reshape(shape + jnp.shape(out[0]))


class NearestPrototype(_AbstractReadout):
    """Nearest class prototype in feature space, by cosine similarity or Euclidean
    distance (`-||h - p||^2 = 2 h.p - ||p||^2 - ||h||^2`: a linear head). Classes learned
    in the episode get the score offset `novel_bias` (times the spread of the base scores),
    chosen on validation."""

    label: str = eqx.field(static=True)
    metric: str = eqx.field(static=True, default="cosine")
    num_classes: int = eqx.field(static=True, default=10)
    rule: AbstractRule | None = None

    def __check_init__(self):
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"`metric` must be 'cosine' or 'euclidean', got {self.metric!r}.")

    @property
    def normalise(self) -> bool:
        return self.metric == "cosine"

    def grid(self):
        return {"novel_bias": NOVEL_BIASES}

    def _rows(self, prototypes):
        if self.metric == "cosine":
            return _normalise(prototypes), jnp.zeros(prototypes.shape[0], prototypes.dtype)
        return 2 * prototypes, -jnp.sum(prototypes**2, axis=-1)

    def start(self, net, lr, *, base=None):
        dim = hidden_features(net, jnp.zeros((1, *net.input_shape))).shape[-1]
        if base is None:
            zeros = jnp.zeros((self.num_classes, dim), net.dtype)
            known = jnp.zeros(self.num_classes, bool)
            return Head(net, zeros, zeros[:, 0], known, jnp.ones((), net.dtype))
        # Evaluated once, outside the compiled episodes, when the network is concrete.
        with jax.ensure_compile_time_eval():
            means, known = _class_means(self.features(net, base[0]), jnp.asarray(base[1]), 10)
        weight, bias = self._rows(means)
        # The spread of the base scores: the scale of a novel-class offset.
        spread = 1.0 if self.metric == "cosine" else jnp.mean(jnp.sum(means[known] ** 2, -1))
        return Head(net, weight, bias, known, jnp.asarray(spread, net.dtype))

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        # The order of presentation does not matter to a prototype.
        classes = state.weight.shape[0]
        means, seen = _class_means(self.features(state.net, x), y, classes)
        weight, bias = self._rows(means)
        bias = bias + hp["novel_bias"] * state.spread
        return eqx.tree_at(
            lambda s: (s.weight, s.bias, s.known),
            state,
            (
                jnp.where(seen[:, None], weight, state.weight),
                jnp.where(seen, bias, state.bias),
                state.known | seen,
            ),
        )


def _imprint(state: Head, h, y, scale):
    """Rows of the classes in `y` set to `scale * mean(h / ||h||)` renormalised, their
    bias to the mean bias of the rows that were there before."""
    classes = state.weight.shape[0]
    means, seen = _class_means(_normalise(h), y, classes)
    rows = scale * state.spread * _normalise(means)
    old = _masked_mean(state.bias, state.known)
    return eqx.tree_at(
        lambda s: (s.weight, s.bias, s.known),
        state,
        (
            jnp.where(seen[:, None], rows, state.weight),
            jnp.where(seen, old, state.bias),
            state.known | seen,
        ),
    )


def _start_head(net, base):
    """The network's own output layer as a head; `known` marks the base classes (all
    classes without base: a fresh network's head). `spread` = mean norm of known rows."""
    layer = _output_layer(net)
    weight, bias = layer.weight, layer.bias
    if base is None:
        known = jnp.ones(weight.shape[0], bool)
    else:
        known = _base_rows(weight.shape[0], base[1])
    spread = _masked_mean(jnp.linalg.norm(weight, axis=-1), known)
    return Head(net, weight, bias, known, spread)


class Imprint(_AbstractReadout):
    """Weight imprinting into the network's output layer: the row of a novel class is set
    to `s * ||w_base|| * h / ||h||` from its support feature (the mean of the normalised
    features, renormalised, for several shots); base rows keep their trained weights.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{qi2018lowshot,
            title={Low-Shot Learning with Imprinted Weights},
            author={Qi, Hang and Brown, Matthew and Lowe, David G.},
            booktitle={CVPR},
            year={2018}
        }
        ```
    """

    label: str = eqx.field(static=True)
    rule: AbstractRule | None = None

    def grid(self):
        return {"scale": IMPRINT_SCALES}

    def start(self, net, lr, *, base=None):
        return _start_head(net, base)

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        return _imprint(state, hidden_features(state.net, x), y, hp["scale"])


class HeadFinetune(_AbstractReadout):
    """Output-layer-only fine-tuning: `updates` Adam steps on the cross-entropy of the
    head per presentation, the body fixed; with `replay`, every step also sees `batch`
    base images drawn from a buffer of the first `per_class` base training images of each
    class. `init` (chosen on validation): the trained head as it is, or with the novel
    rows imprinted first (scale 1), as Qi et al. fine-tune after imprinting."""

    label: str = eqx.field(static=True)
    lrs: tuple[float, ...] = eqx.field(static=True)
    updates: tuple[int, ...] = eqx.field(static=True)
    replay: bool = eqx.field(static=True, default=False)
    per_class: int = eqx.field(static=True, default=10)
    batch: int = eqx.field(static=True, default=10)
    rule: AbstractRule | None = None

    @property
    def needs_base(self) -> bool:  # type: ignore[override]
        return self.replay

    def grid(self):
        return {"lr": self.lrs, "updates": self.updates, "init": ("trained", "imprinted")}

    def start(self, net, lr, *, base=None):
        if self.replay and base is None:
            raise ValueError(
                "Fine-tuning with replay replays base-class images, so it needs base "
                "classes: it runs in the transfer protocol only."
            )
        state = _start_head(net, base)
        opt_state = optax.adam(lr).init((state.weight, state.bias))
        state = eqx.tree_at(
            lambda s: (s.lr, s.opt_state), state, (lr, opt_state), is_leaf=lambda v: v is None
        )
        if self.replay:
            bx, by = base  # pyright: ignore[reportGeneralTypeIssues]  # checked above
            idx = np.concatenate([np.flatnonzero(by == c)[: self.per_class] for c in np.unique(by)])
            state = eqx.tree_at(
                lambda s: (s.buffer_h, s.buffer_y),
                state,
                (hidden_features(net, bx[idx]), jnp.asarray(by[idx])),
                is_leaf=lambda v: v is None,
            )
        return state

    def _step(self, state, h, y, key):
        if self.replay:
            key, sub = jax.random.split(key)
            idx = jax.random.choice(sub, state.buffer_h.shape[0], (self.batch,), replace=False)
            h = jnp.concatenate([h, state.buffer_h[idx]])
            y = jnp.concatenate([y, state.buffer_y[idx]])

        def loss(head):
            logits = h @ head[0].T + head[1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        head = (state.weight, state.bias)
        optimizer = optax.adam(state.lr)
        updates, opt_state = optimizer.update(jax.grad(loss)(head), state.opt_state, head)
        weight, bias = optax.apply_updates(head, updates)  # pyright: ignore[reportGeneralTypeIssues]  # a pair
        known = state.known.at[y].set(True)
        return eqx.tree_at(
            lambda s: (s.weight, s.bias, s.known, s.opt_state),
            state,
            (weight, bias, known, opt_state),
        ), key

    def _repeat(self, state, key, h, y, n, observe=None):
        def body(carry, _):
            state, key = self._step(carry[0], h, y, carry[1])
            return (state, key), (observe(state) if observe else None)

        return lax.scan(body, (state, key), None, length=n)

    def learn(self, state, x, y, hp, *, key, one_at_a_time=False):
        h = hidden_features(state.net, x)
        if hp["init"] == "imprinted":
            state = _imprint(state, h, y, 1.0)
        if not one_at_a_time:
            return self._repeat(state, key, h, y, hp["updates"])[0][0]

        def present(carry: tuple[Any, Any], item):
            (state, key), _ = self._repeat(*carry, item[0][None], item[1][None], hp["updates"])
            return (state, key), None

        (state, _), _ = lax.scan(present, (state, key), (h, y))
        return state

    def sweep(self, net, x, y, lr, evaluate, *, key, base=None, one_at_a_time=False):
        if one_at_a_time:
            return super().sweep(net, x, y, lr, evaluate, key=key, base=base, one_at_a_time=True)
        # One batch: the head after u updates is a prefix of the longest run.
        state, h = self.start(net, lr, base=base), hidden_features(net, x)
        curves = []
        for init in self.grid()["init"]:
            start = _imprint(state, h, y, 1.0) if init == "imprinted" else state
            _, curve = self._repeat(start, key, h, y, max(self.updates), observe=evaluate)
            curves.append(curve[np.asarray(self.updates) - 1])  # pyright: ignore[reportOptionalSubscript]  # observed
        return jnp.stack(curves, axis=1)


class PCLocal(_AbstractGradientLearner):
    """PC one-shot learning with plain SGD: each presentation clamps the image and its
    label, relaxes the hidden states for `rule.steps` steps and makes the local update
    `theta <- theta - lr * dF/dtheta` (at the output layer, `lr * e_out h^T`: the error at
    the output units times the inferred hidden state). With `astrocytes`, the update goes
    through the astrocyte gate under NE `ne`, fed the local energies `E_r` of the
    presentation; the regions are one per layer (`columns=None`) or `columns[l]` equal
    blocks of node `l` (one per output unit: columns = (hidden blocks, classes)).

    A script can build variants on it by composition: [`pcastro.bench.PCLocal.update`][] makes the
    local update with any optimiser (the one-shot diagnostics of
    `benchmarks/oneshot_diagnostics.py` restrict which synapses learn that way)."""

    label: str = eqx.field(static=True)
    rule: PCRule
    lrs: tuple[float, ...] = eqx.field(static=True)
    updates: tuple[int, ...] = eqx.field(static=True)
    astrocytes: Astrocytes | None = None
    columns: tuple[int, ...] | None = eqx.field(static=True, default=None)
    ne: float = 1.0

    @property
    def name(self) -> str:
        """Its name in `results.json` (`label`)."""
        return self.label

    def regions(self, net):
        """One region per node, or the column regions `columns`: its entries name the
        last nodes' regions (earlier nodes get one region each), 0 meaning one region
        per unit (the output layer of a head whose width changes with the episode)."""
        if not self.columns:
            return make_regions(net, columns=1)
        num = net.num_nodes - 1
        columns = (1,) * (num - len(self.columns)) + tuple(self.columns)
        shapes = net.shapes[1:]
        columns = tuple(c or int(np.prod(shapes[i])) for i, c in enumerate(columns))
        return make_regions(net, columns=columns)

    def optimizer(self, lr, net):
        if self.astrocytes is None:
            return optax.sgd(lr)
        return optax.chain(optax.sgd(lr), scale_by_astrocytes(self.astrocytes, self.regions(net)))

    def step(self, state, x, y, *, key):
        return self.update(state, x, y, optimizer=self.optimizer(state.lr, state.net)), key

    def update(self, state: Trained, x, y, *, optimizer) -> Trained:
        """One local update on `(x, y)` through `optimizer` (whose state is
        `state.opt_state`), gated by the astrocytes when the learner has them."""
        if self.astrocytes is None:
            net, opt_state, status = self.rule.update(
                state.net, state.opt_state, x, y, optimizer=optimizer
            )
        else:
            # Relaxed once, here, only where the gate needs the region energies.
            relaxed, solved = self.rule.relax(state.net, x, y)
            net, opt_state, status = local_update(
                state.net,
                state.opt_state,
                relaxed,
                solved,
                optimizer=optimizer,
                region_energy=region_energies(
                    relaxed, self.regions(state.net), sense=self.astrocytes.sense
                ),
                ne=self.ne,
            )
        return Trained(net, state.lr, opt_state, counted(state, status))


def check_blocks(hidden: int, blocks: int) -> None:
    """Refuse a number of column blocks that does not divide the hidden units."""
    if hidden % blocks:
        raise ValueError(
            f"`--hidden-columns {blocks}` must divide the {hidden} hidden units into equal "
            "blocks; pick a divisor."
        )


def pc_local_learners(rule: PCRule, *, lrs, updates, hidden: int, classes: int, blocks: int):
    """Plain PC with SGD, and the same with the astrocyte gate over per-layer regions and
    over column regions (`blocks` blocks of hidden units, one region per output unit);
    over column regions, astrocytes that sense the squared error
    (`pc_sgd_astro_columns`) or the target-directed excess (`pc_astro_target`,
    `pcastro.astro.TargetExcess`: at the output only the presented class's column
    receives calcium)."""
    check_blocks(hidden, blocks)
    common: dict[str, Any] = dict(rule=rule, lrs=lrs, updates=updates)
    return {
        "pc_sgd": PCLocal(label="pc_sgd", **common),
        "pc_sgd_astro_layers": PCLocal(
            label="pc_sgd_astro_layers", astrocytes=default_astrocytes(), **common
        ),
        "pc_sgd_astro_columns": PCLocal(
            label="pc_sgd_astro_columns",
            astrocytes=default_astrocytes(),
            columns=(blocks, classes),
            **common,
        ),
        "pc_astro_target": PCLocal(
            label="pc_astro_target",
            astrocytes=default_astrocytes(sense=TargetExcess()),
            columns=(blocks, classes),
            **common,
        ),
    }


def coverage_of(learner) -> list[bool] | None:
    """The covered regions of a learner with column astrocytes (a `PCLocal`, or any
    learner with `astrocytes` and `columns`), else None."""
    astrocytes, columns = getattr(learner, "astrocytes", None), getattr(learner, "columns", None)
    if astrocytes is None or not columns:
        return None
    covered = np.broadcast_to(np.asarray(astrocytes.covered), (sum(columns),))
    return covered.tolist()


READOUTS = method_names("oneshot", group="readout")
"""Read-out baselines by name; in transfer each runs on the PC- and on the
backprop-pretrained network (reported as `NAME@pc` and `NAME@bp`)."""

PC_LOCAL = method_names("oneshot", group="pc_local")
"""PC-native one-shot learners by name."""

TRANSFER_ONLY = tuple(
    name
    for name in method_names("oneshot")
    if name not in method_names("oneshot", protocol="scratch")
)
"""The methods that learn on top of base classes, so run in the transfer protocol only."""


def readout_learners(
    name: str, *, rules: dict[str, Any], lrs, updates, replay_per_class: int, num_classes: int
) -> list[AbstractLearner]:
    """The read-out `name` on every network in `rules` (suffix -> pretraining rule; the
    suffix is empty for a fresh network)."""
    out = []
    for suffix, rule in rules.items():
        label = f"{name}@{suffix}" if suffix else name
        if name in ("proto_cos", "proto_euc"):
            metric = "cosine" if name == "proto_cos" else "euclidean"
            out.append(
                NearestPrototype(label=label, metric=metric, num_classes=num_classes, rule=rule)
            )
        elif name == "imprint":
            out.append(Imprint(label=label, rule=rule))
        else:
            out.append(
                HeadFinetune(
                    label=label,
                    lrs=lrs,
                    updates=updates,
                    replay=name == "head_ft_replay",
                    per_class=replay_per_class,
                    rule=rule,
                )
            )
    return out
