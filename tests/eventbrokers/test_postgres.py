"""PostgresEventBroker: the public contract, plus large events, outages and bad input.

Every test uses a NOTIFY channel and a schema of its own (``horae_test_<random>``) in the
database named by ``HORAE_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and drops the schema afterwards. Outages
are made by terminating the broker's listening backend (found by its application_name)
or by cutting and stalling a TCP proxy in front of the server.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg  # type: ignore[import-untyped]
import attrs
import pytest

from _services import POSTGRES_DSN as DSN
from _services import admin, schema
from eventbrokers._broker_helpers import (
    FAST,
    LOGGER,
    OutageProxy,
    check_a_killed_connection_reconnects,
    check_publishing_while_disconnected,
    free_port,
    started,
    task_added,
    wait_until,
)
from horae._contract_broker import EventRecorder, sample_event
from horae._exceptions import ConfigurationError, EventBrokerError
from horae.eventbrokers import PostgresEventBroker
from horae.events import Event, JobReleased
from horae.testing import EventBrokerContract

SERVER = urlsplit(DSN)
__all__ = ["admin", "schema"]  # the shared fixtures, imported for this module's tests

#: For the brokers whose connections a test breaks. asyncpg (0.32) may leave a
#: "Future exception was never retrieved" behind when a connection attempt is cancelled
#: while it asks the server about TLS (as Pool.close() does to a pool refilling itself
#: after a lost connection); pytest would report it in the next test. Without TLS
#: there is no such question.
NO_TLS = "disable"

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]


def big_event(number: int, size: int = 100_000) -> JobReleased:
    """An event whose message is far over NOTIFY's 8000 bytes."""
    event = sample_event(JobReleased, number)
    assert isinstance(event, JobReleased)
    return attrs.evolve(event, exception_message="x" * size)


def with_query(dsn: str, **params: str) -> str:
    """*dsn* with query parameters added."""
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{dsn}{'&' if '?' in dsn else '?'}{query}"


@pytest.fixture
def channel() -> str:
    return f"horae_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make(channel: str, schema: str) -> Callable[..., PostgresEventBroker]:
    """Makes brokers on this test's channel and schema; keywords override FAST."""

    def factory(dsn: str = DSN, **options: Any) -> PostgresEventBroker:
        return PostgresEventBroker(dsn, channel, schema=schema, **{**FAST, **options})

    return factory


class TestPostgresEventBroker(EventBrokerContract):
    @pytest.fixture
    def broker_factory(self, make: Callable[..., PostgresEventBroker]) -> Callable[[], Any]:
        return make


async def terminate_listener(admin: Any, application_name: str) -> None:
    killed = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = $1",
        f"{application_name} listener",
    )
    assert killed == 1


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("dsn", ["redis://localhost", "localhost:5432"])
def test_a_dsn_that_is_not_postgresql_is_refused(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid PostgreSQL DSN"):
        PostgresEventBroker(dsn)


@pytest.mark.parametrize(
    ("channel", "message"),
    [("", "use a non-empty str"), ("c" * 64, "63-byte limit"), (5, "use a non-empty str")],
    ids=["empty", "too-long", "not-a-str"],
)
def test_an_unusable_channel_is_refused(channel: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"invalid PostgreSQL NOTIFY channel .*{message}"):
        PostgresEventBroker(DSN, channel)


@pytest.mark.parametrize(
    ("option", "value"),
    [("publish_timeout", 0), ("reconnect_delay", -1.0), ("payload_retention", 0)],
)
def test_timings_must_be_positive(option: str, value: float) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ValueError, match=f"{option} must be a positive number of seconds"):
        PostgresEventBroker(DSN, **options)


def test_repr_masks_the_password_and_flags_before_start() -> None:
    broker = PostgresEventBroker("postgresql://u:s3cret@db:5432/app", "jobs")
    assert repr(broker) == "PostgresEventBroker('postgresql://u:***@db:5432/app', channel='jobs')"
    assert (broker.connected, broker.shared) == (False, True)


async def test_unreachable_server_fails_fast_naming_it() -> None:
    port = free_port()
    broker = PostgresEventBroker(f"postgresql://u:s3cret@127.0.0.1:{port}/db", connect_timeout=5)
    started_at = time.monotonic()
    with pytest.raises(EventBrokerError, match=f"127.0.0.1:{port}") as caught:
        await broker.start(LOGGER)
    assert time.monotonic() - started_at < 5
    assert "s3cret" not in str(caught.value)
    assert not broker.connected


async def test_silent_server_fails_within_the_connect_timeout(admin: Any) -> None:
    async with OutageProxy(SERVER.hostname or "localhost", SERVER.port or 5432) as proxy:
        proxy.stall()
        broker = PostgresEventBroker(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/test?sslmode={NO_TLS}",
            connect_timeout=0.5,
        )
        started_at = time.monotonic()
        with pytest.raises(
            EventBrokerError, match=f"cannot connect to PostgreSQL at 127.0.0.1:{proxy.port}"
        ):
            await broker.start(LOGGER)
        assert time.monotonic() - started_at < 3


# ---- delivery -----------------------------------------------------------------------------


async def test_events_of_this_node_are_delivered_here_once(
    make: Callable[..., PostgresEventBroker],
) -> None:
    first, second = make(), make()
    async with started(first, second):
        assert first.connected
        assert first.shared
        here = EventRecorder()
        first.subscribe(here)
        await first.publish(task_added(0))
        await first.publish(big_event(1))
        # The second node's event comes after any (wrong) echo of the first node's in
        # the server's order, so it is the barrier that makes "once" observable.
        await second.publish(task_added(2))
        assert await here.wait_for(3) == [task_added(0), big_event(1), task_added(2)]
        await second.publish(task_added(3))
        assert await here.wait_for(4) == [
            task_added(0),
            big_event(1),
            task_added(2),
            task_added(3),
        ]


async def test_large_events_cross_instances_through_the_payload_table(
    make: Callable[..., PostgresEventBroker], admin: Any, schema: str
) -> None:
    first, second = make(), make()
    async with started(first, second):
        there = EventRecorder()
        second.subscribe(there)
        sent = [big_event(0), task_added(1), big_event(2, size=8_000), big_event(3, size=5_000)]
        for event in sent:
            await first.publish(event)
        assert await there.wait_for(4) == sent
    # the two events over the limit went through the table, the others inline
    rows = await admin.fetchval(f'SELECT count(*) FROM "{schema}".horae_event_payloads')
    assert rows == 2


async def test_a_batch_travels_in_few_notifications_in_order(
    make: Callable[..., PostgresEventBroker], admin: Any, schema: str
) -> None:
    """publish_many packs small events into notifications under NOTIFY's limit (several
    per batch here, as 300 events do not fit in one) and sends a large one through the
    table, in its place; every node, this one included, gets them all once, in order.
    Equal events in one batch all arrive (NOTIFY folds equal payloads of a transaction
    into one, so they must not share a statement)."""
    first, second = make(), make()
    async with started(first, second):
        here, there = EventRecorder(), EventRecorder()
        first.subscribe(here)
        second.subscribe(there)
        batch: list[Event] = [task_added(n) for n in range(150)]
        batch += [big_event(150), task_added(0), task_added(0)]
        batch += [task_added(n) for n in range(151, 300)]
        await first.publish_many(batch)
        await second.publish(task_added(-1))  # the barrier after any wrong echo
        assert await there.wait_for(len(batch) + 1) == [*batch, task_added(-1)]
        assert await here.wait_for(len(batch) + 1) == [*batch, task_added(-1)]
    rows = await admin.fetchval(f'SELECT count(*) FROM "{schema}".horae_event_payloads')
    assert rows == 1


async def test_the_store_pool_does_not_reset_connections_but_the_listener_is_reset(
    make: Callable[..., PostgresEventBroker], admin: Any
) -> None:
    """Released connections skip asyncpg's reset round trip; the listening connection,
    which renamed itself, resets itself before it goes back to the pool."""
    app = f"horae-test-{uuid.uuid4().hex[:8]}"
    broker = make(with_query(DSN, application_name=app))
    async with started(broker):
        names = await admin.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
            f"{app}%",
        )
        assert f"{app} listener" in [row[0] for row in names]
        pool = broker._pool
        assert pool is not None
        await broker._disconnect(broken=False)
        # the same connection is handed out again: it listens no more, under its name
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_setting('application_name')") == app
        await broker._connect()


async def test_old_payload_rows_are_cleaned_up(
    make: Callable[..., PostgresEventBroker], admin: Any, schema: str
) -> None:
    first, second = make(payload_retention=0.2), make()
    async with started(first, second):
        there = EventRecorder()
        second.subscribe(there)
        await first.publish(big_event(0))
        await there.wait_for(1)
        await anyio.sleep(0.3)
        await first.publish(big_event(1))
        assert await there.wait_for(2) == [big_event(0), big_event(1)]
    rows = await admin.fetchval(f'SELECT count(*) FROM "{schema}".horae_event_payloads')
    assert rows == 1


async def test_foreign_and_broken_messages_are_logged_and_skipped(
    make: Callable[..., PostgresEventBroker],
    admin: Any,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make()
    async with started(broker):
        recorder = EventRecorder()
        broker.subscribe(recorder)
        with caplog.at_level(logging.WARNING, LOGGER.name):
            for payload in ["not json", f"horae-ref:other:{uuid.uuid4()}", "horae-ref:x:y"]:
                await admin.execute("SELECT pg_notify($1, $2)", channel, payload)
            await broker.publish(task_added(0))
            assert await recorder.wait_for(1) == [task_added(0)]
    messages = [record.getMessage() for record in caplog.records]
    assert any("ignored a message" in m and "malformed event message" in m for m in messages)
    assert any("could not read a large event" in m or "was gone" in m for m in messages)
    assert any("ignored a malformed message" in m for m in messages)


async def test_a_pool_passed_in_stays_open_and_brokers_restart(
    make: Callable[..., PostgresEventBroker], channel: str, schema: str
) -> None:
    pool = await asyncpg.create_pool(DSN, min_size=1, max_size=3)
    try:
        pooled = PostgresEventBroker(pool, channel, schema=schema, **FAST)
        other = make()
        for round_number in range(2):  # stop, then start again
            async with started(pooled, other):
                there = EventRecorder()
                other.subscribe(there)
                await pooled.publish(big_event(round_number))
                assert await there.wait_for(1) == [big_event(round_number)]
            assert not pooled.connected
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


# ---- outages ------------------------------------------------------------------------------


async def test_a_killed_listener_reconnects_and_delivery_resumes(
    make: Callable[..., PostgresEventBroker], admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = f"horae-test-{uuid.uuid4().hex[:8]}"
    # a slower first back-off, so that the test sees the broker disconnected
    first = make(with_query(DSN, application_name=app, sslmode=NO_TLS), reconnect_delay=0.4)
    kill = functools.partial(terminate_listener, admin, app)
    await check_a_killed_connection_reconnects(first, make(), kill, "PostgreSQL", caplog)


async def test_reconnect_callbacks_run_once_per_reconnection(
    make: Callable[..., PostgresEventBroker], admin: Any
) -> None:
    """Events sent while a node was away are lost, so its scheduler is told when the
    broker is back (and then looks for work at once); a removed callback is not called."""
    app = f"horae-test-{uuid.uuid4().hex[:8]}"
    broker = make(with_query(DSN, application_name=app, sslmode=NO_TLS))
    calls: list[str] = []
    broker.add_reconnect_callback(lambda: calls.append("kept"))
    remove = broker.add_reconnect_callback(lambda: calls.append("removed"))
    broker.add_reconnect_callback(lambda: 1 / 0)  # logged; the others still run
    async with started(broker):
        assert calls == []
        await terminate_listener(admin, app)
        await wait_until(lambda: calls == ["kept", "removed"])
        remove()
        await terminate_listener(admin, app)
        await wait_until(lambda: calls == ["kept", "removed", "kept"])


async def test_publishing_while_disconnected_is_logged_not_raised(
    make: Callable[..., PostgresEventBroker], admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = f"horae-test-{uuid.uuid4().hex[:8]}"
    broker = make(with_query(DSN, application_name=app, sslmode=NO_TLS), reconnect_delay=30.0)
    kill = functools.partial(terminate_listener, admin, app)
    await check_publishing_while_disconnected(broker, kill, caplog)


async def test_a_stalled_network_and_its_return(
    make: Callable[..., PostgresEventBroker], caplog: pytest.LogCaptureFixture
) -> None:
    """Through a proxy that stops forwarding: publishing gives up after its timeout
    (delivering here), the health check notices the dead connection, and after the
    network returns the broker reconnects and delivery resumes both ways."""
    async with OutageProxy(SERVER.hostname or "localhost", SERVER.port or 5432) as proxy:
        first = make(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/test?sslmode={NO_TLS}",
            connect_timeout=1.0,
        )
        second = make()
        async with started(first, second):
            here, there = EventRecorder(), EventRecorder()
            first.subscribe(here)
            second.subscribe(there)
            proxy.stall()
            with caplog.at_level(logging.WARNING, LOGGER.name):
                with anyio.fail_after(3):
                    await first.publish(task_added(0))  # gives up after publish_timeout
                assert here.events == [task_added(0)]
                await wait_until(lambda: not first.connected)
            proxy.restore()
            await wait_until(lambda: first.connected)
            await second.publish(task_added(1))
            assert await here.wait_for(2) == [task_added(0), task_added(1)]
            await first.publish(task_added(2))
            assert await there.wait_for(2) == [task_added(1), task_added(2)]
    messages = [record.getMessage() for record in caplog.records]
    assert any("could not publish TaskAdded" in m for m in messages)
    assert any("lost the connection to PostgreSQL" in m for m in messages)


async def test_a_failed_large_publish_is_logged_and_the_table_comes_back(
    make: Callable[..., PostgresEventBroker],
    admin: Any,
    schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = make(), make()
    async with started(first, second):
        here, there = EventRecorder(), EventRecorder()
        first.subscribe(here)
        second.subscribe(there)
        await first.publish(big_event(0))
        await there.wait_for(1)
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        with caplog.at_level(logging.WARNING, LOGGER.name):
            await first.publish(big_event(1))  # fails: logged, delivered here only
        assert here.events == [big_event(0), big_event(1)]
        await first.publish(big_event(2))  # the table is made again
        assert await there.wait_for(2) == [big_event(0), big_event(2)]
    assert any("could not publish JobReleased" in r.getMessage() for r in caplog.records)
