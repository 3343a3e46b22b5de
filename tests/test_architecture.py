"""The import graph of llmtap, read with ``ast``: no circles, readers never import workers,
and analyzers stay pure (no Redis, no clock, no file system)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = "llmtap"
ROOT: Final = Path(__file__).resolve().parents[1] / PACKAGE
IMPURE: Final = ("redis", "time", "os", "pathlib", "io")
CLOCK_CALLS: Final = ("now", "utcnow", "today")


@dataclass(frozen=True)
class Import:
    """One ``import``/``from ... import`` target of a module, with the line it is on."""

    source: str
    target: str
    line: int

    def where(self) -> str:
        """Return ``module:line`` for failure messages."""
        return f"{self.source}:{self.line}"


def module_name(path: Path, root: Path = ROOT) -> str:
    """Return the dotted name of a file under ``root`` (a package's __init__ is the package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, ast.Module]:
    """Return every module of the package, parsed, by dotted name."""
    return {
        module_name(path, root): ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(root.rglob("*.py"))
    }


def _base(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    """Return the absolute module a ``from`` import names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    package = name if is_package else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(name: str, tree: ast.Module, known: set[str], is_package: bool) -> Iterator[Import]:
    """Yield every import of a module, at any depth (functions, ``if`` blocks included).

    ``from a import b`` targets ``a.b`` when that is a module, else ``a``.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _base(name, is_package, node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield Import(name, full if full in known else base, node.lineno)


def _packages(root: Path = ROOT) -> set[str]:
    return {module_name(path, root) for path in root.rglob("__init__.py")}


def all_imports(root: Path = ROOT) -> list[Import]:
    """Return the imports of every module of the package."""
    parsed = modules(root)
    known, packages = set(parsed), _packages(root)
    return [
        found
        for name, tree in parsed.items()
        for found in imports(name, tree, known, name in packages)
    ]


def _internal(target: str, known: set[str]) -> str | None:
    """Return the package module ``target`` is (or lies in), or None for outside modules."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def graph(found: list[Import], known: set[str]) -> dict[str, set[str]]:
    """Return module -> the package modules it imports."""
    edges: dict[str, set[str]] = {name: set() for name in known}
    for item in found:
        target = _internal(item.target, known)
        if target is not None and target != item.source:
            edges[item.source].add(target)
    return edges


def _components(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    out.append(_pop_component(node, stack, on_stack))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def _pop_component(root: str, stack: list[str], on_stack: set[str]) -> list[str]:
    component: list[str] = []
    while True:
        node = stack.pop()
        on_stack.discard(node)
        component.append(node)
        if node == root:
            return sorted(component)


def _cycle_path(start: str, members: set[str], edges: dict[str, set[str]]) -> list[str]:
    """Return a shortest path start -> ... -> start inside one component (BFS)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return one cycle path per import circle (component of more than one module)."""
    return [
        _cycle_path(component[0], set(component), edges)
        for component in _components(edges)
        if len(component) > 1
    ]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.fixture(scope="module")
def found() -> list[Import]:
    """Every import of the package."""
    return all_imports()


def test_the_walker_sees_nested_relative_and_from_imports(tmp_path: Path) -> None:
    """Imports inside functions, relative imports and ``from pkg import module`` are all edges."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import x\n    import os\n")
    (package / "c.py").write_text("from pkg.sub import b\n")
    got = {(i.source, i.target) for i in all_imports(package)}
    assert got == {
        ("pkg.sub", "pkg.sub.b"),
        ("pkg.sub.b", "pkg.c"),
        ("pkg.sub.b", "os"),
        ("pkg.c", "pkg.sub.b"),
    }
    edges = graph(all_imports(package), set(modules(package)))
    assert cycles(edges) == [["pkg.c", "pkg.sub.b", "pkg.c"]]


def test_no_import_cycles(found: list[Import]) -> None:
    """No llmtap module imports itself through others (a package's __init__ is a module)."""
    circles = cycles(graph(found, set(modules())))
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_read_never_imports_consumers(found: list[Import]) -> None:
    """The read side imports no worker module: llmtap.read.* -> llmtap.consumers.* is refused."""
    bad = [
        f"{item.where()} imports {item.target}"
        for item in found
        if _in(item.source, "llmtap.read") and _in(item.target, "llmtap.consumers")
    ]
    assert not bad, "read -> consumers:\n" + "\n".join(bad)


def test_analyzers_import_no_redis_clock_or_file_system(found: list[Import]) -> None:
    """No analyzers module imports redis, time, os, pathlib or io."""
    bad = [
        f"{item.where()} imports {item.target}"
        for item in found
        if _in(item.source, "llmtap.analyzers") and any(_in(item.target, name) for name in IMPURE)
    ]
    assert not bad, "impure analyzers:\n" + "\n".join(bad)


def _impure_calls(name: str, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            yield f"{name}:{node.lineno} calls open()"
        elif isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS:
            yield f"{name}:{node.lineno} reads the clock (.{func.attr}())"


def test_analyzers_open_no_files_and_read_no_clock() -> None:
    """No analyzers module calls open() or reads the clock (``datetime.now()`` and the like)."""
    bad = [
        line
        for name, tree in modules().items()
        if _in(name, "llmtap.analyzers")
        for line in _impure_calls(name, tree)
    ]
    assert not bad, "impure analyzers:\n" + "\n".join(bad)
