"""The operator tools import no server code, and `ledger-agent check` starts light.

agent.client may import, from the rest of agent, only the package itself (its __version__) and the
pure modules of the wire contract below; the server is reached through agent.client.server alone,
which imports agent.entrypoints by name when a command needs it. A static walk of every module's
imports (lazy ones and TYPE_CHECKING ones included) keeps that true; a subprocess shows what
`check` and `--help` load in fact.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from agent.client import server

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "agent" / "client"
# Pure and dependency-free (checked below): errors, ids, X.500 names, the operator API's declarations.
SHARED = ("agent.errors", "agent.ledger.hashing", "agent.ledger.identity", "agent.operator_api")
# Parents imported on the way to a shared module; their __init__ files hold docstrings only.
PACKAGES = ("agent", "agent.ledger")
HEAVY = ("numpy", "peewee", "psycopg2", "flask", "cryptography", "cheroot", "prometheus_client")
C_KERNEL = "agent.ledgersync._riblt_kernel"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, type_checking: bool = True) -> list[tuple[int, str]]:
    """(line, module) of every import in path, at any depth; relative ones made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from agent.client import shell` imports agent.client.shell too; names that are not modules do not.
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if _is_module(f"{base}.{a.name}")]
    return found


def _is_module(name: str) -> bool:
    """name is a module or package of this repository."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _allowed(module: str) -> bool:
    if not (module == "agent" or module.startswith("agent.")):
        return True
    if module in PACKAGES or module == "agent.client" or module.startswith("agent.client."):
        return True
    return any(module == shared or module.startswith(shared + ".") for shared in SHARED)


def _client_modules() -> list[Path]:
    return sorted(CLIENT.rglob("*.py"))


def test_the_client_modules_import_nothing_of_the_agent_but_the_shared_pure_modules() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _client_modules()
        for line, module in _imports(path)
        if not _allowed(module)
    ]
    assert wrong == []


def test_only_agent_client_server_imports_by_name_and_only_the_entry_points() -> None:
    dynamic = []
    for path in _client_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] in (
                "import_module",
                "__import__",
            ):
                dynamic.append((path.name, ast.unparse(node.args[0]) if node.args else ""))
    assert dynamic == [("server.py", "SERVER_ENTRY_POINTS")]
    assert server.SERVER_ENTRY_POINTS == "agent.entrypoints"


def test_the_shared_modules_are_pure_the_standard_library_and_each_other_only() -> None:
    paths = [ROOT / "agent" / "errors.py", ROOT / "agent" / "ledger" / "hashing.py"]
    paths += [
        ROOT / "agent" / "ledger" / "identity.py",
        *sorted((ROOT / "agent" / "operator_api").glob("*.py")),
    ]
    paths += [ROOT / "agent" / "__init__.py", ROOT / "agent" / "ledger" / "__init__.py"]
    wrong = []
    for path in paths:
        for line, module in _imports(path, type_checking=False):
            top = module.split(".")[0]
            if top == "agent":
                ok = _allowed(module) and not module.startswith("agent.client")
            else:
                ok = top in sys.stdlib_module_names or top == "__future__"
            if not ok:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == []


def test_the_client_modules_import_each_other_without_a_circle() -> None:
    graph = {
        _module_name(path): {
            m
            for _, m in _imports(path)
            if m.startswith("agent.client.") and (CLIENT / f"{m.split('.')[2]}.py").exists()
        }
        for path in _client_modules()
    }

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join([*trail, module])
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*trail, module))

    for module in graph:
        visit(module, ())


def test_the_entry_points_module_offers_what_the_client_expects() -> None:
    module = importlib.import_module(server.SERVER_ENTRY_POINTS)
    for name, member in inspect.getmembers(server.EntryPoints, inspect.isfunction):
        if name.startswith("_"):
            continue
        expected = list(inspect.signature(member).parameters)[1:]  # without self
        assert list(inspect.signature(getattr(module, name)).parameters) == expected, name


_LOADED = """
import socket, sys
from agent.client.cli import main

port = socket.socket()
port.bind(("127.0.0.1", 0))  # a port nobody listens on: the check must answer UNKNOWN, quickly
url = "http://127.0.0.1:%d" % port.getsockname()[1]
password = sys.argv[1]
try:
    main(sys.argv[2:] if sys.argv[2:] != ["check"] else ["check", "--url", url, "--password-file", password, "-a", "X", "-t", "5"])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("argv", [["check"], ["check", "--help"], ["--help"], ["flow", "start", "--help"]])
def test_check_and_help_start_without_the_server_or_heavy_libraries(tmp_path: Path, argv: list[str]) -> None:
    password = tmp_path / "monitor-password"
    password.write_text("secret\n")
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, str(password), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    loaded = set(done.stdout.splitlines()[-1].split())
    if argv == ["check"]:
        assert "LEDGERAGENT UNKNOWN" in done.stdout  # the check ran to its verdict
    assert "agent.client.cli" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in HEAVY or m == C_KERNEL) == []
    assert sorted(m for m in loaded if m.split(".")[0] == "agent" and not _allowed(m)) == []
