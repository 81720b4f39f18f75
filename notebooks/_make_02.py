"""Writes 02_astrocyte_interrupt.ipynb (kept beside it so the notebook's source is reviewable)."""

import nbformat as nbf

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell

cells = [
    md(
        "# Astrocytes: interrupt, recall and consolidate\n\n"
        "Norepinephrine (NE) changes synapses only through astrocytes and their calcium "
        "(Lefton et al., *Science* 2025). In pcastro an astrocyte watches the local error "
        "`E_r` of a region (here: one per layer), its calcium rises under NE when `E_r` is "
        "above a threshold, and the calcium opens a gate that scales the plasticity of the "
        "synapses onto that region. A store keeps snapshots of stimuli with their local "
        "errors, so that learning interrupted by something else can be recalled and "
        "finished later.\n\n"
        "Here: learn task A (digits 0-4, one image each), get interrupted by task B (digits "
        "5-9), then recall and consolidate, with figures of `E_r`, calcium, gate and accuracy."
    ),
    code(
        "import equinox as eqx\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import optax\n\n"
        "import pcastro as pc\n"
        "from pcastro import astro\n"
        "from pcastro.data import load_dataset, sample_episode\n\n"
        "data = load_dataset('digits')\n"
        "def task(key, classes):\n"
        "    ep = sample_episode(key, data.x_test, data.y_test, ways=5, shots=1, queries=15, classes=classes)\n"
        "    return ep.support_x, ep.classes[ep.support_y], ep.query_x, ep.classes[ep.query_y]\n"
        "ax, ay, aqx, aqy = task(jax.random.key(1), (0, 1, 2, 3, 4))\n"
        "bx, by, bqx, bqy = task(jax.random.key(2), (5, 6, 7, 8, 9))\n"
        "print('A digits', np.asarray(ay), ' B digits', np.asarray(by))"
    ),
    md(
        "## A network, its regions, and a gated optimiser\n\n"
        "The gate goes *after* Adam: Adam rescales whatever it is given, so a gate placed "
        "before it would be normalised away, while after it a closed gate means exactly no change."
    ),
    code(
        "net0 = pc.mlp([64, 128, 10], key=jax.random.key(0), output_energy=pc.CrossEntropy())\n"
        "regions = astro.make_regions(net0)  # one astrocyte per layer: hidden and output\n"
        "def gated(ablated=False):\n"
        "    astrocytes = astro.Astrocytes(tau_c=2.0, c_half=0.05, ablated=ablated)\n"
        "    return astrocytes, optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(astrocytes, regions))\n"
        "astrocytes, optimizer = gated()\n\n"
        "@eqx.filter_jit\n"
        "def present(net, opt_state, x, y, ne):\n"
        "    sol = pc.infer(net, pc.init_state(net, x, y), steps=20)\n"
        "    e_r = astro.region_energies(sol.state, regions)\n"
        "    net, opt_state = astro.apply_gated_grads(net, opt_state, sol.state, optimizer=optimizer, region_energy=e_r, ne=ne)\n"
        "    return net, opt_state, e_r.mean(axis=0)\n\n"
        "def calcium(opt_state):\n"
        "    return opt_state[1].calcium\n\n"
        "history = {'E_r': [], 'calcium': [], 'gate': [], 'acc_A': [], 'acc_B': [], 'phase': []}\n"
        "def record(net, opt_state, e_r, phase):\n"
        "    c = calcium(opt_state)\n"
        "    history['E_r'].append(np.asarray(e_r)); history['calcium'].append(np.asarray(c))\n"
        "    history['gate'].append(np.asarray(astrocytes.gate(c)))\n"
        "    history['acc_A'].append(float(pc.accuracy(net, aqx, aqy))); history['acc_B'].append(float(pc.accuracy(net, bqx, bqy)))\n"
        "    history['phase'].append(phase)\n\n"
        "net, opt_state = net0, optimizer.init(eqx.filter(net0, eqx.is_inexact_array))\n"
        "for _ in range(6):  # task A, interrupted part-way\n"
        "    net, opt_state, e_r = present(net, opt_state, ax, ay, 1.0)\n"
        "    record(net, opt_state, e_r, 'learn A')"
    ),
    md(
        "## The interruption: snapshot A, learn B\n\n"
        "The store keeps A's clamps, free states and per-region `E_r` (scalars, not a "
        "per-synapse error pattern): a few hundred bytes per stimulus."
    ),
    code(
        "store = astro.make_store(net, regions, capacity=10)\n"
        "a_state = pc.infer(net, pc.init_state(net, ax, ay), steps=20).state\n"
        "store, evicted = astro.snapshot(store, a_state, step=6)\n"
        "net_at_snapshot = net\n"
        "print(astro.footprint_bytes(store))\n"
        "for _ in range(12):\n"
        "    net, opt_state, e_r = present(net, opt_state, bx, by, 1.0)\n"
        "    record(net, opt_state, e_r, 'learn B')\n"
        "b_state = pc.infer(net, pc.init_state(net, bx, by), steps=20).state\n"
        "store, evicted = astro.snapshot(store, b_state, step=12)\n"
        "assert int(evicted.count) == 0  # nothing was dropped: the store had room\n"
        "print('A after B:', history['acc_A'][-1], ' B:', history['acc_B'][-1])"
    ),
    md(
        "## Recall continues exactly where A stopped\n\n"
        "With the network as it was at the snapshot, the recalled states give back exactly "
        "the stored local errors."
    ),
    code(
        "recalled = astro.recall(store, jnp.arange(5), net=net_at_snapshot)\n"
        "np.testing.assert_allclose(astro.region_energies(recalled, regions), store.region_energy[:5], rtol=1e-5, atol=1e-7)\n"
        "print('stored E_r of A (hidden, output):\\n', np.asarray(store.region_energy[:5]))"
    ),
    md(
        "## Consolidation, with and without NE, and with the astrocytes ablated\n\n"
        "`consolidate` replays the stored stimuli by priority (highest error first) with "
        "gated learning and discards a stimulus once its error is below `tol`."
    ),
    code(
        "def consolidate(ne, ablated=False):\n"
        "    astrocytes_c, optimizer_c = gated(ablated)\n"
        "    state_c = opt_state if not ablated else optimizer_c.init(eqx.filter(net, eqx.is_inexact_array))\n"
        "    out, _, new_store, report = astro.consolidate(net, state_c, store, optimizer=optimizer_c, ne=ne, steps=20, rounds=8, tol=1e-3)\n"
        "    return out, new_store, report\n\n"
        "with_ne, store_ne, report = consolidate(1.0)\n"
        "without_ne, _, _ = consolidate(0.0)\n"
        "ablated_ne, _, _ = consolidate(1.0, ablated=True)\n"
        "ablated_no_ne, _, _ = consolidate(0.0, ablated=True)\n"
        "print('mean stored energy per round:', np.round(np.asarray(report.energy), 4))\n"
        "print('discarded ids:', np.asarray(report.discarded_ids))\n"
        "# Lefton invariant: with the astrocytes ablated, NE has exactly no effect on learning.\n"
        "for u, v in zip(jax.tree_util.tree_leaves(eqx.filter(ablated_ne, eqx.is_inexact_array)),\n"
        "                jax.tree_util.tree_leaves(eqx.filter(ablated_no_ne, eqx.is_inexact_array))):\n"
        "    np.testing.assert_array_equal(u, v)\n"
        "results = {name: (float(pc.accuracy(m, aqx, aqy)), float(pc.accuracy(m, bqx, bqy)))\n"
        "           for name, m in [('before', net), ('NE = 1', with_ne), ('NE = 0', without_ne), ('ablated', ablated_ne)]}\n"
        "results"
    ),
    code(
        "steps = np.arange(len(history['phase']))\n"
        "fig, axes = plt.subplots(1, 4, figsize=(14, 3))\n"
        "E = np.stack(history['E_r']); C = np.stack(history['calcium']); G = np.stack(history['gate'])\n"
        "for r, name in enumerate(['hidden', 'output']):\n"
        "    axes[0].plot(steps, E[:, r], label=name); axes[1].plot(steps, C[:, r], label=name); axes[2].plot(steps, G[:, r], label=name)\n"
        "axes[0].set_title('local error E_r'); axes[1].set_title('astrocyte calcium'); axes[2].set_title('plasticity gate g(c)')\n"
        "axes[3].plot(steps, history['acc_A'], label='task A'); axes[3].plot(steps, history['acc_B'], label='task B')\n"
        "axes[3].set_title('query accuracy')\n"
        "for ax in axes:\n"
        "    ax.axvline(5.5, color='gray', ls=':'); ax.set_xlabel('update (A, then B)'); ax.legend(fontsize=7)\n"
        "plt.tight_layout(); plt.show()\n\n"
        "names = list(results)\n"
        "plt.figure(figsize=(5, 3))\n"
        "plt.bar(np.arange(len(names)) - 0.2, [results[n][0] for n in names], 0.4, label='task A')\n"
        "plt.bar(np.arange(len(names)) + 0.2, [results[n][1] for n in names], 0.4, label='task B')\n"
        "plt.xticks(range(len(names)), names); plt.ylabel('query accuracy'); plt.legend(); plt.title('after consolidation')\n"
        "plt.tight_layout(); plt.show()"
    ),
    md(
        "## What this shows, honestly\n\n"
        "Consolidating from the store brings task A back after the interruption while "
        "keeping much of B; without NE the gate stays (mostly) shut and A is not recovered; "
        "with the astrocytes ablated NE has exactly no effect. Over many episodes "
        "(`pcastro interrupt`), plain interleaved replay of the same stimuli does as well as "
        "the astrocyte-gated store at this scale: the mechanism is in place and testable, "
        "and a task where it beats replay is still to be found."
    ),
]
nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
nbf.write(nb, "notebooks/02_astrocyte_interrupt.ipynb")
