"""MkDocs hooks for the pcastro site.

- The notebooks (`notebooks/*.ipynb`) and the benchmark figures (`benchmarks/results/`)
  are served from where they live, not copied into `docs/`.
- A line `<!-- results: NAME -->` in a page is replaced by the table, command, provenance and
  figure of the recorded benchmark `NAME`, read from `benchmarks/results/` at build time,
  so the site always shows the latest recorded numbers (under today's method names); a
  line `<!-- api: MODULE -->` by a `::: MODULE` entry listing every name the module exports.
- The build fails (under `--strict` and without it) when a public name of pcastro has no
  docstring or no entry in the API reference.
- The site reads offline: MathJax is served from the site itself (copied from the
  installed `django-static-mathjax` package, which ships MathJax 3 under the Apache
  licence), the notebook pages lose the loaders nbconvert adds (MathJax 2 and Mermaid from
  a CDN; the site's MathJax serves every page and no notebook has a diagram), and the
  build fails when a page would still make the browser fetch a script, style, font or
  image from another host.
"""

import functools
import importlib
import importlib.resources
import inspect
import json
import logging
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NOTEBOOKS = ROOT / "notebooks"

# The public modules, and the API pages that must document every name they export.
PUBLIC_MODULES = ("pcastro", "pcastro.astro", "pcastro.data", "pcastro.baselines", "pcastro.bench")
log = logging.getLogger("mkdocs.hooks.pcastro")


# --- files from outside docs/ -----------------------------------------------------------


@event_priority(100)  # before mkdocs-jupyter turns notebooks into pages
def on_files(files, config):
    # Served at their repository paths (`notebooks/...`, `benchmarks/results/...`).
    paths = sorted(NOTEBOOKS.glob("[0-9]*.ipynb")) + sorted(RESULTS.rglob("*.png"))
    for path in paths:
        uri = path.relative_to(ROOT).as_posix()
        files.append(File(uri, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    for uri, path in mathjax_files().items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


# --- maths without a network ------------------------------------------------------------

MATHJAX = "_static/mathjax"  # mkdocs.yml's extra_javascript loads MATHJAX/tex-chtml-full.js


def mathjax_files() -> dict[str, Path]:
    """MathJax 3's TeX-to-HTML bundle (every TeX extension included, so nothing loads
    later), the fonts it loads from beside itself, and its licence, from the installed
    `django-static-mathjax` package, keyed by where the site serves them."""
    try:
        root = Path(str(importlib.resources.files("mathjax"))) / "static" / "mathjax"
    except ModuleNotFoundError:
        root = None
    bundle = root / "es5" / "tex-chtml-full.js" if root else None
    if bundle is None or not bundle.is_file():
        raise PluginError(
            "docs: the maths need MathJax 3 from the `django-static-mathjax` package "
            "(`mathjax/static/mathjax/es5/tex-chtml-full.js`); install the docs extra: "
            "pip install -e '.[docs]'"
        )
    fonts = root / "es5" / "output" / "chtml" / "fonts" / "woff-v2"
    out = {f"{MATHJAX}/tex-chtml-full.js": bundle, f"{MATHJAX}/LICENSE": root / "LICENSE"}
    for font in sorted(fonts.glob("*.woff")):
        out[f"{MATHJAX}/output/chtml/fonts/woff-v2/{font.name}"] = font
    return out


# nbconvert's MathJax 2 loader and configuration, and its Mermaid loader (both from a CDN).
_NBCONVERT_MATHJAX = re.compile(
    r'<script src="[^"]*">\s*</script>\s*<!-- MathJax configuration -->.*?'
    r"<!-- End of mathjax configuration -->",
    re.S,
)
_NBCONVERT_MERMAID = re.compile(
    r'<script type="module">(?:(?!</script>).)*?jp-Mermaid(?:(?!</script>).)*</script>', re.S
)
_TAG = re.compile(r"<(script|link|img|iframe|source|audio|video|embed)\b[^>]*>", re.I)
_ATTRIBUTE = re.compile(r"""([\w-]+)\s*=\s*(["'])(.*?)\2""", re.S)
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
_REMOTE_IN_CODE = re.compile(  # import("..."), @import "...", url(...) in scripts and styles
    r"""(?:\bimport\s*\(\s*|@import\s+(?:url\(\s*)?|\burl\(\s*)["']?((?:https?:)?//[^"')\s]+)""",
    re.I,
)


def network_assets(html: str) -> list[str]:
    """The URLs on other hosts that `html` makes a browser fetch to show it: the sources of
    scripts, images, frames and media, linked styles, icons and preloads, and the
    `import(...)`, `@import` and `url(...)` of inline scripts and styles. Links a reader
    follows (`<a href>`) are not fetched, so not listed."""
    found = []
    for tag in _TAG.finditer(html):
        attributes = {k.lower(): v for k, _, v in _ATTRIBUTE.findall(tag.group(0))}
        if tag.group(1).lower() == "link":
            fetched = {"stylesheet", "preload", "modulepreload", "icon", "manifest"}
            if not fetched & set(attributes.get("rel", "").lower().split()):
                continue
            url = attributes.get("href", "")
        else:
            url = attributes.get("src", "")
        if _REMOTE.match(url):
            found.append(url)
    return found + _REMOTE_IN_CODE.findall(html)


def strip_notebook_loaders(html: str) -> str:
    """A notebook page without nbconvert's MathJax 2 and Mermaid loaders."""
    return _NBCONVERT_MERMAID.sub("", _NBCONVERT_MATHJAX.sub("", html))


def on_post_page(output, page, config):
    if page.file.src_uri.endswith(".ipynb"):
        output = strip_notebook_loaders(output)
    remote = network_assets(output)
    if remote:
        raise PluginError(
            f"docs: {page.file.src_uri} would fetch from the network, but the site must "
            f"read offline: {', '.join(sorted(set(remote)))}"
        )
    return output


# --- benchmark tables ---------------------------------------------------------------------

_MARKER = re.compile(r"^<!--\s*results:\s*([\w./-]+)\s*-->\s*$", re.M)


_API = re.compile(r"^<!--\s*api:\s*([\w.]+)\s*-->\s*$", re.M)


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth
    markdown = _API.sub(lambda m: _module_block(m.group(1)), markdown)
    return _MARKER.sub(lambda m: _results_block(m.group(1), prefix), markdown)


def _module_block(module_name: str) -> str:
    """`::: module` listing every name the module exports, whatever they are at build time
    (griffe shows re-exported names only when they are listed)."""
    names = sorted(public_names(module_name), key=str.lower)
    return "\n".join(
        [
            f"::: {module_name}",
            "    options:",
            "      show_root_heading: false",
            "      show_root_toc_entry: false",
            "      members_order: alphabetical",
            f"      members: [{', '.join(names)}]",
        ]
    )


def _results_block(name: str, prefix: str) -> str:
    if name in _TABLES:
        return _TABLES[name](prefix)
    folder = RESULTS / name
    path = folder / "results.json"
    if not path.is_file() and (folder / "summary.md").is_file():
        # Several runs summarised by a benchmarks/ script (e.g. one per seed).
        return (folder / "summary.md").read_text()
    if not path.is_file() and (folder / "compute.md").is_file():
        # benchmarks/continual_compute.py: several summaries placed by replay compute.
        figure = f"![{name}]({prefix}benchmarks/results/{name}/compute.png)"
        return (folder / "compute.md").read_text() + "\n" + figure
    if not path.is_file():
        raise PluginError(
            f"docs: a page asks for benchmark results '{name}', but {path} is missing"
        )
    payload = json.loads(path.read_text())
    rows = payload["results"]
    # Tables name the methods as the command does today, however old the record.
    from pcastro.bench._methods import current_names

    kind = "continual" if "budget" in rows[0] else "interrupt" if "phase" in rows[0] else "oneshot"
    payload = current_names(payload, kind)
    rows = payload["results"]
    if "budget" in rows[0]:  # continual: the CLI's own table, seeds instead of episodes
        from pcastro.bench._continual_report import result_table

        table = "```text\n" + result_table(payload) + "\n```"
    else:
        table = _interrupt_table(rows) if "phase" in rows[0] else _oneshot_table(rows)
    out = [
        f"`{payload['command']}`",
        "",
        table,
        "",
        f"*Recorded {payload['date']} on `{payload['device']}`, seed {payload['seed']}; "
        f"mean ± 95% confidence interval over {'seeds' if 'budget' in rows[0] else 'episodes'}; "
        f"the full record (configuration, "
        f"versions, selections on validation) is `benchmarks/results/{name}/results.json`.*",
    ]
    selections = payload.get("details", {}).get("selected") or payload.get("details", {})
    notes = _selections(selections)
    if notes:
        out += ["", "Settings chosen on validation episodes (never on test):", "", notes]
    if (folder / "coverage.md").is_file():  # benchmarks/coverage.py: paired by placement
        out += ["", (folder / "coverage.md").read_text().split("\n", 2)[2]]
    for figure in ("results.png", "frontier.png", "coverage.png", "curves.png", "final.png"):
        if (folder / figure).is_file():
            out += ["", f"![{name} {figure}]({prefix}benchmarks/results/{name}/{figure})"]
    return "\n".join(out)


def _selections(details) -> str:
    if not isinstance(details, dict):
        return ""
    lines = []
    for method, chosen in details.items():
        if not isinstance(chosen, dict):
            continue
        # `at_edge`: the hyperparameters chosen at the smallest or largest value of their grid.
        edges = set(chosen.get("at_edge", ()))
        values = {k: v for k, v in chosen.items() if k != "at_edge"}
        if values and all(isinstance(v, (int, float, str, bool)) for v in values.values()):
            shown = ", ".join(
                (f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}")
                + (" (edge of grid)" if k in edges else "")
                for k, v in values.items()
            )
            lines.append(f"- `{method}`: {shown}")
    return "\n".join(lines)


def _oneshot_table(rows) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["metric"]): f"{r['mean']:.3f} ± {r['ci95']:.3f}" for r in rows}
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for m in methods:
        lines.append(f"| `{m}` | " + " | ".join(cell.get((m, k), "") for k in metrics) + " |")
    return "\n".join(lines)


def _interrupt_table(rows) -> str:
    cols = list(dict.fromkeys((r["phase"], r["task"]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {
        (r["method"], r["phase"], r["task"]): f"{r['mean']:.2f} ± {r['ci95']:.2f}" for r in rows
    }
    lines = [
        "| method | " + " | ".join(f"{p}: {t}" for p, t in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for m in methods:
        lines.append(f"| `{m}` | " + " | ".join(cell.get((m, p, t), "") for p, t in cols) + " |")
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _throughput(prefix: str) -> str:
    lines = [
        "| sizes, batch, T | pcastro PC step | lean PC step | backprop step "
        "| pcastro / lean | PC / backprop | compile (PC) |",
        "|---|---|---|---|---|---|---|",
    ]
    dates = []
    for path in sorted(RESULTS.glob("throughput_*.json")):
        d = json.loads(path.read_text())
        c = d["config"]
        lines.append(
            f"| {'-'.join(map(str, c['sizes']))}, {c['batch']}, {c['steps']} "
            f"| {d['pc_step_ms']:.2f} ms | {d['lean_step_ms']:.2f} ms | {d['bp_step_ms']:.2f} ms "
            f"| {d['pc_over_lean']:.2f} | {d['pc_over_bp']:.1f} | {d['pc_compile_s']:.2f} s |"
        )
        dates.append(f"`{path.name}`: `{d['command']}`, {d['date']}, `{d['device']}`")
    return "\n".join(lines + ["", "Records: " + "; ".join(dates) + "."])


def _compare(prefix: str) -> str:
    rows = json.loads((RESULTS / "compare_libraries.json").read_text())
    lines = [
        "| library | workload | samples/s (median) | best step samples/s | × pcastro "
        "| compile s | peak MiB | train acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("samples_per_s") is None:
            lines.append(f"| {r['library']} | {r['workload']} | {r.get('error', '–')} |||||||")
            continue
        lines.append(
            f"| {r['library']} | {r['workload']} | {r['samples_per_s']:.0f} "
            f"| {_fmt(r.get('samples_per_s_best_step'), '.0f')} "
            f"| {_fmt(r.get('ratio_to_pcastro'), '.2f')} | {_fmt(r.get('compile_s'), '.2f')} "
            f"| {_fmt(r.get('peak_mib'), '.0f')} | {_fmt(r.get('train_acc'), '.3f')} |"
        )
    lines += ["", f"![library comparison]({prefix}benchmarks/results/compare_libraries.png)"]
    return "\n".join(lines)


def _time_to_accuracy(prefix: str) -> str:
    rows = json.loads((RESULTS / "time_to_accuracy.json").read_text())
    lines = [
        "| library | seconds to 95% | compile s | epochs | final acc | setting |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("seconds") is None:
            lines.append(f"| {r['library']} | {r.get('error', '–')} |||||")
            continue
        lines.append(
            f"| {r['library']} | {r['seconds']:.2f} | {_fmt(r.get('compile_s'), '.2f')} "
            f"| {r.get('epochs', '–')} | {_fmt(r.get('final_acc'), '.3f')} "
            f"| {r.get('setting') or '–'} |"
        )
    lines += ["", f"![time to accuracy]({prefix}benchmarks/results/time_to_accuracy.png)"]
    return "\n".join(lines)


def _caps(meta: dict) -> str:
    """`25 epochs`, or each library's cap when they differ."""
    caps = meta.get("max_epochs_per_library") or {}
    if len(set(caps.values())) > 1:
        return "its epoch cap (" + ", ".join(f"{k} {v}" for k, v in caps.items()) + ")"
    return f"{meta['max_epochs']} epochs"


def _tta_mnist(record: str, prefix: str) -> str:
    """A full-MNIST time-to-accuracy record: per library its setting, the seconds to the
    target (median and every seed, compile included), how many seeds got there, and the
    seconds relative to pcx."""
    rows = json.loads((RESULTS / f"{record}.json").read_text())
    meta = json.loads((RESULTS / f"{record}.meta.json").read_text())
    target = rows[0]["target"]
    # When some library missed the run's target, the table reports the highest target
    # every library reached; the run's own target is shown beside it.
    aimed = meta["target"] if meta["target"] > target else None
    pcx = next((r["seconds"] for r in rows if r["library"] == "pcx"), None)
    extra = f" s to {100 * aimed:g}% (reached) |" if aimed else ""
    lines = [
        f"| library | setting | s to {100 * target:g}% (median) | per seed | reached "
        f"| × pcx's time |{extra} compile s | epochs | final acc |",
        "|---" * (9 + bool(aimed)) + "|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['library']} | {r['error']} |" + "|" * (7 + bool(aimed)))
            continue
        seeds = " / ".join(_fmt(v, ".1f") for v in r["seconds_per_seed"])
        ratio = r["seconds"] / pcx if r["seconds"] is not None and pcx else None
        cell = ""
        if aimed:
            top = r["by_target"][format(aimed, "g")]
            cell = f" {_fmt(top['seconds'], '.1f')} ({top['reached']}) |"
        lines.append(
            f"| {r['library']} | {r['setting']} | {_fmt(r['seconds'], '.1f')} | {seeds} "
            f"| {r['reached']} | {_fmt(ratio, '.2f')} |{cell} {_fmt(r['compile_s'], '.2f')} "
            f"| {_fmt(r['epochs'], 'g')} | {_fmt(r['final_acc'], '.4f')} |"
        )
    load = meta.get("load_avg_at_start", [None])[0], meta.get("load_avg_at_end", [None])[0]
    lines += [
        "",
        f"*`{meta['command']}`, {meta['date']}, {meta['machine']['cpu_count']} CPUs, load "
        f"average {_fmt(load[0], '.1f')} at the start and {_fmt(load[1], '.1f')} at the end; "
        f"a seed that never reaches {100 * target:g}% within {_caps(meta)} counts as "
        "slower than any that does.*",
        "",
        f"![{record}]({prefix}benchmarks/results/{record}.png)",
    ]
    return "\n".join(lines)


def _scaling(prefix: str) -> str:
    d = json.loads((RESULTS / "scaling_cpu.json").read_text())
    sweeps = list(dict.fromkeys(k.split(":")[0] for k in d["slopes"]))
    lines = [
        "| sweep | log-log slope, PC step | log-log slope, backprop step |",
        "|---|---|---|",
    ]
    for s in sweeps:
        lines.append(
            f"| {s} | {_fmt(d['slopes'].get(f'{s}:pc_ms'), '.2f')} "
            f"| {_fmt(d['slopes'].get(f'{s}:bp_ms'), '.2f')} |"
        )
    lines += [
        "",
        f"*`{d['command']}`, {d['date']}, `{d['device']}`.*",
        "",
        f"![scaling]({prefix}benchmarks/results/scaling_cpu.png)",
    ]
    return "\n".join(lines)


def _solver_cost(prefix: str) -> str:
    d = json.loads((RESULTS / "solver_cost_cpu.json").read_text())
    names = list(d["solvers"])
    lines = [
        "| T | " + " | ".join(f"`{d['solvers'][n]}`" for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for r in d["rows"]:
        cells = [
            f"{r['median_ms'][n]:.2f} ms" + ("" if n == "euler" else
                                             f" (+{100 * (r['ratio_to_euler'][n] - 1):.0f}%)")
            for n in names
        ]  # fmt: skip
        lines.append(f"| {r['steps']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"*`{d['command']}`, {d['date']} on `{d['device']}` ({d['cpu_count']} CPUs), median of "
        f"{d['repeats']} alternating repeats, batch {d['batch']}, sizes {d['sizes']}.*",
    ]
    return "\n".join(lines)


def _curvature(prefix: str) -> str:
    d = json.loads((RESULTS / "curvature_mnist.json").read_text())
    lines = [
        "| backprop updates | λ_max (largest over the batch) | median "
        "| largest stable Euler step |",
        "|---|---|---|---|",
    ]
    for updates, p in d["updates"].items():
        lines.append(
            f"| {int(updates):,} | {p['lambda_max']:.1f} | {p['lambda_median']:.1f} "
            f"| {2 / p['lambda_max']:.3f} |"
        )
    lines += [
        "",
        "| backprop updates | T | solver | status | mean energy "
        "| cosine with backprop, per layer |",
        "|---|---|---|---|---|---|",
    ]
    for updates, p in d["updates"].items():
        for r in p["solves"]:
            cos = " / ".join(f"{c:.3f}" for c in r["cosine_with_backprop"])
            status = r["status"] if r["status"] == "successful" else f"**{r['status']}**"
            lines.append(
                f"| {int(updates):,} | {r['steps']} | `{r['solver']}` | {status} "
                f"| {r['energy']:.4g} | {cos} |"
            )
    lines += [
        "",
        f"![dt * lambda_max over training]({prefix}benchmarks/results/curvature_mnist.png)",
        "",
        f"*`{d['command']}`, {d['date']} on `{d['device']}`, seed {d['seed']}; the figure "
        "plots `dt * lambda_max` at more points of the same training (`tracked`).*",
    ]
    return "\n".join(lines)


_TABLES = {
    "curvature": _curvature,
    "solver_cost": _solver_cost,
    "throughput": _throughput,
    "compare_libraries": _compare,
    "time_to_accuracy": _time_to_accuracy,
    "time_to_accuracy_mnist": functools.partial(_tta_mnist, "time_to_accuracy_mnist"),
    "time_to_accuracy_mnist_pcx_setting": functools.partial(
        _tta_mnist, "time_to_accuracy_mnist_pcx_setting"
    ),
    "time_to_accuracy_mnist_pcastro_setting": functools.partial(
        _tta_mnist, "time_to_accuracy_mnist_pcastro_setting"
    ),
    "time_to_accuracy_mnist_all": functools.partial(_tta_mnist, "time_to_accuracy_mnist_all"),
    "scaling": _scaling,
}


# --- every public name documented ---------------------------------------------------------

_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)


def on_post_build(config):
    documented = set()
    for page in (Path(config["docs_dir"]) / "api").glob("*.md"):
        text = page.read_text()
        documented.update(_DIRECTIVE.findall(text) + _API.findall(text))
    problems = public_api_problems(documented)
    if problems:
        raise PluginError("docs: the API reference is incomplete:\n  " + "\n  ".join(problems))


def public_names(module_name: str) -> dict[str, object]:
    """The names a public module exports (its re-exports), without submodules."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    return {
        n: getattr(module, n)
        for n in names
        if not inspect.ismodule(getattr(module, n)) and not n.startswith("_")
    }


def public_api_problems(documented: set[str]) -> list[str]:
    """Public names with no docstring (classes, functions and their public methods) or no
    `::: name` entry in `docs/api/` (a module entry covers all its names)."""
    problems = []
    by_object = {}
    for ident in documented:
        obj = _resolve(ident)
        if obj is not None:
            by_object.setdefault(id(obj), ident)
    for module_name in PUBLIC_MODULES:
        for name, obj in public_names(module_name).items():
            ident = f"{module_name}.{name}"
            if (
                ident not in documented
                and module_name not in documented
                and id(obj) not in by_object
            ):
                problems.append(f"{ident} has no `::: {ident}` entry in docs/api/")
            problems += [f"{ident}{where} has no docstring" for where in _undocumented(obj)]
    return sorted(set(problems))


def _resolve(ident: str):
    parts = ident.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p, None)
        return obj
    return None


def _undocumented(obj) -> list[str]:
    if not (inspect.isclass(obj) or inspect.isfunction(obj) or callable(obj)):
        return []
    if not inspect.isclass(obj) and not inspect.isfunction(obj):
        # A jitted function (equinox wraps it) still carries its docstring.
        return [] if inspect.getdoc(obj) else [""]
    missing = [] if _own_doc(obj) else [""]
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if name.startswith("_") or not (
                inspect.isfunction(member) or isinstance(member, property)
            ):
                continue
            if not inspect.getdoc(getattr(obj, name, member)) and not _inherited_doc(obj, name):
                missing.append(f".{name}")
    return missing


def _own_doc(obj) -> bool:
    doc = obj.__doc__
    if inspect.isclass(obj) and doc is not None:
        # A dataclass without a docstring gets an autogenerated signature as `__doc__`.
        if re.fullmatch(rf"{re.escape(obj.__name__)}\(.*\)", doc.strip(), flags=re.S):
            return False
    return bool(doc and doc.strip())


def _inherited_doc(cls, name: str) -> bool:
    for base in cls.__mro__[1:]:
        member = vars(base).get(name)
        if member is not None and getattr(member, "__doc__", None):
            return True
    return False
