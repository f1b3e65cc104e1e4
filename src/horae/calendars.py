"""Calendars: sets of excluded times that any trigger can skip with ``exclude=``.

Implementations: HolidayCalendar, CronCalendar, DateRangeCalendar (below).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from ._exceptions import DeserializationError

_registry: dict[str, type[Calendar]] = {}


class Calendar(ABC):
    """A set of excluded times. Calendars are immutable values, like triggers.

    Contract:

    * ``excluded_until(dt)`` returns ``None`` when the aware datetime *dt* is not
      excluded; otherwise the end (exclusive, strictly later than *dt*) of the excluded
      span that contains it, so that a trigger can jump over the whole span at once.
    * ``dt in calendar`` is ``True`` when *dt* is excluded.
    * Wall-clock rules (dates, cron fields) are read in *dt*'s own time zone unless the
      calendar was given a ``timezone``.
    * ``to_state()`` / ``Calendar.from_state()`` round-trip through a versioned,
      JSON-safe dict, as for triggers.
    """

    __slots__ = ()

    state_type: ClassVar[str]
    state_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "state_type" in cls.__dict__:
            _registry[cls.state_type] = cls

    @abstractmethod
    def excluded_until(self, dt: datetime) -> datetime | None:
        """``None`` if *dt* is allowed, else the end of the excluded span containing it."""

    def __contains__(self, dt: object) -> bool:
        return isinstance(dt, datetime) and self.excluded_until(dt) is not None

    def to_state(self) -> dict[str, Any]:
        """Return the versioned, JSON-safe state of this calendar."""
        state: dict[str, Any] = {"type": self.state_type, "version": self.state_version}
        state.update(self._to_state())
        return state

    @abstractmethod
    def _to_state(self) -> dict[str, Any]:
        """The calendar's own fields as JSON-safe values."""

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Calendar:
        """Rebuild a calendar from :meth:`to_state` output (of any registered kind)."""
        if not isinstance(state, Mapping):
            raise DeserializationError(
                f"a calendar state must be a mapping, not {type(state).__name__}"
            )
        kind = state.get("type")
        calendar_class = _registry.get(kind)  # type: ignore[arg-type]
        if calendar_class is None:
            raise DeserializationError(f"unknown calendar type {kind!r} in stored state")
        version = state.get("version")
        if not isinstance(version, int) or version > calendar_class.state_version:
            raise DeserializationError(
                f"calendar state version {version!r} of {kind!r} is newer than this version "
                f"of horae understands; upgrade horae"
            )
        try:
            return calendar_class._from_state(state, version)
        except (KeyError, TypeError, ValueError) as exc:
            raise DeserializationError(f"invalid {kind!r} calendar state: {exc}") from exc

    @classmethod
    @abstractmethod
    def _from_state(cls, state: Mapping[str, Any], version: int) -> Calendar:
        """Build the calendar from its state."""
