"""Logger names: one logger per component, under the scheduler's base logger.

With the default base ``horae`` the names are ``horae.scheduler`` (schedule processing,
life cycle), ``horae.worker`` (running jobs), ``horae.datastores.<name>`` and
``horae.eventbrokers.<name>``, where ``<name>`` comes from the class
(``SQLiteDataStore`` → ``sqlite``, ``RedisEventBroker`` → ``redis``). A logger given to
the scheduler becomes the base (``myapp.horae`` → ``myapp.horae.worker``), so records
still reach its handlers.

Log records about one schedule or job carry ``schedule_id``, ``job_id``, ``task_id``
and ``fire_time`` as attributes (``extra=``), for structured formatters.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any
from uuid import UUID

_SUFFIXES = ("DataStore", "EventBroker", "JobExecutor")


def backend_name(backend: object) -> str:
    """``sqlite`` for a ``SQLiteDataStore``, ``redis`` for a ``RedisEventBroker``, ...

    A backend may name itself with a ``log_name`` attribute (a wrapper names itself
    after what it wraps).
    """
    named = getattr(backend, "log_name", None)
    if isinstance(named, str) and named:
        return named
    name = type(backend).__name__
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^0-9a-zA-Z_]", "_", name).lower()


def component_logger(base: logging.Logger, component: str) -> logging.Logger:
    """The logger of *component* (``"scheduler"``, ``"worker"``, ...) under *base*."""
    return base.getChild(component)


def backend_logger(base: logging.Logger, family: str, backend: object) -> logging.Logger:
    """``<base>.<family>.<name>``: e.g. ``horae.datastores.sqlite``."""
    return base.getChild(f"{family}.{backend_name(backend)}")


def job_fields(
    *,
    job_id: UUID | None = None,
    schedule_id: str | None = None,
    task_id: str | None = None,
    fire_time: datetime | None = None,
) -> dict[str, Any]:
    """The ``extra=`` fields of a log record about a job or schedule (unset ones left
    out, so formatters can tell "absent" from ``None``)."""
    fields: dict[str, Any] = {}
    if job_id is not None:
        fields["job_id"] = str(job_id)
    if schedule_id is not None:
        fields["schedule_id"] = schedule_id
    if task_id is not None:
        fields["task_id"] = task_id
    if fire_time is not None:
        fields["fire_time"] = fire_time.isoformat()
    return fields
