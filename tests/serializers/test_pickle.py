"""PickleSerializer: round trips, mapping proxies, protocols and every error message."""

from __future__ import annotations

import pickle
from types import MappingProxyType
from typing import Any

import pytest
from _serializer_values import (
    CALENDAR_KINDS,
    SUPPORTED_VALUES,
    TRIGGER_KINDS,
    assert_identical,
    make_calendar,
    make_trigger,
)

from horae import DeserializationError, SerializationError
from horae.serializers import PickleSerializer

SERIALIZER = PickleSerializer()


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("no pickling for you")


def round_trip(value: Any) -> Any:
    return SERIALIZER.deserialize(SERIALIZER.serialize(value))


@pytest.mark.parametrize(
    "value", [pytest.param(value, id=name) for name, value in SUPPORTED_VALUES]
)
def test_round_trip(value: Any) -> None:
    assert_identical(round_trip(value), value)


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_trigger_round_trip(kind: str) -> None:
    trigger = make_trigger(kind)
    decoded = round_trip(trigger)
    assert decoded == trigger
    assert decoded.next(None) == trigger.next(None)


@pytest.mark.parametrize("kind", CALENDAR_KINDS)
def test_calendar_round_trip(kind: str) -> None:
    calendar = make_calendar(kind)
    assert round_trip(calendar) == calendar


def test_mapping_proxy_becomes_dict() -> None:
    value = {"kwargs": MappingProxyType({"a": 1})}
    assert_identical(round_trip(value), {"kwargs": {"a": 1}})


def test_exception_round_trip() -> None:
    decoded = round_trip(KeyError("missing"))
    assert type(decoded) is KeyError
    assert decoded.args == ("missing",)


def test_arbitrary_objects_round_trip() -> None:
    from collections import Counter, OrderedDict

    value = (OrderedDict(a=1), Counter("hello"), complex(1, 2))
    assert_identical(round_trip(value), value)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_protocol(protocol: int) -> None:
    serializer = PickleSerializer(protocol)
    data = serializer.serialize({"a": (1, 2)})
    if protocol >= 2:
        assert data[:2] == bytes([0x80, protocol])
    assert serializer.deserialize(data) == {"a": (1, 2)}
    assert repr(serializer) == f"PickleSerializer(protocol={protocol})"


def test_default_protocol() -> None:
    assert SERIALIZER.protocol == pickle.HIGHEST_PROTOCOL


@pytest.mark.parametrize("protocol", [-1, pickle.HIGHEST_PROTOCOL + 1, True, 2.0, "5"])
def test_invalid_protocol(protocol: Any) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^invalid pickle protocol {protocol!r} \(allowed: 0-{pickle.HIGHEST_PROTOCOL}\)$",
    ):
        PickleSerializer(protocol)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            lambda: None,
            r"^cannot pickle <function <lambda> at 0x[0-9a-f]+> of type function: "
            r"(PicklingError|AttributeError): .*; make the value picklable \(module-level "
            r"classes and functions only\) or convert it to plain data$",
            id="lambda",
        ),
        pytest.param(
            [Unpicklable()],
            r"^cannot pickle \[<test_pickle\.Unpicklable object at 0x[0-9a-f]+>\] of type list: "
            r"TypeError: no pickling for you; make the value picklable",
            id="reduce-raises",
        ),
        pytest.param(
            (x for x in range(3)),
            r"^cannot pickle <generator object .*> of type generator: TypeError: ",
            id="generator",
        ),
    ],
)
def test_unpicklable_values(value: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        SERIALIZER.serialize(value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            b"garbage",
            r"^cannot unpickle the stored data \(UnpicklingError: .*\); it is corrupt, or "
            r"refers to a class or function that is no longer importable$",
            id="garbage",
        ),
        pytest.param(
            pickle.dumps({"a": 1})[:-3],
            r"^cannot unpickle the stored data \((UnpicklingError|EOFError): .*\); it is "
            r"corrupt",
            id="truncated",
        ),
        pytest.param(
            b"chorae_no_such_module\nThing\n.",
            r"^cannot unpickle the stored data \(ModuleNotFoundError: No module named "
            r"'horae_no_such_module'\); it is corrupt, or refers to a class or function that "
            r"is no longer importable$",
            id="module-missing",
        ),
        pytest.param(
            b"cbuiltins\nno_such_builtin\n.",
            r"^cannot unpickle the stored data \(AttributeError: .*no_such_builtin.*\); it is "
            r"corrupt, or refers to a class or function that is no longer importable$",
            id="attribute-missing",
        ),
    ],
)
def test_undecodable_data(data: bytes, message: str) -> None:
    with pytest.raises(DeserializationError, match=message):
        SERIALIZER.deserialize(data)


def test_deserialize_needs_bytes() -> None:
    with pytest.raises(
        DeserializationError, match=r"^PickleSerializer\.deserialize\(\) expects bytes, not str$"
    ):
        SERIALIZER.deserialize("data")  # type: ignore[arg-type]


def test_memoryview_input() -> None:
    data = SERIALIZER.serialize([1])
    assert SERIALIZER.deserialize(memoryview(data)) == [1]  # type: ignore[arg-type]
