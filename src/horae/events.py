"""Every event that schedulers, data stores and event brokers publish.

All events are frozen attrs classes with a ``timestamp`` (when the event happened, from
the publisher's clock). They carry ids and times, never user payloads, so that brokers
can send them between nodes as JSON (:meth:`Event.to_dict` / :meth:`Event.from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, get_args
from uuid import UUID

import attrs

from ._enums import JobOutcome
from ._exceptions import DeserializationError

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
        """Rebuild an event from :meth:`to_dict` output.

        Keys that the event class does not know are ignored, so that a node running an
        older version of horae can read events from a newer one.

        Raises:
            DeserializationError: the event type is unknown or a value is malformed.
        """
        values = dict(data)
        name = values.pop("event", None)
        event_class = _event_types.get(name) if isinstance(name, str) else None
        if event_class is None:
            raise DeserializationError(f"unknown event type {name!r}")
        fields = attrs.fields(event_class)
        known = {field.name for field in fields}
        kwargs = {key: value for key, value in values.items() if key in known}
        try:
            for field in fields:
                value = kwargs.get(field.name)
                if value is not None:
                    kwargs[field.name] = _deserialize_value(field.type, value)
            return event_class(**kwargs)
        except (TypeError, ValueError) as exc:
            raise DeserializationError(f"malformed {name} event {dict(data)!r}: {exc}") from exc


def _type_name(field_type: Any) -> str:
    # Annotations are strings here (``from __future__ import annotations``), but events
    # defined in user modules without that import carry the real types.
    if isinstance(field_type, str):
        return field_type.replace("Optional[", "").replace("| None", "").strip(" ]")
    members = [arg for arg in get_args(field_type) if arg is not type(None)]
    return str(getattr(members[0] if members else field_type, "__name__", ""))


def _deserialize_value(field_type: Any, value: Any) -> Any:
    name = _type_name(field_type)
    if name in ("datetime", "datetime.datetime") and isinstance(value, str):
        return datetime.fromisoformat(value)
    if name in ("UUID", "uuid.UUID") and isinstance(value, str):
        return UUID(value)
    if name == "JobOutcome" and isinstance(value, str):
        return JobOutcome(value)
    return value


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
    """An attempt of a job has ended (run or not).

    With ``retry_at`` set the job is not finished: its retry policy gave it another
    attempt (number ``attempt + 1``), pending again from ``retry_at``, and no result is
    stored yet. Otherwise the job is gone and its result is stored if it has an expiry.
    """

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
    attempt: int = 1
    retry_at: datetime | None = None


@attrs.frozen(kw_only=True)
class JobCancellationRequested(DataStoreEvent):
    """``cancel_job`` was called for a running job; the node ``scheduler_id`` that runs
    it cancels it and releases it as ``JobOutcome.cancelled``."""

    job_id: UUID
    scheduler_id: str
    task_id: str
    schedule_id: str | None
