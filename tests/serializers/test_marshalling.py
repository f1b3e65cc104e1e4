"""Callable references: what can be referenced, round trips, and every error message."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from horae import DeserializationError, SerializationError
from horae._marshalling import callable_to_ref, check_reference, ref_to_callable

MODULE = __name__


def module_function() -> str:
    return "ran"


async def module_coroutine_function() -> str:
    return "ran"


class Reports:
    @staticmethod
    def static() -> str:
        return "static"

    @classmethod
    def build(cls) -> str:
        return cls.__name__

    def send(self) -> str:
        return "sent"

    def __call__(self) -> str:
        return "called"

    class Nested:
        @staticmethod
        def method() -> str:
            return "nested"


class MonthlyReports(Reports):
    pass


reporter = Reports()

_ORIGINALS: list[Callable[..., Any]] = []


def _keep_original(func: Callable[..., Any]) -> Callable[..., Any]:
    _ORIGINALS.append(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


@_keep_original
def decorated_job() -> str:
    return "decorated"


def make_closure() -> Callable[[], str]:
    def inner() -> str:
        return "inner"

    return inner


def make_local_class() -> type:
    class Local:
        @classmethod
        def create(cls) -> None:
            pass

    return Local


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        pytest.param(module_function, f"{MODULE}:module_function", id="function"),
        pytest.param(
            module_coroutine_function, f"{MODULE}:module_coroutine_function", id="coroutine"
        ),
        pytest.param(Reports, f"{MODULE}:Reports", id="class"),
        pytest.param(Reports.static, f"{MODULE}:Reports.static", id="staticmethod"),
        pytest.param(Reports.build, f"{MODULE}:Reports.build", id="classmethod"),
        pytest.param(
            MonthlyReports.build, f"{MODULE}:MonthlyReports.build", id="inherited-classmethod"
        ),
        pytest.param(Reports.send, f"{MODULE}:Reports.send", id="plain-method-of-class"),
        pytest.param(Reports.Nested.method, f"{MODULE}:Reports.Nested.method", id="nested"),
        pytest.param(reporter.send, f"{MODULE}:reporter.send", id="method-of-module-instance"),
        pytest.param(reporter, f"{MODULE}:reporter", id="callable-module-instance"),
        pytest.param(decorated_job, f"{MODULE}:decorated_job", id="decorated-with-wraps"),
        pytest.param(print, "builtins:print", id="builtin"),
        pytest.param(math.sqrt, "math:sqrt", id="c-function"),
        pytest.param(int.from_bytes, "builtins:int.from_bytes", id="builtin-classmethod"),
        pytest.param(str.upper, "builtins:str.upper", id="method-descriptor"),
    ],
)
def test_reference_round_trip(func: Callable[..., Any], expected: str) -> None:
    assert callable_to_ref(func) == expected
    assert check_reference(func) == expected
    assert ref_to_callable(expected) == func


def test_inherited_classmethod_stays_bound_to_subclass() -> None:
    assert ref_to_callable(check_reference(MonthlyReports.build))() == "MonthlyReports"


def test_main_module_functions_get_main_references() -> None:
    def job() -> None:
        pass

    job.__module__ = "__main__"
    job.__qualname__ = "job"
    # Importable only in the process that runs the script (documented).
    assert callable_to_ref(job) == "__main__:job"


@pytest.mark.parametrize(
    ("func", "message"),
    [
        pytest.param(
            lambda: None,
            r"^cannot reference the lambda <function .*<lambda> at 0x[0-9a-f]+>: lambdas have "
            r"no importable name; define it at module level \(with def\) and pass that "
            r"function instead$",
            id="lambda",
        ),
        pytest.param(
            make_closure(),
            r"^cannot reference <function make_closure\.<locals>\.inner at 0x[0-9a-f]+>: it "
            r"is defined inside make_closure\(\) \(qualified name "
            r"'make_closure\.<locals>\.inner'\), so other processes cannot import it; define "
            r"it at module level \(with def\) and pass that function instead$",
            id="closure",
        ),
        pytest.param(
            make_local_class().create,  # type: ignore[attr-defined]
            r"^cannot reference <bound method make_local_class\.<locals>\.Local\.create of "
            r"<class '.*Local'>>: it is defined inside make_local_class\(\)",
            id="classmethod-of-local-class",
        ),
        pytest.param(
            functools.partial(module_function),
            r"^cannot reference the functools\.partial object functools\.partial\(<function "
            r"module_function at 0x[0-9a-f]+>\): partials have no importable name; pass the "
            r"underlying module-level function and give its arguments with args=/kwargs= "
            r"instead$",
            id="partial",
        ),
        pytest.param(
            Reports().send,
            r"^cannot reference the bound method Reports\.send of <.*Reports object at "
            r"0x[0-9a-f]+>: the instance is not a module-level variable, so other processes "
            r"cannot import it; use a module-level function, a staticmethod or classmethod, "
            rf"or assign the instance to a module-level variable of '{MODULE}'$",
            id="bound-method-of-instance",
        ),
        pytest.param(
            [].append,
            r"^cannot reference the bound method <built-in method append of list object at "
            r"0x[0-9a-f]+>: it belongs to an object that other processes cannot import; wrap "
            r"the call in a module-level function and pass that function instead$",
            id="bound-builtin-method",
        ),
        pytest.param(
            Reports(),
            r"^cannot reference <.*Reports object at 0x[0-9a-f]+>: it has no module and "
            rf"qualified name and is not a module-level variable of '{MODULE}'; define it at "
            r"module level \(with def\) and pass that function instead$",
            id="callable-instance-not-module-level",
        ),
        pytest.param(42, r"^42 is not callable$", id="not-callable"),
    ],
)
def test_unreferenceable_callables(func: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        callable_to_ref(func)
    with pytest.raises(SerializationError, match=message):
        check_reference(func)


def test_check_reference_detects_a_different_object() -> None:
    original = _ORIGINALS[0]
    assert callable_to_ref(original) == f"{MODULE}:decorated_job"
    with pytest.raises(
        SerializationError,
        match=rf"^the reference '{MODULE}:decorated_job' of <function decorated_job at "
        r"0x[0-9a-f]+> imports a different object, <function decorated_job at 0x[0-9a-f]+>; "
        r"refer to the object that the module-level name holds \(for a decorated function, "
        r"pass the decorated one\)$",
    ):
        check_reference(original)


def test_check_reference_reports_unimportable_reference() -> None:
    def job() -> None:
        pass

    job.__module__ = "horae_no_such_module"
    job.__qualname__ = "job"
    with pytest.raises(
        SerializationError,
        match=r"^the reference 'horae_no_such_module:job' of <function .*> cannot be imported "
        r"back: cannot import module 'horae_no_such_module'",
    ):
        check_reference(job)


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("no_colon", id="no-colon"),
        pytest.param("a:b:c", id="two-colons"),
        pytest.param(":func", id="no-module"),
        pytest.param("module:", id="no-name"),
        pytest.param("module:a..b", id="empty-part"),
        pytest.param(42, id="not-a-string"),
    ],
)
def test_malformed_reference(ref: Any) -> None:
    with pytest.raises(
        DeserializationError,
        match=rf"^invalid callable reference {ref!r}: expected 'module:qualname' such as "
        r"'myapp\.jobs:send_report'$",
    ):
        ref_to_callable(ref)


def test_unimportable_module() -> None:
    with pytest.raises(
        DeserializationError,
        match=r"^cannot import module 'horae_no_such_module' of the callable reference "
        r"'horae_no_such_module:job' \(ModuleNotFoundError: No module named "
        r"'horae_no_such_module'\); make sure that module is installed or on sys\.path in "
        r"every scheduler process$",
    ):
        ref_to_callable("horae_no_such_module:job")


def test_module_that_fails_to_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "horae_broken_module.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "horae_broken_module", raising=False)
    with pytest.raises(
        DeserializationError,
        match=r"^cannot import module 'horae_broken_module' of the callable reference "
        r"'horae_broken_module:job' \(RuntimeError: boom\)",
    ):
        ref_to_callable("horae_broken_module:job")


@pytest.mark.parametrize(
    ("ref", "owner", "attribute"),
    [
        pytest.param(f"{MODULE}:missing", f"module '{MODULE}'", "missing", id="top-level"),
        pytest.param(f"{MODULE}:Reports.missing", f"'{MODULE}:Reports'", "missing", id="nested"),
        pytest.param(
            f"{MODULE}:make_closure.<locals>.inner",
            f"'{MODULE}:make_closure'",
            "<locals>",
            id="closure-path",
        ),
    ],
)
def test_missing_attribute(ref: str, owner: str, attribute: str) -> None:
    with pytest.raises(DeserializationError) as info:
        ref_to_callable(ref)
    assert str(info.value) == (
        f"cannot resolve the callable reference {ref!r}: {owner} has no attribute "
        f"{attribute!r}; was it renamed, moved or deleted? Restore it, or remove or replace "
        f"the stored task or schedule that refers to it"
    )


def test_not_callable() -> None:
    with pytest.raises(
        DeserializationError,
        match=r"^the callable reference 'math:pi' resolves to 3\.14159\d*, which is not "
        r"callable$",
    ):
        ref_to_callable("math:pi")


def test_resolved_callables_run() -> None:
    assert ref_to_callable(f"{MODULE}:reporter.send")() == "sent"
    assert ref_to_callable(f"{MODULE}:Reports.Nested.method")() == "nested"
    assert ref_to_callable(f"{MODULE}:reporter")() == "called"
