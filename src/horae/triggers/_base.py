"""The Trigger interface, the registry of trigger kinds and the versioned state format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from horae._exceptions import DeserializationError
from horae._validation import require_aware

if TYPE_CHECKING:
    from horae.calendars import Calendar

#: How many excluded fire times ``next()`` skips before it gives up and returns None.
MAX_EXCLUDED_SKIPS = 10_000

_ONE_MICROSECOND = timedelta(microseconds=1)
_registry: dict[str, type[Trigger]] = {}


class Trigger(ABC):
    """Computes fire times. Triggers are immutable values: equal by value, hashable.

    Contract for every implementation:

    * ``next(None)`` is the first fire time (at or after ``start_time`` where the
      trigger has one); ``next(t)`` is the earliest fire time strictly later than ``t``;
      ``None`` means the trigger is exhausted.
    * ``after`` must be timezone-aware (a naive datetime raises ``ValueError``).
    * Results are aware datetimes in the trigger's time zone.
    * ``next`` is pure: the same trigger and the same ``after`` always give the same
      answer. A trigger keeps no cursor; the scheduler stores the last fire time.
    * ``to_state()`` returns a JSON-safe ``dict`` with ``"type"`` and ``"version"``
      keys, and ``Trigger.from_state(trigger.to_state()) == trigger``.
    * ``exclude`` (a :class:`~horae.calendars.Calendar` or ``None``): fire times that the
      calendar excludes are skipped.

    Subclasses implement :meth:`_next` (the raw fire time, exclusions ignored),
    :meth:`_to_state` and :meth:`_from_state`, and set ``state_type``.
    """

    __slots__ = ()

    #: The stable name of this kind of trigger in the serialized state.
    state_type: ClassVar[str]
    #: The newest state version this class writes (and reads).
    state_version: ClassVar[int] = 1

    exclude: Calendar | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # attrs (slots=True) recreates the class; the last registration wins, which is
        # the final slotted class.
        if "state_type" in cls.__dict__:
            _registry[cls.state_type] = cls

    def next(self, after: datetime | None = None) -> datetime | None:
        """Return the earliest fire time strictly later than *after* (the first if None)."""
        if after is not None:
            require_aware(after)
        candidate = self._next(after)
        exclude = self.exclude
        if exclude is None or candidate is None:
            return candidate
        for _ in range(MAX_EXCLUDED_SKIPS):
            until = exclude.excluded_until(candidate)
            if until is None:
                return candidate
            # The first fire time at or after the end of the excluded span. Step back
            # 1 µs in UTC: in a local zone, datetime subtraction is wall-clock
            # arithmetic and would be an hour off across a DST gap.
            until_utc = until.astimezone(timezone.utc)
            candidate = self._next(max(until_utc - _ONE_MICROSECOND, candidate))
            if candidate is None:
                return None
        return None

    @abstractmethod
    def _next(self, after: datetime | None) -> datetime | None:
        """The next fire time after *after* (already checked to be aware), ignoring
        ``exclude``."""

    def describe(self) -> str:
        """An English sentence that says when the trigger fires."""
        return str(self)

    def to_state(self) -> dict[str, Any]:
        """Return the versioned, JSON-safe state of this trigger."""
        state: dict[str, Any] = {"type": self.state_type, "version": self.state_version}
        state.update(self._to_state())
        if self.exclude is not None:
            state["exclude"] = self.exclude.to_state()
        return state

    @abstractmethod
    def _to_state(self) -> dict[str, Any]:
        """The trigger's own fields as JSON-safe values (without type/version/exclude)."""

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Trigger:
        """Rebuild a trigger from :meth:`to_state` output (of any registered kind)."""
        if not isinstance(state, Mapping):
            raise DeserializationError(
                f"a trigger state must be a mapping, not {type(state).__name__}"
            )
        kind = state.get("type")
        trigger_class = _registry.get(kind)  # type: ignore[arg-type]
        if trigger_class is None:
            raise DeserializationError(
                f"unknown trigger type {kind!r} in stored state (known: "
                f"{', '.join(sorted(_registry))})"
            )
        version = state.get("version")
        if not isinstance(version, int) or version > trigger_class.state_version:
            raise DeserializationError(
                f"trigger state version {version!r} of {kind!r} is newer than this version "
                f"of horae understands ({trigger_class.state_version}); upgrade horae"
            )
        try:
            exclude_state = state.get("exclude")
            exclude = None
            if exclude_state is not None:
                from horae.calendars import Calendar

                exclude = Calendar.from_state(exclude_state)
            return trigger_class._from_state(state, version, exclude)
        except DeserializationError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DeserializationError(f"invalid {kind!r} trigger state: {exc}") from exc

    @classmethod
    @abstractmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> Trigger:
        """Build the trigger from its state (``version`` <= ``state_version``)."""


def registered_trigger_types() -> dict[str, type[Trigger]]:
    """Return the known trigger kinds by their state name (a copy)."""
    return dict(_registry)
