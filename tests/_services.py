"""The shared servers of the store and broker tests: where they are, and fixtures that
reach them (skipping or failing through ``require_service`` when they cannot).

* ``admin``: a plain asyncpg connection to ``HORAE_POSTGRES_DSN``; ``schema``: a fresh
  schema name, dropped with everything in it afterwards.
* ``redis_client``: a client of the Redis at ``HORAE_REDIS_URL``.

Import the fixtures a test module uses (``from _services import admin, schema``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis

from conftest import require_service

POSTGRES_DSN = os.environ.get("HORAE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HORAE_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_HOST = urlsplit(REDIS_URL).hostname or "localhost"
REDIS_PORT = urlsplit(REDIS_URL).port or 6379


@pytest.fixture
async def admin() -> AsyncIterator[Any]:
    """A plain PostgreSQL connection for looking into (and tidying up) the database."""
    try:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        require_service("PostgreSQL", f"cannot connect to {POSTGRES_DSN}: {exc}")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def schema(admin: Any) -> AsyncIterator[str]:
    """A fresh schema name for this test, dropped (with everything in it) afterwards."""
    name = f"horae_test_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        require_service("Redis", f"cannot reach {REDIS_URL}: {exc}")
    try:
        yield client
    finally:
        await client.aclose()
