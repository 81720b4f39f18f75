"""Draw the figures of the Concepts pages into docs/figures/ (small PNGs, committed).

    python docs/_figures.py

Every curve comes from pcastro itself on small problems (sklearn's digits or random data),
so a figure that no longer matches the code shows up as a changed PNG. Runs in about a
minute on a laptop CPU.
"""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import pcastro as pc  # noqa: E402
from pcastro import astro  # noqa: E402
from pcastro.baselines import backprop_loss  # noqa: E402
from pcastro.data import load_dataset  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"
DPI = 90
plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def _save(fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(OUT / name, dpi=DPI)
    plt.close(fig)
    print("wrote", OUT / name)


def _params(net):
    return eqx.filter(net, eqx.is_inexact_array)


def clamp_modes() -> None:
    """State and error neurons of a three-node chain under the three clamp modes."""
    modes = {
        "discriminative": ("clamped", "free", "clamped"),
        "generative": ("free", "free", "clamped"),
        "associative recall": ("partial", "free", "clamped"),
    }
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    for ax, (title, clamps) in zip(axes, modes.items()):
        for level, clamp in enumerate(clamps):
            y = level * 1.2
            face = {"clamped": "tab:blue", "free": "white", "partial": "white"}[clamp]
            hatch = "////" if clamp == "partial" else None
            ax.add_patch(
                plt.Circle((0, y), 0.28, fc=face, ec="tab:blue", lw=1.5, hatch=hatch, zorder=3)
            )
            ax.text(-0.5, y, f"$x_{level}$", ha="right", va="center")
            if level > 0:
                ax.add_patch(
                    plt.Rectangle((0.55, y - 0.2), 0.4, 0.4, fc="white", ec="tab:red", lw=1.5)
                )
                ax.text(1.05, y, f"$e_{level}$", ha="left", va="center", color="tab:red")
                ax.annotate(
                    "",
                    xy=(0.55, y - 0.05),
                    xytext=(0.2, y - 1.0),
                    arrowprops={"arrowstyle": "->", "color": "0.4"},
                )
                ax.text(0.45, y - 0.65, f"$\\mu_{level}$", color="0.4", fontsize=8)
                ax.plot([0.28, 0.55], [y, y], color="tab:red", lw=1)
        ax.set_title(title)
        ax.set_xlim(-1.0, 1.6)
        ax.set_ylim(-0.5, 2.9)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.text(
        0.5,
        0.02,
        "filled: clamped   open: free   hatched: partly clamped   squares: error neurons",
        ha="center",
        fontsize=8,
    )
    _save(fig, "clamp-modes.png")


def inference(data) -> None:
    """The energy falls during inference, for several solvers."""
    net = pc.mlp([64, 128, 10], key=jax.random.key(0))
    state = pc.init_state(net, data.x_train[:64], data.y_train[:64])
    solvers = {
        "Euler(dt=0.05)": pc.Euler(dt=0.05),
        "Euler(dt=0.1)": pc.Euler(dt=0.1),
        "Euler(dt=0.2)": pc.Euler(dt=0.2),
        "OptaxSolver(sgd(0.05, momentum=0.9))": pc.OptaxSolver(optax.sgd(0.05, momentum=0.9)),
    }
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    for label, solver in solvers.items():
        sol = pc.infer(net, state, solver=solver, steps=40, trace=True)
        ax.plot(np.asarray(sol.energies), label=label)
    ax.set_xlabel("inference step")
    ax.set_ylabel("mean free energy $F$")
    ax.set_title("inference relaxes the hidden states")
    ax.legend(fontsize=7, frameon=False)
    _save(fig, "inference.png")


def learning() -> None:
    """PC weight gradients at the fixed-prediction limit against backprop's."""
    with jax.enable_x64(True):
        key1, key2 = jax.random.split(jax.random.key(1))
        net = pc.mlp([8, 16, 16, 4], key=key1, dtype=jnp.float64)
        x = jax.random.normal(key2, (16, 8), dtype=jnp.float64)
        y = jnp.arange(16) % 4
        start = pc.init_state(net, x, y)
        fixed = pc.infer(net, start, solver=pc.Euler(dt=1.0), steps=10, fixed_predictions=True)
        free = pc.infer(net, start, solver=pc.Euler(dt=0.2), steps=50)
        bp = jax.tree_util.tree_leaves(eqx.filter_grad(backprop_loss)(net, x, y))
        fixed_g = jax.tree_util.tree_leaves(pc.param_grads(net, fixed.state, reference=start))
        free_g = jax.tree_util.tree_leaves(pc.param_grads(net, free.state))
        flat = lambda leaves: np.concatenate([np.ravel(v) for v in leaves])  # noqa: E731
    fig, ax = plt.subplots(figsize=(3.6, 3.3))
    b = flat(bp)
    ax.scatter(b, flat(free_g), s=6, alpha=0.5, label="free predictions, 50 steps")
    ax.scatter(b, flat(fixed_g), s=6, alpha=0.8, label="fixed predictions")
    lim = np.abs(b).max() * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="0.5", lw=0.8)
    ax.set_xlabel("backprop gradient")
    ax.set_ylabel("PC local gradient")
    ax.set_title("every weight of a 8-16-16-4 MLP")
    ax.legend(fontsize=7, frameon=False)
    _save(fig, "learning.png")


def astrocyte_dynamics() -> None:
    """The drive s(E - theta), the gate g(c), and calcium under a pulse of NE."""
    hyper = dict(theta=0.5, slope=2.0, g0=0.0, c_half=0.1, tau_c=10.0, dt=1.0)
    a = astro.Astrocytes(**hyper)
    energies = jnp.linspace(0.0, 2.0, 200)
    calcium = jnp.linspace(0.0, 1.0, 200)
    fig, axes = plt.subplots(1, 3, figsize=(8.0, 2.7))
    axes[0].plot(energies, a.drive(energies))
    axes[0].axvline(0.5, color="0.6", ls=":", lw=1)
    axes[0].set_xlabel("region energy $E_r$")
    axes[0].set_title(r"drive $s(E_r - \theta_r)$, $\theta_r = 0.5$")
    for g0 in (0.0, 0.2):
        gated = astro.Astrocytes(g0=g0, c_half=0.1)
        axes[1].plot(calcium, gated.gate(calcium), label=f"$g_0$ = {g0}")
    axes[1].set_xlabel("calcium $c_r$")
    axes[1].set_title("gate $g(c_r)$")
    axes[1].legend(fontsize=7, frameon=False)
    ne = jnp.where((jnp.arange(60) >= 10) & (jnp.arange(60) < 30), 1.0, 0.0)
    for label, cells, energy in (
        ("$E_r$ = 1.5 (above threshold)", a, 1.5),
        ("$E_r$ = 0.3 (below threshold)", a, 0.3),
        ("ablated, $E_r$ = 1.5", astro.Astrocytes(**hyper, ablated=True), 1.5),
    ):
        c = jnp.zeros((1,))
        trace = []
        for n in ne:
            c = cells.step(c, jnp.full((1,), energy), n)
            trace.append(float(cells.gate(c)[0]))
        axes[2].plot(trace, label=label)
    axes[2].fill_between(range(60), 0, np.asarray(ne) * 1.05, color="0.9", zorder=0)
    axes[2].set_xlabel("update (NE on while shaded)")
    axes[2].set_title("gate under a pulse of NE")
    axes[2].set_ylim(0, 1.08)
    axes[2].legend(fontsize=6, frameon=False, loc="center right")
    _save(fig, "astrocytes.png")


def interruption(data) -> None:
    """The interruption invariant: recall continues exactly; a restart does not."""
    net = pc.mlp([64, 32, 10], key=jax.random.key(2))
    regions = astro.make_regions(net)
    optimizer = optax.sgd(0.05)
    opt_state = optimizer.init(_params(net))
    x_a, y_a = data.x_train[:16], data.y_train[:16]
    x_b, y_b = data.x_train[16:32], data.y_train[16:32]
    total, k = 40, 15

    def run(net, state, steps, opt_state):
        return pc.incremental_step(
            net, opt_state, state, optimizer=optimizer, steps=steps, trace=True
        )

    _, _, full = run(net, pc.init_state(net, x_a, y_a), total, opt_state)
    part_net, part_opt, part = run(net, pc.init_state(net, x_a, y_a), k, opt_state)
    store = astro.make_store(net, regions, capacity=32)
    store, evicted = astro.snapshot(store, part.state, step=k)
    b = pc.infer(part_net, pc.init_state(part_net, x_b, y_b), steps=20)
    store, _ = astro.snapshot(store, b.state, step=20)
    slots = jnp.flatnonzero(jnp.isin(store.ids, evicted.new_ids), size=16)
    _, _, resumed = run(part_net, astro.recall(store, slots, net=part_net), total - k, part_opt)
    _, _, restarted = run(part_net, pc.init_state(part_net, x_a, y_a), total - k, part_opt)
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    steps = np.arange(total)
    ax.plot(steps, full.energies, lw=3, alpha=0.4, label="A without interruption")
    ax.plot(steps[:k], part.energies, color="tab:orange", label="A, first part")
    ax.plot(
        steps[k:], resumed.energies, "--", color="tab:orange", label="A recalled from the store"
    )
    ax.plot(steps[k:], restarted.energies, ":", color="tab:red", label="A restarted without store")
    ax.axvline(k, color="0.6", lw=0.8)
    ax.text(k + 0.5, 0.02, "B processed here", fontsize=7, va="bottom")
    ax.set_xlabel("iPC step (inference + weight update)")
    ax.set_ylabel("mean energy of A")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    _save(fig, "interruption.png")


def consolidation(data) -> None:
    """Consolidation with the gate under NE, without NE, and plain replay."""
    net = pc.mlp([64, 32, 10], key=jax.random.key(3))
    regions = astro.make_regions(net)
    x, y = data.x_train[:24], data.y_train[:24]
    state = pc.infer(net, pc.init_state(net, x, y), steps=20).state
    store, _ = astro.snapshot(astro.make_store(net, regions, capacity=24), state, step=20)
    cells = astro.Astrocytes(theta=0.05, g0=0.0, c_half=0.1, tau_c=5.0)
    gated = optax.chain(optax.sgd(0.05), astro.scale_by_astrocytes(cells, regions))
    plain = optax.sgd(0.05)
    runs = {
        "gate, NE = 1": (gated, 1.0),
        "gate, NE = 0": (gated, 0.0),
        "plain replay (no gate)": (plain, None),
    }
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    for label, (optimizer, ne) in runs.items():
        opt_state = optimizer.init(_params(net))
        _, _, left, report = astro.consolidate(
            net, opt_state, store, optimizer=optimizer, ne=ne, steps=10, rounds=12, tol=0.02
        )
        ax.plot(np.arange(1, 13), report.energy, marker="o", ms=3, label=label)
    ax.set_xlabel("consolidation round")
    ax.set_ylabel(r"mean $\sum_r E_r$ of replayed slots")
    ax.set_title("24 stored digits replayed by priority")
    ax.legend(fontsize=7, frameon=False)
    _save(fig, "consolidation.png")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    data = load_dataset("digits")
    clamp_modes()
    inference(data)
    learning()
    astrocyte_dynamics()
    interruption(data)
    consolidation(data)


if __name__ == "__main__":
    main()
