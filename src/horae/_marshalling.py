"""Callable references: turning callables into ``"module:qualname"`` strings and back.

Persistent stores keep a task's callable as a reference that every scheduler process can
import. :func:`callable_to_ref` builds the reference (refusing, with a message that says
how to fix it, the callables that no other process could import), :func:`ref_to_callable`
imports it back, and :func:`check_reference` does both and checks that the round trip
gives the very same object.

What can be referenced:

* module-level functions and classes (``"myapp.jobs:send_report"``), nested classes and
  their static methods (``"myapp.jobs:Reports.send"``);
* class methods, bound to the class that was given (``"myapp.jobs:Reports.build"``,
  also when inherited from a base class);
* bound methods of an instance, and callable instances, *when the instance is a
  module-level variable* of its class's module (``"myapp.jobs:reporter.send"``);
* builtins (``"builtins:print"``) and functions of C modules (``"math:sqrt"``).

What cannot: lambdas, functions defined inside other functions (``<locals>`` in their
qualified name), ``functools.partial`` objects, and bound methods of instances that no
module-level name refers to.

Callables defined in the script that runs as ``__main__`` get references such as
``"__main__:job"``. They work in that process (and in its process-pool workers, which
re-import the main script), but other scheduler processes cannot import them: put jobs
meant for a shared store in an importable module.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ._exceptions import DeserializationError, SerializationError

_MISSING = object()
_FIX = "define it at module level (with def) and pass that function instead"
_FIX_BOUND = "wrap the call in a module-level function and pass that function instead"


def _describe(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 120 else text[:117] + "..."


def _module_global_name(module_name: str | None, obj: object) -> str | None:
    """The name under which *obj* itself is a global of module *module_name*, if any."""
    module = sys.modules.get(module_name) if module_name else None
    if module is None:
        return None
    for name, value in list(vars(module).items()):
        if value is obj:
            return name
    return None


def _method_ref(method: Any) -> str:
    owner = method.__self__
    name = method.__func__.__name__
    if isinstance(owner, type):
        # A class method: refer to it through the class it is bound to, so that
        # Sub.create (inherited from Base) does not come back as Base.create.
        return f"{owner.__module__}:{owner.__qualname__}.{name}"
    owner_type = type(owner)
    instance_name = _module_global_name(owner_type.__module__, owner)
    if instance_name is None:
        raise SerializationError(
            f"cannot reference the bound method {owner_type.__qualname__}.{name} of "
            f"{_describe(owner)}: the instance is not a module-level variable, so other "
            f"processes cannot import it; use a module-level function, a staticmethod or "
            f"classmethod, or assign the instance to a module-level variable of "
            f"{owner_type.__module__!r}"
        )
    return f"{owner_type.__module__}:{instance_name}.{name}"


def _reject_locals(func: object, ref: str) -> str:
    qualname = ref.partition(":")[2]
    if "<locals>" in qualname:
        outer = qualname.split(".<locals>", 1)[0]
        raise SerializationError(
            f"cannot reference {_describe(func)}: it is defined inside {outer}() (qualified "
            f"name {qualname!r}), so other processes cannot import it; {_FIX}"
        )
    return ref


def callable_to_ref(func: Callable[..., Any]) -> str:
    """Return the ``"module:qualname"`` reference of *func*.

    This inspects *func* without importing anything; :func:`check_reference` also
    imports the reference back and checks that it gives *func*.

    Args:
        func: a module-level function or class, a static or class method, or a bound
            method of (or a callable) module-level instance.

    Returns:
        A reference such as ``"myapp.jobs:send_report"``.

    Raises:
        SerializationError: for lambdas, closures, ``functools.partial`` objects, bound
            methods of instances that are not module-level variables, and other objects
            that have no importable name; the message says how to fix it.
    """
    if isinstance(func, functools.partial):
        raise SerializationError(
            f"cannot reference the functools.partial object {_describe(func)}: partials "
            f"have no importable name; pass the underlying module-level function and give "
            f"its arguments with args=/kwargs= instead"
        )
    if not callable(func):
        raise SerializationError(f"{_describe(func)} is not callable")
    if inspect.ismethod(func):
        return _reject_locals(func, _method_ref(func))
    self_object = getattr(func, "__self__", None)
    if inspect.isbuiltin(func) and not isinstance(self_object, (ModuleType, type(None))):
        # A builtin bound to an object: int.from_bytes (a class) or [].append (not).
        if isinstance(self_object, type):
            ref = f"{self_object.__module__}:{self_object.__qualname__}.{func.__name__}"
            return _reject_locals(func, ref)
        raise SerializationError(
            f"cannot reference the bound method {_describe(func)}: it belongs to an object "
            f"that other processes cannot import; {_FIX_BOUND}"
        )

    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    objclass = getattr(func, "__objclass__", None)
    if module is None and isinstance(objclass, type):
        module = objclass.__module__  # method descriptors such as str.upper
    if not isinstance(qualname, str) or not isinstance(module, str):
        # A callable instance: importable when it is a module-level variable.
        owner_type = type(func)
        instance_name = _module_global_name(owner_type.__module__, func)
        if instance_name is None:
            raise SerializationError(
                f"cannot reference {_describe(func)}: it has no module and qualified name "
                f"and is not a module-level variable of {owner_type.__module__!r}; "
                f"{_FIX}"
            )
        return f"{owner_type.__module__}:{instance_name}"
    if getattr(func, "__name__", None) == "<lambda>":
        raise SerializationError(
            f"cannot reference the lambda {_describe(func)}: lambdas have no importable "
            f"name; {_FIX}"
        )
    return _reject_locals(func, f"{module}:{qualname}")


def ref_to_callable(ref: str) -> Callable[..., Any]:
    """Import the callable that the reference *ref* names.

    Args:
        ref: a ``"module:qualname"`` reference, as made by :func:`callable_to_ref`.

    Returns:
        The callable.

    Raises:
        DeserializationError: when *ref* is malformed, its module cannot be imported, an
            attribute along its qualified name is missing, or the object is not callable.
    """
    given: object = ref  # stored data: check the type at run time too
    if not isinstance(given, str) or given.count(":") != 1:
        raise DeserializationError(
            f"invalid callable reference {ref!r}: expected 'module:qualname' such as "
            f"'myapp.jobs:send_report'"
        )
    module_name, qualname = ref.split(":")
    if not module_name or not qualname or "" in qualname.split("."):
        raise DeserializationError(
            f"invalid callable reference {ref!r}: expected 'module:qualname' such as "
            f"'myapp.jobs:send_report'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # importing runs module code, which may raise anything
        raise DeserializationError(
            f"cannot import module {module_name!r} of the callable reference {ref!r} "
            f"({type(exc).__name__}: {exc}); make sure that module is installed or on "
            f"sys.path in every scheduler process"
        ) from exc
    parts = qualname.split(".")
    for index, part in enumerate(parts):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            owner = (
                f"module {module_name!r}"
                if index == 0
                else repr(f"{module_name}:{'.'.join(parts[:index])}")
            )
            raise DeserializationError(
                f"cannot resolve the callable reference {ref!r}: {owner} has no attribute "
                f"{part!r}; was it renamed, moved or deleted? Restore it, or remove or "
                f"replace the stored task or schedule that refers to it"
            ) from None
    if not callable(obj):
        raise DeserializationError(
            f"the callable reference {ref!r} resolves to {_describe(obj)}, which is not callable"
        )
    return obj  # type: ignore[no-any-return]


def check_reference(func: Callable[..., Any]) -> str:
    """Return the reference of *func* after checking that it imports back to *func*.

    Args:
        func: the callable to reference.

    Returns:
        Its ``"module:qualname"`` reference.

    Raises:
        SerializationError: when *func* cannot be referenced (see
            :func:`callable_to_ref`) or the reference imports to another object (for
            example a function wrapped by a decorator that did not use
            ``functools.wraps``, or a name that was rebound).
    """
    ref = callable_to_ref(func)
    try:
        resolved = ref_to_callable(ref)
    except DeserializationError as exc:
        raise SerializationError(
            f"the reference {ref!r} of {_describe(func)} cannot be imported back: {exc}"
        ) from exc
    if resolved is not func and resolved != func:
        raise SerializationError(
            f"the reference {ref!r} of {_describe(func)} imports a different object, "
            f"{_describe(resolved)}; refer to the object that the module-level name "
            f"holds (for a decorated function, pass the decorated one)"
        )
    return ref
