"""Fuzzing settings: modest example counts by default, many more on request.

`FUZZ_SCALE=20 pytest tests/fuzz` (or `pytest --runslow`, which sets a scale of 10) multiplies
every fuzz test's `max_examples`; the default run keeps the whole folder well under a minute.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import make_bot, video_bot  # noqa: F401  (fixtures for the bot fuzz)
from tests.fuzz import budget


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("FUZZ_SCALE"):
        budget.SCALE = max(1, int(os.environ["FUZZ_SCALE"]))
    elif config.getoption("--runslow", default=False):
        budget.SCALE = 10
