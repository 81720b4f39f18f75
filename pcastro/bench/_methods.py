"""Every method of every benchmark, by name: one table per subcommand.

A method's entry says what it is (one line, what `--methods list` prints), where it runs,
whether it runs by default, and which code builds it. The name tuples the protocols use
(`PC_LOCAL`, `READOUTS`, `TRANSFER_ONLY`, the report order of
`pcastro oneshot`, the conditions of `pcastro interrupt`, the methods of
`pcastro continual`) are read off these tables, so a method is added in one place.

Nothing here imports JAX: `--methods list` and the checks of `--methods` answer at once.
"""

import difflib
import textwrap
from dataclasses import dataclass

COMMANDS = ("oneshot", "interrupt", "continual")


@dataclass(frozen=True)
class Method:
    """One named method of a benchmark.

    - `description`: what it is, in one line.
    - `builder`: the code that builds it (`module:name`, within `pcastro.bench`).
    - `group`: its family within the subcommand (`pc`, `pc_local`, `backprop`,
      `readout`, `baseline`, `diagnostic`, `coverage`, ...).
    - `rule`: the rule that learns it, `pc` or `backprop` (`None`: nothing is learned by
      gradients: a nearest-neighbour baseline).
    - `protocols`: where it can run.
    - `default`: the protocols where it runs when `--methods` is not given (elsewhere it
      runs only when asked for by name).
    - `always`: it runs in every run, whatever `--methods` asks for.
    """

    description: str
    builder: str
    group: str
    rule: str | None
    protocols: tuple[str, ...]
    default: tuple[str, ...]
    always: bool = False


_BOTH = ("scratch", "transfer")
_ALL = ("scratch", "transfer", "omniglot")  # omniglot: `--dataset omniglot`


def _oneshot(description, builder, group, rule, protocols=_BOTH, default=None, **kw):
    default = protocols if default is None else default
    return Method(description, builder, group, rule, protocols, default, **kw)


# Report order of `pcastro oneshot` (both protocols), then what runs by name only. Each
# entry: description, builder, group, rule[, protocols (default: scratch and transfer)]
# [, default=protocols where it runs unnamed (default: all of them)].
ONESHOT: dict[str, Method] = {
    "pc": _oneshot(
        "predictive coding on the shared MLP, Adam, a few updates per presentation",
        "_learners:PC", "pc", "pc", _ALL,
    ),
    "pc_astro": _oneshot(
        "PC with astrocytes and the store: one gated update per support image under NE, "
        "then consolidation rounds",
        "_learners:PCAstro", "pc", "pc",
    ),
    "pc_sgd": _oneshot(
        "PC-native one-shot learner: the local update with plain SGD (at the output, the "
        "error times the inferred hidden state)",
        "_readouts:pc_local_learners", "pc_local", "pc", _ALL, default=("transfer", "omniglot"),
    ),
    "pc_sgd_astro_layers": _oneshot(
        "pc_sgd through the astrocyte gate, one region per layer",
        "_readouts:pc_local_learners", "pc_local", "pc", default=("transfer",),
    ),
    "pc_sgd_astro_columns": _oneshot(
        "pc_sgd through the astrocyte gate over column regions (blocks of hidden units, "
        "one region per output unit)",
        "_readouts:pc_local_learners", "pc_local", "pc", default=("transfer",),
    ),
    "pc_astro_target": _oneshot(
        "pc_sgd_astro_columns whose astrocytes sense the target-directed excess "
        "(pcastro.astro.TargetExcess)",
        "_readouts:pc_local_learners", "pc_local", "pc", _ALL, default=("transfer", "omniglot"),
    ),
    "backprop": _oneshot(
        "backprop on the same modules, Adam, a few updates per presentation",
        "_learners:Backprop", "backprop", "backprop", _ALL,
    ),
    "backprop_replay": _oneshot(
        "backprop whose every update also sees base-class images from a raw-image replay "
        "buffer (--replay-per-class per class)",
        "_learners:BackpropReplay", "backprop", "backprop", ("transfer",),
    ),
    "proto_cos": _oneshot(
        "read-out: nearest class prototype in feature space, cosine similarity",
        "_readouts:readout_learners", "readout", None, _ALL,
    ),
    "proto_euc": _oneshot(
        "read-out: nearest class prototype in feature space, Euclidean distance",
        "_readouts:readout_learners", "readout", None, _ALL,
    ),
    "imprint": _oneshot(
        "read-out: weight imprinting of the novel rows of the output layer (Qi et al. 2018)",
        "_readouts:readout_learners", "readout", None,
    ),
    "head_ft": _oneshot(
        "read-out: output-layer-only fine-tuning, Adam, the body fixed",
        "_readouts:readout_learners", "readout", "backprop", _ALL,
    ),
    "head_ft_replay": _oneshot(
        "read-out: head_ft with a replay buffer of base images",
        "_readouts:readout_learners", "readout", "backprop", ("transfer",),
    ),
    "pixel_nn": _oneshot(
        "baseline: the label of the nearest remembered image in pixel space",
        "_learners:PixelNN", "baseline", None, _ALL, always=True,
    ),
    "class_mean": _oneshot(
        "baseline: the label of the nearest class mean in pixel space",
        "_learners:ClassMean", "baseline", None, always=True,
    ),
}  # fmt: skip


def _interrupt(description, builder, group, rule):
    return Method(description, builder, group, rule, ("interrupt",), ("interrupt",))


# The conditions of `pcastro interrupt`, in report order; each is a learner and a schedule
# (entries: description, builder, group, rule).
INTERRUPT: dict[str, Method] = {
    "backprop_sequential": _interrupt(
        "backprop: A learned to the end, then B; no return to A",
        "_conditions:make_conditions", "backprop", "backprop",
    ),
    "backprop_interrupted": _interrupt(
        "backprop: A interrupted by B, then A's remaining updates",
        "_conditions:make_conditions", "backprop", "backprop",
    ),
    "backprop_joint": _interrupt(
        "backprop: A and B learned together from the start",
        "_conditions:make_conditions", "backprop", "backprop",
    ),
    "backprop_rehearse": _interrupt(
        "backprop: A interrupted by B, A's support images in every batch of B (rehearsal); "
        "no resume",
        "_conditions:make_conditions", "backprop", "backprop",
    ),
    "pc_no_store": _interrupt(
        "PC: A interrupted by B, nothing kept of A",
        "_conditions:make_conditions", "pc", "pc",
    ),
    "pc_replay": _interrupt(
        "PC, the control: after B, plain interleaved replay of the same stimuli from fresh "
        "states (no priority, gate or discard)",
        "_conditions:make_conditions", "pc", "pc",
    ),
    "pc_store_stored": _interrupt(
        "PC: after B, consolidation from the store, replays from the stored states",
        "_conditions:make_conditions", "store", "pc",
    ),
    "pc_store_fresh": _interrupt(
        "PC: after B, consolidation from the store, replays from fresh feedforward states",
        "_conditions:make_conditions", "store", "pc",
    ),
    "pc_store_ne": _interrupt(
        "PC with astrocytes: consolidation gated by calcium under NE",
        "_conditions:make_conditions", "store", "pc",
    ),
    "pc_store_no_ne": _interrupt(
        "PC with astrocytes: consolidation gated by calcium without NE",
        "_conditions:make_conditions", "store", "pc",
    ),
    "pc_astro_ablated": _interrupt(
        "PC with ablated astrocytes (gate 1): consolidation under NE",
        "_conditions:make_conditions", "store", "pc",
    ),
    "pixel_nn": _interrupt(
        "baseline: nearest remembered image in pixel space, A and B remembered",
        "_conditions:make_conditions", "baseline", None,
    ),
}  # fmt: skip


def _continual(description, builder, group, rule):
    return Method(description, builder, group, rule, ("continual",), ("continual",))


# The methods of `pcastro continual`, in report order (`group`: `finetune` keeps nothing,
# `joint` everything, `replay` and `prioritised_replay` a buffer of raw exemplars drawn
# uniformly or by loss, `store` the astrocyte store; entries: description, builder, group,
# rule).
CONTINUAL: dict[str, Method] = {
    "backprop_finetune": _continual(
        "backprop: each context in turn, nothing kept (the lower bound)",
        "_continual_methods:FineTune", "finetune", "backprop",
    ),
    "backprop_joint": _continual(
        "backprop on every context so far (the upper bound)",
        "_continual_methods:FineTune", "joint", "backprop",
    ),
    "backprop_er": _continual(
        "backprop with experience replay from a reservoir buffer of raw exemplars",
        "_continual_methods:ExperienceReplay", "replay", "backprop",
    ),
    "backprop_per": _continual(
        "backprop with loss-prioritised replay: the same buffer, drawn by loss",
        "_continual_methods:ExperienceReplay", "prioritised_replay", "backprop",
    ),
    "pc_finetune": _continual(
        "PC: each context in turn, nothing kept",
        "_continual_methods:FineTune", "finetune", "pc",
    ),
    "pc_joint": _continual(
        "PC on every context so far",
        "_continual_methods:FineTune", "joint", "pc",
    ),
    "pc_er": _continual(
        "PC with experience replay from a reservoir buffer of raw exemplars",
        "_continual_methods:ExperienceReplay", "replay", "pc",
    ),
    "pc_store_uniform": _continual(
        "the store at equal bytes, slots drawn uniformly, no gate, no discard (its control)",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_priority": _continual(
        "the store, slots drawn by priority (sum_r E_r)^alpha, discard below tol",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_gate": _continual(
        "the store, uniform draws through the astrocyte gate, discard below tol",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_both": _continual(
        "the store with priority and the astrocyte gate, discard below tol",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_both_refresh": _continual(
        "pc_store_both, the replayed slots' E_r rewritten at each replay",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_priority_refresh": _continual(
        "pc_store_priority, the replayed slots' E_r rewritten at each replay",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_ablated": _continual(
        "pc_store_both with ablated astrocytes (gate 1): equals pc_store_priority",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_uniform_lean": _continual(
        "pc_store_uniform without free states: about twice the slots in the same bytes",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_priority_lean": _continual(
        "the store without states, slots drawn by priority (sum_r E_r)^alpha, every slot's "
        "E_r measured again at the current network every --refresh-every iterations",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_resume": _continual(
        "pc_store_uniform whose replay continues from the stored states for --resume-steps "
        "inference steps (written back after each replay) instead of a fresh start",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_gate_example": _continual(
        "pc_store_gate with one gate per example (current and replayed stimuli gated apart)",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
    "pc_store_gate_example_lean": _continual(
        "the store without states, uniform draws, each current and replayed stimulus gated "
        "by its own E_r measured at this replay (no discard)",
        "_continual_methods:AstrocyteStore", "store", "pc",
    ),
}  # fmt: skip

REGISTRY: dict[str, dict[str, Method]] = {
    "oneshot": ONESHOT,
    "interrupt": INTERRUPT,
    "continual": CONTINUAL,
}

FORMER_NAMES: dict[str, dict[str, str]] = {
    # `backprop_replay` of `pcastro oneshot` replays a buffer of base-class images; this
    # condition rehearses A's own support while B is learned, and resumes nothing.
    "interrupt": {"backprop_replay": "backprop_rehearse"},
    # Backprop is spelled out in every subcommand.
    "continual": {f"bp_{kind}": f"backprop_{kind}" for kind in ("finetune", "joint", "er", "per")},
}
"""Former names, still accepted by `--methods` and read in recorded results, per
subcommand: former name -> current name."""


MOVED: dict[str, dict[str, str]] = {
    "oneshot": {
        **dict.fromkeys(
            (
                "pc_sgd_fresh", "pc_sgd_astro_columns_fresh", "pc_sgd_head", "pc_sgd_novel",
                "pc_sgd_novel_fresh", "pc_sgd_target_fresh", "pc_astro_target_fresh",
            ),
            "python benchmarks/oneshot_diagnostics.py --diagnostics NAME,... [pcastro oneshot "
            "options]",
        ),
        "pc_sgd_astro_coverage": "python benchmarks/coverage.py",
    },
}  # fmt: skip
"""One study's methods that left the command for a script in `benchmarks/` (their names
stay in the recorded results): name -> the command that runs them now."""


def method_names(
    command: str, *, group: str | None = None, protocol: str | None = None, default=None
) -> tuple[str, ...]:
    """The names of `command`'s methods in report order: those of `group` only, those that
    run in `protocol`, or those that run (`default=True`) or do not run (`False`) there
    when `--methods` is not given."""
    out = []
    for name, m in REGISTRY[command].items():
        if group is not None and m.group != group:
            continue
        if protocol is not None and protocol not in m.protocols:
            continue
        if default is not None and (protocol in m.default) != default:
            continue
        out.append(name)
    return tuple(out)


def current_name(command: str, name: str) -> str:
    """`name`, or the current name of a former name of one of `command`'s methods."""
    return FORMER_NAMES.get(command, {}).get(name, name)


def check_methods(methods, command: str) -> tuple[str, ...]:
    """`methods` with former names replaced by current ones.

    **Raises:**

    `ValueError` naming every unknown method with the registered names closest to it.
    """
    registry = REGISTRY[command]
    methods = tuple(current_name(command, m) for m in methods)
    moved = {m: MOVED.get(command, {})[m] for m in methods if m in MOVED.get(command, {})}
    if moved:
        raise ValueError(
            "; ".join(f"{m} is no longer a method of `pcastro {command}`: run `{how}`"
                      for m, how in moved.items())
        )  # fmt: skip
    unknown = [m for m in methods if m not in registry]
    if unknown:
        known = [*registry, *FORMER_NAMES.get(command, {})]
        hints = []
        for m in unknown:
            close = difflib.get_close_matches(m, known, n=3)
            hints.append(
                f"{m}: did you mean {' or '.join(close)}?" if close else f"{m}: no close name"
            )
        raise ValueError(
            f"Unknown methods {unknown} ({'; '.join(hints)}); "
            f"`pcastro {command} --methods list` lists every method with what it is."
        )
    return methods


def format_methods(command: str, *, width: int = 100) -> str:
    """What `pcastro COMMAND --methods list` prints: every method with its description,
    those that run by default first, then those that run only when named; in brackets,
    the protocols a method is limited to and where it runs only when named."""
    registry = REGISTRY[command]
    protocols = list(dict.fromkeys(p for m in registry.values() for p in m.protocols))
    column = max(map(len, registry)) + 4
    former = {new: old for old, new in FORMER_NAMES.get(command, {}).items()}

    def entry(name: str, m: Method) -> list[str]:
        notes = []
        if m.always:
            notes.append("always runs")
        if set(m.protocols) != set(protocols):
            notes.append(f"{' and '.join(m.protocols)} only")
        by_name = [p for p in m.protocols if p not in m.default]
        if m.default and by_name:
            notes.append(f"only when named in {' and '.join(by_name)}")
        if name in former:
            notes.append(f"formerly {former[name]}")
        text = m.description + (f" [{'; '.join(notes)}]" if notes else "")
        lines = textwrap.wrap(text, width - column) or [""]
        return [f"  {name:<{column - 2}}{lines[0]}"] + [" " * column + ln for ln in lines[1:]]

    lines = [f"Methods of `pcastro {command}` (`--methods NAME,NAME,...`)"]
    if len(protocols) > 1:
        lines[0] += f", protocols {', '.join(protocols)}"
    groups = {
        "run by default:": {n: m for n, m in registry.items() if m.default},
        "run only when named:": {n: m for n, m in registry.items() if not m.default},
    }
    for title, methods in groups.items():
        if methods:
            lines += ["", title] + [ln for n, m in methods.items() for ln in entry(n, m)]
    return "\n".join(lines)


def current_names(payload: dict, command: str) -> dict:
    """A recorded `results.json` payload of `command` with former method names replaced
    by current ones (in its results, paired rows, selections, timings, frontiers and
    configuration), so that records written before a rename read as today's. The
    payload itself is left unchanged."""
    renames = FORMER_NAMES.get(command, {})
    if not renames:
        return payload

    def name(value):
        if not isinstance(value, str):
            return value
        # Read-outs are reported per network: `NAME@pc`, `NAME@bp`.
        base, at, body = value.partition("@")
        return renames.get(base, base) + at + body

    def rows(items):
        if not isinstance(items, list):
            return items
        return [
            {k: name(v) if k in ("method", "vs", "control") else v for k, v in r.items()}
            if isinstance(r, dict)
            else r
            for r in items
        ]

    def keys(mapping):
        if not isinstance(mapping, dict):
            return mapping
        return {name(k): v for k, v in mapping.items()}

    out = dict(payload)
    out["results"] = rows(payload.get("results"))
    if "paired" in payload:
        out["paired"] = rows(payload["paired"])
    details = payload.get("details")
    if isinstance(details, dict):
        details = dict(details)
        for field in ("selected", "timing", "frontier", "coverage"):
            if field in details:
                details[field] = keys(details[field])
        if "paired" in details:
            details["paired"] = rows(details["paired"])
        out["details"] = details
    config = payload.get("config")
    if isinstance(config, dict) and isinstance(config.get("methods"), list):
        out["config"] = {**config, "methods": [name(m) for m in config["methods"]]}
    return out
