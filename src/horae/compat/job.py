"""APScheduler 3's ``Job``: a job's options and schedule, as the compat scheduler shows it.

A compat job is a horae schedule (same id). A ``Job`` object is a view of it: the
scheduler keeps ``next_run_time`` of the objects it hands out current (as APScheduler
3's memory store does, since it stores those very objects); other fields are read when
the object is made, so call ``get_job()`` again to see changes made elsewhere.

Before the scheduler starts, ``add_job`` returns a *pending* job: options left out are
not set yet (reading ``next_run_time`` raises ``AttributeError``, as in APScheduler 3)
and are filled in from ``job_defaults`` when ``start()`` adds it to its store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from horae._exceptions import SerializationError
from horae._marshalling import callable_to_ref, ref_to_callable
from horae.triggers import Trigger

from ._util import check_callable_args, convert_to_datetime, datetime_repr, get_callable_name
from .triggers import BaseTrigger, view_of

if TYPE_CHECKING:
    from ._base import BaseScheduler

__all__ = ("Job",)


def _check_grace_time(value: Any) -> float | None:
    # APScheduler 3 takes a positive int or None; fractions of a second are accepted too.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise TypeError(
            f"misfire_grace_time must be either None or a positive integer, got {value!r}"
        )
    return value


class Job:
    """Contains the options given when scheduling a callable, and its next run time.

    Made by the scheduler (``add_job``, ``get_job``, ``get_jobs``), never by users.

    Attributes:
        id: the job's id (also its horae schedule id).
        name: the job's description (default: the callable's name).
        func: the callable (``None`` if it cannot be imported in this process).
        func_ref: its ``"module:qualname"`` reference (``None`` for lambdas and closures).
        args: positional arguments of the callable.
        kwargs: keyword arguments of the callable.
        trigger: what decides when the job runs (a :mod:`horae.compat.triggers` object).
        executor: the alias of the executor that runs it.
        misfire_grace_time: seconds a run may start late (``None``: any lateness).
        coalesce: run once instead of several times after missed runs.
        max_instances: at most this many runs of the job at once.
        next_run_time: the next run time (``None`` while paused).
    """

    __slots__ = (
        "__weakref__",
        "_jobstore_alias",
        "_scheduler",
        "args",
        "coalesce",
        "executor",
        "func",
        "func_ref",
        "id",
        "kwargs",
        "max_instances",
        "misfire_grace_time",
        "name",
        "next_run_time",
        "trigger",
    )

    id: str
    name: str
    func: Callable[..., Any] | None
    func_ref: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    trigger: BaseTrigger
    executor: str
    misfire_grace_time: float | None
    coalesce: bool
    max_instances: int | None
    next_run_time: datetime | None

    def __init__(self, scheduler: BaseScheduler, id: str | None = None, **kwargs: Any) -> None:  # noqa: A002
        self._scheduler = scheduler
        self._jobstore_alias: str | None = None
        self._modify(id=id or uuid4().hex, **kwargs)

    @classmethod
    def _view(cls, scheduler: BaseScheduler, alias: str, **fields: Any) -> Job:
        """A job object for what a store holds (already checked when it was stored)."""
        job = cls.__new__(cls)
        job._scheduler = scheduler
        job._jobstore_alias = alias
        for name, value in fields.items():
            setattr(job, name, value)
        return job

    def modify(self, **changes: Any) -> Job:
        """Change the job's options and save them (see ``BaseScheduler.modify_job``)."""
        self._scheduler.modify_job(self.id, self._jobstore_alias, **changes)
        return self

    def reschedule(self, trigger: Any, **trigger_args: Any) -> Job:
        """Switch to a new trigger (see ``BaseScheduler.reschedule_job``)."""
        self._scheduler.reschedule_job(self.id, self._jobstore_alias, trigger, **trigger_args)
        return self

    def pause(self) -> Job:
        """Stop running the job until it is resumed (see ``BaseScheduler.pause_job``)."""
        self._scheduler.pause_job(self.id, self._jobstore_alias)
        return self

    def resume(self) -> Job:
        """Run the job again from its trigger's next fire time (see
        ``BaseScheduler.resume_job``)."""
        self._scheduler.resume_job(self.id, self._jobstore_alias)
        return self

    def remove(self) -> None:
        """Remove the job from its store (see ``BaseScheduler.remove_job``)."""
        self._scheduler.remove_job(self.id, self._jobstore_alias)

    @property
    def jobstore(self) -> str | None:
        """The alias of the job store that holds the job (``None`` while pending)."""
        return self._jobstore_alias

    @property
    def pending(self) -> bool:
        """True until the scheduler has added the job to its store."""
        return self._jobstore_alias is None

    def _modify(self, **changes: Any) -> None:
        """Check *changes* and apply them all, or none (APScheduler 3's rules and
        exception types)."""
        approved: dict[str, Any] = {}
        if "id" in changes:
            value = changes.pop("id")
            if not isinstance(value, str):
                raise TypeError(f"id must be a nonempty string, got {value!r}")
            if hasattr(self, "id"):
                raise ValueError("The job ID may not be changed")
            approved["id"] = value
        if "func" in changes or "args" in changes or "kwargs" in changes:
            approved.update(self._check_call(changes))
        if "name" in changes:
            value = changes.pop("name")
            if not value or not isinstance(value, str):
                raise TypeError(f"name must be a nonempty string, got {value!r}")
            approved["name"] = value
        if "misfire_grace_time" in changes:
            approved["misfire_grace_time"] = _check_grace_time(changes.pop("misfire_grace_time"))
        if "coalesce" in changes:
            approved["coalesce"] = bool(changes.pop("coalesce"))
        if "max_instances" in changes:
            value = changes.pop("max_instances")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise TypeError(f"max_instances must be a positive integer, got {value!r}")
            approved["max_instances"] = value
        if "trigger" in changes:
            approved["trigger"] = self._check_trigger(changes.pop("trigger"))
        if "executor" in changes:
            value = changes.pop("executor")
            if not isinstance(value, str):
                raise TypeError(f"executor must be a string, got {value!r}")
            approved["executor"] = value
        if "next_run_time" in changes:
            approved["next_run_time"] = convert_to_datetime(
                changes.pop("next_run_time"), self._scheduler.timezone, "next_run_time"
            )
        if changes:
            raise AttributeError(
                f"The following are not modifiable attributes of Job: {', '.join(changes)}"
            )
        for name, value in approved.items():
            setattr(self, name, value)

    def _check_call(self, changes: dict[str, Any]) -> dict[str, Any]:
        func = changes.pop("func") if "func" in changes else self.func
        args = changes.pop("args") if "args" in changes else self.args
        kwargs = changes.pop("kwargs") if "kwargs" in changes else self.kwargs
        func_ref: str | None
        if isinstance(func, str):
            func_ref, func = func, ref_to_callable(func)
        elif callable(func):
            try:
                func_ref = callable_to_ref(func)
            except SerializationError:
                func_ref = None  # fine in memory; persistent stores refuse it when added
        else:
            raise TypeError(f"func must be a callable or a textual reference to one, not {func!r}")
        if not hasattr(self, "name") and changes.get("name") is None:
            changes["name"] = get_callable_name(func)
        if isinstance(args, str) or not isinstance(args, Iterable):
            raise TypeError(f"args must be a non-string iterable, not {args!r}")
        if isinstance(kwargs, str) or not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict-like object, not {kwargs!r}")
        args, kwargs = tuple(args), dict(kwargs)
        check_callable_args(func, args, kwargs)
        return {"func": func, "func_ref": func_ref, "args": args, "kwargs": kwargs}

    @staticmethod
    def _check_trigger(trigger: Any) -> BaseTrigger:
        if isinstance(trigger, BaseTrigger):
            return trigger
        if isinstance(trigger, Trigger):
            return view_of(trigger, None)
        raise TypeError(f"Expected a trigger instance, got {type(trigger).__name__} instead")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Job):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Job (id={self.id} name={self.name})>"

    def __str__(self) -> str:
        if hasattr(self, "next_run_time"):
            status = (
                f"next run at: {datetime_repr(self.next_run_time)}"
                if self.next_run_time
                else "paused"
            )
        else:
            status = "pending"
        return f"{self.name} (trigger: {self.trigger}, {status})"
