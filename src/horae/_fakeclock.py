"""FakeClock: a clock for tests that moves only when told to (or when the program idles).

Modelled on Trio's ``MockClock``. Time stands still until the test calls
:meth:`FakeClock.advance` or :meth:`FakeClock.jump_to`; with ``autojump=True`` it also
jumps by itself, straight to the earliest sleeper's deadline, whenever every task of the
event loop is waiting. A scheduler test can so "wait" for a daily job in microseconds.

How autojump detects idleness on asyncio (there is no public hook for it): while anyone
sleeps on an autojumping clock, one checker task per event loop (shared by every
FakeClock sleeping on that loop, so that two checkers never keep each other busy) yields
to the loop once per iteration and looks at the loop's queue of ready callbacks
(``loop._ready``, a private attribute of every ``asyncio.BaseEventLoop``). When, for
several consecutive iterations, nothing but the checker itself was ready to run, no task
can make progress without outside help (I/O, a thread, or the clock), and each such
clock jumps to its earliest sleeper's deadline. With
``autojump_threshold`` the checker additionally waits that many *real* seconds of
continued quiet before jumping, which gives thread and process jobs time to finish; the
default ``0`` jumps at once, as Trio's ``autojump_threshold=0`` does. On event loops
without ``_ready`` (uvloop) only the real-time threshold is used (at least 10 ms).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import weakref
from datetime import datetime, timedelta, timezone

import attrs

from ._clock import Clock, SystemClock
from ._validation import as_timedelta, require_aware

#: Consecutive event-loop iterations with nothing else ready before the program counts
#: as idle. One is not enough: a future resolved by an I/O callback needs an iteration to
#: schedule its task's step, which then needs another to run.
_IDLE_ITERATIONS = 3
#: The real-time threshold used on loops whose ready queue cannot be inspected.
_FALLBACK_THRESHOLD = 0.01


def _is_non_negative_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


@attrs.define(eq=False)
class _Sleeper:
    deadline: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


def _wake(sleeper: _Sleeper) -> None:
    def set_result() -> None:
        if not sleeper.future.done():
            sleeper.future.set_result(None)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is sleeper.loop:
        set_result()
    elif not sleeper.loop.is_closed():
        # advance() called from another thread (a test driving a sync Scheduler): hand
        # the wake-up to the sleeper's own loop, the only thread that may touch it.
        sleeper.loop.call_soon_threadsafe(set_result)


class FakeClock(Clock):
    """A :class:`~horae._clock.Clock` whose time moves only when told to.

    Args:
        start: the initial time (aware; converted to UTC). The default is the real
            current time, so that triggers made without ``start_time`` (which read the
            real clock once, when constructed) line up with the fake one.
        autojump: jump to the earliest sleeper's deadline whenever the event loop is
            idle (see the module docstring for how idleness is detected).
        autojump_threshold: real seconds the loop must stay idle before an autojump; 0
            (the default) jumps as soon as the loop is idle. Raise it when tests run
            thread or process jobs, which the loop cannot see working.

    ``now()`` may be called from any thread; ``advance``/``jump_to`` too (sleepers on an
    event loop in another thread are woken through that loop). Sleeping is supported on
    asyncio event loops.

    Example::

        clock = FakeClock(datetime(2030, 1, 1, tzinfo=timezone.utc), autojump=True)
        async with AsyncScheduler(clock=clock) as scheduler:
            ...
    """

    __slots__ = (
        "__weakref__",
        "_activity",
        "_autojump",
        "_counter",
        "_lock",
        "_now",
        "_sleepers",
        "_threshold",
    )

    def __init__(
        self,
        start: datetime | None = None,
        *,
        autojump: bool = False,
        autojump_threshold: float = 0.0,
    ) -> None:
        if start is None:
            start = SystemClock().now()
        require_aware(start, "start")
        if not _is_non_negative_number(autojump_threshold):
            raise ValueError(
                f"autojump_threshold must be a number of seconds >= 0, got {autojump_threshold!r}"
            )
        self._now = start.astimezone(timezone.utc)
        self._autojump = bool(autojump)
        self._threshold = float(autojump_threshold)
        self._lock = threading.Lock()
        self._sleepers: list[tuple[datetime, int, _Sleeper]] = []
        self._counter = itertools.count()
        # bumped whenever a sleeper is added or woken; autojump uses it to tell that
        # something happened during its real-time threshold
        self._activity = 0

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()!r}, autojump={self._autojump})"

    @property
    def autojump(self) -> bool:
        """Whether the clock jumps to the next deadline by itself when the loop idles."""
        return self._autojump

    @autojump.setter
    def autojump(self, value: bool) -> None:
        self._autojump = bool(value)
        if self._autojump:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            _ensure_checker(loop, self)

    def now(self) -> datetime:
        """The fake current time (aware, UTC)."""
        with self._lock:
            return self._now

    async def sleep_until(self, deadline: datetime) -> None:
        """Sleep until the fake time reaches *deadline* (at once if it already has)."""
        require_aware(deadline, "deadline")
        loop = asyncio.get_running_loop()
        with self._lock:
            if deadline <= self._now:
                return
            sleeper = _Sleeper(deadline, loop, loop.create_future())
            heapq.heappush(self._sleepers, (deadline, next(self._counter), sleeper))
            self._activity += 1
        if self._autojump:
            _ensure_checker(loop, self)
        try:
            await sleeper.future
        finally:
            # A cancelled sleeper stays in the heap until it reaches the top; it is
            # skipped there because its future is done.
            sleeper.future.cancel()

    def advance(self, delta: timedelta | float) -> None:
        """Move the time forward by *delta* (a ``timedelta`` or seconds) and wake every
        sleeper whose deadline has been reached, earliest deadline first.

        The jump is instantaneous: tasks that wake at intermediate deadlines all see the
        final time. Advance in smaller steps (or use ``autojump``) when periodic work,
        such as lease renewals, must happen in between.
        """
        delta = as_timedelta(delta, name="delta")
        if delta < timedelta(0):
            raise ValueError(f"the clock never goes backwards; got a negative delta {delta!r}")
        with self._lock:
            target = self._now + delta
        self.jump_to(target)

    def jump_to(self, when: datetime) -> None:
        """Set the time to *when* (aware, not earlier than now) and wake the sleepers
        whose deadline has been reached, earliest first."""
        require_aware(when, "when")
        with self._lock:
            if when < self._now:
                raise ValueError(
                    f"the clock never goes backwards: cannot jump to {when.isoformat()}, "
                    f"which is before the current fake time {self._now.isoformat()}"
                )
            self._now = when.astimezone(timezone.utc)
            due: list[_Sleeper] = []
            while self._sleepers and self._sleepers[0][0] <= self._now:
                due.append(heapq.heappop(self._sleepers)[2])
            if due:
                self._activity += 1
        for sleeper in due:
            _wake(sleeper)

    # ---- autojump -------------------------------------------------------------------

    def _earliest_deadline(self, loop: asyncio.AbstractEventLoop) -> datetime | None:
        with self._lock:
            while self._sleepers and self._sleepers[0][2].future.done():
                heapq.heappop(self._sleepers)
            deadlines = [
                deadline
                for deadline, _, sleeper in self._sleepers
                if sleeper.loop is loop and not sleeper.future.done()
            ]
        return min(deadlines, default=None)

    def _wants_jump(self, loop: asyncio.AbstractEventLoop) -> datetime | None:
        """The deadline to jump to when *loop* idles (None: nothing to do)."""
        return self._earliest_deadline(loop) if self._autojump else None


# ---- the per-loop autojump checker ------------------------------------------------------

_checkers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[FakeClock]] = (
    weakref.WeakKeyDictionary()
)


def _ensure_checker(loop: asyncio.AbstractEventLoop, clock: FakeClock) -> None:
    _clocks.setdefault(loop, weakref.WeakSet()).add(clock)
    checker = _checkers.get(loop)
    if checker is None or checker.done():
        _checkers[loop] = loop.create_task(_autojump(loop), name="horae FakeClock autojump")


async def _autojump(loop: asyncio.AbstractEventLoop) -> None:
    ready = getattr(loop, "_ready", None)
    idle_iterations = 0
    try:
        while True:
            await asyncio.sleep(0)
            candidates = list(_clocks.get(loop, ()))
            if not any(clock._sleepers for clock in candidates):
                return  # nobody sleeps on a clock any more; sleep_until restarts us
            if ready:  # somebody else is runnable: the program is not idle
                idle_iterations = 0
                continue
            idle_iterations += 1
            if idle_iterations < _IDLE_ITERATIONS:
                continue
            idle_iterations = 0
            clocks = [
                (clock, deadline)
                for clock in candidates
                if (deadline := clock._wants_jump(loop)) is not None
            ]
            if not clocks:
                return  # idle, but nobody sleeps on an autojumping clock of this loop
            threshold = max(clock._threshold for clock, _ in clocks)
            if ready is None:
                threshold = max(threshold, _FALLBACK_THRESHOLD)
            if threshold and not await _quiet_for(threshold, ready, clocks):
                continue
            for clock, deadline in clocks:
                if deadline > clock.now():
                    clock.jump_to(deadline)
    finally:
        if _checkers.get(loop) is asyncio.current_task():
            del _checkers[loop]


async def _quiet_for(
    seconds: float, ready: object, clocks: list[tuple[FakeClock, datetime]]
) -> bool:
    """Wait *seconds* of real time; True if nothing touched the clocks meanwhile and
    nothing is runnable now."""
    activity = [clock._activity for clock, _ in clocks]
    await asyncio.sleep(seconds)
    return [clock._activity for clock, _ in clocks] == activity and not ready
