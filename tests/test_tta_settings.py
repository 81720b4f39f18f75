"""The named time-to-accuracy settings are the ones the recorded selections chose, and
every adapter builds them."""

import json
import sys
from pathlib import Path

import optax
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "adapters"))

import _tta_settings as settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


@pytest.mark.parametrize(
    "name, record",
    [
        ("pcastro-best", "tta_setting_mnist_long.json"),
        ("backprop-best", "tta_setting_mnist_backprop.json"),
    ],
)
def test_best_settings_are_the_recorded_selections(name, record):
    selected = json.loads((RESULTS / record).read_text())["selected"]
    chosen = settings.get(name)
    assert selected["lr"] == chosen["lr"]
    assert selected["steps"] == chosen["steps"]
    assert f"wd {chosen['weight_decay']:g}" in selected["optimizer"]
    assert f"over {chosen['epochs']} epochs" in selected["optimizer"]
    if chosen["steps"]:
        assert selected["dt"] == chosen["state_lr"] and not chosen["state_momentum"]


def test_first_grid_is_the_earlier_selection():
    selected = json.loads((RESULTS / "tta_setting_mnist.json").read_text())["selected"]
    chosen = settings.get("first-grid")
    assert (selected["lr"], selected["steps"]) == (chosen["lr"], chosen["steps"])
    assert f"over {chosen['epochs']} epochs" in selected["optimizer"]


@pytest.mark.parametrize("name", sorted(settings.SETTINGS))
def test_every_setting_builds_its_optimiser(name):
    import jax.numpy as jnp

    opt = settings.weight_optimizer(optax, name, epoch_steps=10)
    params = {"w": jnp.ones(3)}
    updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
    assert jnp.all(jnp.isfinite(updates["w"])) and jnp.all(updates["w"] < 0)
    assert name in settings.describe(name)


def test_schedules():
    # cosine: lr to lr/10 over the epochs, then held; warmup-cosine: 10% warmup to 1.1 x lr
    s = settings.get("pcastro-best")
    sched = optax.cosine_decay_schedule(s["lr"], s["epochs"] * 10, alpha=0.1)
    assert float(sched(0)) == pytest.approx(s["lr"])
    assert float(sched(s["epochs"] * 10 + 5)) == pytest.approx(s["lr"] / 10)
    with pytest.raises(ValueError, match="no MNIST setting"):
        settings.get("nope")


def test_a_pc_library_refuses_a_backprop_only_setting():
    with pytest.raises(ValueError, match="backprop only"):
        settings.get("backprop-best", pc=True)
    assert settings.get("pcastro-best", pc=True)["steps"] == 3
