"""Sleeping without polling: the wake-up primitive of the scheduler's loops, and back-off.

Every loop of the scheduler (schedule processing, the worker, cleanup) sleeps in
:meth:`Wakeup.wait` until the earliest moment it knows there is work, and is woken early
by :meth:`Wakeup.set` (a broker event, a finished job, ``stop()``) or has its deadline
pulled in by :meth:`Wakeup.wake_at` (a schedule added with an earlier fire time). All of
it runs on the event loop thread: broker callbacks and sync-facade calls arrive there.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import anyio

from ._clock import Clock, SystemClock

#: How soon a loop looks again when its store reports work that is already due but that
#: the loop did not get: it came due while the loop was reading the store (common when
#: fire times are dense), or another node's claim had not committed yet. Stores report
#: work that another node holds at the end of its lease, so due work is acquirable; the
#: delay doubles on each such round, up to the poll interval, so a loop never spins.
RECHECK_DELAY = timedelta(milliseconds=20)


_scope_class: type[anyio.CancelScope] | None = None


def new_cancel_scope(*, shield: bool = False) -> anyio.CancelScope:
    """``anyio.CancelScope(shield=shield)`` without the per-call backend lookup.

    ``anyio.CancelScope()`` asks sniffio which event loop runs on every call; the
    scheduler makes several scopes per job, so the backend's own class is looked up
    once (horae runs on asyncio) and instantiated directly.
    """
    global _scope_class  # a cache filled on first use
    if _scope_class is None:
        _scope_class = type(anyio.CancelScope())
    return _scope_class(shield=shield)


def earliest(*times: datetime | None) -> datetime | None:
    """The earliest of the given times, ignoring ``None`` (``None`` if all are)."""
    present = [time for time in times if time is not None]
    return min(present) if present else None


#: The longest single sleep on the system clock: a wall-clock jump (NTP step, suspend and
#: resume) is noticed within this time, as in ``SystemClock.sleep_until``.
_MAX_SLEEP = 3600.0


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Wakeup:
    """Sleep until a deadline (on the injected clock) or until woken.

    A wake-up that arrives while the loop is busy (between two waits) is remembered, so
    the next :meth:`wait` returns at once: an event that arrives just after the loop
    read the store is never lost.

    On the real clock (:class:`SystemClock`) a wait is a bare asyncio future plus a
    timer, and a wake-up resolves the future: one loop iteration, no cancellation. On
    other clocks (a ``FakeClock`` in tests) it sleeps with ``clock.sleep_until`` in a
    cancel scope that a wake-up cancels.
    """

    __slots__ = (
        "_cancelling",
        "_clock",
        "_deadline",
        "_flag",
        "_future",
        "_loop",
        "_pending",
        "_scope",
        "_waiting",
    )

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._flag = False
        self._pending: datetime | None = None
        self._deadline: datetime | None = None
        self._waiting = False
        self._future: asyncio.Future[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancelling = False

    def set(self) -> None:
        """End the current wait now (or the next one at once, if none is in progress)."""
        self._flag = True
        self._interrupt()

    def wake_at(self, when: datetime) -> None:
        """Make the current (or next) wait end no later than *when*."""
        if not self._waiting:
            self._pending = earliest(self._pending, when)
        elif self._deadline is None or when < self._deadline:
            self._deadline = when
            self._interrupt()  # re-sleep with the earlier deadline

    def _interrupt(self) -> None:
        future = self._future
        if future is not None:
            _resolve(future)
            return
        # Cancel the sleeping scope from a loop callback rather than from the caller:
        # called inside a task, anyio's CancelScope.cancel() formats repr(task) into its
        # cancel reason, which costs more than the rest of a wake-up. Many wake-ups
        # before the callback runs cost one callback.
        if self._scope is not None and not self._cancelling and self._loop is not None:
            self._cancelling = True
            self._loop.call_soon(self._cancel_scope, self._scope)

    def _cancel_scope(self, scope: anyio.CancelScope) -> None:
        if scope is self._scope:  # not a scope whose wait has ended meanwhile
            scope.cancel()

    async def wait(self, deadline: datetime | None) -> None:
        """Sleep until *deadline* (forever if ``None``) or until woken."""
        # Always yield once: a loop whose deadline is already due (or that was woken
        # meanwhile) must not monopolise the event loop. (asyncio's own yield: anyio's
        # checkpoint looks the backend up first, and this runs several times per job.)
        await asyncio.sleep(0)
        self._deadline = earliest(deadline, self._pending)
        self._pending = None
        if self._flag:
            self._flag = False
            self._deadline = None
            return
        if self._deadline is not None and self._deadline <= self._clock.now():
            self._deadline = None
            return
        self._loop = asyncio.get_running_loop()
        self._waiting = True
        try:
            if type(self._clock) is SystemClock:
                await self._wait_on_loop(self._loop)
            else:
                await self._wait_in_scope()
        finally:
            self._flag = False
            self._waiting = False
            self._future = None
            self._scope = None
            self._cancelling = False
            self._deadline = None

    async def _wait_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        clock = self._clock
        while not self._flag:
            timer = None
            if self._deadline is not None:
                delay = (self._deadline - clock.now()).total_seconds()
                if delay <= 0:
                    return
                future = self._future = loop.create_future()
                timer = loop.call_later(min(delay, _MAX_SLEEP), _resolve, future)
            else:
                future = self._future = loop.create_future()
            try:
                await future
            finally:
                self._future = None
                if timer is not None:
                    timer.cancel()
            # woken by set() (the loop ends), by wake_at() (it sleeps again with the
            # earlier deadline) or by the timer (the deadline check above returns)

    async def _wait_in_scope(self) -> None:
        while not self._flag:
            with new_cancel_scope() as scope:
                self._scope = scope
                self._cancelling = False
                if self._deadline is None:
                    await anyio.sleep_forever()
                else:
                    await self._clock.sleep_until(self._deadline)
                    return
            self._scope = None
            # cancelled by set() (the loop ends) or wake_at() (it sleeps again)


async def wait_for_event(event: anyio.Event, clock: Clock, deadline: datetime | None) -> bool:
    """Wait until *event* is set or the clock reaches *deadline*; return ``event.is_set()``."""
    if deadline is None:
        await event.wait()
        return True
    async with anyio.create_task_group() as group:

        async def cancel_at_deadline() -> None:
            await clock.sleep_until(deadline)
            group.cancel_scope.cancel()

        group.start_soon(cancel_at_deadline)
        await event.wait()
        group.cancel_scope.cancel()
    return event.is_set()


class Backoff:
    """Exponential back-off for retrying a loop after a store or broker error."""

    __slots__ = ("_delay", "_initial", "_maximum")

    def __init__(
        self,
        initial: timedelta = timedelta(seconds=0.5),
        maximum: timedelta = timedelta(seconds=60),
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._delay = initial

    def next_delay(self) -> timedelta:
        """The delay before the next retry (doubling each time up to the maximum)."""
        delay = self._delay
        self._delay = min(self._delay * 2, self._maximum)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._delay = self._initial
