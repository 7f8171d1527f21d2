"""Hypothesis settings shared by the fuzz tests (see conftest.py for the scale)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

SCALE = 1  # set by tests/fuzz/conftest.py before the test modules are imported


def fuzz(examples: int, **kwargs: Any) -> settings:
    """`examples` × SCALE examples, no per-example deadline (CI machines vary), no example
    database (runs are reproducible from the seed hypothesis prints on failure)."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        **kwargs,
    )
