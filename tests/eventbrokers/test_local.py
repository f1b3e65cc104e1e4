"""LocalEventBroker: the public contract, plus the local delivery rules and wire format."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone

import anyio
import pytest

from horae._exceptions import DeserializationError
from horae.eventbrokers._local_delivery import decode_event, encode_event
from horae.eventbrokers.local import LocalEventBroker
from horae.events import Event, JobReleased, TaskAdded, TaskRemoved
from horae.testing import EventBrokerContract

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
pytestmark = pytest.mark.anyio


def task_added(number: int) -> TaskAdded:
    return TaskAdded(timestamp=T0, task_id=f"t{number}")


class TestLocalEventBroker(EventBrokerContract):
    @pytest.fixture
    def broker_factory(self) -> Callable[[], LocalEventBroker]:
        return LocalEventBroker


def test_local_broker_is_connected_and_not_shared() -> None:
    broker = LocalEventBroker()
    assert (broker.connected, broker.shared) == (True, False)


async def test_works_before_start_and_after_stop() -> None:
    broker = LocalEventBroker()
    seen: list[Event] = []
    done = anyio.Event()

    async def async_seen(event: Event) -> None:
        seen.append(event)
        done.set()

    broker.subscribe(seen.append)
    await broker.publish(task_added(0))
    assert seen == [task_added(0)]  # sync callbacks run inside publish
    await broker.start(logging.getLogger("test"))
    await broker.stop()
    broker.subscribe(async_seen)
    await broker.publish(task_added(1))
    with anyio.fail_after(5):
        await done.wait()
    assert seen == [task_added(0), task_added(1), task_added(1)]


@pytest.mark.parametrize(
    ("event_types", "message"),
    [
        (TaskAdded, r"pass \{TaskAdded\} instead of TaskAdded"),
        ([TaskAdded, "JobReleased"], r"got 'JobReleased' in it"),
    ],
    ids=["class-not-iterable", "not-an-event-class"],
)
def test_subscribe_rejects_bad_event_types(event_types: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        LocalEventBroker().subscribe(print, event_types)  # type: ignore[arg-type]


async def test_sync_callback_returning_an_awaitable_is_awaited_in_order() -> None:
    broker = LocalEventBroker()
    seen: list[str] = []

    async def record(event: Event) -> None:
        await anyio.lowlevel.checkpoint()
        assert isinstance(event, TaskAdded)
        seen.append(event.task_id)

    broker.subscribe(lambda event: record(event))
    for number in range(5):
        await broker.publish(task_added(number))
    with anyio.fail_after(5):
        await broker.stop()  # waits for queued deliveries
    assert seen == [f"t{number}" for number in range(5)]


async def test_stop_cancels_deliveries_that_outlast_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = LocalEventBroker(delivery_grace_period=0.05)
    await broker.start(logging.getLogger("test.local"))
    cancelled = anyio.Event()

    async def stuck(event: Event) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    broker.subscribe(stuck)
    await broker.publish(task_added(0))
    with caplog.at_level(logging.WARNING, logger="test.local"), anyio.fail_after(5):
        await broker.stop()
    assert cancelled.is_set()
    assert "cancelled 1 event deliveries" in caplog.text


async def test_unsubscribe_drops_queued_events() -> None:
    broker = LocalEventBroker()
    gate = anyio.Event()
    seen: list[Event] = []

    async def slow(event: Event) -> None:
        await gate.wait()
        seen.append(event)

    subscription = broker.subscribe(slow)
    for number in range(3):
        await broker.publish(task_added(number))
    await anyio.lowlevel.checkpoint()  # the first delivery starts and waits at the gate
    subscription.unsubscribe()
    gate.set()
    with anyio.fail_after(5):
        await broker.stop()
    assert seen == [task_added(0)]


async def test_one_shot_callback_that_publishes_gets_only_one_event() -> None:
    broker = LocalEventBroker()
    seen: list[Event] = []

    async def republish(event: Event) -> None:
        seen.append(event)
        await broker.publish(task_added(99))

    def republish_sync(event: Event) -> None:
        seen.append(event)

    broker.subscribe(republish_sync, one_shot=True)
    broker.subscribe(republish, one_shot=True)
    await broker.publish(task_added(0))
    with anyio.fail_after(5):
        await broker.stop()
    assert seen == [task_added(0), task_added(0)]


def test_wire_format_round_trips() -> None:
    event = JobReleased.from_dict(
        {
            "event": "JobReleased",
            "timestamp": T0.isoformat(),
            "job_id": "00000000-0000-0000-0000-000000000001",
            "scheduler_id": None,
            "task_id": "t",
            "schedule_id": None,
            "outcome": "abandoned",
            "scheduled_fire_time": None,
            "started_at": None,
            "finished_at": T0.isoformat(),
        }
    )
    assert decode_event(encode_event(event, "node-1")) == ("node-1", event)
    assert decode_event(encode_event(event, "node-1").encode()) == ("node-1", event)


_REMOVED = {"event": "TaskRemoved", "timestamp": T0.isoformat(), "task_id": "t"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "malformed event message"),
        (json.dumps({"event": _REMOVED}), "malformed event message"),
        (json.dumps({"origin": 5, "event": _REMOVED}), "origin is not a str"),
        (json.dumps({"origin": "n", "event": {"event": "Nope"}}), "unknown event type 'Nope'"),
        (
            json.dumps({"origin": "n", "event": {**_REMOVED, "timestamp": "yesterday"}}),
            "malformed TaskRemoved event",
        ),
    ],
    ids=["not-json", "no-origin", "origin-type", "unknown-event", "bad-value"],
)
def test_wire_format_rejects_malformed_messages(payload: str, message: str) -> None:
    with pytest.raises(DeserializationError, match=message):
        decode_event(payload)


def test_task_removed_is_a_distinct_type() -> None:
    # from_dict picks the class by name, not by the shape of the fields
    data = TaskRemoved(timestamp=T0, task_id="t").to_dict()
    assert type(Event.from_dict(data)) is TaskRemoved
