"""ngc-learn (PyPI `ngclearn`, on `ngcsimlib`): the workload as ngc-learn's discriminative
PCN (the ngc-museum `pc_discrim` exhibit's structure, built with the ngclearn 3 API).

Components: `RateCell`s z0..zL (input and output stateless and clamped; hidden cells
Euler-integrated with `tau_m = 1/dt`, `dt = 1`, so z <- z + dt * (-dF/dz)),
`GaussianErrorCell`s e1..eL, `HebbianSynapse`s W1..WL (two-factor rule
dW = pre^T post with `sign_value=-1`, ngc-learn's own Adam, `eta = lr`), `StaticSynapse`
feedback cables E_l tied to W_l^T, and a projection path (q cells, `StaticSynapse`s tied
to W_l) for the feedforward initialisation and for prediction -- all as in the exhibit.
Processes (`MethodProcess` reset / project / advance / evolve) are compiled by ngcsimlib
into pure functions of the global state; this adapter composes those compiled functions
into one `jax.jit` per train step (T advance steps in `lax.scan`, as ngc-learn's docs scan
the E-steps), which is faster than calling each process's `.run` from Python.

What differs from the workload: ngc-learn's PCN puts the activation on the presynaptic
side, mu_l = W_l f(z_{l-1}) + b_l with z the pre-activation state, while the workload has
mu_l = f(W_l x_{l-1} + b_l) (f = tanh, or GELU on MNIST). Same shapes and FLOPs, same
feedforward function, a different energy. Weights are U(-1/sqrt(fan_in), 1/sqrt(fan_in))
as in the other adapters. Time to accuracy (digits and MNIST) uses the exhibit's own
inference setting (tau_m=20, dt=1, T=20, Adam(1e-3)) at the workload's batch size.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Trainer, Workload, main  # noqa: E402


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import jax
    import jax.numpy as jnp
    from ngclearn import Context, MethodProcess
    from ngclearn.components import GaussianErrorCell, HebbianSynapse, RateCell, StaticSynapse
    from ngclearn.utils.distribution_generator import DistributionGenerator as dist

    sizes = spec.sizes
    n = len(sizes) - 1
    # Time to accuracy uses the ngc-museum PCN exhibit's own setting (tau_m=20, dt=1, T=20);
    # throughput uses the workload's step (tau_m = 1/dt).
    tau_m = 20.0 if mode == "tta" else 1.0 / spec.dt
    batch = spec.batch
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 4 * n + 4))

    def fan_in(n_in):
        bound = float(1.0 / n_in**0.5)
        return dist.uniform(-bound, bound)

    with Context(f"pcn_{spec.name}_{seed}"):
        z = []
        for layer, width in enumerate(sizes):
            hidden = 0 < layer < n
            z.append(
                RateCell(
                    f"z{layer}",
                    n_units=width,
                    tau_m=tau_m if hidden else 0.0,
                    act_fx=spec.activation if hidden else "identity",
                    prior=("gaussian", 0.0),
                    integration_type="euler",
                    batch_size=batch,
                    key=next(keys),
                )
            )
        e = [None] + [
            GaussianErrorCell(f"e{layer}", n_units=sizes[layer], batch_size=batch)
            for layer in range(1, n + 1)
        ]
        w = [None] + [
            HebbianSynapse(
                f"W{layer}",
                shape=(sizes[layer - 1], sizes[layer]),
                eta=spec.lr,
                weight_init=fan_in(sizes[layer - 1]),
                bias_init=dist.constant(value=0.0),
                w_bound=0.0,
                optim_type="adam",
                sign_value=-1.0,
                batch_size=batch,
                key=next(keys),
            )
            for layer in range(1, n + 1)
        ]
        # Feedback cables E_l (l >= 2) carry e_l back to z_{l-1}; tied to W_l^T each step.
        fb = [None, None] + [
            StaticSynapse(
                f"E{layer}",
                shape=(sizes[layer], sizes[layer - 1]),
                weight_init=dist.constant(value=0.0),
                batch_size=batch,
                key=next(keys),
            )
            for layer in range(2, n + 1)
        ]
        # Projection (feedforward) path, tied to W_l.
        q = [
            RateCell(
                f"q{layer}",
                n_units=width,
                tau_m=0.0,
                act_fx=spec.activation if 0 < layer < n else "identity",
                batch_size=batch,
            )
            for layer, width in enumerate(sizes)
        ]
        qw = [None] + [
            StaticSynapse(
                f"Q{layer}",
                shape=(sizes[layer - 1], sizes[layer]),
                weight_init=dist.constant(value=0.0),
                bias_init=dist.constant(value=0.0),
                batch_size=batch,
                key=next(keys),
            )
            for layer in range(1, n + 1)
        ]
        eq = GaussianErrorCell("eq", n_units=sizes[-1], batch_size=batch)

        for layer in range(1, n + 1):
            z[layer - 1].zF >> w[layer].inputs
            w[layer].outputs >> e[layer].mu
            z[layer].z >> e[layer].target
            z[layer - 1].zF >> w[layer].pre
            e[layer].dmu >> w[layer].post
            if layer >= 2:
                e[layer].dmu >> fb[layer].inputs
                fb[layer].outputs >> z[layer - 1].j
            if layer < n:
                e[layer].dtarget >> z[layer].j_td
            q[layer - 1].zF >> qw[layer].inputs
            qw[layer].outputs >> q[layer].j
        q[n].z >> eq.mu

        reset = MethodProcess(name="reset_process")
        for comp in [*z, *e[1:], *w[1:], *fb[2:], *q, *qw[1:], eq]:
            reset = reset >> comp.reset
        project = MethodProcess(name="project_process")
        for layer in range(n + 1):
            if layer > 0:
                project = project >> qw[layer].advance_state
            project = project >> q[layer].advance_state
        project = project >> eq.advance_state
        advance = MethodProcess(name="advance_process")
        for comp in fb[2:]:
            advance = advance >> comp.advance_state
        for comp in z:
            advance = advance >> comp.advance_state
        for comp in w[1:]:
            advance = advance >> comp.advance_state
        for comp in e[1:]:
            advance = advance >> comp.advance_state
        evolve = MethodProcess(name="evolve_process")
        for comp in w[1:]:
            evolve = evolve >> comp.evolve

    from ngcsimlib.global_state import stateManager

    def keywords(process, **values):
        return [values[k] for k in process.get_keywords()]

    reset_fn = reset.run.compiled.source_fn
    project_fn = project.run.compiled.source_fn
    advance_fn = advance.run.compiled.source_fn
    evolve_fn = evolve.run.compiled.source_fn
    reset_kw = keywords(reset)
    project_kw = keywords(project, t=0.0, dt=1.0)
    advance_kw = keywords(advance, t=0.0, dt=1.0)
    evolve_kw = keywords(evolve, t=float(spec.steps), dt=1.0)

    def tie(state):
        state = dict(state)
        for layer in range(1, n + 1):
            state[qw[layer].weights.root] = state[w[layer].weights.root]
            state[qw[layer].biases.root] = state[w[layer].biases.root]
            if layer >= 2:
                state[fb[layer].weights.root] = state[w[layer].weights.root].T
        return state

    def projected(state, x, y):
        """reset, tie, clamp, P-step (feedforward pass through the q path)."""
        state, _ = reset_fn(tie(state), reset_kw)
        state[z[0].j.root] = x
        state[q[0].j.root] = x
        state[eq.target.root] = y
        state, _ = project_fn(state, project_kw)
        return state

    @jax.jit
    def train_step(state, x, y):
        state = projected(state, x, y)
        for layer in range(1, n):
            state[z[layer].z.root] = state[q[layer].z.root]
        state[e[n].dmu.root] = state[eq.dmu.root]
        state[e[n].dtarget.root] = state[eq.dtarget.root]
        state[z[n].j.root] = y

        def e_step(s, _):
            s, _ = advance_fn(s, advance_kw)
            return s, None

        state, _ = jax.lax.scan(e_step, state, None, length=spec.steps)
        state, _ = evolve_fn(state, evolve_kw)
        return state

    @jax.jit
    def feedforward(state, x):
        state = projected(state, x, jnp.zeros((x.shape[0], sizes[-1]), x.dtype))
        return state[q[n].z.root]

    holder = {"state": stateManager.state}

    def step(x, y):
        holder["state"] = train_step(holder["state"], x, y)
        return holder["state"][w[n].weights.root]

    return Trainer(
        step=step,
        predict=lambda x: feedforward(holder["state"], x),
        notes=(
            "ngc-museum PCN structure (ngclearn 3 API); compiled MethodProcesses composed in one "
            "jax.jit, E-steps in lax.scan; energy in pre-activation form "
            f"mu_l = W_l {spec.activation}(z_{{l-1}}) + b_l (ngc-learn's PCN), not "
            f"{spec.activation}(W_l x_{{l-1}} + b_l); "
            "ngc-learn's own Adam; fan-in uniform init"
        ),
        setting=(
            f"RateCell Euler, tau_m={tau_m:g}, dt=1 (step {1.0 / tau_m:g}), T={spec.steps}; "
            f"HebbianSynapse Adam(eta={spec.lr})"
        ),
    )


if __name__ == "__main__":
    sys.exit(
        main(library="ngclearn", make_trainer=make_trainer, distributions=("ngclearn", "ngcsimlib"))
    )
