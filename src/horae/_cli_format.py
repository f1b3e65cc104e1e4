"""How the command line shows things: aligned tables, ``key: value`` blocks, and the
JSON form of a schedule (stable keys, ISO 8601 times, durations in seconds)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from ._structures import Schedule
from .triggers._base import Trigger
from .triggers.interval import IntervalTrigger

#: What an absent value looks like in tables.
NONE = "-"


def format_time(value: datetime | None, tz: tzinfo | None) -> str:
    """``2030-01-02 03:00:00+01:00`` in *tz* (as stored when ``None``), or ``-``."""
    if value is None:
        return NONE
    if tz is not None:
        value = value.astimezone(tz)
    return value.isoformat(sep=" ", timespec="seconds")


def format_duration(value: timedelta | None) -> str:
    """``90s`` / ``1:30:00`` style, or ``-``."""
    if value is None:
        return NONE
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:g}s"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, the last one unpadded."""
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(widths[index]) for index, cell in enumerate(cells[:-1])]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    """``key:  value`` lines with the values aligned."""
    width = max((len(key) for key, _ in pairs), default=0) + 1
    return "\n".join(f"{(key + ':' if key else '').ljust(width)}  {value}" for key, value in pairs)


def paused_text(schedule: Schedule, tz: tzinfo | None) -> str:
    """``no``, ``yes``, or ``yes (until …)``."""
    if not schedule.paused:
        return "no"
    if schedule.paused_until is not None:
        return f"yes (until {format_time(schedule.paused_until, tz)})"
    return "yes"


def trigger_text(trigger: Trigger) -> str:
    """``str(trigger)``, with its time zone when it has one: ``0 0 3 * * * (Europe/Berlin)``
    (a wall-clock schedule means little without it; an interval counts real time, so
    its zone is left out)."""
    text = str(trigger)
    zone = getattr(trigger, "timezone", None)
    if isinstance(zone, tzinfo) and not isinstance(trigger, IntervalTrigger):
        key = str(getattr(zone, "key", zone))
        if key not in text:
            text = f"{text} ({key})"
    return text


def schedule_row(schedule: Schedule, tz: tzinfo | None) -> list[str]:
    """The cells of one schedule in ``horae schedules list``."""
    return [
        schedule.id,
        schedule.task_id,
        trigger_text(schedule.trigger),
        format_time(schedule.next_fire_time, tz),
        paused_text(schedule, tz),
    ]


SCHEDULE_HEADERS = ("ID", "TASK", "TRIGGER", "NEXT FIRE TIME", "PAUSED")


def schedule_details(
    schedule: Schedule, upcoming: Sequence[datetime], tz: tzinfo | None
) -> list[tuple[str, str]]:
    """The lines of ``horae schedules show``."""
    pairs = [
        ("id", schedule.id),
        ("task", schedule.task_id),
        ("trigger", trigger_text(schedule.trigger)),
        ("description", schedule.trigger.describe()),
        ("next fire time", format_time(schedule.next_fire_time, tz)),
        ("last fire time", format_time(schedule.last_fire_time, tz)),
        ("paused", paused_text(schedule, tz)),
    ]
    if schedule.paused and schedule.pause_reason:
        pairs.append(("pause reason", schedule.pause_reason))
    pairs += [
        ("coalesce", schedule.coalesce.value),
        ("misfire grace time", format_duration(schedule.misfire_grace_time)),
        ("max jitter", format_duration(schedule.max_jitter)),
        ("max running jobs", NONE if schedule.max_running_jobs is None else str(
            schedule.max_running_jobs
        )),
        ("job executor", schedule.job_executor or NONE),
        ("job timeout", format_duration(schedule.job_timeout)),
        ("overlap", schedule.overlap.value),
        ("result expiration", format_duration(schedule.job_result_expiration_time)),
        ("args", _short_json(list(schedule.args))),
        ("kwargs", _short_json(dict(schedule.kwargs))),
        ("metadata", _short_json(dict(schedule.metadata))),
        ("held by", NONE if schedule.acquired_by is None else (
            f"{schedule.acquired_by} (until {format_time(schedule.acquired_until, tz)})"
        )),
    ]  # fmt: skip
    for index, fire_time in enumerate(upcoming):
        pairs.append(("upcoming" if index == 0 else "", format_time(fire_time, tz)))
    return pairs


def _short_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def schedule_json(
    schedule: Schedule, upcoming: Sequence[datetime] | None = None
) -> dict[str, Any]:
    """The JSON form of a schedule (times in ISO 8601, durations in seconds)."""
    data: dict[str, Any] = {
        "id": schedule.id,
        "task_id": schedule.task_id,
        "trigger": trigger_text(schedule.trigger),
        "description": schedule.trigger.describe(),
        "next_fire_time": _iso(schedule.next_fire_time),
        "last_fire_time": _iso(schedule.last_fire_time),
        "paused": schedule.paused,
        "pause_reason": schedule.pause_reason,
        "paused_until": _iso(schedule.paused_until),
        "coalesce": schedule.coalesce.value,
        "misfire_grace_time": _seconds(schedule.misfire_grace_time),
        "max_jitter": _seconds(schedule.max_jitter),
        "max_running_jobs": schedule.max_running_jobs,
        "job_executor": schedule.job_executor,
        "job_timeout": _seconds(schedule.job_timeout),
        "overlap": schedule.overlap.value,
        "job_result_expiration_time": _seconds(schedule.job_result_expiration_time),
        "args": list(schedule.args),
        "kwargs": dict(schedule.kwargs),
        "metadata": dict(schedule.metadata),
        "acquired_by": schedule.acquired_by,
        "acquired_until": _iso(schedule.acquired_until),
    }
    if upcoming is not None:
        data["upcoming"] = [t.isoformat() for t in upcoming]
    return data


def dump_json(value: Mapping[str, Any] | Sequence[Any]) -> str:
    """Indented JSON; values JSON cannot hold are shown as their ``str``."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
