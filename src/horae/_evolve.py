"""A fast ``attrs.evolve`` for the frozen data model on hot paths.

``attrs.evolve`` builds a keyword dict of every field and calls ``__init__``, which runs
the converters again (``_freeze_mapping`` copies ``kwargs`` and ``metadata`` each time).
The values of an existing instance are already converted, so :func:`replace` copies the
slots directly with a setter generated once per class. It is only for changes whose new
values need no conversion (ids, datetimes, ``None``); anything else goes through
``attrs.evolve``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

_T = TypeVar("_T")

_copiers: dict[type, Callable[[Any], Any]] = {}


def _make_copier(cls: type) -> Callable[[Any], Any]:
    names = [field.name for field in attrs.fields(cls)]
    lines = [
        "def copy(instance):",
        "    new = _new(_cls)",
        *(f"    _set(new, {name!r}, instance.{name})" for name in names),
        "    return new",
    ]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_set": object.__setattr__}
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from the class's own fields
    copier: Callable[[Any], Any] = namespace["copy"]
    return copier


def replace(instance: _T, **changes: Any) -> _T:
    """A copy of the frozen attrs *instance* with *changes*, without re-running its
    converters or validators (the changed values must already be in final form)."""
    cls = type(instance)
    copier = _copiers.get(cls)
    if copier is None:
        copier = _copiers[cls] = _make_copier(cls)
    new: _T = copier(instance)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new
