"""OrTrigger and AndTrigger: triggers built from other triggers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from horae._validation import as_timedelta, check_kwargs
from horae._wallclock import to_utc
from horae.calendars import Calendar

from ._base import Trigger
from ._common import check_exclude

_ONE_MICROSECOND = timedelta(microseconds=1)


def _as_children(owner: str, triggers: Iterable[Trigger]) -> tuple[Trigger, ...]:
    if isinstance(triggers, (Trigger, str, bytes, Mapping)) or not isinstance(triggers, Iterable):
        raise TypeError(
            f"{owner} takes a sequence of triggers, such as [CronTrigger(...), "
            f"IntervalTrigger(...)], not {type(triggers).__name__} {triggers!r}"
        )
    children = tuple(triggers)
    if not children:
        raise ValueError(f"{owner} needs at least one trigger; got an empty sequence")
    for index, child in enumerate(children):
        if not isinstance(child, Trigger):
            raise TypeError(
                f"{owner} can only combine Trigger objects; item {index} is "
                f"{type(child).__name__} {child!r}"
            )
    return children


def _children_state(children: tuple[Trigger, ...]) -> list[dict[str, Any]]:
    return [child.to_state() for child in children]


def _children_from_state(states: Any) -> list[Trigger]:
    if not isinstance(states, list):
        raise TypeError(f"'triggers' must be a list of trigger states, not {states!r}")
    return [Trigger.from_state(child) for child in states]


@check_kwargs
@attrs.frozen(init=False)
class OrTrigger(Trigger):
    """Fires at every time that any of its triggers fires.

    ``next(after)`` is the earliest of the children's ``next(after)``; times that
    several children share fire once. A child that is exhausted (returns ``None``) drops
    out; the OrTrigger is exhausted when all of them are. Each child keeps its own
    ``exclude`` and time zone; a result is in the zone of the child that produced it.

    Args:
        triggers: The triggers to combine (at least one).
        exclude: A :class:`~horae.calendars.Calendar` of times to skip, on top of the
            children's own.

    Raises:
        ValueError: ``triggers`` is empty.
        TypeError: ``triggers`` is not a sequence of :class:`Trigger` objects.
    """

    state_type: ClassVar[str] = "or"

    triggers: tuple[Trigger, ...]
    exclude: Calendar | None

    def __init__(self, triggers: Sequence[Trigger], *, exclude: Calendar | None = None) -> None:
        check_exclude(exclude)
        self.__attrs_init__(_as_children("OrTrigger", triggers), exclude)

    def _next(self, after: datetime | None) -> datetime | None:
        candidates = [t for t in (child.next(after) for child in self.triggers) if t is not None]
        # by instant (see horae._wallclock on why not by the datetimes' own ordering)
        return min(candidates, key=to_utc, default=None)

    def __str__(self) -> str:
        return f"or[{', '.join(str(child) for child in self.triggers)}]"

    def describe(self) -> str:
        """An English sentence joining the children's descriptions with "or"."""
        return " or ".join(f"({child.describe()})" for child in self.triggers)

    def _to_state(self) -> dict[str, Any]:
        return {"triggers": _children_state(self.triggers)}

    @classmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> OrTrigger:
        return cls(_children_from_state(state["triggers"]), exclude=exclude)


@check_kwargs
@attrs.frozen(init=False)
class AndTrigger(Trigger):
    """Fires when all of its triggers fire within ``threshold`` of each other.

    ``next(after)`` looks at each child's next fire time after *after*. If they all lie
    within ``threshold`` of each other, it returns the **latest** of them: the moment by
    which every child has fired. Otherwise every child whose time is more than
    ``threshold`` before the latest one jumps to its first fire time at or after
    ``latest - threshold`` (no earlier fire of it can agree with the latest child), and
    it tries again, up to ``max_iterations`` times before giving up with ``None``.

    Returning the latest time (APScheduler 4 returns the earliest) keeps the trigger
    stateless and pure: ``next(result)`` asks every child for a time after ``result``, so
    no child fire time takes part in two AndTrigger fires.

    The AndTrigger is exhausted when any child is. Combining an
    :class:`~horae.triggers.IntervalTrigger` with a threshold smaller than its
    misalignment with the other children never agrees; ``max_iterations`` bounds the work.

    Args:
        triggers: The triggers to combine (at least one).
        threshold: How far apart (a ``timedelta`` or seconds, >= 0) the children's fire
            times may be and still count as agreeing.
        max_iterations: How many rounds to try before giving up (>= 1).
        exclude: A :class:`~horae.calendars.Calendar` of times to skip.

    Raises:
        ValueError: ``triggers`` is empty, ``threshold`` is negative, or
            ``max_iterations`` is below 1.
        TypeError: An argument has the wrong type.
    """

    state_type: ClassVar[str] = "and"

    triggers: tuple[Trigger, ...]
    threshold: timedelta
    max_iterations: int
    exclude: Calendar | None

    def __init__(
        self,
        triggers: Sequence[Trigger],
        *,
        threshold: timedelta | float = 1,
        max_iterations: int = 10_000,
        exclude: Calendar | None = None,
    ) -> None:
        children = _as_children("AndTrigger", triggers)
        window = as_timedelta(threshold, name="threshold")
        if window < timedelta(0):
            raise ValueError(f"threshold must not be negative, got {window!r}")
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
            raise TypeError(
                f"max_iterations must be an integer, not {type(max_iterations).__name__} "
                f"{max_iterations!r}"
            )
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {max_iterations!r}")
        check_exclude(exclude)
        self.__attrs_init__(children, window, max_iterations, exclude)

    def _next(self, after: datetime | None) -> datetime | None:
        times = [child.next(after) for child in self.triggers]
        for _ in range(self.max_iterations):
            present = [t for t in times if t is not None]
            if len(present) < len(times):
                return None  # a child is exhausted, so no agreement is possible any more
            latest = max(present, key=to_utc)
            # Compare in UTC: subtracting two datetimes of one zone ignores DST offsets.
            floor = to_utc(latest) - self.threshold
            if all(to_utc(t) >= floor for t in present):
                return latest
            times = [
                t if to_utc(t) >= floor else child.next(floor - _ONE_MICROSECOND)
                for child, t in zip(self.triggers, present, strict=True)
            ]
        return None

    def __str__(self) -> str:
        return f"and[{', '.join(str(child) for child in self.triggers)}]"

    def describe(self) -> str:
        """An English sentence joining the children's descriptions with "and"."""
        text = " and ".join(f"({child.describe()})" for child in self.triggers)
        return f"{text}, within {self.threshold}"

    def _to_state(self) -> dict[str, Any]:
        return {
            "triggers": _children_state(self.triggers),
            # integer microseconds: exact, unlike float seconds
            "threshold_microseconds": self.threshold // _ONE_MICROSECOND,
            "max_iterations": self.max_iterations,
        }

    @classmethod
    def _from_state(
        cls, state: Mapping[str, Any], version: int, exclude: Calendar | None
    ) -> AndTrigger:
        microseconds = state["threshold_microseconds"]
        if isinstance(microseconds, bool) or not isinstance(microseconds, int):
            raise TypeError(f"threshold_microseconds must be an integer, not {microseconds!r}")
        return cls(
            _children_from_state(state["triggers"]),
            threshold=timedelta(microseconds=microseconds),
            max_iterations=state["max_iterations"],
            exclude=exclude,
        )
