"""The README's quickstart really runs, and its commands match CI."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_quickstart_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python block"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert acc > 0.9


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in readme
    assert re.search(r"^python -m pytest\s*$", ci, flags=re.M)


@pytest.mark.slow
def test_readme_astrocyte_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "README lost its astrocyte example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # the quickstart's net and data
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    report, store = namespace["report"], namespace["store"]
    energy = np.asarray(report.energy)
    assert energy.shape == (3,) and np.all(np.isfinite(energy[~np.isnan(energy)]))
    assert int(store.occupied.sum()) <= 64
    assert "energy of the replayed stimuli per round" in capsys.readouterr().out


def test_readme_headline_table_is_the_recorded_run():
    # The README's one table is the recorded results.json, row for row (3 decimals).
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- headline: (\w+) -->\n(.*?)<!-- /headline -->", text, re.S)
    assert block, "README lost its headline table"
    payload = json.loads(
        (ROOT / "benchmarks/results" / block.group(1) / "results.json").read_text()
    )
    recorded = {r["method"]: f"{r['mean']:.3f} ± {r['ci95']:.3f}" for r in payload["results"]}
    shown = dict(re.findall(r"^\| (\w+) \| ([0-9.]+ ± [0-9.]+) \|$", block.group(2), re.M))
    assert shown == recorded
