"""Writes 01_quickstart.ipynb (kept beside it so the notebook's source is reviewable)."""

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# pcastro quickstart\n\n"
        "Compose a predictive-coding network from Equinox modules, relax its states by "
        "inference, and learn scikit-learn's 8x8 digits with local learning rules, beside "
        "backprop on the very same modules.\n\n"
        "Every unit is a **state neuron** `x_l` paired with an **error neuron** "
        "`e_l = x_l - mu_l`, where `mu_l = f_l(x_{l-1})` is the prediction from the layer "
        "below. Inference descends the energy `F = sum_l 1/2 ||e_l||^2` over the free "
        "states; learning then changes each layer's weights from its own error and input."
    ),
    nbf.v4.new_code_cell(
        "import equinox as eqx\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import optax\n\n"
        "import pcastro as pc\n"
        "from pcastro.baselines import backprop_step\n"
        "from pcastro.data import load_dataset\n\n"
        "data = load_dataset('digits')  # 1,797 real 8x8 digits shipped inside scikit-learn\n"
        "print(data.x_train.shape, data.x_test.shape)"
    ),
    nbf.v4.new_markdown_cell(
        "## Compose a network from Equinox modules\n\n"
        "Each `pc.Node` wraps any Equinox module (or callable) plus an activation. The top "
        "node uses a cross-entropy energy, so its prediction is a softmax."
    ),
    nbf.v4.new_code_cell(
        "k1, k2 = jax.random.split(jax.random.key(0))\n"
        "net = pc.Network(\n"
        "    [\n"
        "        pc.Node(eqx.nn.Linear(64, 128, key=k1), activation=jax.nn.tanh),\n"
        "        pc.Node(eqx.nn.Linear(128, 10, key=k2), energy=pc.CrossEntropy()),\n"
        "    ],\n"
        "    input_shape=(64,),\n"
        ")\n"
        "net.shapes"
    ),
    nbf.v4.new_markdown_cell(
        "## Inference\n\n"
        "Clamp an input batch and its labels, start the hidden states at the feedforward "
        "pass, and relax them. The energy falls step by step."
    ),
    nbf.v4.new_code_cell(
        "x, y = data.x_train[:32], data.y_train[:32]\n"
        "state = pc.init_state(net, x, y)\n"
        "sol = pc.infer(net, state, solver=pc.Euler(dt=0.1), steps=40, trace=True)\n"
        "plt.figure(figsize=(4, 3))\n"
        "plt.plot(np.asarray(sol.energies))\n"
        "plt.xlabel('inference step'); plt.ylabel('mean energy per example')\n"
        "plt.title('Inference lowers the energy'); plt.tight_layout(); plt.show()\n"
        "print('local energies of the two layers:', pc.local_energies(net, sol.state).mean(axis=0))"
    ),
    nbf.v4.new_markdown_cell(
        "## Learning, beside backprop on the same modules\n\n"
        "`pc.train_step` infers and then applies the local weight gradients with any Optax "
        "optimiser; `backprop_step` trains the same network by `jax.grad`. Both compile once."
    ),
    nbf.v4.new_code_cell(
        "optimizer = optax.adam(1e-3)\n\n"
        "@eqx.filter_jit\n"
        "def pc_step(net, opt_state, x, y):\n"
        "    net, opt_state, _ = pc.train_step(net, opt_state, x, y, optimizer=optimizer, steps=10)\n"
        "    return net, opt_state\n\n"
        "@eqx.filter_jit\n"
        "def bp_step(net, opt_state, x, y):\n"
        "    net, opt_state, _ = backprop_step(net, opt_state, x, y, optimizer=optimizer)\n"
        "    return net, opt_state\n\n"
        "def fit(step, net, epochs=8, batch=32, seed=0):\n"
        "    opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))\n"
        "    rng = np.random.default_rng(seed)\n"
        "    curve = []\n"
        "    for _ in range(epochs):\n"
        "        perm = rng.permutation(len(data.x_train))\n"
        "        for b in range(0, len(perm) - batch + 1, batch):\n"
        "            idx = perm[b:b + batch]\n"
        "            net, opt_state = step(net, opt_state, data.x_train[idx], data.y_train[idx])\n"
        "        curve.append(float(pc.accuracy(net, data.x_test, data.y_test)))\n"
        "    return net, curve\n\n"
        "pc_net, pc_curve = fit(pc_step, net)\n"
        "bp_net, bp_curve = fit(bp_step, net)\n"
        "plt.figure(figsize=(4, 3))\n"
        "plt.plot(range(1, 9), pc_curve, 'o-', label='predictive coding')\n"
        "plt.plot(range(1, 9), bp_curve, 's--', label='backprop')\n"
        "plt.xlabel('epoch'); plt.ylabel('test accuracy'); plt.legend(); plt.tight_layout(); plt.show()\n"
        "print(f'PC {pc_curve[-1]:.3f}  backprop {bp_curve[-1]:.3f}')\n"
        "assert pc_curve[-1] > 0.9"
    ),
    nbf.v4.new_markdown_cell(
        "## One network, three modes\n\n"
        "Only the clamps differ: clamp a label and infer the input (generative), or clamp "
        "half of an image and infer the rest (associative recall)."
    ),
    nbf.v4.new_code_cell(
        "gen = pc.infer(pc_net, pc.init_state(pc_net, y=jnp.arange(10)), steps=200, trace=True)\n"
        "mask = np.zeros((8, 8), np.float32); mask[:4] = 1  # top half observed\n"
        "x = data.x_test[:5]\n"
        "rec = pc.infer(pc_net, pc.init_state(pc_net, x, x_mask=mask.ravel()), steps=200)\n"
        "fig, axes = plt.subplots(2, 5, figsize=(7, 3))\n"
        "for i in range(5):\n"
        "    axes[0, i].imshow(np.asarray(gen.state.x[0][i]).reshape(8, 8), cmap='gray')\n"
        "    axes[0, i].set_title(f'infer input | {i}', fontsize=8)\n"
        "    axes[1, i].imshow(np.asarray(rec.state.x[0][i]).reshape(8, 8), cmap='gray')\n"
        "    axes[1, i].set_title('recall bottom half', fontsize=8)\n"
        "for ax in axes.ravel(): ax.axis('off')\n"
        "plt.tight_layout(); plt.show()"
    ),
]
nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
nbf.write(nb, "notebooks/01_quickstart.ipynb")
