"""PC training-step throughput against backprop and a lean hand-written PC step.

    python benchmarks/throughput.py --sizes 784,256,256,10 --batch 256 --steps 20 \
        --repeats 5 --json benchmarks/results/throughput_256.json

Measures in one process, after warm-up, the median time of: pcastro's PC training step
(T inference steps + one weight update), a lean hand-written PC step (`jax.grad` over
the states inside `lax.scan`; see `lean.py`) and a backprop step on the same Equinox
modules. Compile times are measured apart.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from _common import environment, peak_memory_mib, time_calls, write_json  # noqa: E402
from lean import init_params, make_step  # noqa: E402

import pcastro as pc  # noqa: E402
from pcastro.baselines import backprop_step  # noqa: E402


def _net_from_params(params, sizes):
    net = pc.mlp(sizes, key=jax.random.key(0), dtype=params[0][0].dtype)
    for i, (w, b) in enumerate(params):
        net = eqx.tree_at(
            lambda n, i=i: (n.nodes[i].modules[0].weight, n.nodes[i].modules[0].bias), net, (w, b)
        )
    return net


def pcastro_step(net, optimizer, *, steps, solver, throw=True):
    """A jitted PC training step `(params, opt_state, x, y) -> (params, opt_state, x, y)`
    that donates its params and optimiser state, and the initial params."""
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def step(params, opt_state, x, y):
        model = eqx.combine(params, static)
        model, opt_state, _ = pc.train_step(
            model, opt_state, x, y, optimizer=optimizer, solver=solver, steps=steps, throw=throw
        )
        return eqx.filter(model, eqx.is_inexact_array), opt_state, x, y

    return jax.jit(step, donate_argnums=(0, 1)), params


def backprop(net, optimizer):
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def step(params, opt_state, x, y):
        model, opt_state, _ = backprop_step(
            eqx.combine(params, static), opt_state, x, y, optimizer=optimizer
        )
        return eqx.filter(model, eqx.is_inexact_array), opt_state, x, y

    return jax.jit(step, donate_argnums=(0, 1)), params


def _cost(fn, args) -> dict:
    """XLA's static cost analysis of the compiled step: flops and bytes accessed."""
    analysis = fn.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):  # older jax returns one dict per computation
        analysis = analysis[0]
    return {
        "flops": float(analysis.get("flops", -1)),
        "bytes": float(analysis.get("bytes accessed", -1)),
    }


def measure(sizes, *, batch, steps, repeats, inner, dt=0.1, dtype="float32", seed=0):
    dtype = jnp.dtype(dtype)
    key = jax.random.key(seed)
    kp, kx, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (batch, sizes[0]), dtype)
    y = jax.nn.one_hot(jax.random.randint(ky, (batch,), 0, sizes[-1]), sizes[-1], dtype=dtype)
    opt = optax.adam(1e-3)
    # Every step donates its parameters, so each gets its own copy of the same weights.
    net = _net_from_params(init_params(kp, sizes, dtype), sizes)
    order = [
        ("lean", lambda: (make_step(opt, steps=steps, dt=dt), init_params(kp, sizes, dtype))),
        ("pc", lambda: pcastro_step(net, opt, steps=steps, solver=pc.Euler(dt=dt))),
        ("bp", lambda: backprop(_net_from_params(init_params(kp, sizes, dtype), sizes), opt)),
    ]
    # Compile each step apart, then time them round-robin so that machine drift hits all
    # three alike; each repeat times `inner` consecutive calls.
    fns, args, out = {}, {}, {}
    for name, build in order:
        fn, params = build()
        compile_s, _, _, state = time_calls(fn, (params, opt.init(params), x, y), repeats=0)
        cost = _cost(fn, state)  # after the timed first call, so compile time stays honest
        fns[name], args[name] = fn, state
        out[name] = {"compile_s": compile_s, "all_ms": [], **cost}
    for _ in range(repeats):
        for name in fns:
            t0 = time.perf_counter()
            state = args[name]
            for _ in range(inner):
                state = fns[name](*state)
            args[name] = jax.block_until_ready(state)
            out[name]["all_ms"].append(1e3 * (time.perf_counter() - t0) / inner)
    for name in fns:
        out[name]["step_ms"] = statistics.median(out[name]["all_ms"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="784,256,256,10")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="inference steps T")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner", type=int, default=10, help="steps per timed repeat")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    res = measure(
        sizes,
        batch=args.batch,
        steps=args.steps,
        repeats=args.repeats,
        inner=args.inner,
        dtype=args.dtype,
        seed=args.seed,
    )
    record = {
        **environment(),
        "config": vars(args) | {"sizes": sizes},
        "pc_step_ms": res["pc"]["step_ms"],
        "bp_step_ms": res["bp"]["step_ms"],
        "lean_step_ms": res["lean"]["step_ms"],
        "pc_compile_s": res["pc"]["compile_s"],
        "bp_compile_s": res["bp"]["compile_s"],
        "lean_compile_s": res["lean"]["compile_s"],
        "pc_over_lean": res["pc"]["step_ms"] / res["lean"]["step_ms"],
        "pc_over_bp": res["pc"]["step_ms"] / res["bp"]["step_ms"],
        "lean_over_bp": res["lean"]["step_ms"] / res["bp"]["step_ms"],
        "samples_per_s": args.batch / (res["pc"]["step_ms"] / 1e3),
        "peak_mib": peak_memory_mib(),
        "raw": res,
    }
    print(
        f"{'step':<10}{'median ms':>12}{'compile s':>12}{'x backprop':>12}{'GFLOP':>10}{'MB':>10}"
    )
    for name in ("pc", "lean", "bp"):
        r = res[name]
        ratio = r["step_ms"] / res["bp"]["step_ms"]
        print(
            f"{name:<10}{r['step_ms']:>12.3f}{r['compile_s']:>12.2f}{ratio:>12.2f}"
            f"{r['flops'] / 1e9:>10.3f}{r['bytes'] / 1e6:>10.2f}"
        )
    print(
        f"pcastro / lean = {record['pc_over_lean']:.3f}; "
        f"samples/s = {record['samples_per_s']:.0f}; peak {record['peak_mib']:.0f} MiB"
    )
    if args.json:
        write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()
