"""Data stores: where tasks, schedules, jobs and results live.

``_base`` holds the DataStore interface; one module per implementation. Backends that
need a driver (``postgres``, ``redis``, ``mongodb``) are imported lazily on attribute
access, so ``import horae`` never imports a driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import DataStore as DataStore
from ._base import ScheduleUpdate as ScheduleUpdate
from ._base import StoreCapabilities as StoreCapabilities

if TYPE_CHECKING:
    from .memory import MemoryDataStore as MemoryDataStore

_LAZY = {
    "MemoryDataStore": ".memory",
    "SQLiteDataStore": ".sqlite",
    "PostgresDataStore": ".postgres",
    "RedisDataStore": ".redis",
    "MongoDBDataStore": ".mongodb",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name, __name__)
    return getattr(module, name)
