"""Executes the tutorial notebooks and stores them with their outputs, so that the
documentation shows what each cell prints and plots.

    python notebooks/_make_01.py     # regenerate, execute and store 01_quickstart.ipynb
    python notebooks/_execute.py     # every notebook (a few minutes on 2 cores)

Each `_make_0N.py` defines the notebook (`nb`) and where it is stored (`path`); this module
formats its code with ruff (as `ruff format --check .` expects), executes it in a temporary
folder and writes it with its outputs. The stored outputs are kept as free of the machine
as they can be: cell ids follow the cell's position, no timings are recorded, the kernel's
`language_info` is dropped, and stderr is left out (it carries warnings that differ
between machines and name where packages are installed, such as tqdm's about ipywidgets;
a notebook that means to show a warning prints it). `tests/test_notebooks.py` executes
each stored notebook once and checks that its sources are the generator's and that its
outputs have the structure the run gives.
"""

import re
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
TIMEOUT = 600  # seconds per cell


def generate(script: Path) -> tuple[nbformat.NotebookNode, Path]:
    """The notebook a `_make_0N.py` script defines, without outputs, and where it goes."""
    scope = runpy.run_path(str(script), run_name="_make")
    return scope["nb"], Path(scope["path"])


def execute(nb: nbformat.NotebookNode, *, workdir: Path) -> nbformat.NotebookNode:
    """Executes `nb` in place (in `workdir`, so files it writes land there) and returns it
    with its outputs made deterministic (`clean_outputs`). A failing cell raises nbclient's
    `CellExecutionError`, which shows the cell and its traceback."""
    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return clean_outputs(nb)


def clean_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drops stderr, merges consecutive streams of one kind (how a stream is split into
    outputs depends on timing), numbers the cell ids and keeps only the kernelspec."""
    nb.metadata = nbformat.from_dict({"kernelspec": nb.metadata["kernelspec"]})
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                continue
            previous = outputs[-1] if outputs else None
            if (
                out.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and previous.name == out.name
            ):
                previous.text += out.text
            else:
                outputs.append(out)
        cell.outputs = outputs
    return nb


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[A-Za-z_]+")


def output_summary(nb: nbformat.NotebookNode) -> list[list[tuple]]:
    """Per code cell, what it shows without the numbers: each output's kind, its MIME
    types, and the words of its text (numbers and spacing differ between machines; the
    words, and whether a cell prints or plots at all, do not)."""
    summary = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        shown = []
        for out in cell.outputs:
            if out.output_type == "stream":
                shown.append(("stream", out.name, _words(out.text)))
            else:
                data = out.get("data", {})
                shown.append(
                    (out.output_type, tuple(sorted(data)), _words(data.get("text/plain", "")))
                )
        summary.append(shown)
    return summary


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(_NUMBER.sub(" ", text)))


def format_code(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` with its code cells formatted by ruff (the repository's settings)."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "notebook.ipynb"
        nbformat.write(nb, staged)
        subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--quiet", "--config",
             str(HERE.parent / "pyproject.toml"), str(staged)],
            check=True,
        )  # fmt: skip
        return nbformat.read(staged, as_version=4)


def write_executed(nb: nbformat.NotebookNode, path: Path) -> None:
    """Formats, executes and stores `nb` at `path` with its outputs."""
    nb = format_code(nb)
    with tempfile.TemporaryDirectory() as workdir:
        nb = execute(nb, workdir=Path(workdir))
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


def main(names: list[str]) -> None:
    scripts = sorted(HERE.glob("_make_*.py"))
    if names:
        scripts = [s for s in scripts if any(s.stem.endswith(n) for n in names)]
    for script in scripts:
        nb, path = generate(script)
        write_executed(nb, path)


if __name__ == "__main__":
    main(sys.argv[1:])
