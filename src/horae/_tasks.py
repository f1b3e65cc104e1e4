"""Tasks on the scheduler side: the ``@task`` decorator, this process's registry of
callables by task id, the per-store cache of task definitions, and :class:`TaskService`,
which turns what users pass (a callable or a task id) into the task stored in a store."""

from __future__ import annotations

import contextlib
import functools
import inspect
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar, overload

import attrs

from ._exceptions import DeserializationError, SerializationError, TaskLookupError
from ._marshalling import callable_to_ref, check_reference, ref_to_callable
from ._scheduler_args import (
    as_optional_duration,
    as_optional_positive_duration,
    check_executor_name,
    check_metadata,
    check_optional_positive_int,
    check_optional_str,
    check_retry,
)
from ._structures import RetryPolicy, Task
from .datastores._base import DataStore
from .executors._base import JobExecutor
from .executors.process import ProcessPoolJobExecutor

_F = TypeVar("_F", bound=Callable[..., Any])

#: the attribute under which @task keeps its configuration on the function
_TASK_ATTRIBUTE = "__horae_task__"


# ---- the decorator ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TaskConfig:
    """The task settings that ``@task`` attaches to a function (``None`` = not given)."""

    id: str | None = None
    job_executor: str | None = None
    max_running_jobs: int | None = None
    misfire_grace_time: timedelta | None = None
    job_timeout: timedelta | None = None
    retry: RetryPolicy | None = None
    metadata: Mapping[str, Any] | None = None


@overload
def task(id: _F, /) -> _F: ...


@overload
def task(
    id: str | None = None,
    *,
    job_executor: str | None = None,
    max_running_jobs: int | None = None,
    misfire_grace_time: timedelta | float | None = None,
    job_timeout: timedelta | float | None = None,
    retry: RetryPolicy | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Callable[[_F], _F]: ...


def task(
    id: str | Callable[..., Any] | None = None,  # noqa: A002 - the SPEC's name
    *,
    job_executor: str | None = None,
    max_running_jobs: int | None = None,
    misfire_grace_time: timedelta | float | None = None,
    job_timeout: timedelta | float | None = None,
    retry: RetryPolicy | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Configure the task of a function where it is defined.

    The settings apply when the scheduler first creates the task (on ``add_schedule``,
    ``add_job``, ``run_job`` or ``configure_task``); explicit ``configure_task``
    arguments take precedence. The function itself is returned unchanged, so it can
    still be called directly. ``@task`` may be used with or without parentheses.

    Args:
        id: the task id (the default is the function's ``"module:qualname"``).
        job_executor: the executor name (``"async"``, ``"threadpool"``,
            ``"processpool"`` or one registered with the scheduler).
        max_running_jobs: at most this many of its jobs run at once, across all nodes.
        misfire_grace_time: a job that cannot start within this time (``timedelta`` or
            seconds) of its scheduled time ends as ``JobOutcome.missed_start_deadline``.
        job_timeout: a running job is stopped after this long, ending as
            ``JobOutcome.timed_out``.
        retry: the retry policy, recorded on the task and its jobs.
        metadata: free-form JSON-safe data kept with the task.

    Example::

        @task(max_running_jobs=1, misfire_grace_time=30)
        def send_report() -> None: ...
    """
    if callable(id):
        return task()(id)
    config = TaskConfig(
        id=check_optional_str(id, "id"),
        job_executor=check_optional_str(job_executor, "job_executor"),
        max_running_jobs=check_optional_positive_int(max_running_jobs, "max_running_jobs"),
        misfire_grace_time=as_optional_duration(misfire_grace_time, "misfire_grace_time"),
        job_timeout=as_optional_positive_duration(job_timeout, "job_timeout"),
        retry=check_retry(retry),
        metadata=check_metadata(metadata),
    )

    def decorate(func: _F) -> _F:
        if not callable(func):
            raise TypeError(f"@task decorates callables, not {type(func).__name__} {func!r}")
        setattr(func, _TASK_ATTRIBUTE, config)
        return func

    return decorate


def task_config(func: Callable[..., Any]) -> TaskConfig:
    """The ``@task`` settings of *func* (all ``None`` when it was not decorated)."""
    config = getattr(func, _TASK_ATTRIBUTE, None)
    return config if isinstance(config, TaskConfig) else TaskConfig()


def is_async_callable(func: Callable[..., Any]) -> bool:
    """True for coroutine functions, partials of them and objects with an async
    ``__call__``."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - looking for an async __call__
    )


# ---- this process's callables ----------------------------------------------------------


class TaskRegistry:
    """Maps task ids to the callables of this process, and callables to task ids.

    The store keeps a task's callable only as a ``"module:qualname"`` reference; the
    registry keeps the callable object itself, so that lambdas and closures (which have
    no importable reference) still run in the process that added them.
    """

    __slots__ = ("_funcs", "_identities", "_ids")

    def __init__(self) -> None:
        self._funcs: dict[str, Callable[..., Any]] = {}
        self._ids: dict[Any, str] = {}
        #: func -> (its @task config, task id, ref): identify() without recomputing the
        #: reference on every add_schedule/add_job (and one shared task id string)
        self._identities: weakref.WeakKeyDictionary[Any, tuple[object, str, str | None]] = (
            weakref.WeakKeyDictionary()
        )

    def identify(self, func: Callable[..., Any]) -> tuple[str, str | None]:
        """Return ``(task_id, func_ref)`` for *func*.

        The id is the ``@task`` id if given, else the callable's reference. A callable
        without a reference (lambda, closure, bound method of a local object) gets
        ``"module:qualname#<random>"``, so that two lambdas never share a task; the same
        object keeps its id for the life of the registry.
        """
        config = getattr(func, _TASK_ATTRIBUTE, None)
        try:
            cached = self._identities.get(func)
        except TypeError:  # unhashable, or not weakly referenceable
            cached = None
        if cached is not None and cached[0] is config:
            return cached[1], cached[2]
        identity = self._identify(func)
        with contextlib.suppress(TypeError):
            self._identities[func] = (config, *identity)
        return identity

    def _identify(self, func: Callable[..., Any]) -> tuple[str, str | None]:
        try:
            ref: str | None = callable_to_ref(func)
        except SerializationError:
            ref = None
        explicit = task_config(func).id
        if explicit is not None:
            return explicit, ref
        if ref is not None:
            return ref, ref
        try:
            known = self._ids.get(func)
        except TypeError:  # an unhashable callable object
            known = None
        if known is not None:
            return known, None
        module = getattr(func, "__module__", None) or type(func).__module__
        qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
        task_id = f"{module}:{qualname}#{uuid.uuid4().hex[:12]}"
        with contextlib.suppress(TypeError):  # an unhashable callable object
            self._ids[func] = task_id
        return task_id, None

    def register(self, task_id: str, func: Callable[..., Any]) -> None:
        """Remember that *task_id* runs *func* in this process (the latest one wins)."""
        self._funcs[task_id] = func

    def lookup(self, task_id: str) -> Callable[..., Any] | None:
        """The callable registered for *task_id*, if any."""
        return self._funcs.get(task_id)

    def resolve(self, task: Task) -> Callable[..., Any]:
        """The callable that runs *task*: the registered one, else its imported reference.

        Raises:
            DeserializationError: the task has no callable in this process and no
                reference that imports.
        """
        func = self._funcs.get(task.id)
        if func is not None:
            return func
        if task.func_ref is None:
            raise DeserializationError(
                f"task {task.id!r} has no callable in this process: it was added as a "
                f"lambda, closure or local bound method by another scheduler process, and "
                f"only that process can run it; use a module-level function instead"
            )
        func = ref_to_callable(task.func_ref)
        self._funcs[task.id] = func
        return func


def require_reference(func: Callable[..., Any], store_alias: str) -> str:
    """Return *func*'s reference, checked to import back to *func*, for a store that
    keeps only references.

    Raises:
        SerializationError: *func* cannot be referenced; the message names the store.
    """
    try:
        return check_reference(func)
    except SerializationError as exc:
        raise SerializationError(
            f"{exc} (the data store {store_alias!r} keeps callables as importable "
            f"'module:qualname' references)"
        ) from exc


def build_task(
    task_id: str,
    func: Callable[..., Any] | None,
    func_ref: str | None,
    default_executor: str,
) -> Task:
    """A new :class:`Task` for *func* from its ``@task`` settings and the defaults."""
    config = task_config(func) if func is not None else TaskConfig()
    executor = config.job_executor
    if executor is None:
        executor = "async" if func is not None and is_async_callable(func) else default_executor
    return Task(
        id=task_id,
        func_ref=func_ref,
        job_executor=executor,
        max_running_jobs=config.max_running_jobs,
        misfire_grace_time=config.misfire_grace_time,
        job_timeout=config.job_timeout,
        retry=config.retry,
        metadata=config.metadata,
    )


class TaskCache:
    """Task definitions read from the stores, kept until a Task* event invalidates them.

    The scheduling loop needs each acquired schedule's task (for its misfire grace time)
    and the worker each job's (for its executor and callable); reading them once per
    batch instead of once per fire keeps the store round trips per batch constant.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, str], Task] = {}

    def peek(self, alias: str, task_id: str) -> Task | None:
        """The cached task, or ``None`` when it is not cached (no store access)."""
        return self._tasks.get((alias, task_id))

    def put(self, alias: str, task: Task) -> None:
        """Remember *task* as read from the store *alias*."""
        self._tasks[(alias, task.id)] = task

    async def get(self, alias: str, store: DataStore, task_id: str) -> Task:
        """Return the task from the cache or from *store* (``TaskLookupError`` if absent)."""
        key = (alias, task_id)
        cached = self._tasks.get(key)
        if cached is None:
            cached = await store.get_task(task_id)
            self._tasks[key] = cached
        return cached

    async def get_optional(self, alias: str, store: DataStore, task_id: str) -> Task | None:
        """Like :meth:`get`, but ``None`` when the store has no such task."""
        try:
            return await self.get(alias, store, task_id)
        except TaskLookupError:
            return None

    def invalidate(self, task_id: str | None = None) -> None:
        """Forget *task_id* in every store (everything when ``None``)."""
        if task_id is None:
            self._tasks.clear()
        else:
            for key in [key for key in self._tasks if key[1] == task_id]:
                del self._tasks[key]


async def find_task(store: DataStore, task_id: str) -> Task | None:
    """The task from *store*, or ``None`` if it has none with that id."""
    try:
        return await store.get_task(task_id)
    except TaskLookupError:
        return None


class TaskService:
    """Finds or creates the task behind a callable or task id, store by store.

    Two rules: ``configure_task`` writes the settings it is given (over the stored task,
    or over the ``@task`` settings and defaults for a new one) to every store that can
    hold the callable; ``add_schedule``/``add_job`` create a missing task from the
    ``@task`` settings and defaults but never overwrite a stored task's settings, which
    another process may have configured.
    """

    __slots__ = ("_default_executor", "_executors", "_stores", "cache", "registry")

    def __init__(
        self,
        stores: Mapping[str, DataStore],
        executors: Mapping[str, JobExecutor],
        default_executor: str,
    ) -> None:
        self._stores = stores
        self._executors = executors
        self._default_executor = default_executor
        self.registry = TaskRegistry()
        self.cache = TaskCache()

    def identify(
        self, func_or_task_id: Any, func: Any = None
    ) -> tuple[str, Callable[..., Any] | None, str | None]:
        """``(task_id, callable or None, reference or None)`` of what the user passed."""
        if isinstance(func_or_task_id, str):
            if not func_or_task_id:
                raise ValueError("a task id must not be empty")
            if func is not None and not callable(func):
                raise TypeError(f"func must be callable, not {type(func).__name__} {func!r}")
            ref = None
            if func is not None:
                with contextlib.suppress(SerializationError):
                    ref = callable_to_ref(func)
            return func_or_task_id, func, ref
        if callable(func_or_task_id):
            if func is not None:
                raise TypeError("func= goes with a task id string, not with a callable")
            task_id, ref = self.registry.identify(func_or_task_id)
            return task_id, func_or_task_id, ref
        raise TypeError(
            f"expected a callable or a task id (str), not {type(func_or_task_id).__name__} "
            f"{func_or_task_id!r}"
        )

    def check_executor(self, name: str, func: Callable[..., Any] | None) -> None:
        """Raise unless *name* is a known executor that can run *func*."""
        executor = self._executors[check_executor_name(name, self._executors, "job_executor")]
        if func is not None and isinstance(executor, ProcessPoolJobExecutor):
            try:
                check_reference(func)
            except SerializationError as exc:
                raise SerializationError(
                    f"{exc} (the job executor {name!r} sends callables to worker processes "
                    f"by reference)"
                ) from exc

    def register_only(self, func_or_task_id: Any) -> None:
        """Remember the callable for its task id in this process, storing nothing."""
        task_id, func, _ = self.identify(func_or_task_id)
        if func is not None:
            self.registry.register(task_id, func)

    async def configure(self, func_or_task_id: Any, func: Any, changes: Mapping[str, Any]) -> Task:
        """Apply *changes* to the task in every store that can hold it (see the class
        docstring); return it as stored in the first one."""
        task_id, func, ref = self.identify(func_or_task_id, func)
        if "job_executor" in changes:
            self.check_executor(changes["job_executor"], func)
        func = func or self.registry.lookup(task_id)
        configured: list[Task] = []
        refusal: SerializationError | None = None
        for alias, store in self._stores.items():
            store_ref = ref
            if func is not None and store.capabilities.requires_references:
                try:
                    store_ref = require_reference(func, alias)
                except SerializationError as exc:
                    refusal = refusal or exc
                    continue
            existing = await find_task(store, task_id)
            if existing is None and func is None:
                continue
            base = existing or build_task(task_id, func, store_ref, self._default_executor)
            if existing is not None and func is not None:
                base = attrs.evolve(base, func_ref=store_ref)
            task = attrs.evolve(base, **changes)
            self.check_executor(task.job_executor, func)
            await self._save(store, task, existing)
            configured.append(task)
        if not configured:
            raise refusal or TaskLookupError(task_id)
        if func is not None:
            self.registry.register(task_id, func)
        return configured[0]

    async def prepare(
        self, func_or_task_id: Any, alias: str, store: DataStore, executor: str | None
    ) -> Task:
        """The task for ``add_schedule``/``add_job`` in *store*, created if missing.

        Raises:
            SerializationError: *store* keeps references and the callable has none, or
                the executor is a process pool and the callable is not importable.
            TaskLookupError: a task id that neither *store* nor this process knows.
        """
        task_id, func, ref = self.identify(func_or_task_id)
        if func is None:
            func = self.registry.lookup(task_id)
        if func is not None and store.capabilities.requires_references:
            ref = require_reference(func, alias)
        existing = await self._find_task(alias, store, task_id)
        if existing is None and func is None:
            raise TaskLookupError(task_id)
        task = existing or build_task(task_id, func, ref, self._default_executor)
        if existing is not None and func is not None and ref is not None and ref != task.func_ref:
            task = attrs.evolve(task, func_ref=ref)  # the callable moved or was renamed
        self.check_executor(task.job_executor, func)
        if executor is not None:
            self.check_executor(executor, func)
        await self._save(store, task, existing)
        if func is not None:
            self.registry.register(task_id, func)
        return task

    async def _find_task(self, alias: str, store: DataStore, task_id: str) -> Task | None:
        # A store that no other process shares changes only through this scheduler,
        # whose Task* events invalidate the cache; so the cached task is the stored one
        # and add_schedule/add_job need not read it again. A shared store is read.
        if store.capabilities.shared:
            return await find_task(store, task_id)
        cached = self.cache.peek(alias, task_id)
        if cached is not None:
            return cached
        found = await find_task(store, task_id)
        if found is not None:
            self.cache.put(alias, found)
        return found

    async def _save(self, store: DataStore, task: Task, existing: Task | None) -> None:
        if task != existing:
            await store.add_task(task)
            self.cache.invalidate(task.id)
