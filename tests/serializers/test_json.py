"""JSONSerializer: round trips of every supported type, tag escaping, exceptions, errors."""

from __future__ import annotations

import enum
import importlib.resources
import json
import re
from collections import OrderedDict
from datetime import timedelta, timezone, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from _serializer_values import (
    CALENDAR_KINDS,
    SUPPORTED_VALUES,
    TRIGGER_KINDS,
    assert_identical,
    make_calendar,
    make_trigger,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from horae import DeserializationError, SerializationError
from horae._structures import RetryPolicy
from horae.serializers import JSONSerializer
from horae.serializers.json import deserialize_exception, serialize_exception

TAG = "__horae__"
SERIALIZER = JSONSerializer()


def round_trip(value: Any) -> Any:
    return SERIALIZER.deserialize(SERIALIZER.serialize(value))


@pytest.mark.parametrize(
    "value", [pytest.param(value, id=name) for name, value in SUPPORTED_VALUES]
)
def test_round_trip(value: Any) -> None:
    data = SERIALIZER.serialize(value)
    assert isinstance(data, bytes)
    json.loads(data)  # always a valid JSON document
    assert_identical(round_trip(value), value)


def test_nan_round_trips() -> None:
    value = round_trip([float("nan")])[0]
    assert value != value


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_trigger_round_trip(kind: str) -> None:
    trigger = make_trigger(kind)
    decoded = round_trip({"trigger": trigger, "in": (trigger,)})
    assert decoded["trigger"] == trigger
    assert type(decoded["trigger"]) is type(trigger)
    assert decoded["in"] == (trigger,)
    after = None
    for _ in range(5):  # the decoded trigger computes the same fire times
        expected = trigger.next(after)
        assert decoded["trigger"].next(after) == expected
        if expected is None:
            break
        after = expected


@pytest.mark.parametrize("kind", CALENDAR_KINDS)
def test_calendar_round_trip(kind: str) -> None:
    calendar = make_calendar(kind)
    decoded = round_trip(calendar)
    assert decoded == calendar
    assert type(decoded) is type(calendar)


def test_mapping_proxy_is_encoded_as_dict() -> None:
    from types import MappingProxyType

    assert_identical(round_trip(MappingProxyType({"a": (1,)})), {"a": (1,)})


def test_plain_json_stays_readable() -> None:
    data = SERIALIZER.serialize({"name": "héllo", "values": [1, 2.5, None, True]})
    assert data == '{"name":"héllo","values":[1,2.5,null,true]}'.encode()


def test_tagged_values_are_readable() -> None:
    from datetime import datetime

    value = datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
    assert json.loads(SERIALIZER.serialize(value)) == {
        TAG: "datetime",
        "v": "2024-11-03T01:30:00-05:00",
        "tz": "America/New_York",
        "fold": 1,
    }


def test_memoryview_and_bytearray_input() -> None:
    data = SERIALIZER.serialize((1, 2))
    assert SERIALIZER.deserialize(memoryview(data)) == (1, 2)  # type: ignore[arg-type]
    assert SERIALIZER.deserialize(bytearray(data)) == (1, 2)  # type: ignore[arg-type]


# ---- tag escaping --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({TAG: "datetime", "v": "2020-01-01T00:00:00"}, id="looks-like-datetime"),
        pytest.param({TAG: "tuple", "v": [1, 2]}, id="looks-like-tuple"),
        pytest.param({TAG: "dict", "v": [["a", 1]]}, id="looks-like-escaped-dict"),
        pytest.param({TAG: 1}, id="tag-key-only"),
        pytest.param({TAG: {TAG: {TAG: None}}}, id="nested-tag-keys"),
        pytest.param([{"v": 1, TAG: "x"}], id="in-a-list"),
        pytest.param({"a": {TAG: "enum", "type": "os:system", "v": "ls"}}, id="no-code-runs"),
    ],
)
def test_user_dicts_with_the_tag_key_round_trip(value: Any) -> None:
    assert_identical(round_trip(value), value)


# ---- hypothesis ----------------------------------------------------------------------

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)),
)
zones = st.timezones() | fixed_offsets
hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.none() | zones)
    | st.dates()
    | st.times(timezones=st.none() | zones)
    | st.timedeltas()
    | st.uuids()
    | st.decimals(allow_nan=False)
)
hashables = st.recursive(
    hashable_scalars,
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=3),
    max_leaves=5,
)
values = st.recursive(
    hashable_scalars | st.binary().map(bytearray),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text() | st.just(TAG), children, max_size=4)
        | st.dictionaries(hashables, children, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200)
@given(values)
def test_nested_values_round_trip(value: Any) -> None:
    assert_identical(round_trip(value), value)


# ---- exceptions ----------------------------------------------------------------------


class NeedsTwoArguments(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code


def test_exception_round_trip() -> None:
    decoded = round_trip(ValueError("bad value", 42))
    assert type(decoded) is ValueError
    assert decoded.args == ("bad value", 42)


def test_horae_exceptions_are_referenced_by_public_name() -> None:
    data = serialize_exception(SerializationError("nope"))
    assert data == {
        "type": "horae:SerializationError",
        "type_name": "horae._exceptions.SerializationError",
        "message": "nope",
        "args": ["nope"],
    }
    json.dumps(data)
    decoded = deserialize_exception(data)
    assert type(decoded) is SerializationError
    assert decoded.args == ("nope",)


def test_exception_with_other_constructor_is_rebuilt_without_init() -> None:
    decoded = deserialize_exception(serialize_exception(NeedsTwoArguments(404, "not found")))
    assert type(decoded) is NeedsTwoArguments
    assert str(decoded) == "404: not found"


def test_exception_with_unencodable_args_is_rebuilt_from_message() -> None:
    data = serialize_exception(KeyError(object()))
    assert "args" not in data
    decoded = deserialize_exception(data)
    assert type(decoded) is KeyError
    assert re.fullmatch(r"<object object at 0x[0-9a-f]+>", decoded.args[0])


def test_exception_of_local_class_cannot_be_rebuilt() -> None:
    class LocalError(Exception):
        pass

    data = serialize_exception(LocalError("lost"))
    assert data["type"] is None
    assert data["type_name"].endswith(
        "test_exception_of_local_class_cannot_be_rebuilt.<locals>.LocalError"
    )
    with pytest.raises(
        DeserializationError,
        match=r"^cannot rebuild the exception '.*<locals>\.LocalError': its class is not "
        r"importable \(defined inside a function\?\); only its message was kept: 'lost'$",
    ):
        deserialize_exception(data)
    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize the exception LocalError\('lost'\): its class "
        r"test_json\.test_exception_of_local_class_cannot_be_rebuilt\.<locals>\.LocalError is "
        r"not importable, so it could not be rebuilt; define the exception class at module "
        r"level \(at value\[0\]\)$",
    ):
        SERIALIZER.serialize([LocalError("lost")])


def test_exception_reference_to_a_non_exception() -> None:
    with pytest.raises(
        DeserializationError,
        match=r"^the exception type reference 'builtins:dict' resolves to <class 'dict'>, "
        r"which is not an exception type$",
    ):
        deserialize_exception({"type": "builtins:dict", "message": "x"})


def test_deserialize_exception_needs_a_mapping() -> None:
    with pytest.raises(
        DeserializationError, match=r"^an exception description must be a mapping, not list$"
    ):
        deserialize_exception([])  # type: ignore[arg-type]


# ---- errors: serialize ---------------------------------------------------------------

SUPPORTED_TEXT = (
    r"\(supported: None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set, "
    r"frozenset, datetime, date, time, timedelta, UUID, Decimal, enums, time zones, "
    r"triggers, calendars, RetryPolicy and exceptions\); convert it to one of these, or use "
    r"PickleSerializer \(for trusted stores only\)"
)


class Point(NamedTuple):
    x: int
    y: int


class OddZone(tzinfo):
    def utcoffset(self, dt: Any) -> timedelta:
        return timedelta(0)

    def dst(self, dt: Any) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: Any) -> str:
        return "odd"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            object(),
            rf"^cannot serialize <object object at 0x[0-9a-f]+> of type builtins\.object with "
            rf"JSON {SUPPORTED_TEXT}$",
            id="object",
        ),
        pytest.param(
            {"a": [1, (2, object())]},
            r"^cannot serialize <object object at 0x[0-9a-f]+> of type builtins\.object .* "
            r"\(at value\['a'\]\[1\]\[1\]\)$",
            id="nested-path",
        ),
        pytest.param(
            {(1, 2): {3: [object()]}},
            r"^cannot serialize <object object .* \(at value\[\(1, 2\)\]\[3\]\[0\]\)$",
            id="nested-path-non-string-keys",
        ),
        pytest.param(
            OrderedDict(a=1),
            rf"^cannot serialize OrderedDict\(.*\) of type collections\.OrderedDict with JSON "
            rf"{SUPPORTED_TEXT}$",
            id="dict-subclass",
        ),
        pytest.param(
            Point(1, 2),
            r"^cannot serialize Point\(x=1, y=2\) of type test_json\.Point with JSON",
            id="namedtuple",
        ),
        pytest.param(
            OddZone(),
            r"^cannot serialize <test_json\.OddZone object at 0x[0-9a-f]+> of type "
            r"test_json\.OddZone with JSON",
            id="custom-tzinfo",
        ),
        pytest.param(
            {"when": __import__("datetime").datetime(2024, 1, 1, tzinfo=OddZone())},
            r"^cannot serialize the time zone <test_json\.OddZone object at 0x[0-9a-f]+> of "
            r"type OddZone; use zoneinfo\.ZoneInfo\('Area/City'\) or datetime\.timezone "
            r"\(at value\['when'\]\)$",
            id="datetime-with-custom-tzinfo",
        ),
        pytest.param(
            RetryPolicy(retry_on=(type("Local", (Exception,), {}),)),
            r"^cannot serialize the retry policy: the exception type <class "
            r"'test_json\.Local'> in retry_on is not importable \(the reference "
            r"'test_json:Local' of <class 'test_json\.Local'> cannot be imported back: "
            r"cannot resolve the callable reference 'test_json:Local'",
            id="retry-policy-local-exception",
        ),
    ],
)
def test_unsupported_values(value: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        SERIALIZER.serialize(value)


def test_enum_of_local_class() -> None:
    class Color(enum.Enum):
        red = 1

    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize the enum member <Color\.red: 1>: cannot reference <enum "
        r"'Color'>: it is defined inside test_enum_of_local_class\(\) \(qualified name "
        r"'test_enum_of_local_class\.<locals>\.Color'\), so other processes cannot import "
        r"it; define it at module level \(with def\) and pass that function instead "
        r"\(at value\[0\]\)$",
    ):
        SERIALIZER.serialize([Color.red])


def test_zoneinfo_without_key() -> None:
    source = importlib.resources.files("tzdata.zoneinfo.Europe") / "Berlin"
    with source.open("rb") as file:
        zone = ZoneInfo.from_file(file)
    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize the time zone .*: it was loaded from a file and has no IANA "
        r"key; use ZoneInfo\('Area/City'\)$",
    ):
        SERIALIZER.serialize(zone)


def test_circular_value() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize a value that contains itself or is nested too deeply$",
    ):
        SERIALIZER.serialize(value)


def test_integer_too_long_for_json() -> None:
    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize the value as JSON: Exceeds the limit \(4300 digits\)",
    ):
        SERIALIZER.serialize(10**5000)


# ---- errors: deserialize -------------------------------------------------------------


def tagged(**fields: Any) -> bytes:
    return json.dumps({TAG: fields.pop("tag"), **fields}).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            b"not json",
            r"^cannot decode b'not json' as JSON: Expecting value: line 1 column 1 \(char 0\)$",
            id="not-json",
        ),
        pytest.param(
            b'{"a": [1, 2',
            r"^cannot decode b'\{\"a\": \[1, 2' as JSON: Expecting ',' delimiter",
            id="truncated",
        ),
        pytest.param(
            b'"\xc3\x28"',
            r"^cannot decode b'\"\\xc3\(\"' as JSON: 'utf-8' codec can't decode byte 0xc3",
            id="invalid-utf8",
        ),
        pytest.param(
            b"[" * 100_000,
            r"^cannot decode b'\[{60}'\.\.\. as JSON: maximum recursion depth exceeded",
            id="too-deep",
        ),
        pytest.param(
            tagged(tag="mystery", v=1),
            r"^unknown type tag 'mystery' in stored JSON \(written by a newer version of "
            r"horae\?\)$",
            id="unknown-tag",
        ),
        pytest.param(
            tagged(tag=["list"], v=1),
            r"^unknown type tag \['list'\] in stored JSON",
            id="non-string-tag",
        ),
        pytest.param(
            tagged(tag="timedelta", v="soon"),
            r"^invalid 'timedelta' value in stored JSON: \{'__horae__': 'timedelta', 'v': "
            r"'soon'\} \(ValueError: too many values to unpack \(expected 3\)\)$",
            id="malformed-payload",
        ),
        pytest.param(
            tagged(tag="datetime"),
            r"^invalid 'datetime' value in stored JSON: \{'__horae__': 'datetime'\} "
            r"\(KeyError: 'v'\)$",
            id="missing-payload",
        ),
        pytest.param(
            tagged(tag="bytes", v="***"),
            r"^invalid 'bytes' value in stored JSON: .* \(Error: Only base64 data is allowed\)$",
            id="bad-base64",
        ),
        pytest.param(
            tagged(tag="float", v="1.5"),
            r"^invalid 'float' value in stored JSON: .* \(ValueError: invalid float '1\.5'\)$",
            id="bad-float",
        ),
        pytest.param(
            tagged(tag="zone", v="Mars/Olympus_Mons"),
            r"^unknown time zone 'Mars/Olympus_Mons' in stored data; install or update the "
            r"'tzdata' package$",
            id="unknown-zone",
        ),
        pytest.param(
            tagged(tag="zone", v=[1]),
            r"^invalid time zone \[1\] in stored data$",
            id="malformed-zone",
        ),
        pytest.param(
            tagged(tag="enum", type="horae_no_such_module:Color", v=1),
            r"^cannot import module 'horae_no_such_module' of the callable reference "
            r"'horae_no_such_module:Color'",
            id="enum-module-missing",
        ),
        pytest.param(
            tagged(tag="enum", type="builtins:dict", v=1),
            r"^the enum reference 'builtins:dict' resolves to <class 'dict'>, which is not "
            r"an enum$",
            id="enum-reference-not-an-enum",
        ),
        pytest.param(
            tagged(tag="enum", type="horae:CoalescePolicy", v="sometimes"),
            r"^'sometimes' is not a member of the enum 'horae:CoalescePolicy' \(was the member "
            r"renamed or removed\?\)$",
            id="enum-member-missing",
        ),
        pytest.param(
            tagged(tag="enum", type=42, v=1),
            r"^invalid enum reference 42: expected a string$",
            id="enum-reference-not-a-string",
        ),
        pytest.param(
            tagged(tag="trigger", v={"type": "sundial", "version": 1}),
            r"^unknown trigger type 'sundial' in stored state",
            id="unknown-trigger",
        ),
        pytest.param(
            tagged(tag="calendar", v={"type": "lunar", "version": 1}),
            r"^unknown calendar type 'lunar' in stored state",
            id="unknown-calendar",
        ),
        pytest.param(
            tagged(tag="retry", v={"max_attempts": 3}),
            r"^invalid 'retry' value in stored JSON: .* \(KeyError: 'backoff'\)$",
            id="malformed-retry-policy",
        ),
    ],
)
def test_undecodable_data(data: bytes, message: str) -> None:
    with pytest.raises(DeserializationError, match=message):
        SERIALIZER.deserialize(data)


def test_deserialize_needs_bytes() -> None:
    with pytest.raises(
        DeserializationError, match=r"^JSONSerializer\.deserialize\(\) expects bytes, not str$"
    ):
        SERIALIZER.deserialize('{"a": 1}')  # type: ignore[arg-type]


def test_repr() -> None:
    assert repr(SERIALIZER) == "JSONSerializer()"
