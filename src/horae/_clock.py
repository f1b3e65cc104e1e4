"""The Clock interface and the real clock; tests inject ``horae.testing.FakeClock``.

Nothing else under ``src/horae`` reads the wall clock (ruff bans ``datetime.now``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timezone

import anyio


class Clock(ABC):
    """Tells the time and sleeps until a given time.

    Contract: ``now()`` returns an aware UTC datetime and never goes backwards for one
    clock object; ``sleep_until(t)`` returns at or after ``now() >= t`` (at once if that
    is already so), and can be cancelled like any other await.
    """

    __slots__ = ()

    @abstractmethod
    def now(self) -> datetime:
        """The current time, aware, in UTC."""

    @abstractmethod
    async def sleep_until(self, deadline: datetime) -> None:
        """Sleep until ``now() >= deadline``."""

    async def sleep(self, seconds: float) -> None:
        """Sleep for *seconds* of this clock's time."""
        from datetime import timedelta

        await self.sleep_until(self.now() + timedelta(seconds=seconds))


class SystemClock(Clock):
    """The real wall clock."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)  # noqa: TID251 - this *is* the clock

    async def sleep_until(self, deadline: datetime) -> None:
        # Sleep in slices of at most an hour so that a wall-clock jump (NTP step,
        # suspend/resume) is noticed within that time rather than oversleeping.
        while True:
            remaining = (deadline - self.now()).total_seconds()
            if remaining <= 0:
                return
            await anyio.sleep(min(remaining, 3600.0))
