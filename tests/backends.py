"""The `db` fixture on both backends (a pytest plugin, loaded by tests/conftest.py).

A test module marked `pytestmark = pytest.mark.both_backends` runs each of its tests that
use `db` twice: on a fresh SQLite file and on a fresh PostgreSQL database. PostgreSQL comes
from TEST_DATABASE_URL (a superuser DSN; `.ci/run` starts a server and sets it) or, when
that is unset, from a server this session starts itself (tests/pg_server.py) if PostgreSQL
is installed. The tests share one database, migrated once per session and emptied before
each test (see `PgCluster`). When PostgreSQL cannot be had, the PostgreSQL cases are
skipped and the skip reason says why.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.db import Database
from tests.pg_server import PgServer, PgUnavailable

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_backends: run the module's `db` tests on SQLite and on PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        metafunc.parametrize("db_backend", BACKENDS)


def _run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion in a thread of its own: the session fixture may be set up
    from inside a test's running event loop (requested by the async `db` fixture)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(make())).result()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(server_dsn: str, name: str, *, migrate: bool = True) -> str:
    """A new database `name` (replacing one of that name) on the server of `server_dsn` (a
    role that may CREATE DATABASE), migrated unless told not to; returns its URL."""
    await _admin(
        server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"
    )
    url = with_database(server_dsn, name)
    if migrate:
        db = await Database.open(url, pool_size=1)
        try:
            await db.migrate()
        finally:
            await db.close()
    return url


async def drop_database(server_dsn: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    await _admin(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@asynccontextmanager
async def scratch_database(
    server_dsn: str, name: str, *, migrate: bool = True
) -> AsyncIterator[str]:
    """`create_database` for the block, dropped after it (benchmarks, the process soak)."""
    url = await create_database(server_dsn, name, migrate=migrate)
    try:
        yield url
    finally:
        await drop_database(server_dsn, url)


class PgCluster:
    """A PostgreSQL server for this session and its migrated test database.

    `fresh()` empties that database for the next test: every table but the migration record
    is deleted from (with triggers off: the append-only guards would refuse), the prune gate
    is closed and the id sequences restart, so each test sees a just-migrated database. This
    takes a few milliseconds, where `CREATE DATABASE … TEMPLATE` takes ~200 ms.
    `create(migrated=False)` still makes a separate, empty database (for migration tests).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = f"ltx_test_{os.getpid()}"
        self.url = with_database(dsn, self.name)
        self._names = itertools.count(1)
        self._reset_sql = ""

    async def build(self) -> None:
        await create_database(self.dsn, self.name)
        conn = await asyncpg.connect(self.url)
        try:
            tables = [
                r[0]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename"
                    " NOT IN ('schema_migrations', 'audit_prune_gate') ORDER BY tablename"
                )
            ]
            sequences = [
                r[0]
                for r in await conn.fetch(
                    "SELECT pg_get_serial_sequence(table_name, column_name)"
                    " FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND is_identity = 'YES'"
                )
            ]
        finally:
            await conn.close()
        self._reset_sql = "\n".join(
            [
                "SET session_replication_role = replica;",
                *(f"DELETE FROM {t};" for t in tables),
                "UPDATE audit_prune_gate SET open = 0;",
                *(f"SELECT setval('{s}', 1, false);" for s in sequences),
            ]
        )

    async def fresh(self) -> str:
        """The test database, emptied to its just-migrated state; returns its URL."""
        await _admin(self.url, self._reset_sql)
        return self.url

    async def create(self) -> str:
        """A new, empty database (no migrations); returns its URL."""
        name = f"ltx_t_{os.getpid()}_{next(self._names)}"
        await _admin(self.dsn, f"CREATE DATABASE {name} TEMPLATE template0")
        return with_database(self.dsn, name)

    async def drop(self, url: str) -> None:
        await drop_database(self.dsn, url)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    dsn = os.environ.get("TEST_DATABASE_URL")
    server: PgServer | None = None
    if not dsn:
        reason = os.environ.get("TEST_DATABASE_SKIP_REASON")
        if reason:
            pytest.skip(f"PostgreSQL cases skipped: {reason}")
        server = PgServer()
        try:
            dsn = server.start()
        except PgUnavailable as exc:
            server.stop()
            pytest.skip(f"PostgreSQL cases skipped: {exc}")
    cluster = PgCluster(dsn)
    try:
        _run(cluster.build)
        yield cluster
    finally:
        _run(lambda: cluster.drop(cluster.url))
        if server is not None:
            server.stop()


@pytest.fixture
def db_backend() -> str:
    """Which backend `db` is on: "sqlite" unless the module is marked `both_backends`."""
    return "sqlite"


@pytest.fixture
async def pg_url(pg_cluster: PgCluster) -> str:
    """The session's PostgreSQL test database, just migrated and empty, for this test."""
    return await pg_cluster.fresh()


@pytest.fixture
async def pg_empty_url(pg_cluster: PgCluster) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (no migrations applied)."""
    url = await pg_cluster.create()
    try:
        yield url
    finally:
        await pg_cluster.drop(url)


@pytest.fixture
async def db(
    db_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Database]:
    if db_backend == "postgresql":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")  # a sync fixture
        database = await Database.open(await cluster.fresh(), pool_size=4)
    else:
        database = await Database.open(tmp_path / "bot.db")
        await database.migrate()
    try:
        yield database
    finally:
        await database.close()
