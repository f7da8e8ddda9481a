"""The package's import structure: no import circle, imports at module top.

Both checks read the source with :mod:`ast` (nothing is imported), so they
see the imports hidden inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dmtnn

PACKAGE = Path(dmtnn.__file__).parent

#: Optional dependencies: imported inside the function that needs them, so the
#: library imports without them.
OPTIONAL = {"papermill", "nbformat", "IPython", "dask", "distributed", "muspectre"}


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _in_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _in_function(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return True
    return False


def imports(name: str, path: Path, known: set[str]):
    """``(imported module, line, inside a function)`` for each import in one module.

    ``from a import b`` counts as importing ``a.b`` when that is a module, else
    ``a``. Imports under ``if TYPE_CHECKING`` are not run and are skipped.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _in_type_checking(node, parents):
            continue
        inside = _in_function(node, parents)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, inside
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            yield (full if full in known else base), node.lineno, inside


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (module top and inside functions).

    Importing ``a.b.c`` first runs ``a`` and ``a.b``, so those count too,
    except the importer's own enclosing packages (already being imported).
    """
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        for target, _, _ in imports(name, path, known):
            if target.split(".")[0] != "dmtnn":
                continue
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                step = ".".join(parts[:k])
                if step in known and step not in own and step != name:
                    graph[name].add(step)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def function_level_imports() -> list[str]:
    """``module:line name`` of each import inside a function that is not an optional dependency."""
    mods = modules()
    known = set(mods)
    found = {(name, line, target)
             for name, path in mods.items()
             for target, line, inside in imports(name, path, known)
             if inside and target.split(".")[0] not in OPTIONAL}
    return [f"{name}:{line} {target}" for name, line, target in sorted(found)]


def test_no_import_cycle():
    graph = import_graph()
    assert "dmtnn.data.dataset" in graph and graph["dmtnn.data.dataset"]  # the graph is built
    found = cycles(graph)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_only_for_optional_dependencies():
    found = function_level_imports()
    assert not found, "imports inside functions (move to the module top):\n" + "\n".join(found)
