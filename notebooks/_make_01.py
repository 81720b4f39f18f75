"""Defines 01_quickstart.ipynb (kept beside it so the notebook's source is reviewable).

Run it to execute the notebook and store it with its outputs (`_execute.py`)."""

from pathlib import Path

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
        "Only the clamps differ. **Generative**: clamp a label on the classifier's top node "
        "and infer its input; the digit-shaped inputs it finds are the states that make "
        "the network most confident of each label."
    ),
    nbf.v4.new_code_cell(
        "gen = pc.infer(pc_net, pc.init_state(pc_net, y=jnp.arange(10)), steps=200)\n"
        "fig, axes = plt.subplots(1, 10, figsize=(9, 1.3))\n"
        "for i, ax in enumerate(axes):\n"
        "    ax.imshow(np.asarray(gen.state.x[0][i]).reshape(8, 8), cmap='gray')\n"
        "    ax.set_title(f'label {i}', fontsize=8); ax.axis('off')\n"
        "plt.tight_layout(); plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "**Associative recall** needs information that can reach the missing units. In the "
        "bottom-up classifier above, clamping half an image and nothing else does nothing: "
        "every node sits at its prediction, the energy is already zero, and pcastro warns. "
        "A network that *predicts its data* can complete it: below, a generative network "
        "(latent label code -> hidden -> 64 pixels) learns the digits with the label clamped "
        "at the bottom and the image on top. To recall, only the top half of a test image is "
        "clamped (`y_mask`); the latent code, the hidden layer and the bottom half are "
        "inferred. We compare the recalled bottom halves with the true pixels and with the "
        "mean training image, paired over the same test images."
    ),
    nbf.v4.new_code_cell(
        "gen_net = pc.mlp([10, 64, 64], key=jax.random.key(1), output_activation=jax.nn.sigmoid)\n"
        "gen_opt = optax.adam(3e-3)\n\n"
        "@eqx.filter_jit\n"
        "def gen_step(net, opt_state, labels, images):\n"
        "    codes = jax.nn.one_hot(labels, 10)\n"
        "    net, opt_state, _ = pc.train_step(net, opt_state, codes, images, optimizer=gen_opt, steps=20)\n"
        "    return net, opt_state\n\n"
        "opt_state = gen_opt.init(eqx.filter(gen_net, eqx.is_inexact_array))\n"
        "rng = np.random.default_rng(0)\n"
        "for _ in range(20):\n"
        "    perm = rng.permutation(len(data.x_train))\n"
        "    for b in range(0, len(perm) - 31, 32):\n"
        "        idx = perm[b:b + 32]\n"
        "        gen_net, opt_state = gen_step(gen_net, opt_state, data.y_train[idx], data.x_train[idx])\n\n"
        "observed = np.zeros((8, 8), np.float32); observed[:4] = 1  # top half observed\n"
        "observed = observed.ravel()\n"
        "images = data.x_test\n"
        "rec = pc.infer(gen_net, pc.init_state(gen_net, y=images, y_mask=observed), steps=200)\n"
        "recalled = np.asarray(rec.state.x[-1])\n"
        "missing = observed == 0\n"
        "err_pc = ((recalled[:, missing] - images[:, missing]) ** 2).mean(axis=1)\n"
        "err_mean = ((data.x_train.mean(axis=0)[missing] - images[:, missing]) ** 2).mean(axis=1)\n"
        "diff = err_mean - err_pc\n"
        "ci = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))\n"
        "print(f'bottom-half squared error per pixel: PC recall {err_pc.mean():.4f}, '\n"
        "      f'mean image {err_mean.mean():.4f}; paired gain {diff.mean():.4f} +- {ci:.4f} '\n"
        "      f'(95% CI, {len(diff)} test images)')\n"
        "assert diff.mean() - ci > 0  # recall beats the mean image on the same images\n"
        "fig, axes = plt.subplots(3, 6, figsize=(7, 3.6))\n"
        "for i in range(6):\n"
        "    for row, (img, name) in enumerate([(images[i] * observed, 'observed'), (recalled[i], 'recalled'), (images[i], 'true')]):\n"
        "        axes[row, i].imshow(img.reshape(8, 8), cmap='gray', vmin=0, vmax=1)\n"
        "        axes[row, i].axis('off')\n"
        "        if i == 0: axes[row, i].set_title(name, fontsize=8, loc='left')\n"
        "plt.tight_layout(); plt.show()"
    ),
]
nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
path = Path(__file__).with_name("01_quickstart.ipynb")

if __name__ == "__main__":
    from _execute import write_executed  # this folder is on sys.path when run as a script

    write_executed(nb, path)
