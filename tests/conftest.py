"""Shared pytest configuration: the anyio backend, hypothesis profiles and services.

Tests that need a real service (PostgreSQL, Redis, a MongoDB-wire server) call
``require_service(name, reason)``: on a laptop without it they skip with the reason, in
CI (``HORAE_REQUIRE_SERVICES=1``) they fail loudly instead.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SERVICES_REQUIRED = os.environ.get("HORAE_REQUIRE_SERVICES", "") not in ("", "0")


def require_service(name: str, reason: str) -> None:
    """Skip (on a laptop) or fail (in CI) because the service *name* is unavailable."""
    message = f"{name} is not available: {reason}"
    if SERVICES_REQUIRED:
        pytest.fail(f"{message} (HORAE_REQUIRE_SERVICES is set, so this fails)")
    pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
