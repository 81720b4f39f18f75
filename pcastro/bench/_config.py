"""The settings every benchmark shares, documented once; the CLI options are generated
from these fields (`--field-name`, help text = the field's docstring)."""

import argparse
import ast
import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

DATASETS = ("digits", "mnist5k", "mnist", "fashion", "omniglot")


@dataclass(frozen=True)
class BenchConfig:
    """Settings shared by every benchmark (all recorded in `results.json`)."""

    dataset: str = "digits"
    """One of digits, mnist5k (both need no download), mnist or fashion (IDX files), or
    omniglot (`pcastro oneshot` only: its zip files)."""
    episodes: int = 20
    """Test episodes, drawn from the test split."""
    val_episodes: int = 10
    """Validation episodes, drawn from the training split, on which every trained method's
    hyperparameters are tuned."""
    shots: int = 1
    """Support images per class."""
    queries: int = 15
    """Query images per class."""
    seed: int = 0
    """Seed of the episodes, initial weights and pretraining order."""
    hidden: int | None = None
    """Hidden units of the MLP (default 128 for up to 256 input features, else 256)."""
    inference_steps: int = 20
    """PC inference steps per update."""
    solver: str = "adaptive"
    """PC inference solver: `adaptive` (pcastro.AdaptiveEuler, the step follows the
    measured curvature) or `euler` (pcastro.Euler with step `--dt`)."""
    dt: float = 0.1
    """Euler step size of PC inference (with `--solver euler`)."""
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    """Learning-rate grid (Adam) of every trained method."""
    data_dir: str | None = None
    """Folder with MNIST/Fashion-MNIST IDX files (or set PCASTRO_DATA)."""
    methods: tuple[str, ...] = ()
    """Comma-separated subset of the methods to run."""
    devices: int | None = None
    """Devices to split the test and validation episodes over (default: all that JAX
    sees, every process's in a run over several). Each device runs ceil(episodes /
    devices) episodes; an uneven last block is padded with repeated episodes whose
    results are dropped, so the numbers equal a one-device run."""

    def __post_init__(self):
        _require_devices(self)
        _require(self, ("shots", "queries", "episodes", "val_episodes"), 1)
        _require(self, ("inference_steps",), 1)
        _require(self, ("seed",), 0)
        if self.hidden is not None:
            _require(self, ("hidden",), 1)
        _require_rates(self, ("dt",), upper=10.0)
        _check_solver(self)
        _require_rates(self, ("lrs",), upper=1.0)
        if self.dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)} "
                "(digits and mnist5k need no download)."
            )


@dataclass(frozen=True)
class OneShotConfig(BenchConfig):
    """Settings every one-shot protocol shares (all recorded in `results.json`); a run is
    configured by one of its protocols' configs: [`pcastro.bench.ScratchConfig`][],
    [`pcastro.bench.TransferConfig`][] or [`pcastro.bench.OmniglotConfig`][]."""

    episodes: int = 200
    """Test episodes, drawn from the test split (enough for a 95% CI of about +-0.01 on
    paired differences; per-episode values are kept in `results.json`)."""
    sgd_lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    """Learning-rate grid (plain SGD) of the PC-native one-shot learners pc_sgd*."""
    hidden_columns: int = 16
    """Blocks of hidden units, one astrocyte each, of pc_sgd_astro_columns (which also has
    one astrocyte per output unit)."""
    methods: tuple[str, ...] = ()
    """Comma-separated methods to run (default: those of the protocol that run by
    default); `--methods list` lists them all with what they are."""

    @property
    def protocol(self) -> str:
        """`scratch`, `transfer` or `omniglot`."""
        raise NotImplementedError

    def __post_init__(self):
        from ._methods import ONESHOT

        if type(self) is OneShotConfig:
            raise TypeError(
                "`OneShotConfig` holds the settings the one-shot protocols share; configure "
                "a run with `ScratchConfig`, `TransferConfig` or `OmniglotConfig`."
            )
        super().__post_init__()
        _require(self, ("hidden_columns",), 1)
        _require_rates(self, ("sgd_lrs",), upper=10.0)
        _check_methods(self, "oneshot")
        elsewhere = [m for m in self.methods if self.protocol not in ONESHOT[m].protocols]
        if self.protocol == "scratch" and elsewhere:
            raise ValueError(
                f"{elsewhere} learn on top of base classes, so they run in the transfer "
                "protocol only; drop them from `--methods` or pass `--protocol transfer`."
            )
        if elsewhere:
            raise ValueError(
                f"{elsewhere} do not run {_WHERE[self.protocol]}; drop them from `--methods` "
                "(`pcastro oneshot --methods list` says where each method runs)."
            )


_WHERE = {"transfer": "in the transfer protocol", "omniglot": "on Omniglot"}


@dataclass(frozen=True)
class ScratchConfig(OneShotConfig):
    """Settings of a one-shot run from scratch: N-way K-shot episodes learned by a fresh
    network (`pcastro oneshot --protocol scratch`, the default)."""

    ways: int = 10
    """Classes per episode."""
    max_updates: int = 100
    """Largest number of full-batch updates tried."""
    astro_rounds: tuple[int, ...] = (1, 3, 10, 30)
    """Grid of consolidation rounds of PC with astrocytes."""

    @property
    def protocol(self) -> str:
        """`scratch`."""
        return "scratch"

    def __post_init__(self):
        super().__post_init__()
        _require(self, ("ways", "astro_rounds", "max_updates"), 1)
        _refuse_omniglot(self)


@dataclass(frozen=True)
class TransferConfig(OneShotConfig):
    """Settings of a one-shot transfer run: pretrain on digits 0-4, then learn each of
    5-9 from one example, tested 10-way (`pcastro oneshot --protocol transfer`)."""

    updates_per_example: tuple[int, ...] = (1, 3, 10, 30)
    """Grid of updates per novel example."""
    pretrain_epochs: int = 10
    """Epochs of pretraining on the base digits."""
    replay_per_class: int = 10
    """Base images per class in the replay buffer of backprop_replay."""
    astro_rounds: tuple[int, ...] = (1, 3, 10, 30)
    """Grid of consolidation rounds of PC with astrocytes."""
    frontier_episodes: int = 100
    """Score every grid point of every tuned method on the first this-many test episodes,
    for the novel-accuracy vs base-retention frontier (0: none)."""

    @property
    def protocol(self) -> str:
        """`transfer`."""
        return "transfer"

    def __post_init__(self):
        super().__post_init__()
        _require(self, ("updates_per_example", "astro_rounds", "replay_per_class"), 1)
        _require(self, ("frontier_episodes", "pretrain_epochs"), 0)
        _refuse_omniglot(self)


@dataclass(frozen=True)
class OmniglotConfig(OneShotConfig):
    """Settings of a one-shot Omniglot run: pretrain on a background set of alphabets,
    then Lake's 20 official 20-way runs and random 5- and 20-way 1-shot episodes
    (`pcastro oneshot --dataset omniglot`)."""

    dataset: str = "omniglot"
    """omniglot (its zip files in `--data-dir` or PCASTRO_DATA)."""
    max_updates: int = 100
    """Largest number of full-batch updates tried."""
    pretrain_epochs: int = 10
    """Epochs of pretraining on the background alphabets."""
    background: Literal["small1", "small2"] = "small1"
    """The background set (5 alphabets) the network is pretrained on."""
    image_size: int = 28
    """Images are downsampled from 105x105 to this size."""
    body: Literal["mlp", "conv"] = "mlp"
    """The pretrained network, a tanh MLP or a small convolutional network
    (`pcastro.convnet` blocks of `conv_channels`, then `hidden` ReLU units)."""
    conv_channels: tuple[int, ...] = (32, 64)
    """With `--body conv`: output channels of each 3x3 convolution + 2x2 max-pool block."""

    @property
    def protocol(self) -> str:
        """`omniglot`."""
        return "omniglot"

    def __post_init__(self):
        if self.dataset != "omniglot":
            raise ValueError(
                f"`OmniglotConfig` runs on `dataset='omniglot'`, got {self.dataset!r}; use "
                "`ScratchConfig` or `TransferConfig` for digits and MNIST."
            )
        super().__post_init__()
        _require(self, ("image_size",), 4)
        _require(self, ("conv_channels", "max_updates"), 1)
        _require(self, ("pretrain_epochs",), 0)
        if self.body not in ("mlp", "conv"):
            raise ValueError(f"Unknown body {self.body!r}; use 'mlp' or 'conv'.")


def _refuse_omniglot(cfg) -> None:
    if cfg.dataset == "omniglot":
        raise ValueError(
            f"`{type(cfg).__name__}` runs on digits and MNIST; configure an Omniglot run with "
            "`OmniglotConfig` (`pcastro oneshot --dataset omniglot`)."
        )


def oneshot_config(protocol: str = "scratch", **settings) -> OneShotConfig:
    """The config of a one-shot run: [`pcastro.bench.OmniglotConfig`][] for
    `dataset="omniglot"`, else that of `protocol` (`scratch` or `transfer`).

    **Raises:**

    `ValueError` for an unknown protocol, or a setting its config does not have (naming
    the protocols that have it)."""
    if settings.get("dataset") == "omniglot":
        cls = OmniglotConfig
    elif protocol in ONESHOT_CONFIGS and protocol != "omniglot":
        cls = ONESHOT_CONFIGS[protocol]
    else:
        raise ValueError(
            f"Unknown protocol {protocol!r}; use 'scratch' (N-way K-shot from nothing) or "
            "'transfer' (pretrain on digits 0-4, learn 5-9 from one example)."
        )
    own = {f.name for f in dataclasses.fields(cls)}
    foreign = [name for name in settings if name not in own]
    if foreign:
        where = {
            name: [p for p, c in ONESHOT_CONFIGS.items() if name in _field_names(c)]
            for name in foreign
        }
        raise ValueError(
            "; ".join(
                f"{_flag(name)} is a setting of the {' and '.join(ps) or 'no'} protocol"
                f"{'s' * (len(ps) > 1)}, not of {_PROTOCOL_OF[cls]}"
                for name, ps in where.items()
            )
            + " (drop it)."
        )
    return cls(**settings)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


ONESHOT_CONFIGS = {"scratch": ScratchConfig, "transfer": TransferConfig, "omniglot": OmniglotConfig}
"""The config of each one-shot protocol."""
_PROTOCOL_OF = {cls: protocol for protocol, cls in ONESHOT_CONFIGS.items()}


@dataclass(frozen=True)
class InterruptConfig(BenchConfig):
    """Settings of an interruption run (all recorded in `results.json`)."""

    episodes: int = 100
    """Test episodes, drawn from the test split (the conditions are compared episode by
    episode; 100 give a paired 95% CI of about +-0.02 on digits)."""

    max_updates: int = 40
    """Largest number of full-batch updates tried for A and for B (at least 2, so that A
    can be interrupted)."""
    interrupt_fraction: float = 0.5
    """A is interrupted after this fraction of its updates, in (0, 1)."""
    ne: float = 1.0
    """Norepinephrine at presentation and consolidation."""
    tols: tuple[float, ...] = (1e-3, 1e-2, 5e-2)
    """Grid of the store's discard tolerance."""
    methods: tuple[str, ...] = ()
    """Comma-separated conditions to run (default all); `--methods list` lists them all
    with what they are."""

    def __post_init__(self):
        super().__post_init__()
        _require_rates(self, ("tols",), upper=1e6)
        if not (math.isfinite(self.ne) and self.ne >= 0):
            raise ValueError(
                f"`--ne` (norepinephrine) must be finite and non-negative, got {self.ne!r}."
            )
        if self.max_updates < 2:
            raise ValueError(
                f"`max_updates` must be at least 2 so that A can be interrupted part-way, "
                f"got {self.max_updates}."
            )
        if not 0.0 < self.interrupt_fraction < 1.0:
            raise ValueError(
                f"`interrupt_fraction` must be in (0, 1), got {self.interrupt_fraction}: A is "
                "interrupted after that fraction of its updates."
            )
        _check_methods(self, "interrupt")


def _flag(name: str) -> str:
    return f"`--{name.replace('_', '-')}`"


def _require(cfg, names, least: int) -> None:
    """Every named int field (or each entry of a tuple field) is an int >= `least`."""
    for name in names:
        values = getattr(cfg, name)
        if isinstance(values, tuple) and not values:
            raise ValueError(
                f"{_flag(name)} needs at least one value (a comma-separated list, e.g. "
                f"{_flag(name)} {','.join(map(str, _default(cfg, name)))})."
            )
        for v in values if isinstance(values, tuple) else (values,):
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise ValueError(
                    f"{_flag(name)} must be an integer of at least {least}, got {v!r}."
                )


def _default(cfg, name: str) -> Any:
    """The default of the field `name` of `cfg`'s dataclass."""
    return {f.name: f.default for f in dataclasses.fields(cfg)}[name]


def _require_rates(cfg, names, *, upper: float) -> None:
    """Every named float field (or tuple entry) is finite and in (0, upper]."""
    for name in names:
        values = getattr(cfg, name)
        values = values if isinstance(values, tuple) else (values,)
        if not values:
            raise ValueError(f"{_flag(name)} needs at least one value.")
        for v in values:
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= upper):
                raise ValueError(
                    f"{_flag(name)} must be finite and in (0, {upper}], got {v!r}; a rate of "
                    "0 or below does not learn and a huge one diverges."
                )


def _require_devices(cfg) -> None:
    """`devices` is None (all) or a count from 1 to the number of devices JAX sees."""
    import jax

    available = jax.device_count()
    v = cfg.devices
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= available:
        raise ValueError(
            f"`--devices` must be an integer from 1 to {available} (the "
            f"{jax.devices()[0].platform} devices JAX sees), got {v!r}; omit it to use all "
            "of them, or start with XLA_FLAGS=--xla_force_host_platform_device_count=N for "
            "N virtual CPU devices."
        )
    if jax.process_count() > 1 and v != available:
        raise ValueError(
            f"`--devices {v}` would leave out devices of some of the {jax.process_count()} "
            f"processes: a run over several processes uses all {available} devices (omit "
            "`--devices`), as every process takes part in every computation."
        )


def _check_methods(cfg, command: str) -> None:
    """`cfg.methods` are methods of `command`; former names become current ones."""
    from ._methods import check_methods

    object.__setattr__(cfg, "methods", check_methods(cfg.methods, command))


SOLVERS = ("adaptive", "euler")


def make_solver(cfg):
    """The inference solver a config names: `AdaptiveEuler()` or `Euler(dt=cfg.dt)`."""
    from .. import AdaptiveEuler, Euler

    return AdaptiveEuler() if cfg.solver == "adaptive" else Euler(dt=cfg.dt)


def _check_solver(cfg) -> None:
    if cfg.solver not in SOLVERS:
        raise ValueError(
            f"`--solver` must be one of {', '.join(SOLVERS)}, got {cfg.solver!r}; `adaptive` "
            "sets its step from the measured curvature of the energy at every solve."
        )


def hidden_units(cfg: BenchConfig, features: int) -> int:
    return cfg.hidden if cfg.hidden is not None else (128 if features <= 256 else 256)


def field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field of `cls` and its bases (subclasses win)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


@cache
def _own_field_docs(klass) -> dict[str, str]:
    body = ast.parse(inspect.getsource(klass)).body[0].body  # pyright: ignore[reportAttributeAccessIssue]  # a class
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())  # pyright: ignore[reportAttributeAccessIssue]  # a field name
    return docs


def _comma_list(item_type):
    def parse(text: str) -> tuple:
        try:
            return tuple(item_type(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {item_type.__name__} values, got {text!r}"
            ) from None

    return parse


def _option(tp) -> dict:
    """argparse keywords for a field annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:  # tuple[T, ...]: a comma list
        return {"type": _comma_list(args[0])}
    if origin is typing.Literal:
        return {"choices": args}
    if origin in (typing.Union, types.UnionType):  # T | None: None is the default
        (inner,) = [a for a in args if a is not type(None)]
        return _option(inner)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": tp}


def add_config_options(parser: argparse.ArgumentParser, cls, *, skip=(), scope=None) -> None:
    """One `--field-name` option per field of the config dataclass `cls` but those in
    `skip`; `scope(name)` prefixes a field's help (e.g. the protocols it belongs to)."""
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        prefix = scope(f.name) if scope else ""
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=f.default,
            # argparse %-formats help strings; docstrings speak of "95% CI"
            help=f"{prefix}{docs[f.name]} (default: {_show(f.default)})".replace("%", "%%"),
            **_option(hints[f.name]),
        )


def config_from_args(cls, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def add_oneshot_options(parser: argparse.ArgumentParser) -> None:
    """`--protocol`, then one `--field-name` option per field of any one-shot protocol's
    config (those of one protocol only say which in their help)."""
    parser.add_argument(
        "--protocol",
        choices=("scratch", "transfer"),
        default="scratch",
        help="scratch: N-way K-shot from nothing; transfer: pretrain on digits 0-4, then "
        "learn each of 5-9 from one example (`--dataset omniglot` runs the Omniglot "
        "protocol) (default: scratch)",
    )

    def scope(name: str) -> str:
        owners = [p for p, c in ONESHOT_CONFIGS.items() if name in _field_names(c)]
        return "" if len(owners) == len(ONESHOT_CONFIGS) else f"[{', '.join(owners)}] "

    seen: set[str] = set()
    for cls in ONESHOT_CONFIGS.values():
        add_config_options(parser, cls, skip=seen, scope=scope)
        seen |= _field_names(cls)


def oneshot_config_from_args(args: argparse.Namespace) -> OneShotConfig:
    """The protocol's config from parsed `pcastro oneshot` options: every option of that
    config, and any other only if it was changed from its default (then refused)."""
    cls = OmniglotConfig if args.dataset == "omniglot" else ONESHOT_CONFIGS[args.protocol]
    own = _field_names(cls)
    defaults = {}
    for other in ONESHOT_CONFIGS.values():
        for f in dataclasses.fields(other):
            defaults.setdefault(f.name, f.default)
    settings = {
        name: getattr(args, name)
        for name in defaults
        if name in own or getattr(args, name) != defaults[name]
    }
    return oneshot_config(args.protocol, **settings)


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "all"
    return str(value)


@dataclass(frozen=True)
class ContinualConfig:
    """Settings of a split-MNIST class-incremental run (all recorded in `results.json`).

    The defaults are a short run on the embedded mnist5k; van de Ven & Tolias (2019) use
    full MNIST (`--dataset mnist`), `--iterations 2000` and 784-400-400-10."""

    dataset: str = "mnist5k"
    """One of digits, mnist5k (both need no download), mnist or fashion (IDX files)."""
    data_dir: str | None = None
    """Folder with MNIST/Fashion-MNIST IDX files (or set PCASTRO_DATA)."""
    seeds: int = 5
    """Test seeds (initial weights and data order; every method sees the same ones)."""
    first_test_seed: int = 0
    """Index of the first test seed: the run's test seeds are `seed + 1000 + i` for
    `first_test_seed <= i < first_test_seed + seeds`. To add seeds to an earlier run, repeat
    its command with `--first-test-seed` set to its `--seeds`: the validation split and seeds
    are unchanged, so every selection repeats, and `benchmarks/continual_seeds.py` pairs
    the two runs seed by seed."""
    val_seeds: int = 1
    """Seeds of each validation run on which hyperparameters are selected."""
    val_fraction: float = 0.1
    """Fraction of each class of the training images held out for validation."""
    iterations: int = 200
    """Mini-batches per context (van de Ven & Tolias: 2000)."""
    batch: int = 128
    """Images of the current context per mini-batch."""
    replay_batch: int = 128
    """Stimuli replayed from memory per mini-batch (the same for every memory method)."""
    hidden: tuple[int, ...] = (400, 400)
    """Hidden layer sizes of the ReLU MLP."""
    budgets: tuple[int, ...] = (200, 1000, 2000)
    """Memory budgets in raw exemplars; the store gets the same bytes."""
    lrs: tuple[float, ...] = (1e-3, 3e-4)
    """Adam learning rates tried for backprop methods."""
    pc_lrs: tuple[float, ...] = (1e-3, 3e-3)
    """Adam learning rates tried for PC methods."""
    inference_steps: int = 3
    """PC inference steps per update."""
    solver: str = "adaptive"
    """PC inference solver: `adaptive` (pcastro.AdaptiveEuler, the step follows the
    measured curvature) or `euler` (pcastro.Euler with step `--dt`)."""
    dt: float = 0.3
    """Euler step size of PC inference (with `--solver euler`)."""
    ne: float = 1.0
    """Norepinephrine while learning (the store methods with a gate)."""
    tols: tuple[float, ...] = (0.0, 0.01)
    """Discard tolerances tried for the store (0: never discard)."""
    priority_alphas: tuple[float, ...] = (1.0,)
    """Priority exponents tried for the store (slots drawn in proportion to
    `(sum_r E_r) ** alpha`; 0 is uniform; backprop_per uses 0.6)."""
    gate_floors: tuple[float, ...] = (0.0,)
    """Gate floors `g0` tried for the store's astrocytes (plasticity without calcium)."""
    refresh_every: int = 50
    """Iterations between two re-measurements of every stored slot's `E_r` at the current
    network (pc_store_priority_lean)."""
    resume_steps: int = 1
    """Inference steps of a replay that continues from the stored states
    (pc_store_resume; a fresh replay runs `--inference-steps`)."""
    eval_every: int = 50
    """Iterations between two points of the learning curve (divides `iterations`)."""
    curve_images: int = 1000
    """Test images scored for the learning curve (all are scored after each context)."""
    methods: tuple[str, ...] = ()
    """Comma-separated methods to run (default all); `--methods list` lists them all
    with what they are."""
    seed: int = 0
    """Base seed: validation split, test and validation seeds derive from it."""
    devices: int | None = None
    """Devices to split the test and validation seeds over (default: all that JAX sees,
    every process's in a run over several). Each device runs ceil(seeds / devices)
    seeds; an uneven last block is padded with repeated seeds whose results are
    dropped, so the numbers equal a one-device run."""

    def __post_init__(self):
        _require_devices(self)
        _require(self, ("seeds", "val_seeds", "iterations", "batch", "replay_batch"), 1)
        _require(self, ("refresh_every", "resume_steps"), 1)
        _require(self, ("hidden", "budgets", "inference_steps", "eval_every", "curve_images"), 1)
        _require(self, ("seed", "first_test_seed"), 0)
        _require_rates(self, ("lrs", "pc_lrs"), upper=1.0)
        _require_rates(self, ("dt",), upper=10.0)
        _check_solver(self)
        if self.dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)} "
                "(digits and mnist5k need no download)."
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"`--val-fraction` must be in (0, 1), got {self.val_fraction}.")
        if self.iterations % self.eval_every:
            raise ValueError(
                f"`--eval-every` ({self.eval_every}) must divide `--iterations` "
                f"({self.iterations})."
            )
        if not self.tols or any(not (math.isfinite(t) and t >= 0) for t in self.tols):
            raise ValueError(f"`--tols` must be finite and non-negative, got {self.tols}.")
        alphas = self.priority_alphas
        if not alphas or any(not (math.isfinite(a) and a >= 0) for a in alphas):
            raise ValueError(f"`--priority-alphas` must be finite and non-negative, got {alphas}.")
        if not self.gate_floors or any(not 0.0 <= g <= 1.0 for g in self.gate_floors):
            raise ValueError(f"`--gate-floors` must lie in [0, 1], got {self.gate_floors}.")
        if not (math.isfinite(self.ne) and self.ne >= 0):
            raise ValueError(f"`--ne` must be finite and non-negative, got {self.ne!r}.")
        _check_methods(self, "continual")
