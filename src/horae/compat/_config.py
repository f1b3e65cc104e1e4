"""Reading APScheduler 3's scheduler configuration: the ``gconfig`` dictionary with
dotted, prefixed keys, ``job_defaults``, and job stores and executors given as objects,
plugin names (``"redis"``) or dictionaries (``{"type": "sqlalchemy", "url": ...}``,
``{"class": "apscheduler.executors.pool:ThreadPoolExecutor"}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from horae.datastores import DataStore
from horae.executors._base import JobExecutor

from ._util import as_bool, as_int, resolve_ref
from .executors import EXECUTOR_TYPES, BaseExecutor, HoraeExecutor
from .jobstores import JOBSTORE_TYPES, BaseJobStore, HoraeJobStore

_P = TypeVar("_P", BaseJobStore, BaseExecutor)

#: APScheduler 3's defaults for the options ``add_job`` leaves undefined.
DEFAULT_JOB_DEFAULTS: Mapping[str, Any] = {
    "misfire_grace_time": 1,
    "coalesce": True,
    "max_instances": 1,
}


def nest_options(
    gconfig: Mapping[str, Any] | None, prefix: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """APScheduler 3's ``configure()``: keep the keys of *gconfig* that start with
    *prefix* (all if it is empty), turn ``"a.b.c": d`` into ``{"a": {"b": {"c": d}}}``,
    then let the keyword *options* override."""
    config: dict[str, Any] = {}
    for key, value in (gconfig or {}).items():
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix) :]
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    config.update(options)
    return config


def read_job_defaults(job_defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """``job_defaults`` with APScheduler 3's defaults and its value coercions."""
    given = dict(job_defaults or {})
    grace = given.get("misfire_grace_time", DEFAULT_JOB_DEFAULTS["misfire_grace_time"])
    if isinstance(grace, str):
        grace = float(grace) if "." in grace else int(grace)
    return {
        "misfire_grace_time": grace,
        "coalesce": as_bool(given.get("coalesce", DEFAULT_JOB_DEFAULTS["coalesce"])),
        "max_instances": as_int(given.get("max_instances", DEFAULT_JOB_DEFAULTS["max_instances"])),
    }


def _from_plugin(
    kind: str,
    base: type[_P],
    plugins: Mapping[str, type[_P]],
    alias: str,
    value: Mapping[str, Any],
) -> _P:
    options = dict(value)
    plugin = options.pop("type", None)
    class_ref = options.pop("class", None)
    if plugin:
        return make_plugin(kind, base, plugins, str(plugin), options)
    if class_ref:
        if isinstance(class_ref, str) and class_ref.startswith("apscheduler."):
            # APScheduler 3's own classes: the compat class of the same name stands in.
            name = class_ref.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
            for cls in plugins.values():
                if cls.__name__ == name:
                    return cls(**options)
            raise LookupError(f"horae.compat has no {kind} like {class_ref!r}")
        cls = resolve_ref(class_ref)
        made = cls(**options)
        if not isinstance(made, base):
            raise TypeError(f"{class_ref!r} did not make a {base.__name__}, but {made!r}")
        return made
    raise ValueError(f'Cannot create {kind} "{alias}" -- either "type" or "class" must be defined')


def make_plugin(
    kind: str,
    base: type[_P],
    plugins: Mapping[str, type[_P]],
    name: str,
    options: Mapping[str, Any],
) -> _P:
    """An instance of the plugin *name* (``"memory"``, ``"threadpool"``...).

    Raises:
        LookupError: no such plugin (APScheduler 3's exception type), naming the known ones.
    """
    try:
        cls = plugins[name]
    except KeyError:
        raise LookupError(
            f'No {kind} by the name "{name}" was found (horae.compat knows: '
            f"{', '.join(sorted(plugins))})"
        ) from None
    return cls(**options)


def make_jobstore(value: object, alias: str) -> BaseJobStore:
    """A job store from a ``jobstores={alias: value}`` entry.

    Raises:
        TypeError: a value of the wrong type.
    """
    if isinstance(value, BaseJobStore):
        return value
    if isinstance(value, DataStore):
        return HoraeJobStore(value)
    if isinstance(value, Mapping):
        return _from_plugin("job store", BaseJobStore, JOBSTORE_TYPES, alias, value)
    raise TypeError(
        f"Expected job store instance or dict for jobstores['{alias}'], got "
        f"{type(value).__name__} instead"
    )


def make_executor(value: object, alias: str) -> BaseExecutor:
    """An executor from an ``executors={alias: value}`` entry.

    Raises:
        TypeError: a value of the wrong type.
    """
    if isinstance(value, BaseExecutor):
        return value
    if isinstance(value, JobExecutor):
        return HoraeExecutor(value)
    if isinstance(value, Mapping):
        return _from_plugin("executor", BaseExecutor, EXECUTOR_TYPES, alias, value)
    raise TypeError(
        f"Expected executor instance or dict for executors['{alias}'], got "
        f"{type(value).__name__} instead"
    )
