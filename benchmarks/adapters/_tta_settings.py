"""The named MNIST time-to-accuracy settings, one definition shared by every adapter.

A setting is the inference part (steps, state step size and momentum; ignored by
backprop) and the weight optimiser. `time_to_accuracy.py --setting-for LIB=NAME` runs a
library on a named setting, so two libraries can be timed on the same one:

- `pcx-paper`: the pcx benchmark paper's PC-CE MLP setting (Pinchetti et al., ICLR 2025;
  pcax `examples/s4_1_discriminative_mode/MLP/mnist`, `L_PC_CE_mnist.yaml`): 5 steps of
  sgd(0.0183, momentum 0.35) on the states; AdamW (weight decay 0.0033) on a 25-epoch
  warmup-cosine schedule peaking at 1.1 x 2.996e-4.
- `pcastro-best`: pcastro's setting chosen on validation for 98%
  (`select_tta_setting.py --grid long --family pc`, `results/tta_setting_mnist_long.json`).
- `backprop-best`: backprop's optimiser chosen on validation by the same procedure
  (`--family backprop`, `results/tta_setting_mnist_backprop.json`).
- `first-grid`: pcastro's earlier choice for 97.5% (`results/tta_setting_mnist.json`).
- `adam`: constant Adam(1e-3), the plain default.

Only the standard library here: the module is imported in every library's environment.
"""

from __future__ import annotations

from typing import Any

PCX_W_LR = 0.00029959151754717025

SETTINGS: dict[str, dict[str, Any]] = {
    "pcx-paper": {
        "steps": 5,
        "state_lr": 0.01828189494026352,
        "state_momentum": 0.35,
        "weights": "warmup-cosine",
        "lr": PCX_W_LR,
        "weight_decay": 0.003314230264294929,
        "epochs": 25,
    },
    "pcastro-best": {
        "steps": 3,
        "state_lr": 0.1,
        "state_momentum": 0.0,
        "weights": "cosine",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "epochs": 14,
    },
    "backprop-best": {
        "steps": 0,
        "weights": "cosine",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "epochs": 10,
    },
    "first-grid": {
        "steps": 3,
        "state_lr": 0.1,
        "state_momentum": 0.0,
        "weights": "cosine",
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "epochs": 5,
    },
    "adam": {"steps": 3, "state_lr": 0.1, "state_momentum": 0.0, "weights": "adam", "lr": 1e-3},
}


def get(name: str, *, pc: bool = False) -> dict[str, Any]:
    """The setting `name`; with `pc`, refused when it has no inference part."""
    if name not in SETTINGS:
        raise ValueError(f"no MNIST setting {name!r}; the named ones are {sorted(SETTINGS)}")
    if pc and not SETTINGS[name]["steps"]:
        raise ValueError(f"{name!r} is a setting for backprop only (no inference steps)")
    return SETTINGS[name]


def weight_optimizer(optax, name: str, epoch_steps: int):
    """The setting's optimiser for the weights (`optax` passed in: each environment's own)."""
    return optimizer_of(optax, get(name), epoch_steps)


def optimizer_of(optax, s: dict[str, Any], epoch_steps: int):
    """The weight optimiser a setting dict describes (`weights`: `adam`, `cosine` or
    `warmup-cosine`; `lr`, and `weight_decay` and `epochs` for the schedules)."""
    if s["weights"] == "adam":
        return optax.adam(s["lr"])
    total = s["epochs"] * epoch_steps
    if s["weights"] == "cosine":  # decayed to a tenth, then held there
        schedule = optax.cosine_decay_schedule(s["lr"], total, alpha=0.1)
    else:
        schedule = optax.warmup_cosine_decay_schedule(
            init_value=s["lr"],
            peak_value=1.1 * s["lr"],
            warmup_steps=int(0.1 * total),
            decay_steps=total,
            end_value=0.1 * s["lr"],
        )
    return optax.adamw(schedule, weight_decay=s["weight_decay"])


def describe_weights(name: str) -> str:
    s = get(name)
    if s["weights"] == "adam":
        return f"Adam({s['lr']:g})"
    if s["weights"] == "cosine":
        return (
            f"AdamW({s['lr']:g}, wd {s['weight_decay']:g}, cosine to {s['lr'] / 10:g} over "
            f"{s['epochs']} epochs)"
        )
    return (
        f"AdamW(warmup-cosine peak {1.1 * s['lr']:.3g} over {s['epochs']} epochs, "
        f"wd {s['weight_decay']:.3g})"
    )


def describe_states(name: str) -> str:
    s = get(name)
    momentum = f", momentum {s['state_momentum']:g}" if s["state_momentum"] else ""
    return f"{s['steps']} steps of sgd({s['state_lr']:.4g}{momentum}) on the states"


def describe(name: str, *, backprop: bool = False) -> str:
    words = describe_weights(name)
    if backprop or not get(name)["steps"]:  # backprop, or a setting for backprop only
        return f"{name}: {words}"
    return f"{name}: {describe_states(name)}; {words}"
