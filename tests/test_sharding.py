"""Sharded runs equal one-device runs: 8 virtual CPU devices, and two real processes.

Each check runs in a fresh interpreter, because the number of virtual devices is fixed
when JAX starts.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import pcastro as pc
from pcastro._sharding import split_leading_axis
from pcastro.bench import ContinualConfig, InterruptConfig, ScratchConfig, TransferConfig
from pcastro.cli import main

ROOT = Path(__file__).resolve().parents[1]

EIGHT_DEVICES = textwrap.dedent(
    """
    import json
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import PartitionSpec as P

    import pcastro as pc

    out = {"devices": jax.device_count()}
    net = pc.mlp([6, 16, 4], key=jax.random.key(0), output_energy=pc.CrossEntropy())
    x = jax.random.normal(jax.random.key(1), (16, 6))
    y = jax.random.randint(jax.random.key(2), (16,), 0, 4)
    opt = optax.adam(1e-2)
    opt_state = opt.init(eqx.filter(net, eqx.is_inexact_array))

    def train(net, opt_state, x, y):
        for _ in range(3):
            net, opt_state, info = pc.train_step(net, opt_state, x, y, optimizer=opt, steps=8)
        return net, info

    one, one_info = train(net, opt_state, x, y)
    mesh = pc.make_mesh()
    xs, ys = pc.shard((x, y), mesh)
    out["x_spec"] = list(xs.sharding.spec)[:1]
    many, many_info = train(pc.replicate(net, mesh), pc.replicate(opt_state, mesh), xs, ys)
    diffs = [
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(many))
        if eqx.is_array(a)
    ]
    out["train_step_max_diff"] = max(diffs)
    out["state_spec"] = list(many_info.state.x[1].sharding.spec)[:1]
    out["energy_diff"] = float(abs(one_info.energy - many_info.energy))

    # Seed-parallel: eight independent networks, vmapped, their axis split over devices.
    keys = jax.random.split(jax.random.key(3), 8)
    nets = jax.vmap(lambda k: pc.mlp([6, 16, 4], key=k, output_energy=pc.CrossEntropy()))(keys)
    params, static = eqx.partition(nets, eqx.is_inexact_array)

    @jax.jit
    @jax.vmap
    def seed_step(p):
        model = eqx.combine(p, static)
        s = opt.init(p)
        model, _, info = pc.train_step(model, s, x, y, optimizer=opt, steps=8)
        return eqx.filter(model, eqx.is_inexact_array), info.energy

    p1, e1 = seed_step(params)
    p8, e8 = seed_step(pc.shard(params, mesh))
    out["seeds_max_diff"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p8))
    )
    out["seeds_energy_spec"] = list(e8.sharding.spec)[:1]

    try:
        pc.shard(jnp.ones((12, 3)), mesh)
    except ValueError as err:
        out["indivisible"] = str(err)
    print("RESULT " + json.dumps(out))
    """
)


def _run(code: str, env_extra: dict, timeout: int = 300, args: tuple = ()) -> dict:
    env = {**os.environ, **env_extra}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_eight_virtual_devices_equal_one_device():
    out = _run(EIGHT_DEVICES, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert out["devices"] == 8
    # The batch really is split, and stays split through inference.
    assert out["x_spec"] == ["batch"]
    assert out["state_spec"] == ["batch"]
    # Three sharded training steps equal three one-device steps to float tolerance.
    assert out["train_step_max_diff"] < 1e-5
    assert out["energy_diff"] < 1e-5
    # Eight vmapped networks split over eight devices equal the unsplit run.
    assert out["seeds_max_diff"] < 1e-5
    assert out["seeds_energy_spec"] == ["batch"]
    assert "must be a multiple of 8" in out["indivisible"]


DEVICES_FLAG = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp
    import numpy as np

    import pcastro as pc
    from pcastro._sharding import split_leading_axis
    from pcastro.bench._records import sweep_grid
    from pcastro.cli import main

    out = {"devices": jax.device_count()}
    mesh = pc.make_mesh()
    w = jnp.arange(3.0)

    def vmapped(keys, x, w):
        return jax.vmap(lambda k, v: jax.random.normal(k) + v @ w)(keys, x)

    def one_by_one(keys, x, w):
        return jax.lax.map(lambda a: jax.random.normal(a[0]) + a[1] @ w, (keys, x))

    for size in (16, 20):
        keys = jax.random.split(jax.random.key(size), size)
        x = jax.random.normal(jax.random.key(1), (size, 3))
        split = split_leading_axis(size, mesh)
        placed = split.place((keys, x, w), (0, 0, None))
        row = {
            "used": split.devices,
            "per_device": split.per_device,
            "key_devices": len(placed[0].sharding.device_set),
            "x_spec": list(placed[1].sharding.spec),
            "w_spec": list(placed[2].sharding.spec),
            "w_devices": len(placed[2].sharding.device_set),
        }
        for fn in (vmapped, one_by_one):
            got = jax.jit(split.spread(fn, (0, 0, None)))(*placed)
            row[fn.__name__ + "_shape"] = list(got.shape)
            row[fn.__name__ + "_out_devices"] = len(got.sharding.device_set)
            row[fn.__name__ + "_max_diff"] = float(jnp.max(jnp.abs(got - fn(keys, x, w))))
        out[size] = row

    class Grid:
        def grid(self):
            return {"a": (1, 2, 3), "lr": (10.0, 20.0)}

    def sweep(episode, lr):
        return jnp.stack([jnp.stack([a + lr + episode[0], -episode[0]]) for a in (1, 2, 3)])

    table = sweep_grid(Grid(), sweep, (jnp.arange(5.0),), mesh=mesh)
    a, lr, e = np.meshgrid([1, 2, 3], [10.0, 20.0], np.arange(5.0), indexing="ij")
    out["sweep_grid_ok"] = bool(
        table.shape == (3, 2, 5, 2)
        and np.array_equal(table[..., 0], a + lr + e)
        and np.array_equal(table[..., 1], -e)
    )

    # The command itself: 11 test and 3 validation episodes (uneven on 8 devices), a
    # tuned vmapped read-out and the two baselines that run episodes one by one.
    runs = {}
    for n in (8, 1):
        folder = Path(sys.argv[1]) / str(n)
        argv = [
            "oneshot", "--episodes", "11", "--val-episodes", "3", "--queries", "2",
            "--methods", "proto_cos", "--no-progress", "--devices", str(n), "--out", str(folder),
        ]
        assert main(argv) == 0
        runs[n] = json.loads((folder / "results.json").read_text())
    out["runs"] = {
        n: {
            "devices": p["devices"],
            "config_devices": p["config"]["devices"],
            "timing_devices": {k: v["devices"] for k, v in p["details"]["timing"].items()},
            "values": {r["method"]: r["values"] for r in p["results"]},
            "selected": p["details"]["selected"],
        }
        for n, p in runs.items()
    }
    out["too_many"] = main(["oneshot", "--devices", "9", "--no-progress"])
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def devices_flag(tmp_path_factory):
    """One interpreter with 8 virtual CPU devices for the `--devices` checks below."""
    folder = tmp_path_factory.mktemp("devices")
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    return _run(DEVICES_FLAG, env, args=[str(folder)])


def test_split_leading_axis_shards_over_eight_devices(devices_flag):
    out = devices_flag
    assert out["devices"] == 8
    # 16 problems: 2 on each of the 8 devices; the mapped arrays are split, the shared
    # one is replicated on the same devices.
    row = out["16"]
    assert (row["used"], row["per_device"], row["key_devices"]) == (8, 2, 8)
    assert row["x_spec"] == ["batch"] and row["w_spec"] == [] and row["w_devices"] == 8
    # 20 problems: 3 on each of 7 devices, one padded problem dropped again.
    row = out["20"]
    assert (row["used"], row["per_device"], row["key_devices"]) == (7, 3, 7)
    for size in ("16", "20"):
        for fn in ("vmapped", "one_by_one"):
            assert out[size][f"{fn}_shape"] == [int(size)]
            assert out[size][f"{fn}_out_devices"] == out[size]["used"]
            assert out[size][f"{fn}_max_diff"] < 1e-5
    assert out["sweep_grid_ok"]


@pytest.mark.slow
def test_oneshot_devices_8_equals_devices_1(devices_flag):
    eight, one = devices_flag["runs"]["8"], devices_flag["runs"]["1"]
    assert (eight["devices"], eight["config_devices"]) == (8, 8)
    assert (one["devices"], one["config_devices"]) == (1, 1)
    # 11 test episodes on 8 devices: 2 on each of 6.
    assert set(eight["timing_devices"].values()) == {6}
    assert set(one["timing_devices"].values()) == {1}
    assert set(eight["values"]) == {"proto_cos", "pixel_nn", "class_mean"}
    for method, values in one["values"].items():
        assert len(values) == 11
        assert eight["values"][method] == pytest.approx(values, abs=1e-6), method
    assert eight["selected"].keys() == one["selected"].keys()
    for method, chosen in one["selected"].items():
        assert eight["selected"][method].pop("at_edge") == chosen.pop("at_edge"), method
        assert eight["selected"][method] == pytest.approx(chosen, abs=1e-6), method
    # More devices than exist is refused by the command (exit status 2).
    assert devices_flag["too_many"] == 2


@pytest.mark.parametrize("cls", [ScratchConfig, TransferConfig, InterruptConfig, ContinualConfig])
@pytest.mark.parametrize("devices", [0, -1, 9999])
def test_devices_must_exist(cls, devices):
    with pytest.raises(ValueError, match=r"`--devices` must be an integer from 1 to \d+"):
        cls(devices=devices)
    assert cls(devices=1).devices == 1 and cls().devices is None


def test_devices_flag_error_says_what_to_do(capsys):
    assert main(["oneshot", "--devices", "9999", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "`--devices` must be an integer from 1 to" in err
    assert "--xla_force_host_platform_device_count" in err


def test_split_leading_axis_checks_its_arguments():
    mesh = pc.make_mesh(1)
    split = split_leading_axis(5, mesh)
    assert (split.devices, split.per_device) == (1, 5)
    with pytest.raises(ValueError, match="`size` must be a positive number"):
        split_leading_axis(0, mesh)
    with pytest.raises(ValueError, match="`in_axes` must give 0"):
        split.place((jnp.ones((5, 2)),), (1,))
    with pytest.raises(ValueError, match="must have 5 rows"):
        split.place((jnp.ones((4, 2)),), (0,))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process():
    """`jax.distributed` with two local CPU processes (gloo collectives), each reading
    half of every batch, gives the parameters of a one-process run."""
    script = str(ROOT / "benchmarks" / "data_parallel.py")
    common = ["--epochs", "1", "--batch", "32", "--steps", "5"]
    single = subprocess.run(
        [sys.executable, script, "--devices", "1", *common],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    reference = json.loads(single.stdout.strip().splitlines()[-1])
    port = _free_port()
    argv = ["--coordinator", f"127.0.0.1:{port}", "--processes", "2", "--gloo", *common]
    procs = [
        subprocess.Popen(
            [sys.executable, script, *argv, "--rank", str(rank)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    records = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr[-3000:]
            records.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            proc.kill()
    assert [r["processes"] for r in records] == [2, 2]
    assert sorted(r["rank"] for r in records) == [0, 1]
    for record in records:
        assert record["checksum"] == pytest.approx(reference["checksum"], rel=1e-5, abs=1e-5)
        assert record["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-6)


def test_make_mesh_refuses_more_devices_than_exist():
    with pytest.raises(ValueError, match="Asked for 9999 devices"):
        pc.make_mesh(9999)
    assert pc.make_mesh(1).size == 1
    assert len(jax.devices()) >= 1
