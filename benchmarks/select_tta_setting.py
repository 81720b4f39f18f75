"""Choose pcastro's setting for `time_to_accuracy.py` on a validation split of the
training data (never the test images).

    python benchmarks/select_tta_setting.py --json benchmarks/results/tta_setting.json
    python benchmarks/select_tta_setting.py --workload mnist --data-dir DIR \
        --json benchmarks/results/tta_setting_mnist.json

With `--full-curves` every candidate trains for `--max-epochs` and its validation curve is
kept, so the choice can be re-read at another target (`--target`).

The training split is split again, stratified (random_state=1), into fit and validation
images: 80/20 for digits (the 80% of sklearn's digits every benchmark trains on), 50,000 /
10,000 for MNIST (pixels rescaled to [-1, 1] as in `time_to_accuracy.py`). For each
candidate the workload's MLP (64-256-256-10 tanh, batch 64; or 784-128-128-128-10 GELU,
batch 128) trains on the fit images until the validation accuracy reaches the target
(95% / 98%); the candidate with the least work wins: median epochs over the seeds times
(inference steps + 1), the matrix-product passes per update (ties: fewer inference steps,
then smaller learning rate). Candidates that miss the target on any seed within
`--max-epochs` are out.

Candidates: digits, every (output energy, inference steps, Adam learning rate) of
{Gaussian, cross-entropy} x {3, 5, 10, 20} x {1e-3, 3e-3} with Euler(dt=0.1). MNIST, a
cross-entropy output (the only one that reached 95% on digits) with 3 Euler steps of size
0.1 (3 is the fewest that reach the first layer's weights from a feedforward start; a
step of 0.5 stayed near 80% test accuracy in a smoke run) and Adam(1e-3), or AdamW with a
cosine decay to a tenth (weight decay 1e-4; peak 1e-3 or 3e-3 over 5 or 8 epochs, since
constant Adam(1e-3) levels off near 97.3% validation accuracy); 5 steps with the 3e-3
schedule; and incremental PC (weights updated at every inference step,
`pcastro.incremental_step`) with 3 steps and the 1e-3 schedule.

`--grid long` (MNIST, for 98%): AdamW (weight decay 1e-4) with a cosine decay to a tenth
over 10 or 14 epochs, peak 1e-3, 2e-3 or 3e-3, and constant Adam(1e-3); `--family pc`
adds the pcx paper's setting (5 steps of SGD with momentum on the states, its AdamW
schedule) and runs 3 Euler steps of 0.1 otherwise; `--family backprop` trains the same
MLP (identity top, softmax cross-entropy on the logits, batch mean) by backprop on the same
grid, so both are chosen by one procedure. The choices are the named settings
`pcastro-best` and `backprop-best` of `benchmarks/adapters/_tta_settings.py`.

    python benchmarks/select_tta_setting.py --workload mnist --grid long --family pc \
        --seeds 3 --max-epochs 16 --full-curves --target 0.98 \
        --json benchmarks/results/tta_setting_mnist_long.json
"""

import argparse
import dataclasses
import itertools
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# After benchmarks/, whose own `_common` must win.
sys.path.append(str(Path(__file__).resolve().parent / "adapters"))

import _tta_settings as settings  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _common import environment, write_json  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import pcastro as pc  # noqa: E402
from pcastro.data import load_dataset  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Candidate:
    ce: bool
    steps: int
    lr: float
    dt: float = 0.1
    incremental: bool = False
    cosine_epochs: int | None = None  # AdamW, lr decayed to lr/10 over this many epochs
    weight_decay: float = 1e-4
    family: str = "pc"  # "pc" (pcastro's train_step) or "backprop" (the same MLP by backprop)
    pcx_paper: bool = False  # the pcx paper's PC-CE setting (pcastro_lib.py --setting pcx-paper)

    def row(self) -> dict:
        if self.pcx_paper:
            return {
                "family": self.family,
                "output_energy": "cross-entropy",
                "steps": PCX["steps"],
                "dt": PCX["state_lr"],
                "lr": PCX["lr"],
                "solver": f"OptaxSolver(sgd, momentum {PCX['state_momentum']:g})",
                "optimizer": f"adamw(wd {PCX['weight_decay']:.5f}), pcx paper's "
                f"{PCX['epochs']}-epoch warmup-cosine",
            }
        return {
            "family": self.family,
            "output_energy": "cross-entropy" if self.ce else "gaussian",
            "steps": self.steps,
            "dt": self.dt,
            "lr": self.lr,
            # the label recorded in results/tta_setting_mnist.json
            "solver": "IncrementalPC(Euler)" if self.incremental else "Euler",
            "optimizer": "adam"
            if self.cosine_epochs is None
            else f"adamw(wd {self.weight_decay:g}), cosine to lr/10 over {self.cosine_epochs} "
            "epochs",
        }

    def optimizer(self, epoch_steps: int):
        """The weight optimiser, built as the adapters build a named setting's."""
        if self.pcx_paper:
            return settings.optimizer_of(optax, PCX, epoch_steps)
        described = {"weights": "adam", "lr": self.lr}
        if self.cosine_epochs is not None:
            described.update(
                weights="cosine", weight_decay=self.weight_decay, epochs=self.cosine_epochs
            )
        return settings.optimizer_of(optax, described, epoch_steps)

    def solver(self):
        if self.pcx_paper:
            return pc.OptaxSolver(optax.sgd(PCX["state_lr"], momentum=PCX["state_momentum"]))
        return pc.Euler(dt=self.dt)


# The pcx benchmark paper's PC-CE MLP setting (the one benchmarks/adapters/pcx_lib.py runs).
PCX = settings.get("pcx-paper")

# Longer schedules for the 98% target (`--grid long`): the first grid's curves level off
# near 97.8% validation accuracy by epoch 9. Every family gets the same optimiser grid.
LONG_SCHEDULES = [
    (lr, epochs, wd) for lr in (1e-3, 2e-3, 3e-3) for epochs in (10, 14) for wd in (1e-4,)
]


def long_grid(family: str) -> list[Candidate]:
    steps = 3 if family == "pc" else 0
    grid = [
        Candidate(ce=True, steps=steps, lr=lr, cosine_epochs=e, weight_decay=wd, family=family)
        for lr, e, wd in LONG_SCHEDULES
    ]
    grid.append(Candidate(ce=True, steps=steps, lr=1e-3, family=family))
    if family == "pc":
        grid.append(Candidate(ce=True, steps=PCX["steps"], lr=PCX["lr"], pcx_paper=True))
    return grid


WORKLOADS = {
    "digits": {
        "sizes": [64, 256, 256, 10],
        "activation": jax.nn.tanh,
        "batch": 64,
        "target": 0.95,
        "candidates": [
            Candidate(ce=ce, steps=steps, lr=lr)
            for ce, steps, lr in itertools.product((False, True), (3, 5, 10, 20), (1e-3, 3e-3))
        ],
    },
    "mnist": {
        "sizes": [784, 128, 128, 128, 10],
        "activation": jax.nn.gelu,
        "batch": 128,
        "target": 0.98,
        "candidates": [
            Candidate(ce=True, steps=3, dt=0.1, lr=1e-3),
            Candidate(ce=True, steps=3, dt=0.1, lr=3e-3, cosine_epochs=8),
            Candidate(ce=True, steps=3, dt=0.1, lr=3e-3, cosine_epochs=5),
            Candidate(ce=True, steps=3, dt=0.1, lr=1e-3, cosine_epochs=8),
            Candidate(ce=True, steps=5, dt=0.1, lr=3e-3, cosine_epochs=8),
            Candidate(ce=True, steps=3, dt=0.1, lr=1e-3, cosine_epochs=8, incremental=True),
        ],
    },
}


def validation_curve(x_fit, y_fit, x_val, y_val, candidate, *, workload, seed, max_epochs, stop):
    """Validation accuracy after every epoch, up to `max_epochs` or until it reaches `stop`
    (a target accuracy, or None to run every epoch)."""
    spec = WORKLOADS[workload]
    net = pc.mlp(
        spec["sizes"],
        key=jax.random.key(seed),
        activation=spec["activation"],
        # backprop reads the logits of the same MLP (an identity top node)
        output_energy=pc.CrossEntropy() if candidate.ce and candidate.family == "pc" else None,
    )
    batch = spec["batch"]
    nb = len(x_fit) // batch
    opt = candidate.optimizer(nb)
    solver = candidate.solver()
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def backprop_step(net, opt_state, x, y):
        def loss(p):
            logits = pc.predict(eqx.combine(p, static), x)  # identity top: the logits
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        p = eqx.filter(net, eqx.is_inexact_array)
        updates, opt_state = opt.update(jax.grad(loss)(p), opt_state, p)
        return eqx.combine(optax.apply_updates(p, updates), static), opt_state, None

    def step(net, opt_state, x, y):
        if candidate.family == "backprop":
            return backprop_step(net, opt_state, x, y)
        kwargs = dict(optimizer=opt, solver=solver, steps=candidate.steps, throw=False)
        if candidate.incremental:
            return pc.incremental_step(net, opt_state, pc.init_state(net, x, y), **kwargs)
        return pc.train_step(net, opt_state, x, y, **kwargs)

    @jax.jit
    def epoch(params, opt_state, xs, ys):
        def body(carry, b):
            p, s = carry
            n, s, _ = step(eqx.combine(p, static), s, b[0], b[1])
            return (eqx.filter(n, eqx.is_inexact_array), s), None

        return jax.lax.scan(body, (params, opt_state), (xs, ys))[0]

    acc = jax.jit(lambda p: pc.accuracy(eqx.combine(p, static), x_val, y_val))
    opt_state = opt.init(params)
    rng = np.random.default_rng(seed)
    curve = []
    for _ in range(max_epochs):
        perm = rng.permutation(len(x_fit))[: nb * batch]
        params, opt_state = epoch(
            params,
            opt_state,
            jnp.asarray(x_fit[perm].reshape(nb, batch, -1)),
            jnp.asarray(y_fit[perm].reshape(nb, batch)),
        )
        curve.append(float(acc(params)))
        if stop is not None and curve[-1] >= stop:
            break
    return curve


def epochs_to(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, a in enumerate(curve) if a >= target), None)


def load_split(workload: str, data_dir):
    if workload == "digits":
        data = load_dataset("digits")
        x, y = data.x_train, data.y_train
        test_size = 0.2
    else:
        data = load_dataset("mnist", data_dir=data_dir)
        x = 2.0 * np.asarray(data.x_train, np.float32).reshape(len(data.x_train), -1) - 1.0
        y = np.asarray(data.y_train)
        test_size = 10_000
    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=1)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="digits")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (else PCASTRO_DATA)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument(
        "--target", type=float, default=None, help="validation target (default 0.95 / 0.98)"
    )
    parser.add_argument(
        "--reread",
        default=None,
        help="re-select from the curves of an earlier --full-curves JSON at --target, "
        "without training",
    )
    parser.add_argument(
        "--full-curves",
        action="store_true",
        help="train every candidate for --max-epochs (no stop at the target), so the curves "
        "can be re-read at another target",
    )
    parser.add_argument(
        "--grid",
        choices=("first", "long"),
        default="first",
        help="mnist: the first grid (schedules up to 8 epochs) or the long one (cosine over "
        "10 or 14 epochs, peak 1e-3/2e-3/3e-3; constant Adam; pcx's setting for pc)",
    )
    parser.add_argument(
        "--family",
        choices=("pc", "backprop"),
        default="pc",
        help="with --grid long: select pcastro's PC setting or backprop's on the same MLP",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.grid == "long" and args.workload != "mnist":
        raise SystemExit("--grid long is for --workload mnist")
    candidates = (
        long_grid(args.family) if args.grid == "long" else WORKLOADS[args.workload]["candidates"]
    )
    target = WORKLOADS[args.workload]["target"] if args.target is None else args.target
    if args.reread:
        earlier = json.loads(Path(args.reread).read_text())
        rows = earlier["candidates"]
        best = select(rows, target)
        print("selected:", best)
        if args.json:
            write_json(
                args.json,
                {
                    **earlier,
                    "reread": {**environment(), "config": vars(args)},
                    "target": target,
                    "selected": best,
                },
            )
        return
    x_fit, x_val, y_fit, y_val = load_split(args.workload, args.data_dir)
    rows = []
    for candidate in candidates:
        curves = [
            validation_curve(
                x_fit,
                y_fit,
                x_val,
                y_val,
                candidate,
                workload=args.workload,
                seed=s,
                max_epochs=args.max_epochs,
                stop=None if args.full_curves else target,
            )
            for s in range(args.seeds)
        ]
        rows.append({**candidate.row(), "val_acc_curves": curves})
        print(rows[-1], flush=True)
    best = select(rows, target)
    print("selected:", best)
    if args.json:
        write_json(
            args.json,
            {
                **environment(),
                "config": vars(args),
                "target": target,
                "candidates": rows,
                "selected": best,
            },
        )


def select(rows: list[dict], target: float) -> dict | None:
    """Fill in epochs to `target` per seed and their median; return the least-work row."""
    for row in rows:
        eps = [epochs_to(c, target) for c in row["val_acc_curves"]]
        reached = [e for e in eps if e is not None]
        row["epochs"] = eps
        row["median_epochs"] = statistics.median(reached) if len(reached) == len(eps) else None
    ok = [r for r in rows if r["median_epochs"] is not None]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["median_epochs"] * (r["steps"] + 1), r["steps"], r["lr"]))


if __name__ == "__main__":
    main()
