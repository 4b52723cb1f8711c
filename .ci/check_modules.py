#!/usr/bin/env python3
"""Architecture guard rails for a package tree: module length and import cycles.

Usage: ``python .ci/check_modules.py [PACKAGE_DIR] [--max-lines N]``
(default ``src/leasepool``, 600 lines). Exit status 0 when clean, 1 with one line
per problem on stderr otherwise, 2 on bad usage.

Invariants of the check:

* Stdlib only, and it never imports the package: the graph comes from the AST, so a
  broken or slow import cannot hide a problem.
* Length counts physical lines (what a reader scrolls through), docstrings included.
* Every ``import`` of the package's own modules counts, at module level or inside a
  function, absolute or relative; only the body of ``if TYPE_CHECKING:`` is left out,
  because it never runs. ``from pkg import name`` points at the submodule ``pkg.name``
  when that file exists, else at ``pkg`` itself. Importing ``a.b.c`` points at
  ``a.b.c`` only: the parent packages' ``__init__`` files run too, but an edge to them
  from every module would make any package that re-exports its modules cyclic.
* Only import statements are seen: ``importlib.import_module("pkg.x")`` and other
  dynamic imports are not, so the package does not use them for its own modules.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PACKAGE = Path(__file__).resolve().parent.parent / "src" / "leasepool"
DEFAULT_MAX_LINES = 600


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line`` of ``source``'s file."""

    source: str
    target: str
    line: int


@dataclass
class Tree:
    """The modules of one package: dotted name -> file, and their import edges."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)
    edges: list[Edge] = field(default_factory=list)


def shown(path: Path) -> str:
    """``path`` relative to the working directory when under it: shorter messages."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path) -> Tree:
    tree = Tree(root)
    for path in sorted(root.rglob("*.py")):
        name = module_name(root, path)
        tree.files[name] = path
        if path.name == "__init__.py":
            tree.packages.add(name)
    return tree


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` except in ``if TYPE_CHECKING:`` bodies."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from runtime_imports(child)


def _resolve_base(tree: Tree, source: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    # A relative import counts from the importing module's package.
    package = source if source in tree.packages else source.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _owning_module(tree: Tree, dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the tree."""
    while dotted:
        if dotted in tree.files:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def import_targets(tree: Tree, source: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        found = (_owning_module(tree, alias.name) for alias in node.names)
        return [target for target in found if target is not None]
    base = _resolve_base(tree, source, node)
    targets: list[str] = []
    for alias in node.names:
        target = _owning_module(tree, f"{base}.{alias.name}") if base else None
        if target is None or target == _owning_module(tree, base):
            target = _owning_module(tree, base)
        if target is not None:
            targets.append(target)
    return targets


def build_graph(tree: Tree) -> list[str]:
    """Fill ``tree.edges``; return the files that do not parse, as problems."""
    problems: list[str] = []
    for source, path in tree.files.items():
        try:
            syntax = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as exc:
            problems.append(f"{shown(path)}: cannot parse: {exc}")
            continue
        for node in runtime_imports(syntax):
            for target in import_targets(tree, source, node):
                if target != source:
                    tree.edges.append(Edge(source, target, node.lineno))
    return problems


def long_modules(tree: Tree, max_lines: int) -> list[str]:
    problems = []
    for path in tree.files.values():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > max_lines:
            problems.append(
                f"{shown(path)}: {count} lines, over the limit of {max_lines}: split the module"
            )
    return problems


def strongly_connected(nodes: Sequence[str], graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion limit on deep chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            nxt = next(successors, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif nxt not in index:
                index[nxt] = low[nxt] = len(index)
                stack.append(nxt)
                on_stack.add(nxt)
                work.append((nxt, iter(graph[nxt])))
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
    return components


def shortest_cycle(start: str, members: set[str], graph: dict[str, list[str]]) -> list[str]:
    """A shortest path ``start -> ... -> start`` inside one component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt in members and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in a component but on no cycle")


def _canonical(cycle: list[str]) -> tuple[str, ...]:
    ring = cycle[:-1]
    turn = ring.index(min(ring))
    return tuple(ring[turn:] + ring[:turn])


def import_cycles(tree: Tree) -> list[str]:
    graph: dict[str, list[str]] = {name: [] for name in tree.files}
    lines: dict[tuple[str, str], int] = {}
    for edge in tree.edges:
        if edge.target not in graph[edge.source]:
            graph[edge.source].append(edge.target)
            lines[(edge.source, edge.target)] = edge.line
    problems: list[str] = []
    for component in strongly_connected(sorted(graph), graph):
        if len(component) < 2:
            continue
        members = set(component)
        seen: set[tuple[str, ...]] = set()
        for start in component:
            cycle = shortest_cycle(start, members, graph)
            key = _canonical(cycle)
            if key in seen:
                continue
            seen.add(key)
            ring = [*key, key[0]]
            steps = " -> ".join(f"{a} (line {lines[(a, b)]})" for a, b in itertools.pairwise(ring))
            problems.append(f"import cycle: {steps} -> {ring[-1]}")
    return problems


def check(root: Path, max_lines: int) -> list[str]:
    tree = discover(root)
    problems = build_graph(tree)
    problems += long_modules(tree, max_lines)
    problems += import_cycles(tree)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", type=Path, default=DEFAULT_PACKAGE)
    parser.add_argument("--max-lines", type=int, default=DEFAULT_MAX_LINES)
    args = parser.parse_args(argv)
    root: Path = args.package
    if not (root / "__init__.py").is_file():
        parser.error(f"{root} is not a package directory (no __init__.py)")
    if args.max_lines < 1:
        parser.error(f"--max-lines must be >= 1, got {args.max_lines}")
    problems = check(root, args.max_lines)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check_modules: {len(problems)} problem(s) in {shown(root)}", file=sys.stderr)
        return 1
    print(f"check_modules: {shown(root)}: {len(discover(root).files)} modules, no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
