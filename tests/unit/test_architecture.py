"""The package's shape, read from its source: no import cycle, no import the rooms
table of docs/architecture.md forbids, no class over 300 lines, no function over 120.

Every import counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "steer_llm_sdk"
DOC = ROOT / "docs" / "architecture.md"
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 120


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement loads (a name imported from a package
    counts as its submodule when one of that name exists)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "steer_llm_sdk"]
    is_package = MODULES[module].name == "__init__.py"
    base = module if is_package else module.rsplit(".", 1)[0]
    if node.level:
        for _ in range(node.level - 1):
            base = base.rsplit(".", 1)[0]
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    if target.split(".")[0] != "steer_llm_sdk":
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _resolve(module, node):
                    # importing a submodule runs its package's __init__ first
                    while target and target not in MODULES:
                        target = target.rsplit(".", 1)[0]
                    if target and target != module and not target.startswith(module + "."):
                        edges[module].add(target)
    return edges


EDGES = _edges()


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in EDGES[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in EDGES:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_no_module_imports_the_package_root() -> None:
    """Inside the package nothing loads the public facade (it loads the client and
    everything else); the command-line modules may, as users do."""
    offenders = [
        module
        for module, targets in EDGES.items()
        if "steer_llm_sdk" in targets and not module.startswith("steer_llm_sdk.cli")
    ]
    assert offenders == []


def _rooms() -> list[tuple[str, list[str]]]:
    """Rows of the rooms table: (module prefix, allowed prefixes or ["*"])."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Rooms", 1)[1].split("\n## ", 1)[0]
    rooms = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        path = cells[0].strip("`").removesuffix(".py").removesuffix("/").replace("/", ".")
        prefix = "steer_llm_sdk" if path == "__init__" else f"steer_llm_sdk.{path}"
        allowed = cells[2]
        if allowed.strip() == "all":
            rooms.append((prefix, ["*"]))
            continue
        names = re.findall(r"`([\w./]+)`", allowed)
        rooms.append(
            (
                prefix,
                [
                    f"steer_llm_sdk.{n.removesuffix('.py').strip('/').replace('/', '.')}"
                    for n in names
                ],
            )
        )
    return rooms


def _room(module: str, rooms: list[tuple[str, list[str]]]) -> tuple[str, list[str]] | None:
    best = None
    for prefix, allowed in rooms:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, allowed)
    return best


def test_every_module_has_a_room() -> None:
    rooms = _rooms()
    assert rooms, "docs/architecture.md has no rooms table"
    assert [m for m in MODULES if _room(m, rooms) is None] == []


def test_imports_follow_the_rooms_table() -> None:
    rooms = _rooms()
    bad = []
    for module, targets in EDGES.items():
        room = _room(module, rooms)
        assert room is not None
        prefix, allowed = room
        if allowed == ["*"]:
            continue
        for target in targets:
            if target == prefix or target.startswith(prefix + "."):
                continue  # inside its own room
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                bad.append(f"{module} -> {target}")
    assert bad == []


def _spans() -> list[tuple[str, str, int]]:
    out = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                out.append((kind, f"{module}.{node.name}", lines))
    return out


@pytest.mark.parametrize(
    ("kind", "limit"), [("class", MAX_CLASS_LINES), ("function", MAX_FUNCTION_LINES)]
)
def test_no_class_or_function_too_long(kind: str, limit: int) -> None:
    assert [(name, n) for k, name, n in _spans() if k == kind and n > limit] == []
