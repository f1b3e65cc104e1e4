"""Every event that schedulers, data stores and event brokers publish.

All events are frozen attrs classes with a ``timestamp`` (when the event happened, from
the publisher's clock). They carry ids and times, never user payloads, so that brokers
can send them between nodes as JSON (:meth:`Event.to_dict` / :meth:`Event.from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import attrs

from ._enums import JobOutcome

_E = TypeVar("_E", bound="Event")
_event_types: dict[str, type[Event]] = {}


def _serialize_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, JobOutcome):
        return value.value
    return value


@attrs.frozen(kw_only=True)
class Event:
    """The base of every event."""

    #: datetime fields, turned back from ISO strings by ``from_dict``
    _datetime_fields: ClassVar[frozenset[str]] = frozenset({"timestamp"})

    timestamp: datetime

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _event_types[cls.__name__] = cls

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the event's class name under ``"event"``."""
        data = {
            field.name: _serialize_value(getattr(self, field.name))
            for field in attrs.fields(type(self))
        }
        data["event"] = type(self).__name__
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Event:
        """Rebuild an event from :meth:`to_dict` output."""
        values = dict(data)
        event_class = _event_types[values.pop("event")]
        for field in attrs.fields(event_class):
            value = values.get(field.name)
            if value is None:
                continue
            if field.type in ("datetime", "datetime | None"):
                values[field.name] = datetime.fromisoformat(value)
            elif field.type in ("UUID", "UUID | None"):
                values[field.name] = UUID(value)
            elif field.type in ("JobOutcome",):
                values[field.name] = JobOutcome(value)
        return event_class(**values)


# ---- scheduler life cycle -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SchedulerEvent(Event):
    """Base of the events about one scheduler's life cycle."""


@attrs.frozen(kw_only=True)
class SchedulerStarted(SchedulerEvent):
    """The scheduler has started (its stores and broker are running)."""


@attrs.frozen(kw_only=True)
class SchedulerStopped(SchedulerEvent):
    """The scheduler has stopped; ``exception`` is what stopped it, if it crashed."""

    exception: str | None = None


# ---- data store: tasks ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DataStoreEvent(Event):
    """Base of the events that data stores publish (seen by every node)."""


@attrs.frozen(kw_only=True)
class TaskAdded(DataStoreEvent):
    task_id: str


@attrs.frozen(kw_only=True)
class TaskUpdated(DataStoreEvent):
    task_id: str


@attrs.frozen(kw_only=True)
class TaskRemoved(DataStoreEvent):
    task_id: str


# ---- data store: schedules ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScheduleAdded(DataStoreEvent):
    schedule_id: str
    task_id: str
    next_fire_time: datetime | None


@attrs.frozen(kw_only=True)
class ScheduleUpdated(DataStoreEvent):
    schedule_id: str
    task_id: str
    next_fire_time: datetime | None


@attrs.frozen(kw_only=True)
class ScheduleRemoved(DataStoreEvent):
    """A schedule was removed; ``finished`` is True when its trigger was exhausted."""

    schedule_id: str
    task_id: str
    finished: bool


@attrs.frozen(kw_only=True)
class SchedulePaused(DataStoreEvent):
    schedule_id: str
    reason: str | None = None
    paused_until: datetime | None = None


@attrs.frozen(kw_only=True)
class ScheduleUnpaused(DataStoreEvent):
    schedule_id: str
    next_fire_time: datetime | None


@attrs.frozen(kw_only=True)
class ScheduleDeserializationFailed(DataStoreEvent):
    """A stored schedule could not be read back (e.g. its trigger state is corrupt)."""

    schedule_id: str
    exception: str


@attrs.frozen(kw_only=True)
class ScheduleFireSkipped(DataStoreEvent):
    """A fire time made no job (overlap policy, catch-up cap, ...); ``reason`` says why."""

    schedule_id: str
    fire_time: datetime
    reason: str


@attrs.frozen(kw_only=True)
class SchedulerCaughtUp(DataStoreEvent):
    """After downtime a schedule had ``missed`` fire times and ``created`` jobs for them."""

    schedule_id: str
    missed: int
    created: int


# ---- data store: jobs -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobAdded(DataStoreEvent):
    job_id: UUID
    task_id: str
    schedule_id: str | None


@attrs.frozen(kw_only=True)
class JobAcquired(DataStoreEvent):
    job_id: UUID
    scheduler_id: str
    task_id: str
    schedule_id: str | None
    scheduled_fire_time: datetime | None


@attrs.frozen(kw_only=True)
class JobReleased(DataStoreEvent):
    """A job has ended (run or not); its result is stored if it has an expiry."""

    job_id: UUID
    scheduler_id: str | None
    task_id: str
    schedule_id: str | None
    outcome: JobOutcome
    scheduled_fire_time: datetime | None
    started_at: datetime | None
    finished_at: datetime
    exception_type: str | None = None
    exception_message: str | None = None
