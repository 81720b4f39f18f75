"""jpc (thebuckleylab/jpc, not on PyPI: installed by the driver from `--jpc-source`).

jpc's API changed across releases, so this adapter picks the generation it finds:

- discrete activity updates with an optax optimiser, as in jpc's "advanced usage" docs
  (`jpc.update_pc_activities` / `jpc.update_pc_params` from v1.0, `jpc.update_activities`
  / `jpc.update_params` before): `spec.steps` activity updates with `optax.sgd` in
  `lax.scan`, then one `optax.adam` parameter update, one jit;
- older, `jpc.make_pc_step` only (diffrax ODE inference): `diffrax.Euler` with a constant
  step `dt` for `T * dt` time -- the same discrete rule z <- z - dt * dF/dz.

Layers are Equinox callables (`Linear` then the workload's activation on hidden layers, as
jpc's own `make_mlp`), so the energy is the workload's. jpc normalises its energy by the
batch size (and some releases drop the 1/2); the adapter measures that factor r against
F = sum 1/2 ||e||^2 once and uses activity step dt / r, so states move exactly as
x <- x - dt * dF/dx. Adam sees r * dF/dtheta (scale-invariant up to eps).

On `--workload mnist --mode tta` the adapter runs jpc's documented default instead, the
one-line `jpc.make_pc_step(model, optim, opt_state, output=y, input=x)` of its README and
`examples/discriminative_pc.ipynb`: inference by diffrax's `Heun` with a
`PIDController(rtol=1e-3, atol=1e-3)` up to `max_t1=20`, mean-squared-error output, and
`optax.adam(1e-3)` on the parameters.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Trainer, Workload, main  # noqa: E402

_ALIASES = {
    "model": ("model",),
    "params": ("params",),
    "activities": ("activities",),
    "y": ("y", "output"),
    "x": ("x", "input"),
}


def _call(fn, **values):
    """Call a jpc function by whatever names this release gives its arguments."""
    names = inspect.signature(fn).parameters
    kwargs = {}
    for key, value in values.items():
        for alias in _ALIASES.get(key, (key,)):
            if alias in names:
                kwargs[alias] = value
                break
    if "params" in names and "params" not in kwargs and "model" in values:
        kwargs["params"] = (values["model"], None)
    return fn(**kwargs)


def _first(module, *names):
    return next((getattr(module, n) for n in names if hasattr(module, n)), None)


def make_trainer(spec: Workload, seed: int, mode: str) -> Trainer:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jpc
    import optax

    act = getattr(jax.nn, spec.activation)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(spec.sizes) - 1)
    model = []
    for i, (n_in, n_out, k) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:], keys, strict=True)):
        linear = eqx.nn.Linear(n_in, n_out, key=k)
        last = i == len(spec.sizes) - 2
        model.append(linear if last else eqx.nn.Sequential([linear, eqx.nn.Lambda(act)]))

    def feedforward(m, x):
        acts = []
        for layer in m:
            x = jax.vmap(layer)(x)
            acts.append(x)
        return acts

    param_optim = optax.adam(spec.lr)
    update_activities = _first(jpc, "update_pc_activities", "update_activities")
    update_params = _first(jpc, "update_pc_params", "update_params")
    # From v1.0 the parameter optimiser's state covers (model, skip_model).
    paired = "params" in inspect.signature(jpc.make_pc_step).parameters or hasattr(
        jpc, "update_pc_params"
    )
    filtered = eqx.filter(model, eqx.is_array)
    opt_state = param_optim.init((filtered, None) if paired else filtered)
    notes = ""

    if spec.name == "mnist" and mode == "tta":

        @eqx.filter_jit
        def train_step(m, state, x, y):
            out = jpc.make_pc_step(m, param_optim, state, y, input=x)
            return out["model"], out["opt_state"]

        setting = (
            "make_pc_step defaults: diffrax Heun + PIDController(rtol=atol=1e-3), "
            f"max_t1=20, MSE output; Adam({spec.lr})"
        )
        notes = "jpc's documented one-line training step with its defaults"
    else:

        def half_sse(m, acts, x, y):
            states = [x, *acts[:-1], y]
            return sum(
                0.5 * jnp.sum((states[i + 1] - jax.vmap(layer)(states[i])) ** 2)
                for i, layer in enumerate(m)
            )

        # Measure jpc's energy normalisation once, away from equilibrium.
        probe_x = jax.random.uniform(jax.random.PRNGKey(1), (spec.batch, spec.sizes[0]))
        probe_y = jax.nn.one_hot(jnp.arange(spec.batch) % spec.sizes[-1], spec.sizes[-1])
        probe_acts = [a + 0.1 for a in feedforward(model, probe_x)]
        ratio = float(
            _call(jpc.pc_energy_fn, model=model, activities=probe_acts, y=probe_y, x=probe_x)
            / half_sse(model, probe_acts, probe_x, probe_y)
        )
        activity_lr = spec.dt / ratio
        notes = f"jpc energy = {ratio:g} x sum 1/2||e||^2, activity step rescaled to match"

        if update_activities is not None and update_params is not None:
            activity_optim = optax.sgd(activity_lr)

            @eqx.filter_jit
            def train_step(m, state, x, y):
                acts = _call(jpc.init_activities_with_ffwd, model=m, x=x)
                act_state = activity_optim.init(acts)

                def relax(carry, _):
                    a, s = carry
                    out = _call(
                        update_activities,
                        model=m,
                        activities=a,
                        optim=activity_optim,
                        opt_state=s,
                        y=y,
                        x=x,
                    )
                    return (out["activities"], out["opt_state"]), None

                (acts, _), _ = jax.lax.scan(relax, (acts, act_state), None, length=spec.steps)
                out = _call(
                    update_params,
                    model=m,
                    activities=acts,
                    optim=param_optim,
                    opt_state=state,
                    y=y,
                    x=x,
                )
                return out["model"], out["opt_state"]

            setting = (
                f"{update_activities.__name__} optax.sgd({activity_lr:g}) x T={spec.steps}; "
                f"Adam({spec.lr})"
            )
        else:
            import diffrax

            def train_step(m, state, x, y):
                out = jpc.make_pc_step(
                    m,
                    param_optim,
                    state,
                    y,
                    input=x,
                    ode_solver=diffrax.Euler(),
                    max_t1=spec.steps * activity_lr,
                    dt=activity_lr,
                    stepsize_controller=diffrax.ConstantStepSize(),
                )
                return out["model"], out["opt_state"]

            setting = f"make_pc_step diffrax.Euler dt={activity_lr:g}, t1=T*dt; Adam({spec.lr})"

    predict_jit = eqx.filter_jit(lambda m, x: feedforward(m, x)[-1])
    holder = {"model": model, "opt_state": opt_state}

    def step(x, y):
        holder["model"], holder["opt_state"] = train_step(
            holder["model"], holder["opt_state"], x, y
        )
        return eqx.filter(holder["model"], eqx.is_array)

    return Trainer(
        step=step,
        predict=lambda x: predict_jit(holder["model"], x),
        notes=notes,
        setting=setting,
    )


if __name__ == "__main__":
    sys.exit(main(library="jpc", make_trainer=make_trainer, distributions=("jpc", "equinox")))
