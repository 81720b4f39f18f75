"""Check that `.ci/lowest.txt` pins exactly pyproject.toml's lower bounds (for every runtime
dependency and every pinned test tool) and that the pinned versions are the ones installed."""

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def main() -> int:
    pins = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = project["dependencies"]
    bounds = {}
    for requirement in runtime + project["optional-dependencies"]["test"]:
        match = re.fullmatch(r"[^<>=!~]+>=([0-9][0-9a-z.]*)", requirement)
        bounds[_name(requirement)] = match.group(1) if match else None
    problems = [
        f"{name}: pyproject.toml's lower bound is {bounds.get(name)}, "
        f".ci/lowest.txt pins {pins.get(name)}"
        for name in sorted(set(pins) | {_name(r) for r in runtime})
        if bounds.get(name) != pins.get(name)
    ]
    for name, version in pins.items():
        installed = importlib.metadata.version(name)
        print(f"{name}=={installed}")
        if installed != version:
            problems.append(f"{name}: pinned {version}, installed {installed}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
