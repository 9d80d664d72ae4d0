"""The house plan, held against the code: no import circle, small modules, one spelling of each
shared name, and docs/architecture.md's layout table true to the imports."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "swapprof"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[str]:
    """swapprof modules ``name`` imports anywhere in its body (also inside functions and
    TYPE_CHECKING blocks: a circle there is still a circle for a reader)."""
    path = MODULES[name]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if not target or target == name:
                continue
            if path.name == "__init__.py" and target.startswith(name + "."):
                continue  # a facade re-exporting its own private modules
            yield target


GRAPH = {name: set(_imports(name)) for name in MODULES}


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    assert "swapprof.server.master._master" in MODULES
    assert "swapprof.server.master._upgrade" in GRAPH["swapprof.server.master._master"]


def test_no_import_circle() -> None:
    assert _cycles() == []


def test_no_module_is_large() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


PHASE_WORDS = {
    "requested",
    "zygote",
    "spawn",
    "import",
    "ready",
    "switch",
    "drain",
    "bake",
    "exit",
    "rollback",
}


def test_phase_names_are_listed_in_one_module() -> None:
    """A literal collection holding three or more phase names is a second copy of the list."""
    copies = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                words = {
                    e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
                if len(words & PHASE_WORDS) >= 3:
                    copies.append(f"{name}:{node.lineno}")
    assert copies == []


def test_generation_contract_names_live_in_the_contract() -> None:
    """Every SWAPPROF_* name the server spells is spelled in _contract (or, for the master's
    own settings, _config); the other modules use the constants."""
    allowed = {"swapprof.server._contract", "swapprof.server._config"}
    spelled = []
    for name, path in MODULES.items():
        if not name.startswith("swapprof.server") or name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"SWAPPROF_[A-Z_]+|LISTEN_(FDS|PID|FDNAMES)", node.value)
            ):
                spelled.append(f"{name}:{node.lineno}: {node.value}")
    assert spelled == []


def _layout_table() -> dict[str, set[str]]:
    """docs/architecture.md's table: | `package` | what it holds | `deps`, ... |"""
    rows: dict[str, set[str]] = {}
    text = ARCHITECTURE.read_text()
    section = text.split("<!-- layout -->")[1].split("<!-- /layout -->")[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`swapprof"):
            continue
        deps = set(re.findall(r"`([\w.]+)`", cells[2]))
        rows[cells[0].strip("`")] = deps
    return rows


def _package_of(module: str, packages: set[str]) -> str:
    best = max((p for p in packages if module == p or module.startswith(p + ".")), key=len, default="")
    assert best, f"{module} belongs to no package of the layout table"
    return best


def test_architecture_table_is_the_import_graph() -> None:
    table = _layout_table()
    assert len(table) >= 10, "the layout table in docs/architecture.md was not found"
    packages = set(table)
    actual: dict[str, set[str]] = {p: set() for p in packages}
    for module, targets in GRAPH.items():
        source = _package_of(module, packages)
        for target in targets:
            dest = _package_of(target, packages)
            if dest != source:
                actual[source].add(dest)
    assert actual == table
