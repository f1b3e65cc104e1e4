"""The scheduler's machinery: opening its services (broker, stores, executors), and one
run of its processing: the schedule loop, the worker and the cleanup loop, started
together, stopped together, and woken by broker events.

A new :class:`Runtime` is made each time the scheduler starts; it lives until all three
loops have returned after :meth:`Runtime.request_stop` (or until it is cancelled).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from ._enums import SchedulerRole
from ._logging import backend_logger, component_logger
from ._scheduler_args import SchedulerConfig
from ._scheduler_loop import ScheduleProcessor
from ._tasks import TaskService
from ._wakeup import Wakeup
from ._worker import Worker
from .datastores._base import DataStore
from .events import (
    Event,
    JobAdded,
    JobCancellationRequested,
    JobReleased,
    ScheduleAdded,
    SchedulerStarted,
    SchedulerStopped,
    ScheduleUnpaused,
    ScheduleUpdated,
)

if TYPE_CHECKING:
    from ._scheduler import AsyncScheduler


async def open_services(
    config: SchedulerConfig, on_event: Callable[[Event], None], events: tuple[type[Event], ...]
) -> tuple[AsyncExitStack, anyio.abc.TaskGroup]:
    """Start the broker, the stores and the executors, subscribe *on_event* to *events*,
    and open the task group that background runs live in. Closing the returned stack
    undoes it all, in reverse order (the task group first, the broker last)."""
    stack = AsyncExitStack()
    await stack.__aenter__()
    try:
        await config.broker.start(backend_logger(config.logger, "eventbrokers", config.broker))
        stack.push_async_callback(config.broker.stop)
        for store in config.stores.values():
            store_logger = backend_logger(config.logger, "datastores", store)
            await store.start(config.broker, store_logger, clock=config.clock)
            stack.push_async_callback(store.stop)
        for executor in config.executors.values():
            await executor.start(stack)
        stack.callback(config.broker.subscribe(on_event, events).unsubscribe)
        task_group = await stack.enter_async_context(anyio.create_task_group())
    except BaseException:
        await stack.aclose()
        raise
    return stack, task_group


class Runtime:
    """The loops of one scheduler run, by its role."""

    def __init__(
        self, scheduler: AsyncScheduler, config: SchedulerConfig, tasks: TaskService
    ) -> None:
        self._config = config
        self._processor: ScheduleProcessor | None = None
        self._worker: Worker | None = None
        if config.role in (SchedulerRole.both, SchedulerRole.scheduler):
            self._processor = ScheduleProcessor(
                stores=config.stores, identity=config.identity, clock=config.clock,
                lease_duration=config.lease_duration, poll_interval=config.poll_interval,
                tasks=tasks.cache, logger=component_logger(config.logger, "scheduler"),
                polls=config.polls, publish=config.broker.publish_many,
            )  # fmt: skip
        if config.role in (SchedulerRole.both, SchedulerRole.worker):
            self._worker = Worker(
                scheduler=scheduler, stores=config.stores, identity=config.identity,
                clock=config.clock, lease_duration=config.lease_duration,
                poll_interval=config.poll_interval,
                max_concurrent_jobs=config.max_concurrent_jobs, executors=config.executors,
                registry=tasks.registry, tasks=tasks.cache,
                logger=component_logger(config.logger, "worker"),
                polls=config.polls, stop_grace_period=config.stop_grace_period,
            )  # fmt: skip
        self._cleanup_wakeup = Wakeup(config.clock)
        self._stop_requested = False

    def request_stop(self) -> None:
        """Stop acquiring work; running jobs get the stop grace period."""
        self._stop_requested = True
        for component in (self._processor, self._worker):
            if component is not None:
                component.request_stop()
        self._cleanup_wakeup.set()

    def on_event(self, event: Event) -> None:
        """Wake the loop that an event concerns (runs inline in the broker's publish)."""
        if isinstance(event, (ScheduleAdded, ScheduleUpdated, ScheduleUnpaused)):
            # Only an earlier next fire time matters: the loop already sleeps until the
            # earliest one it knows, so our own releases cost no extra round.
            if self._processor is not None and event.next_fire_time is not None:
                self._processor.wakeup.wake_at(event.next_fire_time)
        elif isinstance(event, JobAdded) and self._worker is not None:
            self._worker.wakeup.set()  # a new job
        elif (
            isinstance(event, JobReleased)
            and self._worker is not None
            and event.scheduler_id != self._config.identity
        ):
            # A slot of a limited task freed on another node (or a job the store ended).
            # Our own releases already wake the worker as each job ends.
            self._worker.wakeup.set()
        elif (
            isinstance(event, JobCancellationRequested)
            and self._worker is not None
            and event.scheduler_id == self._config.identity
        ):
            self._worker.cancel(event.job_id)

    def wake_all(self) -> None:
        """Look for due schedules and jobs at once: the broker reconnected, and events
        that other nodes published while it was away were missed."""
        for component in (self._processor, self._worker):
            if component is not None:
                component.wakeup.set()

    async def run(self, started: Callable[[], None]) -> None:
        """Publish ``SchedulerStarted``, run the loops until they have all returned
        (calling *started* once they run), then publish ``SchedulerStopped``."""
        config = self._config
        crash: BaseException | None = None
        remove_reconnect_callback = config.broker.add_reconnect_callback(self.wake_all)
        try:
            await config.broker.publish(SchedulerStarted(timestamp=config.clock.now()))
            async with anyio.create_task_group() as group:
                for component in (self._processor, self._worker):
                    if component is not None:
                        group.start_soon(component.run)
                group.start_soon(self._run_cleanup)
                started()
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                crash = exc
            raise
        finally:
            remove_reconnect_callback()
            with anyio.CancelScope(shield=True):
                await self._publish_stopped(crash)

    async def _publish_stopped(self, crash: BaseException | None) -> None:
        logger = component_logger(self._config.logger, "scheduler")
        if crash is None:
            logger.info("Scheduler %s stopped", self._config.identity)
        else:
            logger.error("Scheduler %s crashed: %r", self._config.identity, crash)
        event = SchedulerStopped(
            timestamp=self._config.clock.now(), exception=None if crash is None else repr(crash)
        )
        try:
            await self._config.broker.publish(event)
        except Exception:
            logger.exception("Could not publish SchedulerStopped")

    async def _run_cleanup(self) -> None:
        interval = self._config.cleanup_interval
        if interval is None:
            return
        clock = self._config.clock
        while not self._stop_requested:
            for alias, store in self._config.stores.items():
                await self._cleanup_store(alias, store)
            await self._cleanup_wakeup.wait(clock.now() + interval)

    async def _cleanup_store(self, alias: str, store: DataStore) -> None:
        try:
            await store.cleanup(self._config.clock.now())
        except Exception:
            component_logger(self._config.logger, "scheduler").exception(
                "Cleanup of the data store %r failed", alias
            )
