"""Which part of s2tf_cli imports which (top-level and deferred imports alike), read off the source with ast:
`python tools/import_layers.py` prints one line per part and the cycles between parts, if any."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "s2tf_cli"


def part_of(module: str) -> str:
    """s2tf_cli.cli.eval -> cli; s2tf_cli.pipeline -> pipeline (a top-level module is a part of its own)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def edges() -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        module = ".".join(("s2tf_cli", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
                for name in names:
                    if part_of(name) != part_of(module):
                        out[part_of(module)].add(part_of(name))
    return out


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, set()))


if __name__ == "__main__":
    graph = edges()
    for part in sorted(graph):
        print(f"{part:14} -> {', '.join(sorted(graph[part]))}")
    found = cycles(graph)
    print("cycles between parts:", ", ".join(f"{a}<->{b}" for a, b in found) or "none")
    sys.exit(0)
