"""Event brokers: deliver events between the parts of one node and between nodes.

``_base`` holds the EventBroker interface; one module per implementation. Brokers that
need a driver are imported lazily on attribute access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import EventBroker as EventBroker
from ._base import Subscription as Subscription

if TYPE_CHECKING:
    from .local import LocalEventBroker as LocalEventBroker
    from .postgres import PostgresEventBroker as PostgresEventBroker
    from .redis import RedisEventBroker as RedisEventBroker

_LAZY = {
    "LocalEventBroker": ".local",
    "PostgresEventBroker": ".postgres",
    "RedisEventBroker": ".redis",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name, __name__)
    return getattr(module, name)
