"""EventBrokerContract: the conformance suite that every event broker passes."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import anyio
import attrs
import pytest

from horae import events
from horae._contract_datastore_harness import contract_test
from horae._enums import JobOutcome
from horae.eventbrokers._base import EventBroker
from horae.events import (
    DataStoreEvent,
    Event,
    JobAdded,
    SchedulerStarted,
    TaskAdded,
    TaskRemoved,
)

BrokerFactory = Callable[[], EventBroker]
_T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
_LOGGER_NAME = "horae.testing.broker"


@attrs.frozen(kw_only=True)
class ContractProbe(TaskAdded):
    """An event subclass defined outside horae.events, for the subclass filter tests."""

    note: str = ""


def all_event_classes() -> list[type[Event]]:
    """Every concrete event class horae defines, plus :class:`ContractProbe`."""
    classes = [
        value
        for value in vars(events).values()
        if isinstance(value, type) and issubclass(value, Event) and value is not Event
    ]
    return [*classes, ContractProbe]


def _sample_value(field: attrs.Attribute[Any], number: int) -> Any:
    type_name = str(field.type).replace(" | None", "")
    samples: dict[str, Any] = {
        "datetime": _T0 + timedelta(seconds=number, microseconds=123),
        "UUID": UUID(int=number + 1),
        "str": f"{field.name}-{number}",
        "bool": True,
        "int": number + 7,
        "JobOutcome": JobOutcome.abandoned,
    }
    if type_name not in samples:
        raise AssertionError(
            f"no sample value for field {field.name!r} of type {field.type!r}; "
            f"teach _sample_value about it"
        )
    return samples[type_name]


def sample_event(event_class: type[Event], number: int = 0) -> Event:
    """An instance of *event_class* with every field set (no defaults left)."""
    values = {field.name: _sample_value(field, number) for field in attrs.fields(event_class)}
    return event_class(**values)


def _event(number: int, event_class: type[Event] = TaskAdded) -> Event:
    return sample_event(event_class, number)


class EventRecorder:
    """A sync callback that records events and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = anyio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, count: int) -> list[Event]:
        """Wait until *count* events have arrived (the test's timeout bounds this)."""
        while len(self.events) < count:
            await self._arrived.wait()
        return self.events


class AsyncEventRecorder(EventRecorder):
    """The same as an async callback that yields to the loop, optionally gated."""

    def __init__(self, gate: anyio.Event | None = None) -> None:
        super().__init__()
        self.gate = gate

    async def __call__(self, event: Event) -> None:  # type: ignore[override]
        if self.gate is not None:
            await self.gate.wait()
        await anyio.lowlevel.checkpoint()
        super().__call__(event)


class LogRecorder(logging.Handler):
    """A logging handler that records error records and lets a test wait for them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._arrived = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, count: int) -> list[logging.LogRecord]:
        """Wait until *count* records have arrived (the test's timeout bounds this)."""
        while len(self.records) < count:
            await self._arrived.wait()
        return self.records


class EventBrokerContract:
    """The public conformance tests of :class:`~horae.eventbrokers.EventBroker`.

    Subclass it in a test module (the name must start with ``Test``) and provide a
    ``broker_factory`` fixture: it returns a callable that makes a new, **unstarted**
    broker bound to this test's namespace (its own channel or key prefix). Brokers whose
    :attr:`~horae.eventbrokers.EventBroker.shared` is True must deliver the events that
    one instance publishes to the subscribers of another instance made by the factory;
    the cross-instance tests skip (naming the capability) for brokers that are not
    shared. Each test runs on asyncio with a hard timeout, starts its brokers with a
    logger named ``horae.testing.broker`` and stops them afterwards.
    """

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The contract runs on asyncio, the event loop horae is built on."""
        return "asyncio"

    @pytest.fixture
    async def brokers(self, broker_factory: BrokerFactory) -> AsyncIterator[list[EventBroker]]:
        """A list holding one started broker; tests append more with :meth:`_start`."""
        started: list[EventBroker] = []
        with anyio.fail_after(10):
            await self._start(broker_factory, started)
        try:
            yield started
        finally:
            with anyio.fail_after(10):
                for broker in reversed(started):
                    await broker.stop()

    @staticmethod
    async def _start(factory: BrokerFactory, started: list[EventBroker]) -> EventBroker:
        broker = factory()
        await broker.start(logging.getLogger(_LOGGER_NAME))
        started.append(broker)
        return broker

    # ---- one instance -------------------------------------------------------------------

    @contract_test
    async def test_publish_reaches_every_subscriber(self, brokers: list[EventBroker]) -> None:
        broker = brokers[0]
        first, second = EventRecorder(), EventRecorder()
        broker.subscribe(first)
        broker.subscribe(second)
        published = [_event(number) for number in range(3)]
        for event in published:
            await broker.publish(event)
        assert await first.wait_for(3) == published
        assert await second.wait_for(3) == published

    @contract_test
    async def test_publish_local_reaches_local_subscribers(
        self, brokers: list[EventBroker]
    ) -> None:
        recorder = EventRecorder()
        brokers[0].subscribe(recorder)
        await brokers[0].publish_local(_event(1))
        assert await recorder.wait_for(1) == [_event(1)]

    @pytest.mark.parametrize(
        ("event_types", "expected"),
        [
            (None, [TaskAdded, JobAdded, SchedulerStarted, ContractProbe]),
            ({DataStoreEvent}, [TaskAdded, JobAdded, ContractProbe]),
            ({TaskAdded}, [TaskAdded, ContractProbe]),
            ({ContractProbe, SchedulerStarted}, [SchedulerStarted, ContractProbe]),
            ({TaskRemoved}, []),
        ],
        ids=["all", "base-class", "class-and-subclass", "two-classes", "none-match"],
    )
    @contract_test
    async def test_type_filters_include_subclasses(
        self,
        brokers: list[EventBroker],
        event_types: Iterable[type[Event]] | None,
        expected: list[type[Event]],
    ) -> None:
        broker = brokers[0]
        filtered, everything = EventRecorder(), EventRecorder()
        broker.subscribe(filtered, event_types)
        broker.subscribe(everything)
        for number, event_class in enumerate([TaskAdded, JobAdded, SchedulerStarted]):
            await broker.publish(_event(number, event_class))
        await broker.publish(_event(3, ContractProbe))
        await everything.wait_for(4)
        assert [type(event) for event in filtered.events] == expected

    @contract_test
    async def test_one_shot_subscription_gets_one_event(self, brokers: list[EventBroker]) -> None:
        broker = brokers[0]
        once, everything = EventRecorder(), EventRecorder()
        broker.subscribe(once, {TaskAdded}, one_shot=True)
        broker.subscribe(everything)
        for number in range(3):
            await broker.publish(_event(number))
        await everything.wait_for(3)
        assert once.events == [_event(0)]

    @contract_test
    async def test_unsubscribe_stops_delivery(self, brokers: list[EventBroker]) -> None:
        broker = brokers[0]
        gone, scoped, everything = EventRecorder(), EventRecorder(), EventRecorder()
        subscription = broker.subscribe(gone)
        broker.subscribe(everything)
        with broker.subscribe(scoped):
            await broker.publish(_event(0))
            await everything.wait_for(1)
        subscription.unsubscribe()
        subscription.unsubscribe()  # idempotent
        await broker.publish(_event(1))
        await everything.wait_for(2)
        assert gone.events == scoped.events == [_event(0)]

    @contract_test
    async def test_async_callbacks_get_events_in_order(self, brokers: list[EventBroker]) -> None:
        recorder = AsyncEventRecorder()
        brokers[0].subscribe(recorder)
        published = [_event(number) for number in range(20)]
        for event in published:
            await brokers[0].publish(event)
        assert await recorder.wait_for(20) == published

    @contract_test
    async def test_slow_async_subscriber_does_not_block_publisher(
        self, brokers: list[EventBroker]
    ) -> None:
        broker = brokers[0]
        gate = anyio.Event()
        slow, fast = AsyncEventRecorder(gate), EventRecorder()
        broker.subscribe(slow)
        broker.subscribe(fast)
        published = [_event(number) for number in range(3)]
        for event in published:
            await broker.publish(event)  # returns although `slow` is stuck
        assert await fast.wait_for(3) == published
        assert slow.events == []
        gate.set()
        assert await slow.wait_for(3) == published

    @contract_test
    async def test_raising_callbacks_are_logged_and_others_served(
        self, brokers: list[EventBroker]
    ) -> None:
        def sync_boom(event: Event) -> None:
            raise ValueError("sync boom")

        async def async_boom(event: Event) -> None:
            raise ValueError("async boom")

        broker = brokers[0]
        sync_ok, async_ok = EventRecorder(), AsyncEventRecorder()
        broker.subscribe(sync_boom)
        broker.subscribe(async_boom)
        broker.subscribe(sync_ok)
        broker.subscribe(async_ok)
        logger = logging.getLogger(_LOGGER_NAME)
        errors = LogRecorder()
        logger.addHandler(errors)
        try:
            await broker.publish(_event(0))
            await broker.publish(_event(1))
            assert await sync_ok.wait_for(2) == [_event(0), _event(1)]
            assert await async_ok.wait_for(2) == [_event(0), _event(1)]
            records = await errors.wait_for(4)  # async failures may be logged a bit later
        finally:
            logger.removeHandler(errors)
        messages = sorted(str(record.exc_info[1]) for record in records if record.exc_info)
        assert messages == ["async boom", "async boom", "sync boom", "sync boom"]

    @pytest.mark.parametrize("event_class", all_event_classes(), ids=lambda cls: cls.__name__)
    def test_every_event_class_round_trips_as_json(self, event_class: type[Event]) -> None:
        # Remote brokers send events as JSON built from to_dict; every field must survive.
        event = sample_event(event_class)
        text = json.dumps(event.to_dict())
        assert Event.from_dict(json.loads(text)) == event

    # ---- several instances --------------------------------------------------------------

    @contract_test
    async def test_instances_deliver_to_each_other(
        self, brokers: list[EventBroker], broker_factory: BrokerFactory
    ) -> None:
        if not brokers[0].shared:
            pytest.skip("the broker does not declare shared (cross-instance delivery)")
        first = brokers[0]
        second = await self._start(broker_factory, brokers)
        here, there = EventRecorder(), EventRecorder()
        first.subscribe(here)
        second.subscribe(there)
        await first.publish_local(_event(0))  # stays on the first instance
        await first.publish(_event(1))
        await second.publish(_event(2))
        assert await there.wait_for(2) == [_event(1), _event(2)]
        assert await here.wait_for(3) == [_event(0), _event(1), _event(2)]

    @contract_test
    async def test_every_event_class_crosses_instances(
        self, brokers: list[EventBroker], broker_factory: BrokerFactory
    ) -> None:
        if not brokers[0].shared:
            pytest.skip("the broker does not declare shared (cross-instance delivery)")
        second = await self._start(broker_factory, brokers)
        there = EventRecorder()
        second.subscribe(there)
        published = [
            sample_event(event_class, number)
            for number, event_class in enumerate(all_event_classes())
        ]
        for event in published:
            await brokers[0].publish(event)
        assert await there.wait_for(len(published)) == published
