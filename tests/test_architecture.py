"""The shape of the package: no import cycles, no private names across modules, a thin CLI.

Imports are read from the source (every `import` statement, inside functions and
`if TYPE_CHECKING:` blocks included), so a cycle hidden in a lazy import fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "metatune"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every import in `name`."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    here = name if _is_package(name) else name.rpartition(".")[0]
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(base, a.name, node.lineno) for a in node.names]
    return out


def _edges(name: str) -> set[str]:
    """The metatune modules `name` imports explicitly (a package's submodule when named)."""
    deps = set()
    for module, attr, _ in _imports(name):
        if not module.startswith(PACKAGE):
            continue
        target = f"{module}.{attr}" if attr and f"{module}.{attr}" in MODULES else module
        if target in MODULES and target != name:
            deps.add(target)
    return deps


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_check_sees_lazy_and_type_checking_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    src = "def f():\n    from metatune.study import Study\nif TYPE_CHECKING:\n    import metatune.cli\n"
    tree = ast.parse(src)
    found = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(found) == 2


def test_no_import_cycle_among_the_modules() -> None:
    graph = {name: _edges(name) for name in MODULES}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_another_modules_private_names() -> None:
    bad = []
    for name in MODULES:
        for module, attr, line in _imports(name):
            if not module.startswith(PACKAGE) or not attr or not attr.startswith("_"):
                continue
            if attr.startswith("__"):
                continue
            private_submodule = f"{module}.{attr}" in MODULES
            if private_submodule and (name == module or name.startswith(module + ".")):
                continue  # a package's own private submodule, used inside the package
            bad.append(f"{MODULES[name].relative_to(SRC)}:{line}: from {module} import {attr}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_cli_only_parses_and_dispatches() -> None:
    cli = "metatune.cli"
    imported = {m for m, _, _ in _imports(cli)}
    assert not any(m.startswith("metatune.benchmarks") for m in imported), imported
    tree = ast.parse(MODULES[cli].read_text())
    calls = {
        n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    }
    assert not calls & {"Study", "Pipeline", "Stage", "plot_best_so_far"}, calls
    module_state = [
        n.targets[0].id
        for n in tree.body
        if isinstance(n, ast.Assign)
        and isinstance(n.targets[0], ast.Name)
        and isinstance(n.value, ast.Call)
        and n.targets[0].id.startswith("_")
        and n.targets[0].id.upper() != n.targets[0].id
    ]
    assert not module_state, f"module-level mutable state in cli.py: {module_state}"


@pytest.mark.parametrize("path", ["README.md"])
def test_readme_is_a_short_front_door(path: str) -> None:
    words = len((SRC.parent / path).read_text().split())
    assert words < 900, f"{path} has {words} words"


def test_test_modules_have_distinct_names():
    """tests/ has no __init__.py files: two test modules with one basename stop collection
    ('import file mismatch')."""
    tests = Path(__file__).resolve().parent
    names: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert not {n: p for n, p in names.items() if len(p) > 1}
