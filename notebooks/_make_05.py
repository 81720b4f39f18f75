"""Defines 05_depth.ipynb (kept beside it so the notebook's source is reviewable).

Run it to execute the notebook and store it with its outputs (`_execute.py`)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Depth: training deep predictive-coding networks with μPC\n\n"
        "Standard predictive coding stops learning as networks get deep. μPC (Innocenti, "
        "Achour & Buckley, NeurIPS 2025) is the Depth-μP parametrisation applied to PC: "
        "weights drawn from N(0, 1), and the width and depth moved into the forward pass "
        "(`1/sqrt(D)` on the first layer, `1/sqrt(N L)` on every residual branch, `1/N` on "
        "the read-out). Here we (1) look at what it does to the activations at "
        "initialisation, (2) train residual networks of growing depth on the digits with "
        "standard PC, μPC and backprop on the same modules, and (3) show the recorded "
        "full-MNIST benchmark (`benchmarks/depth.py`, 8 to 128 layers)."
    ),
    nbf.v4.new_code_cell(
        "import json\n"
        "from pathlib import Path\n\n"
        "import equinox as eqx\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import optax\n\n"
        "import pcastro as pc\n"
        "from pcastro.baselines import backprop_step\n"
        "from pcastro.data import load_dataset"
    ),
    nbf.v4.new_markdown_cell(
        "## Activations at initialisation\n\n"
        "The same residual graph (`pc.residual_mlp`: an identity skip around every hidden "
        "layer but the first), 128 layers of width 128, under the two parametrisations. "
        "The feedforward pass that initialises PC's states keeps its scale under μPC; "
        "under the standard parametrisation each residual branch adds its own variance and "
        "the states grow with depth, so the errors and the energy do too."
    ),
    nbf.v4.new_code_cell(
        "x = jax.random.normal(jax.random.key(0), (64, 784))\n"
        "plt.figure(figsize=(5, 3))\n"
        "for param in (pc.MuPC(), pc.Standard()):\n"
        "    net = pc.residual_mlp(in_size=784, width=128, depth=128, out_size=10,\n"
        "                          key=jax.random.key(1), parametrisation=param)\n"
        "    state = pc.init_state(net, x)\n"
        "    rms = [float(jnp.sqrt(jnp.mean(z ** 2))) for z in state.x[1:]]\n"
        "    plt.semilogy(range(1, 129), rms, label=type(param).__name__)\n"
        "plt.xlabel('layer'); plt.ylabel('RMS state at init'); plt.legend(); plt.tight_layout(); plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## Accuracy against depth on the digits\n\n"
        "Residual networks of 4 to 32 layers (width 32) on the 8x8 digits, standardised; a "
        "squared-error output on one-hot labels; batch 64; as many Euler inference steps "
        "as the network has layers; Adam on the weights. The settings are μPC's reference "
        "ones (`pc.MuPC().learning_rate` and `pc.MuPC().inference_dt(batch)`) for both PC "
        "parametrisations, and for backprop on the μPC network; the standard "
        "parametrisation gets a learning rate suited to it (1e-3). The full benchmark "
        "selects every setting on validation data."
    ),
    nbf.v4.new_code_cell(
        "data = load_dataset('digits')\n"
        "mean, std = data.x_train.mean(), data.x_train.std()\n"
        "x_train, x_test = (data.x_train - mean) / std, (data.x_test - mean) / std\n"
        "batch, iters, width = 64, 150, 32\n"
        "order = np.random.default_rng(0).permutation(np.tile(np.arange(len(x_train)), 7))\n"
        "idx = order[: iters * batch].reshape(iters, batch)\n"
        "xb, yb = x_train[idx], np.eye(10, dtype=np.float32)[data.y_train[idx]]\n\n"
        "def train(depth, param, method, lr):\n"
        "    net = pc.residual_mlp(in_size=64, width=width, depth=depth, out_size=10,\n"
        "                          key=jax.random.key(0), parametrisation=param)\n"
        "    opt = optax.adam(lr)\n"
        "    params, static = eqx.partition(net, eqx.is_inexact_array)\n"
        "    solver = pc.Euler(dt=pc.MuPC().inference_dt(batch))\n\n"
        "    @jax.jit\n"
        "    def fit(params, opt_state):\n"
        "        def body(carry, b):\n"
        "            net = eqx.combine(carry[0], static)\n"
        "            if method == 'pc':\n"
        "                net, s, _ = pc.train_step(net, carry[1], b[0], b[1], optimizer=opt,\n"
        "                                          solver=solver, steps=depth, throw=False)\n"
        "            else:\n"
        "                net, s, _ = backprop_step(net, carry[1], b[0], b[1], optimizer=opt)\n"
        "            return (eqx.filter(net, eqx.is_inexact_array), s), None\n"
        "        return jax.lax.scan(body, (params, opt_state), (xb, yb))[0][0]\n\n"
        "    params = fit(params, opt.init(params))\n"
        "    return float(pc.accuracy(eqx.combine(params, static), x_test, data.y_test))\n\n"
        "depths = [4, 8, 16, 32]\n"
        "methods = {\n"
        "    'PC, standard': (pc.Standard(), 'pc', 1e-3),\n"
        "    'PC, μPC': (pc.MuPC(), 'pc', pc.MuPC().learning_rate),\n"
        "    'backprop, μP': (pc.MuPC(), 'bp', pc.MuPC().learning_rate),\n"
        "}\n"
        "results = {name: [train(d, *spec) for d in depths] for name, spec in methods.items()}\n"
        "plt.figure(figsize=(5, 3))\n"
        "for name, accs in results.items():\n"
        "    plt.plot(depths, accs, marker='o', label=name)\n"
        "plt.xscale('log', base=2); plt.xticks(depths, depths); plt.ylim(0, 1)\n"
        "plt.xlabel('depth (weight layers)'); plt.ylabel('digits test accuracy'); plt.legend(); plt.tight_layout(); plt.show()\n"
        "print({name: [round(a, 3) for a in accs] for name, accs in results.items()})\n"
        "assert results['PC, μPC'][-1] > 0.8  # a 32-layer μPC network learns the digits"
    ),
    nbf.v4.new_markdown_cell(
        "## The recorded full-MNIST benchmark\n\n"
        "`python benchmarks/depth.py --data-dir DATA` trains widths-128 ReLU residual "
        "networks of 8, 32, 64 and 128 layers on full MNIST for 900 iterations, each "
        "setting chosen on a validation split at depth 8 and transferred to every depth. "
        "Its figure and table are in `benchmarks/results/depth_mnist/` (and the README); "
        "when the file is there, this cell draws accuracy against depth from it."
    ),
    nbf.v4.new_code_cell(
        "# The recorded runs live in the source checkout, beside the package.\n"
        "path = Path(pc.__file__).resolve().parents[1] / 'benchmarks' / 'results' / 'depth_mnist' / 'results.json'\n"
        "if path.exists():\n"
        "    recorded = json.loads(path.read_text())\n"
        "    plt.figure(figsize=(5, 3))\n"
        "    for m in recorded['methods']:\n"
        "        rows = [r for r in recorded['table'] if m in r]\n"
        "        plt.errorbar([r['depth'] for r in rows], [r[m]['mean'] for r in rows],\n"
        "                     yerr=[r[m]['ci95'] or 0 for r in rows], marker='o', capsize=3, label=m)\n"
        "    plt.xscale('log', base=2); plt.ylim(0, 1); plt.legend(fontsize=8)\n"
        "    plt.xlabel('depth'); plt.ylabel('MNIST test accuracy'); plt.tight_layout(); plt.show()\n"
        "else:\n"
        "    print('run benchmarks/depth.py to record the full-MNIST benchmark')"
    ),
]
nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
path = Path(__file__).with_name("05_depth.ipynb")

if __name__ == "__main__":
    from _execute import write_executed  # this folder is on sys.path when run as a script

    write_executed(nb, path)
