"""The `pcastro` command end to end on tiny configurations, and its error messages."""

import json
import re

import numpy as np
import pytest

from pcastro.cli import main

TINY = [
    "--episodes",
    "2",
    "--val-episodes",
    "1",
    "--queries",
    "2",
    "--inference-steps",
    "2",
    "--lrs",
    "0.01",
    "--no-progress",
]


def _check_results(path, keys):
    payload = json.loads(path.read_text())
    for field in ("config", "versions", "device", "devices", "seed", "results"):
        assert field in payload
    assert payload["results"], "no results"
    for row in payload["results"]:
        assert set(keys) <= set(row)
        assert 0.0 <= row["mean"] <= 1.0 and row["ci95"] >= 0.0 and row["n"] == 2
    return payload


@pytest.mark.slow
def test_oneshot_scratch_end_to_end(tmp_path, capsys):
    # Two learning rates: whichever is chosen lies at an edge of the grid.
    args = ["--max-updates", "3", "--astro-rounds", "1", "--lrs", "0.01,0.03"]
    code = main(["oneshot", *TINY, *args, "--out", str(tmp_path)])
    assert code == 0
    payload = _check_results(tmp_path / "results.json", ["method", "metric", "mean", "ci95", "n"])
    methods = {r["method"] for r in payload["results"]}
    assert methods == {"pc", "pc_astro", "backprop", "pixel_nn", "class_mean"} | {
        "proto_cos",
        "proto_euc",
        "imprint",
        "head_ft",
    }
    assert (tmp_path / "results.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "episodes/s" in out
    # A selection at the edge of its grid is flagged in results.json and in the printout;
    # an interior one is not (scratch: every novel bias ties, and 0, mid-grid, wins).
    selected = payload["details"]["selected"]
    assert "lr" in selected["pc"]["at_edge"]
    assert selected["proto_cos"]["novel_bias"] == 0.0 and selected["proto_cos"]["at_edge"] == []
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if "selected on" in line}
    assert f"lr={selected['pc']['lr']:.3g} (edge of grid)" in lines["pc"]
    assert "novel_bias=0" in lines["proto_cos"] and "edge" not in lines["proto_cos"]
    # Printed rounded (results.json keeps full precision).
    printed = lines["pc"].split("val_acc=")[1].split(",")[0]
    assert printed == f"{selected['pc']['val_acc']:.3g}"
    # The resolved configuration, not `hidden: null, methods: []`.
    assert payload["config"]["hidden"] == 128  # digits: 64 features
    assert set(payload["config"]["methods"]) == methods


@pytest.mark.slow
def test_oneshot_transfer_end_to_end(tmp_path):
    code = main(
        [
            "oneshot",
            "--protocol",
            "transfer",
            *TINY,
            "--pretrain-epochs",
            "1",
            "--updates-per-example",
            "1",
            "--astro-rounds",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    payload = _check_results(tmp_path / "results.json", ["method", "metric", "mean", "ci95", "n"])
    metrics = {r["metric"] for r in payload["results"]}
    assert metrics == {"novel_accuracy", "base_retention", "ten_way_accuracy"}


@pytest.mark.slow
def test_interrupt_end_to_end(tmp_path):
    methods = "pc_no_store,pc_replay,pc_store_stored,pc_store_fresh,pc_store_ne,pc_astro_ablated"
    code = main(
        ["interrupt", *TINY, "--max-updates", "3", "--methods", methods, "--out", str(tmp_path)]
    )
    assert code == 0
    payload = _check_results(
        tmp_path / "results.json", ["method", "phase", "task", "mean", "ci95", "n"]
    )
    rows = {(r["method"], r["phase"], r["task"]) for r in payload["results"]}
    assert ("pc_store_ne", "final", "A") in rows and ("pc_replay", "final", "B") in rows
    # The Lefton invariant at benchmark scale: ablated astrocytes learn exactly like the
    # ungated store with the same start.
    means = {(r["method"], r["phase"], r["task"]): r["mean"] for r in payload["results"]}
    start = (
        "pc_store_fresh" if payload["details"]["selected"]["store"]["fresh"] else "pc_store_stored"
    )
    for phase in ("A_k", "B", "final"):
        for task in ("A", "B"):
            assert means[("pc_astro_ablated", phase, task)] == means[(start, phase, task)]
    # Paired differences against the replay control, recomputable from the per-episode values.
    paired = {(r["method"], r["vs"], r["task"]): r for r in payload["paired"]}
    assert ("pc_store_ne", "pc_replay", "mean") in paired
    assert ("pc_replay", "pc_no_store", "A") in paired
    values = {
        (r["method"], r["task"]): np.asarray(r["values"])
        for r in payload["results"]
        if r["phase"] == "final"
    }
    row = paired[("pc_store_stored", "pc_replay", "A")]
    expected = values[("pc_store_stored", "A")] - values[("pc_replay", "A")]
    assert row["n"] == len(expected)
    assert row["diff"] == pytest.approx(expected.mean(), abs=1e-6)


def test_unknown_dataset_says_what_to_do(capsys):
    with pytest.raises(SystemExit, match="unknown dataset 'emnist'; choose one of digits"):
        main(["oneshot", "--dataset", "emnist"])


def test_more_shots_than_images_says_what_to_do(tmp_path, capsys):
    code = main(["oneshot", *TINY, "--shots", "500", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "shots=500" in err and "lower `shots`" in err


def test_missing_data_directory_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PCASTRO_DATA", raising=False)
    code = main(
        ["oneshot", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--no-progress"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "PCASTRO_DATA" in err and "--data-dir" in err


def test_a_setting_of_another_protocol_is_refused(capsys):
    # Transfer is 10-way by construction: `--ways` belongs to the scratch protocol.
    code = main(["oneshot", "--protocol", "transfer", "--ways", "5", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "`--ways` is a setting of the scratch protocol, not of transfer (drop it)" in err


@pytest.mark.parametrize("command", ["oneshot", "interrupt", "continual"])
def test_help_lists_every_option(command, capsys):
    # argparse %-formats help text; a stray "95% CI" in a config docstring broke --help
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--seed " in capsys.readouterr().out


@pytest.mark.parametrize("command", ["oneshot", "interrupt", "continual"])
def test_methods_list_prints_every_method_and_exits(command, capsys):
    from pcastro.bench._methods import REGISTRY

    assert main([command, "--methods", "list"]) == 0
    out = capsys.readouterr().out
    listed = {
        line.split()[0] for line in out.splitlines() if line.startswith("  ") and line[2] != " "
    }
    assert listed == set(REGISTRY[command])
    for name, method in REGISTRY[command].items():
        assert method.description.split()[0] in out, name
    assert "run by default:" in out


def test_methods_list_answers_before_any_work_and_help_points_to_it():
    # Without JAX: nothing is loaded, compiled or written.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pcastro.cli import main\n"
        "for command in ('oneshot', 'interrupt', 'continual'):\n"
        "    assert main([command, '--methods', 'list', '--out', '/nonexistent/x']) == 0\n"
        "print('jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("command", ["oneshot", "interrupt", "continual"])
def test_help_of_methods_is_short_and_points_to_the_list(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    entry = help_text[help_text.rindex("--methods METHODS") :]
    entry = entry[: entry.index(" --", 2)]
    assert "--methods list" in entry and len(entry) < 250


def test_a_second_run_into_the_same_folder_is_refused_before_any_work(tmp_path, capsys):
    # The silent failure this guards: a 2-episode smoke test replaced a real run's results.
    earlier = {"date": "2026-12-01 10:00:00 UTC", "command": "pcastro oneshot", "results": [1]}
    (tmp_path / "results.json").write_text(json.dumps(earlier))
    code = main(["oneshot", *TINY, "--max-updates", "2", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "already holds the results of an earlier run" in err
    assert "2026-12-01 10:00:00 UTC" in err and "--overwrite" in err
    assert json.loads((tmp_path / "results.json").read_text()) == earlier  # untouched
    for command in ("interrupt", "continual"):
        assert main([command, "--no-progress", "--out", str(tmp_path)]) == 2
        assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["continual", "--budgets", ""], "`--budgets` needs at least one value"),
        (["continual", "--hidden", ""], "`--hidden` needs at least one value"),
        (["continual", "--budgets", "100000000"], r"exceed the \d+ training images"),
        (["continual", "--val-fraction", "0.001"], "leaving it without validation images"),
        (
            ["oneshot", "--dataset", "omniglot", "--conv-channels", ""],
            "`--conv-channels` needs at least one value",
        ),
        (["oneshot", "--lrs", ""], "`--lrs` needs at least one value"),
    ],
)
def test_bad_list_options_are_refused_naming_the_flag(tmp_path, capsys, argv, match):
    code = main([*argv, "--no-progress", "--out", str(tmp_path / "out")])
    assert code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_default_folder_with_an_earlier_run_is_left_alone(tmp_path, monkeypatch, capsys):
    from pcastro.cli import _output_dir

    monkeypatch.chdir(tmp_path)
    args = type("Args", (), {"out": None, "overwrite": False})()
    first = tmp_path / "runs" / "oneshot-digits-scratch-s0"
    first.mkdir(parents=True)
    (first / "results.json").write_text("{}")
    assert _output_dir(args, "runs/oneshot-digits-scratch-s0").name == "oneshot-digits-scratch-s0-2"
    assert "holds an earlier run; writing to" in capsys.readouterr().err
    args.overwrite = True
    assert _output_dir(args, "runs/oneshot-digits-scratch-s0").name == "oneshot-digits-scratch-s0"


def test_help_and_argument_errors_do_not_import_jax():
    # `pcastro --help` took 4.6 s, nearly all of it importing JAX; the package's names now
    # load on first use, so help and argparse's own errors come back without it.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pcastro.cli import main\n"
        "for argv in (['--help'], ['oneshot', '--help'], ['continual', '--bogus']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
def test_the_compilation_cache_fills_and_is_recorded(tmp_path):
    # Warm starts: a run stores what it compiled in the cache folder (default: the user's
    # cache folder), so a second run compiles nothing it compiled before; the folder is
    # recorded with the results. Run apart: JAX sets its cache up once per process.
    import subprocess
    import sys

    cache = tmp_path / "cache"
    argv = ["oneshot", *TINY, "--max-updates", "2", "--methods", "pc", "--astro-rounds", "1"]

    def run(*extra):
        code = f"from pcastro.cli import main; raise SystemExit(main({argv + list(extra)!r}))"
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

    run("--out", str(tmp_path / "warm"), "--compilation-cache", str(cache))
    assert len(list(cache.rglob("*"))) > 5  # one entry per compiled program
    record = json.loads((tmp_path / "warm" / "results.json").read_text())
    assert record["compilation_cache"] == str(cache)
    run("--out", str(tmp_path / "cold"), "--no-compilation-cache")
    assert json.loads((tmp_path / "cold" / "results.json").read_text())["compilation_cache"] is None


def test_the_recorded_cache_folder_names_the_setting_not_the_home(monkeypatch):
    from pcastro.cli import _shown

    monkeypatch.setenv("HOME", "/home/someone")
    assert _shown("/home/someone/.cache/pcastro/jax") == "~/.cache/pcastro/jax"
    assert _shown("/data/cache") == "/data/cache"
    assert _shown("/home/someoneelse/cache") == "/home/someoneelse/cache"
    assert _shown(None) is None
