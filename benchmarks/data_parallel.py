"""Data-parallel PC training with JAX's own sharding, on one host or many.

One host, every local device (or N virtual CPU devices):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/data_parallel.py

Many hosts (one process per host or per GPU, e.g. one SLURM task each): every process
runs the same command with the coordinator's address and its own rank,

    python benchmarks/data_parallel.py --coordinator HOST:PORT --processes N --rank R

(under SLURM or Open MPI, `srun python benchmarks/data_parallel.py --distributed` instead:
`jax.distributed.initialize()` then reads the coordinator, count and rank from the
environment). Each process reads its own slice of every batch; `pcastro.shard_local`
assembles the global batch; the parameters are replicated; `pcastro.train_step` runs
unchanged and XLA inserts the all-reduce of the weight gradient. The script prints the
final test accuracy and the parameter checksum, equal in every process and equal to a
one-device run of the same batches.
"""

import argparse
import json
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    p.add_argument("--processes", type=int, default=None, help="number of processes")
    p.add_argument("--rank", type=int, default=None, help="this process's index")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() with settings from the cluster's environment",
    )
    p.add_argument("--gloo", action="store_true", help="CPU collectives across processes")
    p.add_argument("--devices", type=int, default=None, help="devices to use (default all)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--batch", type=int, default=64, help="global batch size")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="inference steps")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import jax

    if args.gloo:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.distributed:
        jax.distributed.initialize()
    elif args.processes is not None and args.processes > 1:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.processes,
            process_id=args.rank,
        )

    import equinox as eqx
    import numpy as np
    import optax

    import pcastro as pc
    from pcastro.data import load_dataset

    data = load_dataset(args.dataset)
    mesh = pc.make_mesh(args.devices)
    nproc, rank = jax.process_count(), jax.process_index()
    if args.batch % mesh.size:
        raise SystemExit(f"--batch {args.batch} must be a multiple of the {mesh.size} devices.")
    local = args.batch // nproc

    features = data.x_train.shape[1]
    net = pc.mlp(
        [features, 128, 10], key=jax.random.key(args.seed), output_energy=pc.CrossEntropy()
    )
    optimizer = optax.adam(1e-3)
    params = pc.replicate(eqx.filter(net, eqx.is_inexact_array), mesh)
    net = eqx.combine(params, net)
    opt_state = pc.replicate(optimizer.init(params), mesh)

    @eqx.filter_jit
    def step(net, opt_state, x, y):
        net, opt_state, _ = pc.train_step(
            net, opt_state, x, y, optimizer=optimizer, steps=args.steps
        )
        return net, opt_state

    rng = np.random.default_rng(args.seed)  # the same order in every process
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = rng.permutation(len(data.x_train))
        for b in range(0, len(order) - args.batch + 1, args.batch):
            rows = order[b : b + args.batch][rank * local : (rank + 1) * local]
            x, y = pc.shard_local((data.x_train[rows], data.y_train[rows]), mesh)
            net, opt_state = step(net, opt_state, x, y)
    jax.block_until_ready(net)
    wall = time.perf_counter() - t0
    # The parameters are replicated: every process holds a full copy to evaluate.
    net = jax.tree_util.tree_map(
        lambda a: np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array) else a, net
    )
    leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))
    record = {
        "processes": nproc,
        "rank": rank,
        "devices": mesh.size,
        "platform": jax.devices()[0].platform,
        "accuracy": float(pc.accuracy(net, data.x_test, data.y_test)),
        "checksum": float(sum(np.asarray(leaf, np.float64).sum() for leaf in leaves)),
        "wall_s": wall,
    }
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
