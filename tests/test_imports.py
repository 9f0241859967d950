"""The package structure: no import cycle among the project's modules, no layer importing upward, and every
`export` module importable on its own.

For cycles and layers the modules are read, not run: every `import` statement counts, at the top of a module or
inside a function (a late import only hides a cycle). Layers: `edge` (the runtime) imports neither `train` nor
`export`, and `train` does not import `export`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "train", "export")
#: What each package may import of the others (the README's "Layout").
ALLOWED = {"edge": {"edge"}, "train": {"edge", "train"}, "export": {"edge", "train", "export"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the packages."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names a module imports: `import a.b` gives a.b; `from a import b` gives a.b and a."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name that is not a module counts as its module)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        imported = _imported_names(tree, name, path.name == "__init__.py")
        graph[name] = {n for n in imported if n in modules and n != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_layer_imports_upward() -> None:
    upward = sorted(f"{module} imports {target}" for module, targets in import_graph().items() for target in targets
                    if target.split(".")[0] not in ALLOWED[module.split(".")[0]])
    assert not upward


def test_every_package_is_installed() -> None:
    """pyproject.toml names the packages a wheel holds: each package folder of the layers must be there."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {_module_name(p) for package in PACKAGES for p in (REPO / package).rglob("__init__.py")}
    assert folders <= listed, sorted(folders - listed)


def test_the_checker_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(m for m in project_modules() if m.startswith("export") and
                                          not m.endswith("__main__")))
def test_export_module_imports_in_a_fresh_interpreter(module: str) -> None:
    """Each module imports first, alone (an import that works only after another module's is a hidden cycle)."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
