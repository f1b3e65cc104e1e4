"""PostgresDataStore: release_job calls made together share one statement.

Self-contained (own fixtures), on the PostgreSQL at ``HORAE_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), in a schema of its own that is dropped
afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from _postgres_helpers import TracingConnection

from conftest import require_service
from horae._enums import JobOutcome
from horae._structures import Job, JobResult
from horae.datastores.postgres import PostgresDataStore
from horae.eventbrokers.local import LocalEventBroker
from horae.events import Event, JobReleased

DSN = os.environ.get("HORAE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
LOGGER = logging.getLogger("horae.tests.datastores")

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def admin() -> AsyncIterator[Any]:
    try:
        conn = await asyncpg.connect(DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        require_service("PostgreSQL", f"cannot connect to {DSN}: {exc}")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def schema(admin: Any) -> AsyncIterator[str]:
    name = f"horae_test_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def tracing_pool(schema: str) -> AsyncIterator[Any]:
    TracingConnection.clear_trace()
    pool = await asyncpg.create_pool(
        DSN, min_size=1, max_size=2, connection_class=TracingConnection
    )
    try:
        yield pool
    finally:
        TracingConnection.clear_trace()
        await pool.close()


def sent() -> list[tuple[str, tuple[Any, ...]]]:
    """The store's statements since the last clear (not the pool's own resets)."""
    return [s for s in TracingConnection.statements if "pg_advisory_unlock_all" not in s[0]]


def success(job: Job, finished: datetime) -> JobResult:
    return JobResult(
        job_id=job.id,
        task_id=job.task_id,
        schedule_id=job.schedule_id,
        scheduled_fire_time=job.scheduled_fire_time,
        outcome=JobOutcome.success,
        finished_at=finished,
        expires_at=finished,
    )


async def test_concurrent_releases_share_one_statement_and_keep_their_fences(
    admin: Any, tracing_pool: Any, schema: str
) -> None:
    """release_job calls made at the same time (jobs finishing together) go out as one
    statement and one commit. Each call still gets its own answer: only the jobs the
    caller holds are released (True), the others are left alone (False), and
    JobReleased is published once per released job, before its call returns. The
    statement is served by indexes."""
    broker = LocalEventBroker()
    await broker.start(LOGGER)
    events: list[Event] = []
    broker.subscribe(events.append)
    jobs = [
        Job(task_id="task", start_time=T0, created_at=T0, result_expiration_time=timedelta(1))
        for _ in range(40)
    ]
    store = PostgresDataStore(tracing_pool, schema)
    await store.start(broker, LOGGER)
    try:
        await store.add_jobs(jobs)
        mine = await store.acquire_jobs("w1", T0, LEASE, 20)
        theirs = await store.acquire_jobs("w2", T0, LEASE, 20)
        TracingConnection.statements.clear()
        finished = T0 + timedelta(seconds=5)
        outcomes = await asyncio.gather(
            *(store.release_job("w1", success(job, finished)) for job in mine + theirs)
        )
        assert outcomes == [True] * 20 + [False] * 20
        statements = sent()
        assert len(statements) == 1
        released = [e.job_id for e in events if isinstance(e, JobReleased)]
        assert sorted(released) == sorted(job.id for job in mine)
        assert {job.id for job in await store.get_jobs()} == {job.id for job in theirs}
        stored = await store.get_job_result(mine[0].id)
        assert stored is not None
        assert stored.outcome is JobOutcome.success
        assert stored.expires_at == finished + timedelta(1)
        # the same job twice at once: the calls take turns, the first one wins
        first, second = await asyncio.gather(
            store.release_job("w2", success(theirs[0], finished)),
            store.release_job("w2", success(theirs[0], finished)),
        )
        assert (first, second) == (True, False)
    finally:
        await store.stop()
        await broker.stop()
    async with admin.transaction():
        await admin.execute("SET LOCAL enable_seqscan = off")
        query, args = statements[0]
        plan = "\n".join(row[0] for row in await admin.fetch(f"EXPLAIN {query}", *args))
        assert "Seq Scan" not in plan, plan
