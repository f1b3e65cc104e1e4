"""Helpers of the horae.compat tests: recording APScheduler 3 events, running schedulers
safely, and the services (Redis, MongoDB, PostgreSQL), each test in its own namespace.

* Redis: ``HORAE_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); each test gets its
  own ``jobs_key`` (the horae key prefix) and deletes that prefix's keys afterwards.
* MongoDB: ``HORAE_MONGODB_URI`` if set, else an in-process SecantusDB server for the
  session; each test gets its own database (and drops it afterwards).
* PostgreSQL: ``HORAE_POSTGRES_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
  each test gets its own schema (``tablename``) and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient
from redis import Redis

from conftest import require_service
from horae.compat.events import SchedulerEvent

REDIS_URL = os.environ.get("HORAE_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("HORAE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class Recorder:
    """A listener that records events (from any thread) and waits for them."""

    def __init__(self) -> None:
        self.events: list[SchedulerEvent] = []
        self.threads: list[str] = []
        self.times: list[float] = []
        self._condition = threading.Condition()

    def __call__(self, event: SchedulerEvent) -> None:
        with self._condition:
            self.events.append(event)
            self.threads.append(threading.current_thread().name)
            self.times.append(time.monotonic())
            self._condition.notify_all()

    def of(self, code: int, job_id: str | None = None) -> list[Any]:
        """The events with *code* (of the job *job_id* if given)."""
        with self._condition:
            return [
                event
                for event in self.events
                if event.code == code
                and (job_id is None or getattr(event, "job_id", None) == job_id)
            ]

    def codes(self) -> list[int]:
        with self._condition:
            return [event.code for event in self.events]

    def time_of(self, event: SchedulerEvent) -> float:
        """When *event* arrived (``time.monotonic()``)."""
        with self._condition:
            return self.times[next(i for i, e in enumerate(self.events) if e is event)]

    def wait_for(
        self, code: int, count: int = 1, *, job_id: str | None = None, timeout: float = 5.0
    ) -> list[Any]:
        """Wait until *count* events with *code* have arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(found := self.of(code, job_id)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{len(found)} of {count} events with code {code} after {timeout} s; "
                        f"got codes {[event.code for event in self.events]}"
                    )
                self._condition.wait(remaining)
            return found


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll *predicate* until it is true (AssertionError after *timeout* seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


@contextlib.contextmanager
def shut_down_afterwards(*schedulers: Any) -> Iterator[None]:
    """Shut every running scheduler down when the block ends, however it ends."""
    try:
        yield
    finally:
        for scheduler in schedulers:
            if scheduler.running:
                scheduler.shutdown()


# ---- Redis ------------------------------------------------------------------------------


@pytest.fixture
def redis_conf() -> Iterator[dict[str, Any]]:
    """The seed's REDIS_CONF for the test server, with this test's own keys."""
    parts = urlsplit(REDIS_URL)
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        require_service("Redis", f"cannot connect to {REDIS_URL}: {exc}")
    namespace = f"horae-compat-test-{uuid.uuid4().hex[:12]}"
    conf = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "db": int((parts.path or "/0").lstrip("/") or 0),
        "jobs_key": f"{namespace}.jobs",
        "run_times_key": f"{namespace}.run_times",
    }
    try:
        yield conf
    finally:
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def redis_keys(conf: dict[str, Any], prefix: str) -> list[bytes]:
    """The keys under *prefix* on the test server (SCAN, never KEYS)."""
    client: Redis = Redis(host=conf["host"], port=conf["port"], db=conf["db"])
    try:
        return sorted(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


# ---- MongoDB ----------------------------------------------------------------------------


_SHARED_SERVER: list[Any] = []


def _in_process_mongodb() -> str:
    """One in-process SecantusDB server for every test module of the session (it takes
    about a second to start and two to stop), stopped when the process exits."""
    if not _SHARED_SERVER:
        from secantus import SecantusDBServer

        server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:")
        try:
            server.start()
        except OSError as exc:  # pragma: no cover - depends on the machine
            require_service("MongoDB", f"cannot start an in-process SecantusDB server: {exc}")
        atexit.register(server.stop)
        _SHARED_SERVER.append(server)
    return str(_SHARED_SERVER[0].uri)


@pytest.fixture(scope="session")
def compat_mongodb_uri() -> str:
    """A MongoDB-wire server that runs transactions: ``HORAE_MONGODB_URI``, or the
    shared in-process one."""
    return os.environ.get("HORAE_MONGODB_URI") or _in_process_mongodb()


@pytest.fixture
def mongo_database(compat_mongodb_uri: str) -> Iterator[str]:
    """A database name of this test's own (everything starting with it is dropped)."""
    name = f"compat_{uuid.uuid4().hex[:12]}"
    yield name
    client: MongoClient[dict[str, Any]] = MongoClient(compat_mongodb_uri)
    try:
        for database in client.list_database_names():
            if database.startswith(name):
                client.drop_database(database)
    finally:
        client.close()


# ---- PostgreSQL -------------------------------------------------------------------------


async def _postgres(statement: str | None) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        if statement is not None:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL schema name of this test's own (dropped afterwards)."""
    try:
        asyncio.run(_postgres(None))
    except Exception as exc:
        require_service("PostgreSQL", f"cannot connect to {POSTGRES_DSN}: {exc}")
    name = f"compat_{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(_postgres(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
