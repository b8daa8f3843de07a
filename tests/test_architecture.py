"""docs/ARCHITECTURE.md's "who may call whom" table for the host package is
true: every import inside host/medyate (module level or inside a function)
goes to a part the table allows. And README's Layout lists every top-level
module of the package."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "host" / "medyate"


def _part_of(module: str) -> str:
    """'medyate.algo.plan' -> 'algo', 'medyate.boards' -> 'boards', 'medyate' -> '__init__'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file():
        return parts[1]
    return "__init__"                      # a name of the package root (__version__)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every medyate module `path` imports, resolved to absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "medyate"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "medyate":
                continue
            if node.module:
                out.add(target)
            else:                          # from . import x: x may be a module
                out |= {f"{target}.{a.name}" for a in node.names}
    return out


def _table() -> dict[str, set[str] | None]:
    """{part: parts it may import (None: everything)} from ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    allowed: dict[str, set[str] | None] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or "host/medyate/" not in cells[1]:
            continue
        may = None if cells[2].startswith("everything") else \
            set(re.findall(r"`([a-z_]+)`", cells[2]))
        for where in re.findall(r"`host/medyate/([a-z_]+)(?:/|\.py)?`", cells[1]):
            allowed[where] = may
    return allowed


def test_the_table_covers_every_part_of_the_package():
    table = _table()
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    assert parts <= set(table), f"parts missing from ARCHITECTURE.md: {parts - set(table)}"
    for part, may in table.items():
        assert may is None or may <= set(table), (part, may - set(table))


def test_every_import_is_one_the_table_allows():
    table = _table()
    row = next(l for l in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines()
               if l.startswith("| shared leaves |"))
    leaves = set(re.findall(r"`host/medyate/([a-z_]+)(?:/|\.py)?`", row))
    assert {"__init__", "errors"} <= leaves and all(table[p] == set() for p in leaves)
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _part_of(_module_name(path))
        may = table[src]
        if may is None:
            continue
        for target in sorted(_imports(path)):
            dst = _part_of(target)
            if dst != src and dst not in leaves and dst not in may:
                wrong.append(f"{path.relative_to(ROOT)} imports {target} ({src} -> {dst})")
    assert not wrong, "imports the ARCHITECTURE.md table does not allow:\n" + "\n".join(wrong)


def test_readme_layout_lists_every_top_level_module():
    text = (ROOT / "README.md").read_text()
    layout = text.split("## Layout", 1)[1].split("```")[1]
    listed = set(re.findall(r"^\s+([a-z_]+(?:/|\.py))\s", layout, re.M))
    parts = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} | \
        {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert parts <= listed, f"README's Layout does not list {sorted(parts - listed)}"


def test_entry_points_resolve():
    """pyproject's console scripts name functions that exist."""
    import importlib

    import pytest
    tomllib = pytest.importorskip("tomllib")      # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"medyate", "medyate-flash"}
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target
