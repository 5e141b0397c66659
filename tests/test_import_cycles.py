"""No import cycles among agent/ and mbeans/ modules, and mbeans/ stays a library the agent uses.

Read from the source (the AST), not by importing: each module's imports at module level, an import of
`a.b.c` also running `a/__init__` and `a/b/__init__` (but for the importer's own packages: a package's
`__init__` importing its modules, as mbeans/jolokia/ does, is how packages work, not a cycle). A cycle kept working by an import inside a
function, or under `if TYPE_CHECKING:`, is still a cycle in the design; those that remain are named in
KNOWN_DEFERRED, each with why, and this test fails when a new one appears or a known one is gone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "mbeans")

# Cycles closed only by an import inside a function or under TYPE_CHECKING (never at import time).
KNOWN_DEFERRED: dict[frozenset[str], str] = {
    frozenset({"agent.ledgersync.graph", "agent.ledgersync.graph_build"}): (
        "the graph's builder, split off for size, reaches into the graph it fills; it names the "
        "graph's type under TYPE_CHECKING only"
    ),
}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The module of ours that importing name runs (a.b.C -> a.b), or None for another library."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _parents(module: str) -> Iterator[str]:
    parts = module.split(".")
    for n in range(1, len(parts)):
        yield ".".join(parts[:n])


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> set[str]:
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = set()
    for name in names:
        target = _known(name)
        if target is not None:
            out.add(target)
            out.update(_parents(target))
    return out - {module, *_parents(module)}


def _walk(node: ast.AST, *, hidden: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under node, and whether it runs only later: in a function, or for type checkers."""
    for child in ast.iter_child_nodes(node):
        yield child, hidden
        function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        type_only = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
        yield from _walk(child, hidden=hidden or function or type_only)


def import_graph(*, deferred: bool) -> dict[str, set[str]]:
    """module -> the modules of ours it imports; with deferred, also inside functions and TYPE_CHECKING."""
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in MODULES.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))

        for node, hidden in _walk(tree, hidden=False):
            if isinstance(node, ast.Import | ast.ImportFrom) and (deferred or not hidden):
                edges.update(_targets(module, is_package, node))
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_module_imports_itself_through_others_at_import_time() -> None:
    assert cycles(import_graph(deferred=False)) == []


def test_no_cycle_is_hidden_in_a_function_but_the_known_ones() -> None:
    found = set(cycles(import_graph(deferred=True)))
    assert found - set(KNOWN_DEFERRED) == set(), "a new import cycle, kept working by a deferred import"
    assert set(KNOWN_DEFERRED) - found == set(), "a known cycle is gone: remove it from KNOWN_DEFERRED"


def test_mbeans_is_a_library_that_imports_nothing_of_the_agent_but_its_errors() -> None:
    graph = import_graph(deferred=True)
    allowed = {"agent", "agent.errors"}  # the version, and the error root every adapter maps
    for module, imported in graph.items():
        if module.startswith("mbeans"):
            assert {m for m in imported if m.startswith("agent")} <= allowed, module


def test_only_the_composition_root_reaches_the_management_package() -> None:
    graph = import_graph(deferred=True)
    for module, imported in graph.items():
        if any(m.startswith("agent.management") for m in imported):
            assert module.startswith("agent.management") or module == "agent.composition", module


def test_the_finder_sees_a_cycle_when_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []
