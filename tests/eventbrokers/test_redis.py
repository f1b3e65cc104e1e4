"""RedisEventBroker: the public contract, plus outages and bad input.

Every test uses a pub/sub channel of its own (``horae-test-<random>``) on the Redis at
``HORAE_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); pub/sub keeps no keys, so
there is nothing to clean up. Outages are made by killing the broker's subscribed
connection (found by the client name the broker sets, never ``CLIENT KILL TYPE pubsub``
on a shared server) or by cutting and stalling a TCP proxy in front of the server.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import pytest
from redis.asyncio import Redis

from _services import REDIS_HOST, REDIS_PORT, REDIS_URL, redis_client
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
from horae._exceptions import ConfigurationError, EventBrokerError, SerializationError
from horae.eventbrokers import RedisEventBroker
from horae.events import JobReleased, TaskAdded
from horae.testing import EventBrokerContract

__all__ = ["redis_client"]  # the shared fixture, imported for this module's tests

pytestmark = [pytest.mark.redis, pytest.mark.anyio]


@pytest.fixture
def channel(redis_client: Redis) -> str:
    return f"horae-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make(channel: str) -> Callable[..., RedisEventBroker]:
    """Makes brokers on this test's channel; keywords override FAST."""

    def factory(url_or_client: str | Redis = REDIS_URL, **options: Any) -> RedisEventBroker:
        return RedisEventBroker(url_or_client, channel, **{**FAST, **options})

    return factory


class TestRedisEventBroker(EventBrokerContract):
    @pytest.fixture
    def broker_factory(self, make: Callable[..., RedisEventBroker]) -> Callable[[], Any]:
        return make


async def kill_subscription(client: Redis, channel: str) -> None:
    """Kill the broker's subscribed connection (by its client name and type)."""
    clients = await client.client_list(_type="pubsub")
    ids = [entry["id"] for entry in clients if entry["name"] == f"horae-broker:{channel}"]
    assert len(ids) == 1
    await client.execute_command("CLIENT", "KILL", "ID", ids[0])  # type: ignore[no-untyped-call]


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url_or_client", "message"),
    [
        ("http://localhost:6379", "invalid Redis URL 'http://localhost:6379': it must start"),
        ("redis://:s3cret@h:1/0", None),
        (42, "needs a Redis URL or a redis.asyncio.Redis client, not int"),
    ],
    ids=["scheme", "fine", "not-a-client"],
)
def test_urls_and_clients_are_checked(url_or_client: Any, message: str | None) -> None:
    if message is None:
        broker = RedisEventBroker(url_or_client, "jobs")
        assert repr(broker) == "RedisEventBroker('redis://:***@h:1/0', channel='jobs')"
        assert (broker.connected, broker.shared) == (False, True)
    else:
        with pytest.raises(ConfigurationError, match=message):
            RedisEventBroker(url_or_client)


def test_an_empty_channel_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="invalid Redis pub/sub channel ''"):
        RedisEventBroker(REDIS_URL, "")


def test_timings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="health_check_interval must be a positive number"):
        RedisEventBroker(REDIS_URL, health_check_interval=0)


async def test_unreachable_server_fails_fast_naming_it() -> None:
    port = free_port()
    broker = RedisEventBroker(f"redis://:s3cret@127.0.0.1:{port}/0", connect_timeout=5)
    started_at = time.monotonic()
    with pytest.raises(
        EventBrokerError, match=f"cannot listen on Redis at 127.0.0.1:{port}"
    ) as caught:
        await broker.start(LOGGER)
    assert time.monotonic() - started_at < 5
    assert "s3cret" not in str(caught.value)
    assert not broker.connected


async def test_silent_server_fails_within_the_connect_timeout(redis_client: Redis) -> None:
    async with OutageProxy(REDIS_HOST, REDIS_PORT) as proxy:
        proxy.stall()
        broker = RedisEventBroker(f"redis://127.0.0.1:{proxy.port}/0", connect_timeout=0.5)
        started_at = time.monotonic()
        with pytest.raises(EventBrokerError, match=r"no answer within 0\.5 s"):
            await broker.start(LOGGER)
        assert time.monotonic() - started_at < 3


@attrs.frozen(kw_only=True)
class RedisTestOddEvent(TaskAdded):
    """An event of the user's with a field that JSON cannot carry."""

    tags: frozenset[str] = frozenset()


async def test_an_event_json_cannot_carry_is_refused(
    make: Callable[..., RedisEventBroker],
) -> None:
    broker = make()
    async with started(broker):
        odd = RedisTestOddEvent(
            timestamp=task_added(0).timestamp, task_id="t", tags=frozenset("a")
        )
        with pytest.raises(
            SerializationError, match="cannot send RedisTestOddEvent to other nodes"
        ):
            await broker.publish(odd)
        await broker.publish_local(odd)  # stays in this process: no JSON needed


# ---- delivery -----------------------------------------------------------------------------


async def test_events_of_this_node_are_delivered_here_once(
    make: Callable[..., RedisEventBroker],
) -> None:
    first, second = make(), make()
    async with started(first, second):
        assert first.connected
        assert first.shared
        here = EventRecorder()
        first.subscribe(here)
        big = sample_event(JobReleased, 1)
        await first.publish(task_added(0))
        await first.publish(big)
        # The second node's event comes after any (wrong) echo of the first node's in
        # the server's order, so it is the barrier that makes "once" observable.
        await second.publish(task_added(2))
        assert await here.wait_for(3) == [task_added(0), big, task_added(2)]
        await second.publish(task_added(3))
        assert await here.wait_for(4) == [task_added(0), big, task_added(2), task_added(3)]


async def test_foreign_messages_are_logged_and_skipped(
    make: Callable[..., RedisEventBroker],
    redis_client: Redis,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make()
    async with started(broker):
        recorder = EventRecorder()
        broker.subscribe(recorder)
        with caplog.at_level(logging.WARNING, LOGGER.name):
            await redis_client.publish(channel, "not json")
            await redis_client.publish(channel, b"\xff\xfe")
            await broker.publish(task_added(0))
            assert await recorder.wait_for(1) == [task_added(0)]
    ignored = [r for r in caplog.records if "ignored a message" in r.getMessage()]
    assert len(ignored) == 2


async def test_a_client_passed_in_stays_open_and_may_decode_responses(
    make: Callable[..., RedisEventBroker],
) -> None:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        lent, other = make(client), make()
        for number in range(2):  # stop, then start again
            async with started(lent, other):
                here, there = EventRecorder(), EventRecorder()
                lent.subscribe(here)
                other.subscribe(there)
                await lent.publish(task_added(number))
                await other.publish(task_added(number + 10))
                assert await here.wait_for(2) == [task_added(number), task_added(number + 10)]
                assert await there.wait_for(2) == [task_added(number), task_added(number + 10)]
            assert not lent.connected
        assert await client.ping()
    finally:
        await client.aclose()


# ---- outages ------------------------------------------------------------------------------


async def test_a_killed_subscription_reconnects_and_delivery_resumes(
    make: Callable[..., RedisEventBroker],
    redis_client: Redis,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a slower first back-off, so that the test sees the broker disconnected
    first = make(reconnect_delay=0.4)
    second = make(redis_client)  # a client of our own: not named, so not killed
    kill = functools.partial(kill_subscription, redis_client, channel)
    await check_a_killed_connection_reconnects(first, second, kill, "Redis", caplog)


async def test_reconnect_callbacks_run_once_per_reconnection(
    make: Callable[..., RedisEventBroker], redis_client: Redis, channel: str
) -> None:
    """Events sent while a node was away are lost, so its scheduler is told when the
    broker is back (and then looks for work at once); a removed callback is not called."""
    broker = make()
    calls: list[str] = []
    broker.add_reconnect_callback(lambda: calls.append("kept"))
    remove = broker.add_reconnect_callback(lambda: calls.append("removed"))
    broker.add_reconnect_callback(lambda: 1 / 0)  # logged; the others still run
    async with started(broker):
        assert calls == []
        await kill_subscription(redis_client, channel)
        await wait_until(lambda: calls == ["kept", "removed"])
        remove()
        await wait_until(lambda: broker.connected)
        await kill_subscription(redis_client, channel)
        await wait_until(lambda: calls == ["kept", "removed", "kept"])


async def test_a_batch_arrives_whole_and_in_order(make: Callable[..., RedisEventBroker]) -> None:
    """publish_many sends a batch in one round trip (in several messages when it is
    large); every node, this one included, gets each event once, in order."""
    first, second = make(), make()
    first._batch_limit = 2_000  # several messages for this batch
    async with started(first, second):
        here, there = EventRecorder(), EventRecorder()
        first.subscribe(here)
        second.subscribe(there)
        batch = [task_added(n) for n in range(100)] + [task_added(0)]
        await first.publish_many(batch)
        await second.publish(task_added(-1))  # the barrier after any wrong echo
        assert await there.wait_for(len(batch) + 1) == [*batch, task_added(-1)]
        assert await here.wait_for(len(batch) + 1) == [*batch, task_added(-1)]


async def test_publishing_while_disconnected_is_logged_not_raised(
    make: Callable[..., RedisEventBroker],
    redis_client: Redis,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make(reconnect_delay=30.0)
    kill = functools.partial(kill_subscription, redis_client, channel)
    await check_publishing_while_disconnected(broker, kill, caplog)


@pytest.mark.parametrize("outage", ["cut", "stall"])
async def test_a_lost_server_and_its_return(
    make: Callable[..., RedisEventBroker], outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a proxy that goes away (cut) or stops forwarding (stall): publishing
    never raises and delivers here, the loss is noticed (at once, or by the health
    check), and after the server returns the broker reconnects and delivery resumes
    both ways."""
    async with OutageProxy(REDIS_HOST, REDIS_PORT) as proxy:
        first = make(f"redis://127.0.0.1:{proxy.port}/0", connect_timeout=1.0)
        second = make()
        async with started(first, second):
            here, there = EventRecorder(), EventRecorder()
            first.subscribe(here)
            second.subscribe(there)
            with caplog.at_level(logging.WARNING, LOGGER.name):
                if outage == "cut":
                    proxy.cut()
                else:
                    proxy.stall()
                with anyio.fail_after(3):
                    await first.publish(task_added(0))  # at most publish_timeout
                assert here.events == [task_added(0)]
                await wait_until(lambda: not first.connected)
                await second.publish(task_added(1))  # lost to the first node: allowed
            proxy.restore()
            await wait_until(lambda: first.connected)
            await second.publish(task_added(2))
            assert await here.wait_for(2) == [task_added(0), task_added(2)]
            await first.publish(task_added(3))
            assert await there.wait_for(3) == [task_added(1), task_added(2), task_added(3)]
    messages = [record.getMessage() for record in caplog.records]
    assert any("lost the connection to Redis" in m for m in messages)
