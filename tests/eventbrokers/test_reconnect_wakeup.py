"""A broker that got its connection back wakes the scheduler's loops at once.

Events that other nodes published while a broker was away are lost (neither NOTIFY nor
pub/sub keeps them). The scheduler registers a reconnect callback with its broker
(``EventBroker.add_reconnect_callback``) that wakes its schedule and job loops, so the
work those events announced starts then, not at the next poll. Here a broker that
"loses" the ``JobAdded`` of a job stands in for the disconnected one, on a store that is
not shared (so nothing polls): only the reconnection can wake the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anyio
import pytest

from horae import AsyncScheduler
from horae._enums import JobOutcome
from horae.datastores import MemoryDataStore
from horae.eventbrokers import LocalEventBroker
from horae.events import Event, JobAdded

pytestmark = pytest.mark.anyio


def noop() -> str:
    return "ran"


class ForgetfulBroker(LocalEventBroker):
    """Loses ``JobAdded`` while ``losing`` is set; reconnects when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.losing = False
        self.callbacks: list[Callable[[], object]] = []

    async def publish(self, event: Event) -> None:
        if not (self.losing and isinstance(event, JobAdded)):
            await super().publish(event)

    async def publish_many(self, events: Iterable[Event]) -> None:
        for event in events:
            await self.publish(event)

    def add_reconnect_callback(self, callback: Callable[[], object]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def reconnect(self) -> None:
        for callback in list(self.callbacks):
            callback()


async def asleep_without_deadline(scheduler: AsyncScheduler) -> None:
    """Wait until the worker sleeps with nothing to wake it but an event (or a
    reconnection): it looks at the store no more by itself."""
    wakeup = scheduler._runtime._worker.wakeup  # type: ignore[union-attr]
    # internal state with no event to wait on, so poll it
    while not wakeup._waiting or wakeup._deadline is not None:  # noqa: ASYNC110
        await anyio.sleep(0.001)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_reconnection_wakes_the_worker_for_a_job_whose_event_was_lost() -> None:
    broker = ForgetfulBroker()
    async with AsyncScheduler(MemoryDataStore(), broker) as scheduler:
        assert broker.callbacks == []
        await scheduler.start_in_background()
        assert len(broker.callbacks) == 1  # registered while the scheduler runs
        with anyio.fail_after(10):
            # a first job runs normally; afterwards the worker has nothing to do
            first = await scheduler.add_job(noop, result_expiration_time=60)
            assert (await scheduler.get_job_result(first)).outcome is JobOutcome.success
            await asleep_without_deadline(scheduler)
            broker.losing = True
            second = await scheduler.add_job(noop, result_expiration_time=60)  # unheard of
            broker.reconnect()
            result = await scheduler.get_job_result(second)
        assert result.outcome is JobOutcome.success
        assert result.return_value == "ran"
        await scheduler.stop()
        await scheduler.wait_until_stopped()
        assert broker.callbacks == []  # removed when the scheduler stopped
