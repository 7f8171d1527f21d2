"""SQL text handling, in one place: migration scripts split into statements (SQLite), and the
store's placeholders (`?` or `:name`) rewritten as PostgreSQL's `$1, $2, …`."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any


class SqlTextError(ValueError):
    """A migration script or query the splitter / translator cannot handle."""


def split_sqlite(script: str) -> list[str]:
    """Split a SQLite migration script into statements (trigger bodies kept whole)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise SqlTextError(f"incomplete SQL statement at end of migration: {buffer[:60]!r}")
    return statements


# Quoted text, comments and `::` casts are copied as they are; `?` and `:name` are placeholders.
_TOKENS = re.compile(
    r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(--[^\n]*)|(::)|(\?)|(?<![:\w]):([A-Za-z_]\w*)""",
)


@lru_cache(maxsize=1024)
def _translate(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """(PostgreSQL text, parameter names in `$n` order, or None for positional `?`)."""
    names: list[str] = []
    positional = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal positional
        if match.group(5):
            positional += 1
            return f"${positional}"
        name = match.group(6)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _TOKENS.sub(replace, sql)
    if positional and names:
        raise SqlTextError("a query mixes ? and :name placeholders")
    return text, (tuple(names) if names else None)


def to_postgres(sql: str, params: Sequence[Any] | dict[str, Any]) -> tuple[str, list[Any]]:
    """The query and its arguments as asyncpg takes them."""
    text, names = _translate(sql)
    if isinstance(params, dict):
        if names is None:
            if params:
                raise SqlTextError("named parameters given to a query without :name")
            return text, []
        try:
            return text, [params[name] for name in names]
        except KeyError as exc:
            raise SqlTextError(f"missing query parameter :{exc.args[0]}") from None
    if names is not None:
        raise SqlTextError("positional parameters given to a query with :name placeholders")
    return text, list(params)
