"""The notebooks in notebooks/ are stored with their outputs, which the documentation shows.

- every notebook runs top to bottom (a failing notebook fails the suite), once;
- its stored code is its generator's (`notebooks/_make_0N.py`), formatting aside;
- its stored outputs are what running it shows: the same outputs in each cell (streams,
  figures, values) with the same words; the numbers may differ between machines.

After changing a generator, `python notebooks/_make_0N.py` executes the notebook and stores
it again (`notebooks/_execute.py`).
"""

import ast
import copy
import importlib.util
import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GENERATORS = sorted((ROOT / "notebooks").glob("_make_*.py"))


def _load_executor():
    spec = importlib.util.spec_from_file_location(
        "pcastro_notebooks_execute", ROOT / "notebooks" / "_execute.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nb_execute = _load_executor()


def _generator(path: Path) -> Path:
    return ROOT / "notebooks" / f"_make_{path.name[:2]}.py"


def _code(source: str):
    """What a code cell does and says: its syntax tree and its comments (not its layout)."""
    tree = ast.dump(ast.parse(source))
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return tree, [t.string for t in tokens if t.type == tokenize.COMMENT]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


def test_every_notebook_has_its_generator():
    made = [nb_execute.generate(script)[1] for script in GENERATORS]
    assert sorted(made) == NOTEBOOKS
    assert all(_generator(path).is_file() for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_notebook_is_its_generators(path):
    stored = nbformat.read(path, as_version=4)
    made, _ = nb_execute.generate(_generator(path))
    script = _generator(path).name
    stale = f"{path.name} differs from {script}: run `python notebooks/{script}`"
    assert [c.cell_type for c in stored.cells] == [c.cell_type for c in made.cells], stale
    for i, (a, b) in enumerate(zip(stored.cells, made.cells)):
        if a.cell_type == "code":
            assert _code(a.source) == _code(b.source), f"cell {i}: {stale}"
        else:
            assert a.source == b.source, f"cell {i}: {stale}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_notebook_is_modest_and_shows_what_it_prints_and_plots(path):
    assert path.stat().st_size < 1_000_000, f"{path.name}: keep figures small (PNG, moderate size)"
    stored = nbformat.read(path, as_version=4)
    for i, cell in enumerate(stored.cells):
        if cell.cell_type == "code" and re.search(r"\bprint\(|\bplt\.show\(", cell.source):
            assert cell.outputs, f"{path.name}, cell {i}: no stored output"
        if cell.cell_type == "code":
            assert all(out.output_type != "error" for out in cell.outputs)
            assert all(out.get("name") != "stderr" for out in cell.outputs)


def test_code_comparison_ignores_layout_but_not_code_or_comments():
    code = "x = f('a'); y = [1,2]  # why\n"
    assert _code(code) == _code('x = f("a")\ny = [1, 2]  # why\n')
    assert _code(code) != _code("x = f('b'); y = [1,2]  # why\n")
    assert _code(code) != _code("x = f('a'); y = [1,2]  # what\n")


def test_output_summary_ignores_numbers_but_not_words_or_figures():
    def notebook(*outputs):
        return nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("x", outputs=list(outputs))]
        )

    def stdout(text):
        return nbformat.v4.new_output("stream", name="stdout", text=text)

    figure = nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBOR", "text/plain": "<Figure size 400x300>"}
    )
    summary = nb_execute.output_summary
    here = notebook(stdout("PC 0.939  backprop 0.942 [0.13 2.05 ]\n"), figure)
    there = notebook(stdout("PC 0.951  backprop 0.95 [0.125 1e-05]\n"), figure)
    assert summary(here) == summary(there)
    assert summary(here) != summary(notebook(stdout("PC 0.939  BP 0.942\n"), figure))
    assert summary(here) != summary(notebook(stdout("PC 0.939  backprop 0.942\n")))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_and_shows_its_stored_outputs(path, tmp_path):
    stored = nbformat.read(path, as_version=4)
    run = copy.deepcopy(stored)
    for cell in run.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nb_execute.execute(run, workdir=tmp_path)  # raises on the first cell that fails
    expected, got = nb_execute.output_summary(stored), nb_execute.output_summary(run)
    code_cells = [i for i, c in enumerate(stored.cells) if c.cell_type == "code"]
    for i, want, have in zip(code_cells, expected, got):
        assert have == want, (
            f"{path.name}, cell {i}: the stored outputs are not what the notebook shows now; "
            f"run `python notebooks/{_generator(path).name}`"
        )
