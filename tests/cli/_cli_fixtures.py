"""Fixtures of the command line tests (imported by the test modules): running ``python -m
horae``, and persistent stores (SQLite, PostgreSQL, Redis, MongoDB) holding schedules
that a scheduler added.

Every store gets a namespace of its own (a file, a PostgreSQL schema, a Redis key prefix,
a MongoDB database), removed afterwards. The subprocesses share a bytecode cache, so
that only the first one pays for compiling horae.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from conftest import require_service
from horae import AsyncScheduler
from horae._store_urls import create_data_store

POSTGRES_DSN = os.environ.get("HORAE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HORAE_REDIS_URL", "redis://127.0.0.1:6379/0")
RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    return env


@pytest.fixture
def horae_cli(cli_env: dict[str, str], tmp_path: Path) -> RunCli:
    """Run ``python -m horae *args`` in *tmp_path*; return the finished process."""

    def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "horae", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=cli_env,
            check=False,
        )

    return run


async def add_schedules(url: str) -> None:
    """What a scheduler adds: a paused-later cron schedule and an interval one."""
    async with AsyncScheduler(create_data_store(url)) as scheduler:
        await scheduler.add_schedule(
            print, "cron", hour=3, minute=0, timezone="Europe/Berlin", id="nightly",
            args=["backup"], start_time="2030-01-01",
        )  # fmt: skip
        await scheduler.add_schedule(
            json.dumps, "interval", minutes=5, id="every-5-min", start_time="2030-01-01 00:00Z"
        )


def _sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'schedules.sqlite3'}"


def _postgres() -> Iterator[str]:
    import asyncpg  # type: ignore[import-untyped]

    schema = f"horae_cli_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        anyio.run(drop)
    except (OSError, asyncpg.PostgresError) as exc:
        require_service("PostgreSQL", f"cannot connect to {POSTGRES_DSN}: {exc}")
    separator = "&" if "?" in POSTGRES_DSN else "?"
    yield f"{POSTGRES_DSN}{separator}schema={schema}"
    anyio.run(drop)


def _redis() -> Iterator[str]:
    from redis import Redis
    from redis.exceptions import RedisError

    prefix = f"horae_cli_{uuid.uuid4().hex[:12]}"
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (OSError, RedisError) as exc:
        require_service("Redis", f"cannot connect to {REDIS_URL}: {exc}")
    yield f"{REDIS_URL}?prefix={prefix}"
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def mongodb_server_uri() -> Iterator[str]:
    """``HORAE_MONGODB_URI``, or an in-process SecantusDB server for the session."""
    configured = os.environ.get("HORAE_MONGODB_URI")
    if configured:
        yield configured
        return
    from secantus import SecantusDBServer

    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:")
    try:
        server.start()
    except OSError as exc:  # pragma: no cover - depends on the machine
        require_service("MongoDB", f"cannot start an in-process SecantusDB server: {exc}")
    try:
        yield server.uri
    finally:
        server.stop()


def _mongodb(server_uri: str) -> Iterator[str]:
    from pymongo import MongoClient

    database = f"horae_cli_{uuid.uuid4().hex[:12]}"
    base = server_uri.rstrip("/")
    yield f"{base}/?database={database}" if "?" not in base else f"{base}&database={database}"
    client: MongoClient[dict[str, object]] = MongoClient(server_uri)
    client.drop_database(database)
    client.close()


@pytest.fixture(params=["sqlite", "postgres", "redis", "mongodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a store of each kind, holding the schedules of :func:`add_schedules`."""
    kind = request.param
    if kind == "sqlite":
        urls = _sqlite(tmp_path)
    elif kind == "postgres":
        urls = _postgres()
    elif kind == "redis":
        urls = _redis()
    else:
        urls = _mongodb(request.getfixturevalue("mongodb_server_uri"))
    url = next(urls)
    anyio.run(add_schedules, url)
    yield url
    for _ in urls:  # the teardown
        pass
