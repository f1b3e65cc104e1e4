"""Records: Task, Schedule, Job and JobResult as flat dicts that persistent stores keep.

Every persistent store (SQLite, PostgreSQL, Redis, MongoDB) marshals through this one
layer, so they all store the same thing. A record has one key per attrs field, with the
field's name (so the field names are the storage format), plus ``time_zones``. User
payloads (``args``, ``kwargs``, ``metadata``, ``return_value``, ``exception``) go through
the store's :class:`~horae.serializers.Serializer` and become ``bytes``; structural fields
stay native values so that stores can index and compare them.

Kinds of record values (``TASK_FIELDS``, ``SCHEDULE_FIELDS``, ``JOB_FIELDS`` and
``JOB_RESULT_FIELDS`` map each key, in order, to its kind, so a store can derive its
columns from them; every kind may also be ``None`` where the field is optional):

=========  ===========================================  =================================
kind       ``*_to_dict`` gives                          ``*_from_dict`` also accepts
=========  ===========================================  =================================
str        ``str``                                      UTF-8 ``bytes``
int        ``int``                                      decimal ``str``
bool       ``bool``                                     ``0``/``1``, ``"0"``/``"1"``,
                                                        ``"true"``/``"false"``
uuid       ``uuid.UUID``                                ``str``, 16 raw ``bytes``
time       aware ``datetime`` in UTC                    naive ``datetime`` (read as UTC),
                                                        ISO 8601 ``str``, ``int`` epoch
                                                        microseconds (:func:`to_epoch_us`)
seconds    ``int`` (whole seconds) or ``float``         ``timedelta``, numeric ``str``
enum       the member's ``str`` value                   UTF-8 ``bytes``
json       JSON-safe ``dict``                           JSON text (``str`` or ``bytes``)
payload    ``bytes`` from the serializer (``None``      ``bytearray``, ``memoryview``
           for a ``None`` return value or exception)
=========  ===========================================  =================================

Field mapping:

* **Task** -- ``id`` str, ``func_ref`` str, ``job_executor`` str, ``max_running_jobs``
  int, ``misfire_grace_time`` seconds, ``job_timeout`` seconds, ``retry`` json,
  ``metadata`` payload.
* **Schedule** -- ``id`` str, ``task_id`` str, ``trigger`` json (``Trigger.to_state()``),
  ``args`` payload, ``kwargs`` payload, ``paused`` bool, ``pause_reason`` str,
  ``paused_until`` time, ``job_executor`` str, ``coalesce`` enum, ``misfire_grace_time``
  seconds, ``max_jitter`` seconds, ``max_running_jobs`` int, ``job_timeout`` seconds,
  ``retry`` json, ``overlap`` enum, ``max_catchup`` int, ``job_result_expiration_time``
  seconds, ``metadata`` payload, ``next_fire_time`` time, ``last_fire_time`` time,
  ``acquired_by`` str, ``acquired_until`` time.
* **Job** -- ``id`` uuid, ``task_id`` str, ``args`` payload, ``kwargs`` payload,
  ``schedule_id`` str, ``scheduled_fire_time`` time, ``jitter`` seconds, ``start_time``
  time, ``start_deadline`` time, ``job_executor`` str, ``max_running_jobs`` int,
  ``job_timeout`` seconds, ``retry`` json, ``attempt`` int, ``result_expiration_time``
  seconds, ``created_at`` time, ``metadata`` payload, ``acquired_by`` str,
  ``acquired_until`` time, ``started_at`` time, ``cancel_requested`` bool.
* **JobResult** -- ``job_id`` uuid, ``task_id`` str, ``schedule_id`` str,
  ``scheduled_fire_time`` time, ``outcome`` enum, ``started_at`` time, ``finished_at``
  time, ``expires_at`` time, ``attempt`` int, ``return_value`` payload, ``exception``
  payload, ``exception_type`` str, ``exception_message`` str.

Every record also has ``time_zones`` (json): ``{field: zone}`` for each time field whose
zone is not ``datetime.timezone.utc`` (a ``ZoneInfo`` key, or ``[offset_us, name]`` for a
fixed offset), usually ``{}`` for jobs and results and the trigger's zone for a
schedule's fire times.

Retry policies are json ``{"max_attempts", "backoff", "max_backoff", "jitter",
"retry_on"}`` with durations in seconds and exception types by ``"module:qualname"``.

Rules:

* Time fields hold the instant in UTC, which stores index and compare. ``*_from_dict``
  shows each one in its zone from ``time_zones`` again, so a loaded time equals the
  original with ``==`` even inside a DST fold (where Python never finds two datetimes of
  different zones equal). The zones only choose the presentation: a store may update a
  time field alone (advancing ``next_fire_time``, renewing ``acquired_until``) and an
  unknown or unreadable zone leaves the time in UTC. A wall time that does not exist (in
  a DST gap, made by adding a timedelta to an aware datetime) comes back as the real
  wall time of the same instant.
* ``*_from_dict`` ignores keys it does not know (stores may keep extra columns in the
  same row) and uses the field's default for a missing key or a ``None`` value (``None``
  for every optional field), so a row written before a field existed still loads.
* ``*_to_dict`` raises :exc:`~horae.SerializationError` naming the field when a payload
  cannot be encoded, except ``JobResult.exception``: an exception the serializer cannot
  encode is stored as ``None`` (``exception_type`` and ``exception_message`` keep what
  it was), because the job has already run and its result must not be lost. Likewise
  ``job_result_from_dict`` gives ``exception=None`` when it cannot be decoded.
* ``*_from_dict`` raises :exc:`~horae.DeserializationError` naming the field otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar
from uuid import UUID

from horae._enums import CoalescePolicy, JobOutcome, OverlapPolicy
from horae._exceptions import DeserializationError, SerializationError
from horae._structures import Job, JobResult, RetryPolicy, Schedule, Task
from horae._wallclock import from_utc_microseconds, utc_microseconds
from horae.triggers import Trigger

from ._base import Serializer
from ._jsoncodec import (
    _EncodeError,
    decode_zone,
    duration_to_seconds,
    encode_zone,
    retry_policy_from_state,
    retry_policy_to_state,
    seconds_to_duration,
)
from .json import JSONSerializer

__all__ = [
    "TIME_ZONES",
    "TASK_FIELDS",
    "SCHEDULE_FIELDS",
    "JOB_FIELDS",
    "JOB_RESULT_FIELDS",
    "task_to_dict",
    "task_from_dict",
    "schedule_to_dict",
    "schedule_from_dict",
    "job_to_dict",
    "job_from_dict",
    "job_result_to_dict",
    "job_result_from_dict",
    "to_epoch_us",
    "from_epoch_us",
]

_R = TypeVar("_R")

#: The record key that keeps the zones of the time fields (see the module docstring).
TIME_ZONES = "time_zones"

TASK_FIELDS: Mapping[str, str] = {
    "id": "str",
    "func_ref": "str",
    "job_executor": "str",
    "max_running_jobs": "int",
    "misfire_grace_time": "seconds",
    "job_timeout": "seconds",
    "retry": "json",
    "metadata": "payload",
    TIME_ZONES: "json",
}
SCHEDULE_FIELDS: Mapping[str, str] = {
    "id": "str",
    "task_id": "str",
    "trigger": "json",
    "args": "payload",
    "kwargs": "payload",
    "paused": "bool",
    "pause_reason": "str",
    "paused_until": "time",
    "job_executor": "str",
    "coalesce": "enum",
    "misfire_grace_time": "seconds",
    "max_jitter": "seconds",
    "max_running_jobs": "int",
    "job_timeout": "seconds",
    "retry": "json",
    "overlap": "enum",
    "max_catchup": "int",
    "job_result_expiration_time": "seconds",
    "metadata": "payload",
    "next_fire_time": "time",
    "last_fire_time": "time",
    "acquired_by": "str",
    "acquired_until": "time",
    TIME_ZONES: "json",
}
JOB_FIELDS: Mapping[str, str] = {
    "id": "uuid",
    "task_id": "str",
    "args": "payload",
    "kwargs": "payload",
    "schedule_id": "str",
    "scheduled_fire_time": "time",
    "jitter": "seconds",
    "start_time": "time",
    "start_deadline": "time",
    "job_executor": "str",
    "max_running_jobs": "int",
    "job_timeout": "seconds",
    "retry": "json",
    "attempt": "int",
    "result_expiration_time": "seconds",
    "created_at": "time",
    "metadata": "payload",
    "acquired_by": "str",
    "acquired_until": "time",
    "started_at": "time",
    "cancel_requested": "bool",
    TIME_ZONES: "json",
}
JOB_RESULT_FIELDS: Mapping[str, str] = {
    "job_id": "uuid",
    "task_id": "str",
    "schedule_id": "str",
    "scheduled_fire_time": "time",
    "outcome": "enum",
    "started_at": "time",
    "finished_at": "time",
    "expires_at": "time",
    "attempt": "int",
    "return_value": "payload",
    "exception": "payload",
    "exception_type": "str",
    "exception_message": "str",
    TIME_ZONES: "json",
}
_ENUMS: Mapping[str, type[Enum]] = {
    "coalesce": CoalescePolicy,
    "overlap": OverlapPolicy,
    "outcome": JobOutcome,
}


# ---- time helpers for stores -----------------------------------------------------------


def to_epoch_us(value: datetime) -> int:
    """Return the aware datetime *value* as microseconds since the Unix epoch (exact).

    Stores that index times as numbers (SQLite integers, Redis sorted-set scores) use
    this; :func:`from_epoch_us` and every ``*_from_dict`` read it back.
    """
    return utc_microseconds(_dump_time(value))


def from_epoch_us(value: int) -> datetime:
    """The inverse of :func:`to_epoch_us` (an aware datetime in UTC)."""
    return from_utc_microseconds(value, timezone.utc)


# ---- dumping ---------------------------------------------------------------------------


def _dump_time(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise SerializationError(f"the datetime {value!r} is naive; attach a time zone")
    return value.astimezone(timezone.utc)


def _dump_retry(value: RetryPolicy) -> dict[str, Any]:
    try:
        return retry_policy_to_state(value)
    except _EncodeError as exc:
        raise SerializationError(exc.message) from exc


def _dump_field(owner: str, name: str, kind: str, value: Any, serializer: Serializer) -> Any:
    if value is None:
        return None  # also for payloads: a missing return value or exception
    if kind == "payload":
        if isinstance(value, MappingProxyType):
            value = dict(value)  # horae freezes kwargs and metadata into proxies
        try:
            return serializer.serialize(value)
        except SerializationError as exc:
            raise SerializationError(f"cannot serialize {owner}.{name}: {exc}") from exc
    try:
        if kind == "time":
            return _dump_time(value)
        if kind == "seconds":
            return duration_to_seconds(value)
        if kind == "enum":
            return value.value
        if kind == "json":
            return value.to_state() if isinstance(value, Trigger) else _dump_retry(value)
    except SerializationError as exc:
        raise SerializationError(f"cannot serialize {owner}.{name}: {exc}") from exc
    return value  # str, int, bool, uuid


def _to_dict(
    obj: object,
    fields: Mapping[str, str],
    serializer: Serializer,
    lenient: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    owner = type(obj).__name__
    record: dict[str, Any] = {}
    zones: dict[str, Any] = {}
    empties = _JSON_EMPTY_DUMPED if type(serializer) is JSONSerializer else None
    for name, kind in _plain_fields(fields):
        value = getattr(obj, name)
        # fast paths for the usual values: plain ones, UTC times, empty payloads
        if value is None or kind in _AS_IS:
            record[name] = value
            continue
        if kind == "time" and type(value) is datetime and value.tzinfo is timezone.utc:
            record[name] = value
            continue
        if kind == "payload" and empties is not None and not value and name not in lenient:
            empty = empties.get(type(value))
            if empty is not None:
                record[name] = empty
                continue
        if name in lenient:
            record[name] = None
            with contextlib.suppress(SerializationError):
                record[name] = _dump_field(owner, name, kind, value, serializer)
            continue
        record[name] = _dump_field(owner, name, kind, value, serializer)
        if kind == "time" and value is not None and value.tzinfo is not timezone.utc:
            # a zone that cannot be named (a pytz zone, say): the time comes back in UTC
            with contextlib.suppress(_EncodeError):
                zones[name] = encode_zone(value.tzinfo)
    record[TIME_ZONES] = zones
    return record


#: Kinds whose values are stored as they are.
_AS_IS = frozenset({"str", "int", "bool", "uuid"})
#: The Python type that a field of each kind holds: a stored value of exactly that type
#: (and, for times, in UTC) needs no loading.
_LOADED_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "bool": bool,
    "uuid": UUID,
    "time": datetime,
}
_PLANS: dict[int, tuple[Mapping[str, str], tuple[tuple[str, str], ...]]] = {}


def _plain_fields(fields: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``(name, kind)`` pairs of *fields* but the time zones, computed once."""
    plan = _PLANS.get(id(fields))
    if plan is None or plan[0] is not fields:
        pairs = tuple((name, kind) for name, kind in fields.items() if name != TIME_ZONES)
        plan = _PLANS[id(fields)] = (fields, pairs)
    return plan[1]


# ---- loading ---------------------------------------------------------------------------


def _load_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return value


def _load_int(value: Any) -> int:
    if isinstance(value, (str, bytes)):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, not {type(value).__name__}")
    return value


_BOOLEANS = {"0": False, "1": True, "false": False, "true": True}


def _load_bool(value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode("ascii")
    if isinstance(value, str):
        if value.lower() not in _BOOLEANS:
            raise ValueError("expected 0, 1, 'true' or 'false'")
        return _BOOLEANS[value.lower()]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError("expected a boolean, 0 or 1")


def _load_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, bytes):
        return UUID(bytes=value) if len(value) == 16 else UUID(value.decode("ascii"))
    return UUID(_load_str(value))


def _load_time(value: Any) -> datetime:
    if type(value) is datetime and value.tzinfo is timezone.utc:
        return value  # what asyncpg and the other drivers usually hand back
    if isinstance(value, bytes):
        value = value.decode("ascii")
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return from_epoch_us(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=timezone.utc)  # drivers hand back naive UTC
    return value.astimezone(timezone.utc)


def _load_seconds(value: Any) -> timedelta:
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii") if isinstance(value, bytes) else value
        value = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number of seconds, not {value!r}")
    return seconds_to_duration(value)


def _load_json(value: Any) -> Any:
    if isinstance(value, (str, bytes, bytearray)):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, not {type(value).__name__}")
    return value


def _load_trigger(value: Any) -> Trigger:
    # Triggers are immutable values, so one decoded object can serve every record with
    # the same state. Rebuilding a cron trigger re-parses its fields (about half the cost
    # of decoding a schedule), and a store hands the same few states back on every poll.
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode()
    if not isinstance(value, str):
        value = json.dumps(_load_json(value), sort_keys=True, separators=(",", ":"))
    return _trigger_from_text(value)


@functools.lru_cache(maxsize=4096)
def _trigger_from_text(text: str) -> Trigger:
    return Trigger.from_state(_load_json(text))


def _load_payload(value: Any, serializer: Serializer) -> Any:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"expected serialized bytes, not {type(value).__name__}")
    if type(value) is bytes and type(serializer) is JSONSerializer:
        empty = _JSON_EMPTY.get(value)
        if empty is not None:
            return empty()
    return serializer.deserialize(bytes(value))


#: How JSONSerializer writes the usual empty args, kwargs and metadata: read back
#: without parsing (a new object each time, since the caller may own it).
_JSON_EMPTY: dict[bytes, Callable[[], Any]] = {
    JSONSerializer().serialize(()): tuple,
    JSONSerializer().serialize({}): dict,
    JSONSerializer().serialize([]): list,
}
#: The other way round (a frozen empty mapping is written as the dict it shows).
_JSON_EMPTY_DUMPED: dict[type, bytes] = {
    tuple: JSONSerializer().serialize(()),
    dict: JSONSerializer().serialize({}),
    MappingProxyType: JSONSerializer().serialize({}),
    list: JSONSerializer().serialize([]),
}


_LOADERS: dict[str, Callable[[Any], Any]] = {
    "str": _load_str,
    "int": _load_int,
    "bool": _load_bool,
    "uuid": _load_uuid,
    "time": _load_time,
    "seconds": _load_seconds,
}


def _load_field(name: str, kind: str, value: Any, serializer: Serializer) -> Any:
    if kind == "payload":
        payload = _load_payload(value, serializer)
        if name == "exception" and not isinstance(payload, BaseException):
            raise TypeError(f"expected an exception, not {type(payload).__name__}")
        return payload
    if kind == "enum":
        return _ENUMS[name](_load_str(value))
    if kind == "json":
        if name == "trigger":
            return _load_trigger(value)
        return retry_policy_from_state(_load_json(value))
    return _LOADERS[kind](value)


def _restore_zones(values: dict[str, Any], zones: Any) -> None:
    # The zones only choose how an instant is shown (the instant itself always comes
    # from the time field), so a zone that cannot be read leaves that time in UTC
    # rather than making the whole record unreadable.
    if not zones or zones == "{}":
        return  # the usual case: every time is in UTC
    with contextlib.suppress(ValueError, TypeError):
        zones = _load_json(zones)
    if not isinstance(zones, Mapping):
        return
    for name, zone in zones.items():
        if isinstance(values.get(name), datetime):
            with contextlib.suppress(DeserializationError):
                values[name] = values[name].astimezone(decode_zone(zone))


def _from_dict(
    cls: Callable[..., _R],
    owner: str,
    fields: Mapping[str, str],
    data: Mapping[str, Any],
    serializer: Serializer,
    lenient: frozenset[str] = frozenset(),
) -> _R:
    if not isinstance(data, Mapping):
        raise DeserializationError(
            f"a stored {owner} must be a mapping, not {type(data).__name__}"
        )
    values: dict[str, Any] = {}
    for name, kind in _plain_fields(fields):
        value = data.get(name)
        if value is None:
            continue  # the field's default (None for every optional field)
        if type(value) is _LOADED_TYPES.get(kind) and (
            kind != "time" or getattr(value, "tzinfo", None) is timezone.utc
        ):
            values[name] = value  # already what the field holds (the usual case)
            continue
        try:
            values[name] = _load_field(name, kind, value, serializer)
        except Exception as exc:  # drivers hand back many shapes; name the bad field
            if name in lenient:
                continue
            text = repr(value)
            text = text if len(text) <= 80 else text[:77] + "..."
            raise DeserializationError(
                f"invalid stored {owner}.{name} value {text} ({type(exc).__name__}: {exc})"
            ) from exc
    _restore_zones(values, data.get(TIME_ZONES))
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise DeserializationError(f"cannot rebuild a stored {owner}: {exc}") from exc


# ---- public ----------------------------------------------------------------------------


def task_to_dict(task: Task, serializer: Serializer) -> dict[str, Any]:
    """Return the record of *task* (see the module docstring for the mapping).

    Raises:
        SerializationError: when ``metadata`` or ``retry`` cannot be encoded.
    """
    return _to_dict(task, TASK_FIELDS, serializer)


def task_from_dict(data: Mapping[str, Any], serializer: Serializer) -> Task:
    """Rebuild a Task from its record.

    Raises:
        DeserializationError: naming the field that could not be decoded.
    """
    return _from_dict(Task, "Task", TASK_FIELDS, data, serializer)


def schedule_to_dict(schedule: Schedule, serializer: Serializer) -> dict[str, Any]:
    """Return the record of *schedule* (see the module docstring for the mapping).

    Raises:
        SerializationError: when ``args``, ``kwargs``, ``metadata`` or ``retry`` cannot
            be encoded.
    """
    return _to_dict(schedule, SCHEDULE_FIELDS, serializer)


def schedule_from_dict(data: Mapping[str, Any], serializer: Serializer) -> Schedule:
    """Rebuild a Schedule from its record.

    Raises:
        DeserializationError: naming the field that could not be decoded (stores report
            it with ``ScheduleDeserializationFailed``).
    """
    return _from_dict(Schedule, "Schedule", SCHEDULE_FIELDS, data, serializer)


def job_to_dict(job: Job, serializer: Serializer) -> dict[str, Any]:
    """Return the record of *job* (see the module docstring for the mapping).

    Raises:
        SerializationError: when ``args``, ``kwargs``, ``metadata`` or ``retry`` cannot
            be encoded.
    """
    return _to_dict(job, JOB_FIELDS, serializer)


def job_from_dict(data: Mapping[str, Any], serializer: Serializer) -> Job:
    """Rebuild a Job from its record.

    Raises:
        DeserializationError: naming the field that could not be decoded (the job then
            ends as ``JobOutcome.deserialization_failed``).
    """
    return _from_dict(Job, "Job", JOB_FIELDS, data, serializer)


def job_result_to_dict(result: JobResult, serializer: Serializer) -> dict[str, Any]:
    """Return the record of *result* (see the module docstring for the mapping).

    An exception that the serializer cannot encode is stored as ``None``.

    Raises:
        SerializationError: when ``return_value`` cannot be encoded.
    """
    # documented: if the exception cannot be encoded, exception_type/_message still
    # describe it, and the result is kept
    return _to_dict(result, JOB_RESULT_FIELDS, serializer, lenient=frozenset({"exception"}))


def job_result_from_dict(data: Mapping[str, Any], serializer: Serializer) -> JobResult:
    """Rebuild a JobResult from its record (``exception=None`` if it cannot be decoded).

    Raises:
        DeserializationError: naming the field that could not be decoded.
    """
    return _from_dict(
        JobResult,
        "JobResult",
        JOB_RESULT_FIELDS,
        data,
        serializer,
        lenient=frozenset({"exception"}),
    )
