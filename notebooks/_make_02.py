"""Defines 02_astrocyte_interrupt.ipynb (kept beside it so the notebook's source is reviewable).

Run it to execute the notebook and store it with its outputs (`_execute.py`)."""

from pathlib import Path

import nbformat as nbf

md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell

cells = [
    md(
        "# Astrocytes: interrupt, recall and consolidate\n\n"
        "Lefton et al. (*Science* 2025) found that norepinephrine (NE) changes synapses only "
        "*through astrocytes*: NE raises astrocyte calcium, and the astrocytes then change the "
        "synapses they wrap. Silence the astrocytes and NE has no effect on the synapses at all.\n\n"
        "`pcastro.astro` builds that into predictive coding (PC):\n\n"
        "- a **region** is the set of units one astrocyte covers (here one per layer);\n"
        "- each astrocyte senses its region's **local error** `E_r = 1/2 sum_{i in r} e_i^2`, "
        "read from the error neurons;\n"
        "- its **calcium** follows `tau_c dc_r/dt = -c_r + k * NE * s(E_r - theta_r)`: it rises "
        "only when NE is present *and* the region is in error;\n"
        "- the calcium opens a **gate** `g(c_r)` in `[0, 1)` that scales the plasticity of the "
        "synapses onto that region;\n"
        "- a **store** keeps snapshots of stimuli (their clamps, relaxed states and `E_r`), so "
        "learning that is interrupted can be recalled and finished later.\n\n"
        "The story on real 8x8 digits: learn task A (one image of each digit 0-4), get "
        "interrupted by task B (one image of each digit 5-9), then recall and consolidate, "
        "watching `E_r`, calcium, gate and accuracy along the way."
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
        'data = load_dataset("digits")  # sklearn\'s 1,797 real 8x8 digits, no download\n'
        "key_a, key_b, key_net = jax.random.split(jax.random.key(0), 3)\n\n\n"
        "def task(key, classes):\n"
        '    """One support image per digit, 15 query images per digit, labels as digits."""\n'
        "    ep = sample_episode(key, data.x_test, data.y_test, ways=5, shots=1, queries=15, classes=classes)\n"
        "    return ep.support_x, ep.classes[ep.support_y], ep.query_x, ep.classes[ep.query_y]\n\n\n"
        "ax, ay, aqx, aqy = task(key_a, (0, 1, 2, 3, 4))  # task A\n"
        "bx, by, bqx, bqy = task(key_b, (5, 6, 7, 8, 9))  # task B\n"
        "fig, axes = plt.subplots(1, 10, figsize=(8, 1.3))\n"
        "for a, img, label in zip(axes, np.concatenate([ax, bx]), np.concatenate([ay, by])):\n"
        '    a.imshow(img.reshape(8, 8), cmap="gray")\n'
        "    a.set_title(int(label), fontsize=9)\n"
        '    a.axis("off")\n'
        'plt.suptitle("support images: task A (0-4) and task B (5-9)", fontsize=9)\n'
        "plt.show()"
    ),
    md(
        "## A network, its astrocytes, and a gated optimiser\n\n"
        "An MLP 64-128-10 with a cross-entropy output. `make_regions` gives one astrocyte per "
        "predicted layer: region 0 covers the 128 hidden units, region 1 the 10 outputs. "
        "The gate goes *after* Adam: Adam divides each update by the running gradient scale, "
        "so a gate placed before it would be largely normalised away, while after it a closed "
        "gate (`g = 0`) means exactly zero change.\n\n"
        "One *update* below: clamp the support images and labels, relax the hidden states by "
        "PC inference (`pc.infer`), measure `E_r` at the relaxed states, then learn through the "
        "gated optimiser with NE = 1 (the stimuli are presented as salient). The gate's calcium "
        "lives in the optimiser state (`opt_state[1]` is the `AstrocyteGateState`)."
    ),
    code(
        "net0 = pc.mlp([64, 128, 10], key=key_net, output_energy=pc.CrossEntropy())\n"
        "regions = astro.make_regions(net0)\n"
        "astrocytes = astro.Astrocytes(tau_c=2.0, c_half=0.05)  # g0 = 0: no calcium, no plasticity\n"
        "optimizer = optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(astrocytes, regions))\n"
        'print("regions:", regions.num_regions, "of sizes", regions.sizes)\n\n\n'
        "@eqx.filter_jit\n"
        "def relax(net, x, y):\n"
        "    return pc.infer(net, pc.init_state(net, x, y), steps=20).state\n\n\n"
        "@eqx.filter_jit\n"
        "def present(net, opt_state, x, y, ne):\n"
        '    """One gated PC update on a batch; returns the batch-mean E_r that drove it."""\n'
        "    state = relax(net, x, y)\n"
        "    e_r = astro.region_energies(state, regions)\n"
        "    net, opt_state = astro.apply_gated_grads(\n"
        "        net, opt_state, state, optimizer=optimizer, region_energy=e_r, ne=ne\n"
        "    )\n"
        "    return net, opt_state, e_r.mean(axis=0)\n\n\n"
        'history = {"E_r": [], "calcium": [], "gate": [], "acc_A": [], "acc_B": []}\n\n\n'
        "def record(net, opt_state, e_r):\n"
        "    calcium = opt_state[1].calcium\n"
        '    history["E_r"].append(np.asarray(e_r))\n'
        '    history["calcium"].append(np.asarray(calcium))\n'
        '    history["gate"].append(np.asarray(astrocytes.gate(calcium)))\n'
        '    history["acc_A"].append(float(pc.accuracy(net, aqx, aqy)))\n'
        '    history["acc_B"].append(float(pc.accuracy(net, bqx, bqy)))\n\n\n'
        "def show(i):\n"
        "    print(\n"
        "        f\"E_r {np.round(history['E_r'][i], 3)}  calcium {np.round(history['calcium'][i], 3)}  \"\n"
        "        f\"gate {np.round(history['gate'][i], 2)}  acc A {history['acc_A'][i]:.2f}  B {history['acc_B'][i]:.2f}\"\n"
        "    )"
    ),
    md(
        "## 1. Learn A, interrupted after 6 updates\n\n"
        "The errors are above threshold (`theta = 0`) and NE is present, so calcium rises and the "
        "gates open; as A is learned its `E_r` falls, the calcium drive weakens and the gates "
        "begin to close again."
    ),
    code(
        "K_A, K_B = 6, 12\n"
        "net, opt_state = net0, optimizer.init(eqx.filter(net0, eqx.is_inexact_array))\n"
        "for _ in range(K_A):\n"
        "    net, opt_state, e_r = present(net, opt_state, ax, ay, 1.0)\n"
        "    record(net, opt_state, e_r)\n"
        "    show(-1)"
    ),
    md(
        "## 2. The interruption: snapshot A, learn B\n\n"
        "`snapshot` writes A's five stimuli into the store: their clamps (image, label), their "
        "relaxed hidden states and their per-region `E_r`, two scalars each, not a per-synapse "
        "error pattern. The footprint is `K * (R + |x| + |clamps|)` numbers. Then B is learned "
        "the same way, and snapshotted too, so the store holds every stimulus presented."
    ),
    code(
        "store = astro.make_store(net, regions, capacity=10)\n"
        "a_state = relax(net, ax, ay)\n"
        "store, evicted = astro.snapshot(store, a_state, step=K_A)\n"
        "net_at_snapshot = net\n"
        "fp = astro.footprint_bytes(store)\n"
        "n_params = sum(p.size for p in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array)))\n"
        "print(fp)\n"
        "print(\n"
        '    f"per stimulus: {fp.regions} + {fp.free_units} + {fp.clamped_units} = "\n'
        '    f"{fp.regions + fp.free_units + fp.clamped_units} numbers, against {n_params} for one per-synapse pattern"\n'
        ")\n"
        "assert fp.payload == 10 * (2 + 128 + 64 + 10) * 4\n\n"
        "for _ in range(K_B):\n"
        "    net, opt_state, e_r = present(net, opt_state, bx, by, 1.0)\n"
        "    record(net, opt_state, e_r)\n"
        "show(K_A)\n"
        'print("...")\n'
        "show(-1)\n"
        "store, evicted = astro.snapshot(store, relax(net, bx, by), step=K_B)\n"
        "assert int(evicted.count) == 0  # the store had room: nothing was dropped\n"
        "print(\n"
        '    "stored ids",\n'
        "    np.asarray(store.ids),\n"
        '    " priorities (sum_r E_r)",\n'
        "    np.round(np.asarray(store.priority), 3),\n"
        ")"
    ),
    md(
        "Learning B made the network forget A: accuracy on A's queries fell from its peak to "
        "near zero (one shared 10-way output, and B's labels win).\n\n"
        "## 3. Recall continues exactly where A stopped\n\n"
        "With the weights as they were at the interruption, `recall` gives back A's stored "
        "states exactly: the local errors recomputed from them equal the stored `E_r`, and "
        "inference continued from them equals inference continued from the original states. "
        "With the weights after B, the same states are *stale*: their hidden error is far "
        "larger, because the network has moved on."
    ),
    code(
        "slots_a = jnp.arange(5)  # A went in first\n"
        "recalled = astro.recall(store, slots_a, net=net_at_snapshot)\n"
        "e_recalled = astro.region_energies(recalled, regions)\n"
        "np.testing.assert_allclose(e_recalled, store.region_energy[slots_a], rtol=1e-6, atol=1e-8)\n"
        "for x_recalled, x_original in zip(recalled.x, a_state.x):\n"
        "    np.testing.assert_array_equal(x_recalled, x_original)\n"
        "more = lambda s: pc.infer(net_at_snapshot, s, steps=10).state.x[1]\n"
        "np.testing.assert_allclose(more(recalled), more(a_state), rtol=1e-6, atol=1e-7)\n"
        "stale = astro.region_energies(astro.recall(store, slots_a, net=net), regions)\n"
        "print(\n"
        '    "stored   E_r of A (hidden, output), mean over stimuli:",\n'
        "    np.round(np.asarray(store.region_energy[slots_a].mean(0)), 4),\n"
        ")\n"
        "print(\n"
        '    "recalled E_r, weights at the snapshot:               ",\n'
        "    np.round(np.asarray(e_recalled.mean(0)), 4),\n"
        ")\n"
        "print(\n"
        '    "recalled E_r, weights after B (stale states):        ", np.round(np.asarray(stale.mean(0)), 4)\n'
        ")"
    ),
    md(
        "## 4. Consolidate with NE\n\n"
        "`consolidate` replays the stored stimuli from the highest priority (`sum_r E_r`) down. "
        "Each replay recalls the slot's stored states (`fresh=False`), runs 20 inference steps, "
        "and makes one gated update whose calcium is driven by the slot's stored `E_r` and NE. "
        "It then stores the new states and `E_r`, and discards a stimulus once every region's "
        'error is below `tol` ("once learning is complete, discard the error pattern").\n\n'
        "Consolidation comes later, after the calcium transient of learning B has decayed "
        "(`tau_c` = 2 updates), so every condition below starts from calcium at rest (0) with "
        "Adam's moments kept. We run it one round at a time to follow accuracy, and check that "
        "this equals one call with all rounds."
    ),
    code(
        "ROUNDS = 6\n"
        "rest = optax.tree_utils.tree_set(opt_state, calcium=jnp.zeros(regions.num_regions))\n"
        "net_after_b = net\n"
        "settings = dict(steps=20, tol=0.01, fresh=False)\n"
        "net_ne, opt_ne, store_ne, report = astro.consolidate(\n"
        "    net_after_b, rest, store, optimizer=optimizer, ne=1.0, rounds=ROUNDS, **settings\n"
        ")\n"
        'print("mean sum_r E_r of the replayed stimuli, per round:", np.round(np.asarray(report.energy), 4))\n'
        'print("visit order (slots) in round 1:", np.asarray(report.order[0]))\n'
        'print("discarded ids per round:\\n", np.asarray(report.discarded))\n'
        "print(\n"
        '    "all discarded ids:",\n'
        "    np.asarray(report.discarded_ids),\n"
        '    " slots still occupied:",\n'
        "    int(store_ne.occupied.sum()),\n"
        ")\n\n"
        "# The same, one round at a time, recording the timeline.\n"
        "net, opt_state, s = net_after_b, rest, store\n"
        "for _ in range(ROUNDS):\n"
        "    net, opt_state, s, r = astro.consolidate(\n"
        "        net, opt_state, s, optimizer=optimizer, ne=1.0, rounds=1, **settings\n"
        "    )\n"
        "    replayed = ~np.isnan(np.asarray(r.region_energy[0, :, 0]))\n"
        "    e_r = np.asarray(r.region_energy[0])[replayed].mean(0) if replayed.any() else np.full(2, np.nan)\n"
        "    record(net, opt_state, e_r)\n"
        "for u, v in zip(\n"
        "    jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array)),\n"
        "    jax.tree_util.tree_leaves(eqx.filter(net_ne, eqx.is_inexact_array)),\n"
        "):\n"
        "    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)\n"
        "show(-1)"
    ),
    md(
        "## 5. The same consolidation without NE, and with the astrocytes ablated\n\n"
        "- **NE = 0**: the calcium never leaves rest, the gate stays at its floor `g0 = 0`, and "
        "not a single parameter changes: replaying the stored stimuli without NE does nothing.\n"
        "- **ablated** (`Astrocytes(ablated=True)`): the gate is 1 everywhere, which is plain PC "
        "learning from the store, and NE has *exactly* no effect: NE = 1 and NE = 0 give "
        "bit-identical networks. This is the Lefton invariant.\n"
        "- **plain interleaved replay** (the control that matters): the same ten stimuli replayed "
        "one at a time, A and B alternating, from fresh feedforward states, through plain Adam "
        "(same learning rate and moments), with no store states, priority, gate or discard, "
        "for as many single-stimulus updates as the NE = 1 consolidation made."
    ),
    code(
        "params = lambda m: jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_inexact_array))\n"
        "net_no_ne, opt_no_ne, _, report_no_ne = astro.consolidate(\n"
        "    net_after_b, rest, store, optimizer=optimizer, ne=0.0, rounds=ROUNDS, **settings\n"
        ")\n"
        "assert float(jnp.max(opt_no_ne[1].calcium)) == 0.0\n"
        "for u, v in zip(params(net_no_ne), params(net_after_b)):\n"
        "    np.testing.assert_array_equal(u, v)  # NE = 0, g0 = 0: nothing changes\n\n"
        "ablated = astro.Astrocytes(tau_c=2.0, c_half=0.05, ablated=True)\n"
        "optimizer_ablated = optax.chain(optax.adam(1e-2), astro.scale_by_astrocytes(ablated, regions))\n"
        "# The same moments and resting calcium, in a state that records the ablated astrocytes.\n"
        "rest_ablated = optax.tree_utils.tree_set(rest, astrocytes=ablated)\n"
        "net_abl, *_ = astro.consolidate(\n"
        "    net_after_b, rest_ablated, store, optimizer=optimizer_ablated, ne=1.0, rounds=ROUNDS, **settings\n"
        ")\n"
        "net_abl0, *_ = astro.consolidate(\n"
        "    net_after_b, rest_ablated, store, optimizer=optimizer_ablated, ne=0.0, rounds=ROUNDS, **settings\n"
        ")\n"
        "for u, v in zip(params(net_abl), params(net_abl0)):\n"
        "    np.testing.assert_array_equal(u, v)  # ablated: NE has exactly no effect\n\n"
        "n_replays = int(np.sum(~np.isnan(np.asarray(report.region_energy[:, :, 0]))))\n"
        "plain = optax.adam(1e-2)\n"
        "interleaved_x = jnp.stack([ax, bx], axis=1).reshape(10, 64)  # A0, B0, A1, B1, ...\n"
        "interleaved_y = jnp.stack([ay, by], axis=1).reshape(10)\n\n\n"
        "@eqx.filter_jit\n"
        "def replay_step(net, opt_state, x, y):\n"
        "    net, opt_state, _ = pc.train_step(net, opt_state, x, y, optimizer=plain, steps=20)\n"
        "    return net, opt_state\n\n\n"
        "net_replay, opt_replay = net_after_b, rest[0]  # rest[0]: the Adam state of the chain\n"
        "for i in range(n_replays):\n"
        "    j = i % 10\n"
        "    net_replay, opt_replay = replay_step(\n"
        "        net_replay, opt_replay, interleaved_x[j : j + 1], interleaved_y[j : j + 1]\n"
        "    )\n\n"
        "final = {\n"
        '    "after B": net_after_b,\n'
        '    "NE = 1": net_ne,\n'
        '    "NE = 0": net_no_ne,\n'
        '    "ablated": net_abl,\n'
        '    "plain replay": net_replay,\n'
        "}\n"
        "final_acc = {\n"
        "    name: (float(pc.accuracy(m, aqx, aqy)), float(pc.accuracy(m, bqx, bqy)))\n"
        "    for name, m in final.items()\n"
        "}\n"
        'print(f"{n_replays} single-stimulus replays")\n'
        "for name, (acc_a, acc_b) in final_acc.items():\n"
        '    print(f"{name:>13}: A {acc_a:.2f}  B {acc_b:.2f}")\n'
        'assert final_acc["NE = 1"][0] > final_acc["after B"][0]  # consolidation with NE recovers some of A'
    ),
    md(
        "## 6. Figures\n\n"
        "Along the whole run with NE = 1: 6 updates on A, 12 on B (the interruption), then 6 "
        "consolidation rounds (in each, every stimulus still in the store is replayed once; "
        "during consolidation `E_r` is the mean over the replayed stimuli after their update, "
        "and calcium and gate are read at the end of each round).\n\n"
        "Each new task raises `E_r`, NE turns that into calcium, and the gates open; as the task "
        "is learned, `E_r` falls and the gates close again. Learning B wipes out A. During "
        "consolidation the calcium is driven by the *stored* `E_r`, so the gates open only as "
        "far as the stored errors ask and close as replay drives them below `tol`, at which "
        "point the stimuli are discarded and consolidation stops by itself."
    ),
    code(
        'E, C, G = (np.stack(history[k]) for k in ("E_r", "calcium", "gate"))\n'
        "t = np.arange(1, len(E) + 1)\n"
        "ends = [K_A + 0.5, K_A + K_B + 0.5]\n"
        "fig, axes = plt.subplots(1, 4, figsize=(13, 2.9))\n"
        'for r, name in enumerate(["hidden (r=0)", "output (r=1)"]):\n'
        '    axes[0].plot(t, E[:, r], "o-", ms=3, label=name)\n'
        '    axes[1].plot(t, C[:, r], "o-", ms=3, label=name)\n'
        '    axes[2].plot(t, G[:, r], "o-", ms=3, label=name)\n'
        'axes[3].plot(t, history["acc_A"], "o-", ms=3, label="task A (0-4)")\n'
        'axes[3].plot(t, history["acc_B"], "s-", ms=3, label="task B (5-9)")\n'
        'titles = ["local error E_r", "astrocyte calcium c_r", "plasticity gate g(c_r)", "query accuracy"]\n'
        "for a, title in zip(axes, titles):\n"
        "    for x in ends:\n"
        '        a.axvline(x, color="gray", ls=":")\n'
        "    a.set_title(title, fontsize=10)\n"
        '    a.set_xlabel("update (A | B) / round (consolidation)", fontsize=8)\n'
        "    a.legend(fontsize=7)\n"
        "axes[2].set_ylim(0, 1)\n"
        "axes[3].set_ylim(-0.02, 1)\n"
        "plt.tight_layout()\n"
        "plt.show()\n\n"
        "names = list(final_acc)\n"
        "pos = np.arange(len(names))\n"
        "plt.figure(figsize=(5.5, 2.8))\n"
        'plt.bar(pos - 0.2, [final_acc[n][0] for n in names], 0.4, label="task A")\n'
        'plt.bar(pos + 0.2, [final_acc[n][1] for n in names], 0.4, label="task B")\n'
        "plt.xticks(pos, names, fontsize=8)\n"
        'plt.ylabel("query accuracy")\n'
        "plt.ylim(0, 1)\n"
        'plt.title("final accuracy (first pair: before consolidation)", fontsize=10)\n'
        "plt.legend(fontsize=8)\n"
        "plt.tight_layout()\n"
        "plt.show()"
    ),
    md(
        "## What this shows, honestly\n\n"
        "- The store makes interrupted learning resumable: recalled states reproduce the stored "
        "local errors exactly, for a few hundred bytes per stimulus.\n"
        "- Consolidation with NE brings task A back from near zero after the interruption, at a "
        "small cost to task B (numbers printed above and below). Without NE the gate never opens "
        "and nothing changes; with the astrocytes ablated NE has exactly no effect, and "
        "learning from the store is plain PC learning.\n"
        "- In this episode the astrocyte gate adds nothing over the ablated (ungated) store or "
        "plain interleaved replay of the same stimuli: they recover A about as well. This is a "
        "single episode of 75 queries per task, so differences of a few queries are noise.\n\n"
        "`pcastro interrupt --dataset {digits,mnist5k}` measures this over many episodes, with "
        "tuned learning rates and tolerances, beside plain interleaved replay and backprop "
        "controls. There too the store recovers A (on mnist5k from 0.25 to about 0.40 while "
        "keeping most of B), but plain replay does just as well: the astrocyte mechanism is in "
        "place and testable, and a task where it beats replay is still to be found."
    ),
    code(
        'a_b, b_b = final_acc["after B"]\n'
        'a_ne, b_ne = final_acc["NE = 1"]\n'
        'a_rp, b_rp = final_acc["plain replay"]\n'
        "print(\n"
        '    f"consolidation with NE: A {a_b:.2f} -> {a_ne:.2f}, B {b_b:.2f} -> {b_ne:.2f}; "\n'
        '    f"plain replay: A {a_rp:.2f}, B {b_rp:.2f}; store {fp.payload} bytes for 10 stimuli"\n'
        ")"
    ),
]
nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
path = Path(__file__).with_name("02_astrocyte_interrupt.ipynb")

if __name__ == "__main__":
    from _execute import write_executed  # this folder is on sys.path when run as a script

    write_executed(nb, path)
