"""Checking and coercing what users pass to the scheduler, before anything is stored.

Each function raises ``TypeError``/``ValueError``/:exc:`~horae.ConfigurationError` with
a message that names the argument, shows the bad value and says what is accepted.
:class:`SchedulerConfig` is the checked form of the scheduler's constructor arguments.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import attrs

from ._clock import Clock, SystemClock
from ._enums import CoalescePolicy, OverlapPolicy, SchedulerRole
from ._exceptions import ConfigurationError
from ._structures import RetryPolicy, Schedule
from ._validation import as_timedelta, require_aware
from .datastores._base import DataStore
from .eventbrokers._base import EventBroker
from .events import Event
from .executors._base import JobExecutor
from .triggers._base import Trigger

_E = TypeVar("_E", bound=Enum)

#: The string values accepted in place of the enums (they are stable: stores keep them).
CoalesceName = Literal["earliest", "latest", "all"]
ConflictName = Literal["replace", "do_nothing", "exception"]
OverlapName = Literal["allow", "skip", "buffer_one", "cancel_running"]
RoleName = Literal["scheduler", "worker", "both"]
_ONE_MICROSECOND = timedelta(microseconds=1)
#: one shared zero duration (the default result expiration) instead of one per schedule
_ZERO = timedelta(0)


def is_nonempty_str(value: object) -> bool:
    """True for a ``str`` that is not empty."""
    return isinstance(value, str) and bool(value)


def as_enum(value: Any, enum_class: type[_E], name: str) -> _E:
    """Accept a member of *enum_class* or its string value."""
    if isinstance(value, enum_class):
        return value
    try:
        return enum_class(value)
    except ValueError:
        pass
    choices = ", ".join(repr(member.value) for member in enum_class)
    raise ValueError(
        f"{name} must be a {enum_class.__name__} ({choices}), not {type(value).__name__} {value!r}"
    )


def positive_int(value: Any, name: str) -> int:
    """Return *value* if it is an ``int`` of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}")
    return value


def positive_duration(value: Any, name: str) -> timedelta:
    """Return *value* (``timedelta`` or seconds) as a positive ``timedelta``."""
    duration = as_timedelta(value, name=name)
    if duration <= timedelta(0):
        raise ValueError(f"{name} must be positive, got {duration!r}")
    return duration


def non_negative_duration(value: Any, name: str) -> timedelta:
    """Return *value* (``timedelta`` or seconds) as a ``timedelta`` of at least zero."""
    duration = as_timedelta(value, name=name)
    if duration < timedelta(0):
        raise ValueError(f"{name} must not be negative, got {duration!r}")
    return duration


def check_optional_positive_int(value: Any, name: str) -> int | None:
    """Return *value* if it is ``None`` or a positive ``int``; raise otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be a positive int or None, not {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (or None for no limit), got {value!r}")
    return value


def as_optional_duration(value: Any, name: str) -> timedelta | None:
    """Turn a ``timedelta``, a number of seconds or ``None`` into ``timedelta | None``."""
    if value is None:
        return None
    duration = as_timedelta(value, name=name)
    if duration < timedelta(0):
        raise ValueError(f"{name} must not be negative, got {duration!r}")
    return duration


def as_optional_positive_duration(value: Any, name: str) -> timedelta | None:
    """``None``, or a duration (``timedelta`` or seconds) that must be positive."""
    duration = as_optional_duration(value, name)
    if duration is not None and duration <= timedelta(0):
        raise ValueError(f"{name} must be positive, not {value!r}")
    return duration


def as_job_id(value: Any) -> UUID:
    """A job id given as a ``UUID`` or its string form."""
    if isinstance(value, str):
        return UUID(value)
    if not isinstance(value, UUID):
        raise TypeError(f"job_id must be a UUID, not {type(value).__name__} {value!r}")
    return value


def check_optional_str(value: Any, name: str) -> str | None:
    """Return *value* if it is ``None`` or a non-empty ``str``; raise otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def check_metadata(value: Any) -> Mapping[str, Any] | None:
    """Return *value* if it is ``None`` or a mapping with string keys; raise otherwise."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"metadata must be a mapping (dict), not {type(value).__name__} {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings, got {key!r}")
    return value


def check_retry(value: Any) -> RetryPolicy | None:
    """Return *value* if it is ``None`` or a :class:`RetryPolicy`; raise otherwise."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    raise TypeError(f"retry must be a RetryPolicy or None, not {type(value).__name__} {value!r}")


def default_identity(owner: object) -> str:
    """``"<host>-<pid>-<object id>"``: unique per scheduler object on a network."""
    return f"{platform.node() or 'host'}-{os.getpid()}-{id(owner):x}"


def resolve_stores(
    data_store: DataStore | None, data_stores: Mapping[str, DataStore] | None
) -> dict[str, DataStore]:
    """Merge ``data_store`` (the ``"default"`` one) and ``data_stores`` into one mapping,
    with ``"default"`` first; a :class:`MemoryDataStore` when neither is given."""
    stores: dict[str, DataStore] = {}
    if data_store is not None:
        if not isinstance(data_store, DataStore):
            raise TypeError(
                f"data_store must be a DataStore (e.g. MemoryDataStore()), not "
                f"{type(data_store).__name__} {data_store!r}"
            )
        stores["default"] = data_store
    if data_stores is not None:
        if not isinstance(data_stores, Mapping):
            raise TypeError(
                f"data_stores must be a mapping of aliases to DataStore objects, not "
                f"{type(data_stores).__name__} {data_stores!r}"
            )
        for alias, store in data_stores.items():
            if not is_nonempty_str(alias):
                raise TypeError(f"data store aliases must be non-empty strings, got {alias!r}")
            if not isinstance(store, DataStore):
                raise TypeError(
                    f"data_stores[{alias!r}] must be a DataStore, not "
                    f"{type(store).__name__} {store!r}"
                )
            if alias == "default" and "default" in stores:
                raise ConfigurationError(
                    "two default data stores: data_store= and data_stores['default'] were "
                    "both given; pass the default store only once"
                )
            stores[alias] = store
    if not stores:
        from .datastores.memory import MemoryDataStore

        stores["default"] = MemoryDataStore()
    elif "default" not in stores:
        raise ConfigurationError(
            f"data_stores has no 'default' store (given: {', '.join(map(repr, stores))}); "
            f"add one under the alias 'default', or pass the default store as data_store="
        )
    # the default store first: lookups without an alias search in this order
    return {"default": stores["default"]} | stores


def resolve_broker(event_broker: EventBroker | None) -> EventBroker:
    """The given broker, or a new :class:`LocalEventBroker`."""
    if event_broker is None:
        from .eventbrokers.local import LocalEventBroker

        return LocalEventBroker()
    if not isinstance(event_broker, EventBroker):
        raise TypeError(
            f"event_broker must be an EventBroker (e.g. LocalEventBroker()), not "
            f"{type(event_broker).__name__} {event_broker!r}"
        )
    return event_broker


def resolve_executors(
    job_executors: Mapping[str, JobExecutor] | None, default_job_executor: str | None
) -> tuple[dict[str, JobExecutor], str]:
    """The built-in executors (``async``, ``threadpool``, ``processpool``) overlaid with
    the user's, and the default executor name for plain functions."""
    from .executors.async_ import AsyncJobExecutor
    from .executors.process import ProcessPoolJobExecutor
    from .executors.thread import ThreadPoolJobExecutor

    executors: dict[str, JobExecutor] = {
        "async": AsyncJobExecutor(),
        "threadpool": ThreadPoolJobExecutor(),
        "processpool": ProcessPoolJobExecutor(),
    }
    if job_executors is not None:
        if not isinstance(job_executors, Mapping):
            raise TypeError(
                f"job_executors must be a mapping of names to JobExecutor objects, not "
                f"{type(job_executors).__name__} {job_executors!r}"
            )
        for name, executor in job_executors.items():
            if not is_nonempty_str(name):
                raise TypeError(f"job executor names must be non-empty strings, got {name!r}")
            if not isinstance(executor, JobExecutor):
                raise TypeError(
                    f"job_executors[{name!r}] must be a JobExecutor, not "
                    f"{type(executor).__name__} {executor!r}"
                )
            executors[name] = executor
    default = "threadpool" if default_job_executor is None else default_job_executor
    check_executor_name(default, executors, "default_job_executor")
    return executors, default


def check_executor_name(name: Any, executors: Mapping[str, JobExecutor], argument: str) -> str:
    """Return *name* if it names one of *executors*; ConfigurationError otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a str, not {type(name).__name__} {name!r}")
    if name not in executors:
        raise ConfigurationError(
            f"unknown job executor {name!r} for {argument} (known: "
            f"{', '.join(map(repr, sorted(executors)))}); register it with "
            f"job_executors={{{name!r}: ...}}"
        )
    return name


def check_role(role: Any) -> SchedulerRole:
    """Accept a :class:`SchedulerRole` or its string value."""
    return as_enum(role, SchedulerRole, "role")


def as_args(value: Any) -> tuple[Any, ...]:
    """Positional job arguments: any iterable but a string or mapping."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(
            f"args must be a list or tuple of positional arguments, not "
            f"{type(value).__name__} {value!r} (for one argument write args=[value])"
        )
    return tuple(value)


def as_kwargs(value: Any) -> dict[str, Any]:
    """Keyword job arguments: a mapping with string keys."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"kwargs must be a mapping (dict), not {type(value).__name__} {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"kwargs keys must be strings, got {key!r}")
    return dict(value)


def check_id(value: Any) -> str | None:
    """A schedule id: ``None`` (generate one) or a non-empty string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"id must be a str or None, not {type(value).__name__} {value!r}")
    if not value:
        raise ValueError("id must not be empty; pass None to have one generated")
    return value


def check_event_types(event_types: Any) -> tuple[type[Event], ...] | None:
    """``None`` (every event), one event class, or an iterable of them."""
    if event_types is None:
        return None
    if isinstance(event_types, type):
        event_types = (event_types,)
    if not isinstance(event_types, Iterable) or isinstance(event_types, str):
        raise TypeError(
            f"event_types must be an event class or an iterable of them, not "
            f"{type(event_types).__name__} {event_types!r}"
        )
    types = tuple(event_types)
    for event_type in types:
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(
                f"event_types must hold event classes from horae.events, got {event_type!r}"
            )
    return types


def resume_fire_time(
    schedule: Schedule, resume_from: datetime | Literal["now"] | None, now: datetime
) -> datetime | None:
    """The next fire time for ``unpause_schedule(resume_from=...)``.

    ``None`` keeps the stored one (missed fire times follow the coalesce policy).
    Otherwise the first fire time at or after *resume_from* (``"now"`` is the clock's
    current time), but never earlier than the stored next fire time. Returns ``None``
    also when the stored time is kept; raises :exc:`LookupError` (internally) when the
    trigger has no fire time left after *resume_from*.
    """
    if resume_from is None:
        return None
    if isinstance(resume_from, str):
        if resume_from != "now":
            raise ValueError(
                f"resume_from must be None, 'now' or an aware datetime, not {resume_from!r}"
            )
        resume_from = now
    elif isinstance(resume_from, datetime):
        require_aware(resume_from, "resume_from")
    else:
        raise TypeError(
            f"resume_from must be None, 'now' or an aware datetime, not "
            f"{type(resume_from).__name__} {resume_from!r}"
        )
    stored = schedule.next_fire_time
    if stored is not None and stored >= resume_from:
        return None
    # next() is strictly after its argument; one microsecond earlier keeps a fire time
    # that falls exactly on resume_from (datetimes have microsecond resolution).
    next_time = schedule.trigger.next(resume_from - _ONE_MICROSECOND)
    if next_time is None:
        raise LookupError(schedule.id)
    return next_time


def upcoming_fire_times(trigger: Trigger, start: datetime | None, count: int) -> list[datetime]:
    """*count* fire times of *trigger* from *start* (itself included) onwards."""
    times: list[datetime] = []
    current = start
    while current is not None and len(times) < count:
        times.append(current)
        current = trigger.next(current)
    return times


def first_fire_time_from(trigger: Trigger, now: datetime) -> datetime | None:
    """The first fire time of *trigger* at or after *now*."""
    first = trigger.next(None)
    if first is None or first >= now:
        return first
    return trigger.next(now - _ONE_MICROSECOND)


@attrs.frozen(kw_only=True)
class SchedulerConfig:
    """The scheduler's settings, checked (see :class:`~horae.AsyncScheduler`)."""

    stores: Mapping[str, DataStore]
    broker: EventBroker
    identity: str
    role: SchedulerRole
    max_concurrent_jobs: int
    executors: Mapping[str, JobExecutor]
    default_executor: str
    lease_duration: timedelta
    cleanup_interval: timedelta | None
    stop_grace_period: timedelta
    logger: logging.Logger
    clock: Clock

    @property
    def poll_interval(self) -> timedelta:
        """The safety-net polling interval where events may be lost: half a lease."""
        return self.lease_duration / 2

    def store(self, alias: Any) -> DataStore:
        """The store called *alias*; ConfigurationError naming the known ones if none."""
        if not isinstance(alias, str):
            raise TypeError(f"data_store must be a store alias (str), not {alias!r}")
        try:
            return self.stores[alias]
        except KeyError:
            known = ", ".join(map(repr, self.stores))
            raise ConfigurationError(
                f"unknown data store alias {alias!r} (known: {known}); register it with "
                f"AsyncScheduler(data_stores={{{alias!r}: ...}})"
            ) from None

    def search(self, alias: str | None) -> list[tuple[str, DataStore]]:
        """The stores to look in: the one called *alias*, or all (``"default"`` first)."""
        if alias is None:
            return list(self.stores.items())
        return [(alias, self.store(alias))]

    def polls(self) -> bool:
        """True when a lost broker event could go unnoticed without polling: a store is
        shared with other processes, or the broker has lost its connection."""
        shared = any(store.capabilities.shared for store in self.stores.values())
        return shared or not self.broker.connected


def make_config(owner: object, **arguments: Any) -> SchedulerConfig:
    """Check the constructor *arguments* of the scheduler *owner*."""
    identity = arguments["identity"]
    if identity is not None and not is_nonempty_str(identity):
        raise TypeError(f"identity must be a non-empty str or None, not {identity!r}")
    logger = arguments["logger"]
    if logger is not None and not isinstance(logger, logging.Logger):
        raise TypeError(f"logger must be a logging.Logger, not {type(logger).__name__}")
    clock = arguments["clock"]
    if clock is not None and not isinstance(clock, Clock):
        raise TypeError(f"clock must be a horae Clock, not {type(clock).__name__}")
    executors, default_executor = resolve_executors(
        arguments["job_executors"], arguments["default_job_executor"]
    )
    cleanup_interval = arguments["cleanup_interval"]
    return SchedulerConfig(
        stores=resolve_stores(arguments["data_store"], arguments["data_stores"]),
        broker=resolve_broker(arguments["event_broker"]),
        identity=identity or default_identity(owner),
        role=check_role(arguments["role"]),
        max_concurrent_jobs=positive_int(arguments["max_concurrent_jobs"], "max_concurrent_jobs"),
        executors=executors,
        default_executor=default_executor,
        lease_duration=positive_duration(arguments["lease_duration"], "lease_duration"),
        cleanup_interval=None
        if cleanup_interval is None
        else positive_duration(cleanup_interval, "cleanup_interval"),
        stop_grace_period=non_negative_duration(
            arguments["stop_grace_period"], "stop_grace_period"
        ),
        logger=logger or logging.getLogger("horae"),
        clock=clock or SystemClock(),
    )


def make_schedule(
    executors: Mapping[str, JobExecutor],
    *,
    id: Any,  # noqa: A002 - add_schedule's name
    task_id: str,
    trigger: Any,
    trigger_args: Mapping[str, Any],
    args: Any,
    kwargs: Any,
    paused: Any,
    job_executor: Any,
    coalesce: Any,
    misfire_grace_time: Any,
    max_jitter: Any,
    max_running_jobs: Any,
    job_result_expiration_time: Any,
    metadata: Any,
    job_timeout: Any = None,
    retry: Any = None,
    overlap: Any = OverlapPolicy.allow,
    max_catchup: Any = None,
) -> Schedule:
    """Check ``add_schedule``'s arguments and build the schedule they describe.

    The trigger comes from :func:`~horae.triggers._shorthand.build_trigger` (with the
    schedule id as the seed of crontab ``H`` fields); its first fire time becomes the
    schedule's next fire time, even when it lies in the past (it is then due at once,
    and the coalesce policy applies).
    """
    from .triggers._shorthand import build_trigger

    schedule_id = check_id(id) or str(uuid4())
    spec = build_trigger(trigger, trigger_args, seed=schedule_id)
    if spec.max_jitter is not None and max_jitter is not None:
        raise TypeError("give either max_jitter= or jitter= (its APScheduler 3 name), not both")
    if job_executor is not None:
        check_executor_name(job_executor, executors, "job_executor")
    if not isinstance(paused, bool):
        raise TypeError(f"paused must be a bool, not {type(paused).__name__} {paused!r}")
    coalesce = as_enum(coalesce, CoalescePolicy, "coalesce")
    if max_catchup is not None and coalesce is not CoalescePolicy.all:
        raise ValueError(
            f"max_catchup bounds the jobs that coalesce='all' makes after downtime; with "
            f"coalesce={coalesce.value!r} at most one job is made anyway (drop max_catchup "
            f"or use coalesce='all')"
        )
    first_fire_time = spec.trigger.next(None)
    if first_fire_time is None:
        raise ValueError(
            f"the trigger {spec.trigger} has no fire times left (it ends before its first "
            f"one); nothing was stored"
        )
    return Schedule(
        id=schedule_id,
        task_id=task_id,
        trigger=spec.trigger,
        args=as_args(args),
        kwargs=as_kwargs(kwargs),
        paused=paused,
        job_executor=job_executor,
        coalesce=coalesce,
        misfire_grace_time=as_optional_duration(misfire_grace_time, "misfire_grace_time"),
        max_jitter=spec.max_jitter or as_optional_duration(max_jitter, "max_jitter"),
        max_running_jobs=check_optional_positive_int(max_running_jobs, "max_running_jobs"),
        job_result_expiration_time=non_negative_duration(
            job_result_expiration_time, "job_result_expiration_time"
        )
        or _ZERO,
        metadata=check_metadata(metadata),
        job_timeout=as_optional_positive_duration(job_timeout, "job_timeout"),
        retry=check_retry(retry),
        overlap=as_enum(overlap, OverlapPolicy, "overlap"),
        max_catchup=check_optional_positive_int(max_catchup, "max_catchup"),
        next_fire_time=first_fire_time,
    )
