"""The documentation's code runs, and every public name is documented.

- every ```python block of a page under docs/ runs (the blocks of one page share a
  namespace, in order, as a reader would run them);
- every ```python block in a public docstring runs;
- every public name has a docstring and an entry in the API reference (the same check
  that fails `mkdocs build`).
"""

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def _load_hooks():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    spec = importlib.util.spec_from_file_location("pcastro_docs_hooks", DOCS / "_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text (a page, or a docstring as
    `inspect.getdoc` returns it)."""
    return _BLOCK.findall(text)


PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p.read_text()))


def test_block_extraction():
    text = "Intro.\n\n```python\nx = 1\n```\n\n```bibtex\n@a{b}\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = x\n"]
    assert PAGES, "no page under docs/ has a python block"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page, capsys):
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for i, block in enumerate(python_blocks(page.read_text())):
        exec(compile(block, f"{page.relative_to(ROOT)} (block {i + 1})", "exec"), namespace)


def _public_docstrings():
    import pcastro  # noqa: F401 -- makes the submodules importable by name

    modules = ("pcastro", "pcastro.astro", "pcastro.data", "pcastro.baselines", "pcastro.bench")
    seen, out = set(), []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or inspect.ismodule(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            members = [(f"{module_name}.{name}", obj)]
            if inspect.isclass(obj):
                members += [
                    (f"{module_name}.{name}.{m}", v)
                    for m, v in vars(obj).items()
                    if not m.startswith("_") and callable(v)
                ]
            for ident, member in members:
                doc = inspect.getdoc(member) or ""
                for i, block in enumerate(python_blocks(doc)):
                    out.append(pytest.param(block, id=f"{ident}[{i}]"))
    return out


DOCSTRING_BLOCKS = _public_docstrings()


@pytest.mark.parametrize("block", DOCSTRING_BLOCKS or [pytest.param(None, id="none")])
def test_docstring_code_runs(block):
    if block is None:
        pytest.skip("no public docstring has a python block yet")
    exec(compile(block, "<docstring>", "exec"), {"__name__": "docstring"})


def test_every_public_name_has_a_docstring_and_an_api_entry():
    hooks = _load_hooks()
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        text = page.read_text()
        documented.update(hooks._DIRECTIVE.findall(text) + hooks._API.findall(text))
    assert hooks.public_api_problems(documented) == []


def test_the_api_check_catches_an_undocumented_name():
    hooks = _load_hooks()
    problems = hooks.public_api_problems(set())
    assert "pcastro.infer has no `::: pcastro.infer` entry in docs/api/" in problems

    class Undocumented:
        def method(self):
            return None

    assert hooks._undocumented(Undocumented) == ["", ".method"]


def test_site_config_builds_offline():
    config = (ROOT / "mkdocs.yml").read_text()
    # No remote inventories (`import:` of objects.inv): the build must not need a network.
    assert not re.search(r"^\s*import:", config, flags=re.M)
    assert "docs/_hooks.py" in config


def _config_list(config: str, key: str) -> list[str]:
    block = re.search(rf"^{key}:\n((?:  - .*\n)+)", config, flags=re.M)
    assert block, f"mkdocs.yml has no {key} list"
    return [line.split("#")[0].strip()[2:] for line in block.group(1).splitlines()]


def test_site_reads_offline():
    """No script, style, font or image of the site comes from another host: not in
    mkdocs.yml, not in a page, not in the notebook pages' template; the maths are typeset by
    a MathJax the build copies from an installed package."""
    hooks = _load_hooks()
    config = (ROOT / "mkdocs.yml").read_text()
    assets = _config_list(config, "extra_javascript") + _config_list(config, "extra_css")
    assert f"{hooks.MATHJAX}/tex-chtml-full.js" in assets
    remote = [a for a in assets if hooks._REMOTE.match(a)]
    assert not remote, f"mkdocs.yml loads {remote} from the network"
    served = hooks.mathjax_files()
    assert f"{hooks.MATHJAX}/tex-chtml-full.js" in served and len(served) > 20  # + fonts
    assert all(path.is_file() for path in served.values())

    import nbformat

    sources = {str(p.relative_to(ROOT)): p.read_text() for p in DOCS.rglob("*.md")}
    sources |= {str(p.relative_to(ROOT)): p.read_text() for p in (DOCS / "_static").iterdir()}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            shown = [cell.source] + [
                str(out.get("data", {}).get(kind, ""))
                for out in cell.get("outputs", [])
                for kind in ("text/html", "image/svg+xml", "text/markdown")
            ]
            sources[f"{path.name}, cell {i}"] = "\n".join(shown)
    fetched = {name: hooks.network_assets(text) for name, text in sources.items()}
    assert {name: urls for name, urls in fetched.items() if urls} == {}


def test_notebook_pages_lose_their_cdn_loaders():
    hooks = _load_hooks()
    nbconvert2 = pytest.importorskip("mkdocs_jupyter.nbconvert2")
    # nbconvert's own defaults: MathJax 2 and Mermaid from a CDN.
    html = nbconvert2.nb2html(str(ROOT / "notebooks" / "05_depth.ipynb"))
    assert hooks.network_assets(html)
    stripped = hooks.strip_notebook_loaders(html)
    assert hooks.network_assets(stripped) == []
    assert "jp-Notebook" in stripped and "data:image/png;base64" in stripped


def test_network_assets_are_found():
    hooks = _load_hooks()
    page = """
    <a href="https://github.com/liukidar/pcx">pcx</a> <img src="data:image/png;base64,iVBOR">
    <script src="../_static/mathjax/tex-chtml-full.js"></script>
    <link rel="canonical" href="https://example.org/pcastro/">
    <script src="https://cdn.example.org/mathjax.js"></script>
    <link href='//fonts.example.org/css' rel='stylesheet'>
    <img alt="badge" src="http://img.example.org/badge.svg">
    <script type="module">await import("https://cdn.example.org/mermaid.mjs")</script>
    <style>@import url("https://fonts.example.org/roboto.css");</style>
    """
    assert hooks.network_assets(page) == [
        "https://cdn.example.org/mathjax.js",
        "//fonts.example.org/css",
        "http://img.example.org/badge.svg",
        "https://cdn.example.org/mermaid.mjs",
        "https://fonts.example.org/roboto.css",
    ]


@pytest.mark.parametrize(
    "name", ["pcastro", "pcastro.astro", "pcastro.data", "pcastro.baselines", "pcastro.bench"]
)
def test_every_public_module_declares_its_names(name):
    module = importlib.import_module(name)
    declared = module.__all__
    assert len(set(declared)) == len(declared)
    for attr in declared:
        getattr(module, attr)
    # Nothing public that is not declared: `import x` leftovers and helpers stay private.
    public = {
        n for n in dir(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))
    }
    assert public <= set(declared), sorted(public - set(declared))
