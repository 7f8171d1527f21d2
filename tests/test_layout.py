"""The layout rules of README's Development section, checked on the source (AST walk).

- cogs/ (the Discord side) imports nothing from `bot.store`: SQL stays behind bot/;
- bot/ imports nothing from `cogs`;
- no database driver (aiosqlite, asyncpg, sqlite3) outside `bot/store/` and `bot/db.py`;
- a module in bot/ or cogs/ stays under ~500 lines, a class under ~400, unless the module's
  docstring says why (a line starting with "Size:").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 400


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted module name) of every import, absolute names only."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _violations(package: str, forbidden: str) -> list[str]:
    found = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in _imported(tree):
            if name == forbidden or name.startswith(forbidden + "."):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


def test_cogs_do_not_import_the_store() -> None:
    assert _violations("cogs", "bot.store") == []


def test_bot_does_not_import_cogs() -> None:
    assert _violations("bot", "cogs") == []


@pytest.mark.parametrize("driver", ["aiosqlite", "asyncpg", "sqlite3"])
def test_database_drivers_stay_in_the_store(driver: str) -> None:
    allowed = {ROOT / "bot" / "db.py", *(ROOT / "bot" / "store").rglob("*.py")}
    found = [
        v
        for package in ("bot", "cogs")
        for v in _violations(package, driver)
        if ROOT / v.split(":")[0] not in allowed
    ]
    assert found == []


def _has_size_reason(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return any(line.strip().startswith("Size:") for line in doc.splitlines())


@pytest.mark.parametrize("package", ["bot", "cogs"])
def test_modules_and_classes_stay_small(package: str) -> None:
    too_big = []
    for path in _modules(package):
        source = path.read_text()
        tree = ast.parse(source, filename=str(path))
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES and not _has_size_reason(tree):
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    too_big.append(f"{path.relative_to(ROOT)}::{node.name}: {length} lines")
    assert too_big == []


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The walkers see a forbidden import and an oversized class when there is one."""
    tree = ast.parse("from bot.store import jobs\nimport cogs.video\n")
    names = {name for _, name in _imported(tree)}
    assert {"bot.store", "bot.store.jobs", "cogs.video"} <= names
    big = ast.parse('"""Size: generated."""\n' + "x = 1\n" * 600)
    assert _has_size_reason(big)
    assert not _has_size_reason(ast.parse('"""Small."""\n'))
