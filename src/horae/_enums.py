"""The enumerations of horae. Values are stable strings because stores persist them."""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)


class RunState(_StrEnum):
    """The life cycle of a scheduler."""

    starting = "starting"
    started = "started"
    stopping = "stopping"
    stopped = "stopped"


class SchedulerRole(_StrEnum):
    """What a scheduler node does: turn schedules into jobs, run jobs, or both."""

    scheduler = "scheduler"
    worker = "worker"
    both = "both"


class CoalescePolicy(_StrEnum):
    """How many jobs to make for the fire times a schedule missed while nobody ran it."""

    earliest = "earliest"
    latest = "latest"
    all = "all"


class ConflictPolicy(_StrEnum):
    """What ``add_schedule`` does when a schedule with the same id already exists."""

    # the member shadows str.replace on ConflictPolicy members; the SPEC fixes the name
    replace = "replace"  # type: ignore[assignment]
    do_nothing = "do_nothing"
    exception = "exception"


class JobOutcome(_StrEnum):
    """How a job ended."""

    success = "success"
    error = "error"
    missed_start_deadline = "missed_start_deadline"
    timed_out = "timed_out"
    cancelled = "cancelled"
    abandoned = "abandoned"
    deserialization_failed = "deserialization_failed"


class OverlapPolicy(_StrEnum):
    """What happens when a schedule fires while one of its jobs is still running."""

    allow = "allow"
    skip = "skip"
    buffer_one = "buffer_one"
    cancel_running = "cancel_running"
