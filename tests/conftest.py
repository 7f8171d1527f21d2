from __future__ import annotations

import pytest

# Fixtures from the fakes, available to every test: `fake_discord` (a started FakeDiscord).
# `db` (SQLite, or both backends in modules marked `both_backends`): tests/backends.py.
# A test that hangs prints its asyncio tasks before pytest-timeout ends the run: tests/timeouts.py.
pytest_plugins = ("tests.fakes.discord_server", "tests.backends", "tests.timeouts")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
