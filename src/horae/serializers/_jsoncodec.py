"""The tagged JSON encoding behind JSONSerializer: Python values <-> JSON-safe trees.

Plain JSON values stay as they are (``None``, ``bool``, ``int``, finite ``float``, ``str``,
``list``, and ``dict`` with ``str`` keys). Every other supported value becomes a *tagged
object*: a JSON object with the reserved key ``"__horae__"`` naming the type, and the
type's payload beside it::

    {"__horae__": "tuple", "v": [1, 2]}
    {"__horae__": "datetime", "v": "2024-03-31T02:30:00+02:00", "tz": "Europe/Berlin"}

A user ``dict`` whose keys are not all strings, or that itself contains the key
``"__horae__"``, is written as ``{"__horae__": "dict", "v": [[key, value], ...]}`` (keys
and values encoded in turn), so user data can never be mistaken for a tagged object and
any hashable supported key type round-trips.

Tags and payloads:

=============  ===============================================================
``tuple``      ``v``: list of items
``set``        ``v``: list of items (also ``frozenset``)
``dict``       ``v``: list of ``[key, value]`` pairs
``bytes``      ``v``: base64 text (also ``bytearray``)
``float``      ``v``: ``"nan"``, ``"inf"`` or ``"-inf"``
``datetime``   ``v``: ISO 8601 (with offset if aware); ``tz``: zone; ``fold``: 1
``date``       ``v``: ISO 8601
``time``       ``v``: ISO 8601; ``tz``: zone; ``fold``: 1
``timedelta``  ``v``: ``[days, seconds, microseconds]``
``uuid``       ``v``: canonical text
``decimal``    ``v``: ``str(value)``
``zone``       ``v``: zone (``ZoneInfo`` key, or ``[offset_us, name]`` for a fixed offset)
``enum``       ``type``: reference of the enum class; ``v``: the member's value
``trigger``    ``v``: ``Trigger.to_state()`` (versioned)
``calendar``   ``v``: ``Calendar.to_state()`` (versioned)
``retry``      ``v``: RetryPolicy fields, exception types by reference
``exception``  ``v``: see :func:`serialize_exception`
=============  ===============================================================

Decoding imports the modules that enum, retry-policy and exception references name (and
only accepts enum classes and exception types from them), so unlike pickle it never runs
arbitrary code from the data, but it does import the modules the data names.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from horae import _structures
from horae._exceptions import DeserializationError, SerializationError
from horae._marshalling import check_reference, ref_to_callable
from horae.calendars import Calendar
from horae.triggers import Trigger

#: The reserved key that marks a tagged object.
TAG = "__horae__"

_MICROSECOND = timedelta(microseconds=1)
_SUPPORTED = (
    "None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset, "
    "datetime, date, time, timedelta, UUID, Decimal, enums, time zones, triggers, "
    "calendars, RetryPolicy and exceptions"
)


class _EncodeError(Exception):
    """An unsupported value, with the path (outermost last) at which it was found."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---- references ----------------------------------------------------------------------


def type_ref(cls: type) -> str:
    """Return the stable reference of the class *cls* (checked to import back).

    horae's own classes are referred to through the public ``horae`` namespace
    (``"horae:CoalescePolicy"``) where it exports them, so that moving a private module
    never breaks stored data.
    """
    if cls.__module__.startswith("horae."):
        import horae

        if getattr(horae, cls.__name__, None) is cls:
            return f"horae:{cls.__name__}"
    return _checked_ref(cls)


@lru_cache(maxsize=512)
def _checked_ref(cls: Any) -> str:
    # Checking a reference imports it; cache the answer per class (enum members and
    # exception types are encoded often, from few classes).
    return check_reference(cls)


def _import_class(ref: object, base: type, what: str) -> Any:
    if not isinstance(ref, str):
        raise DeserializationError(f"invalid {what} reference {ref!r}: expected a string")
    obj = ref_to_callable(ref)
    if not isinstance(obj, type) or not issubclass(obj, base):
        raise DeserializationError(
            f"the {what} reference {ref!r} resolves to {_short_repr(obj)}, which is not "
            f"{'an' if what[0] in 'aeiou' else 'a'} {what}"
        )
    return obj


# ---- zones ---------------------------------------------------------------------------


def encode_zone(tz: tzinfo) -> str | list[Any]:
    """Encode a zone: a ``ZoneInfo`` as its key, a fixed offset as ``[offset_us, name]``."""
    if isinstance(tz, ZoneInfo):
        if tz.key is None:
            raise _EncodeError(
                f"cannot serialize the time zone {tz!r}: it was loaded from a file and has "
                f"no IANA key; use ZoneInfo('Area/City')"
            )
        return tz.key
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        # Only keep a name the user gave: timezone(offset) names itself "UTC+hh:mm".
        custom_name = None if name == timezone(offset).tzname(None) else name
        return [offset // _MICROSECOND, custom_name]
    raise _EncodeError(
        f"cannot serialize the time zone {_short_repr(tz)} of type {type(tz).__qualname__}; "
        f"use zoneinfo.ZoneInfo('Area/City') or datetime.timezone"
    )


def decode_zone(value: object) -> tzinfo:
    """The inverse of :func:`encode_zone`."""
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DeserializationError(
                f"unknown time zone {value!r} in stored data; install or update the "
                f"'tzdata' package"
            ) from exc
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], int):
        offset = timedelta(microseconds=value[0])
        return timezone(offset) if value[1] is None else timezone(offset, value[1])
    raise DeserializationError(f"invalid time zone {value!r} in stored data")


# ---- encoding ------------------------------------------------------------------------


def _encode_dict(value: Mapping[Any, Any]) -> dict[str, Any]:
    key: Any = None
    # One try around the loops (not one per item): the loop variable tells where a
    # nested value failed.
    try:
        if TAG not in value and all(type(key) is str for key in value):
            result: dict[str, Any] = {}
            for key, item in value.items():
                result[key] = encode(item)
            return result
        pairs: list[list[Any]] = []
        for key, item in value.items():
            pairs.append([encode(key), encode(item)])
        return {TAG: "dict", "v": pairs}
    except _EncodeError as exc:
        exc.path.append(f"[{_short_repr(key)}]")
        raise


def _encode_items(items: Any) -> list[Any]:
    result: list[Any] = []
    try:
        for item in items:
            result.append(encode(item))  # noqa: PERF401 -- len(result) tells where it failed
    except _EncodeError as exc:
        exc.path.append(f"[{len(result)}]")
        raise
    return result


def _encode_float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {TAG: "float", "v": repr(value)}


def _encode_datetime(value: datetime) -> dict[str, Any]:
    result: dict[str, Any] = {TAG: "datetime", "v": value.isoformat()}
    if value.tzinfo is not None:
        result["tz"] = encode_zone(value.tzinfo)
    if value.fold:
        result["fold"] = 1
    return result


def _encode_time(value: time) -> dict[str, Any]:
    result: dict[str, Any] = {TAG: "time", "v": value.isoformat()}
    if value.tzinfo is not None:
        result["tz"] = encode_zone(value.tzinfo)
    if value.fold:
        result["fold"] = 1
    return result


#: Encoders by exact type; subclasses of these (other than the ones below) are refused,
#: because decoding would silently turn them into the base type.
_ENCODERS: dict[type, Callable[[Any], Any]] = {
    list: _encode_items,
    tuple: lambda value: {TAG: "tuple", "v": _encode_items(value)},
    set: lambda value: {TAG: "set", "v": _encode_items(value)},
    frozenset: lambda value: {TAG: "frozenset", "v": _encode_items(value)},
    dict: _encode_dict,
    MappingProxyType: _encode_dict,
    float: _encode_float,
    bytes: lambda value: {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")},
    bytearray: lambda value: {
        TAG: "bytearray",
        "v": base64.b64encode(value).decode("ascii"),
    },
    datetime: _encode_datetime,
    date: lambda value: {TAG: "date", "v": value.isoformat()},
    time: _encode_time,
    timedelta: lambda value: {
        TAG: "timedelta",
        "v": [value.days, value.seconds, value.microseconds],
    },
    UUID: lambda value: {TAG: "uuid", "v": str(value)},
    Decimal: lambda value: {TAG: "decimal", "v": str(value)},
    ZoneInfo: lambda value: {TAG: "zone", "v": encode_zone(value)},
    timezone: lambda value: {TAG: "zone", "v": encode_zone(value)},
    _structures.RetryPolicy: lambda value: {TAG: "retry", "v": retry_policy_to_state(value)},
}
_PLAIN = (str, int, bool, type(None))


def encode(value: Any) -> Any:
    """Turn *value* into a JSON-safe tree (see the module docstring for the format).

    Raises:
        _EncodeError: for unsupported values (turned into SerializationError by callers).
    """
    value_type = type(value)
    if value_type in _PLAIN:
        return value
    encoder = _ENCODERS.get(value_type)
    if encoder is not None:
        return encoder(value)
    if isinstance(value, enum.Enum):
        try:
            ref = type_ref(value_type)
        except SerializationError as exc:
            raise _EncodeError(f"cannot serialize the enum member {value!r}: {exc}") from exc
        return {TAG: "enum", "type": ref, "v": encode(value.value)}
    if isinstance(value, Trigger):
        return {TAG: "trigger", "v": encode(value.to_state())}
    if isinstance(value, Calendar):
        return {TAG: "calendar", "v": encode(value.to_state())}
    if isinstance(value, BaseException):
        data = serialize_exception(value)
        if data["type"] is None:
            raise _EncodeError(
                f"cannot serialize the exception {_short_repr(value)}: its class "
                f"{data['type_name']} is not importable, so it could not be rebuilt; define "
                f"the exception class at module level"
            )
        return {TAG: "exception", "v": data}
    raise _EncodeError(
        f"cannot serialize {_short_repr(value)} of type "
        f"{value_type.__module__}.{value_type.__qualname__} with JSON (supported: "
        f"{_SUPPORTED}); convert it to one of these, or use PickleSerializer (for "
        f"trusted stores only)"
    )


def encode_or_raise(value: Any) -> Any:
    """:func:`encode`, raising :exc:`~horae.SerializationError` naming where it failed."""
    try:
        return encode(value)
    except _EncodeError as exc:
        where = "".join(reversed(exc.path))
        message = exc.message if not where else f"{exc.message} (at value{where})"
        raise SerializationError(message) from exc.__cause__
    except RecursionError:
        raise SerializationError(
            "cannot serialize a value that contains itself or is nested too deeply"
        ) from None


# ---- decoding ------------------------------------------------------------------------


def _decode_float(obj: Mapping[str, Any]) -> float:
    if obj["v"] not in ("nan", "inf", "-inf"):
        raise ValueError(f"invalid float {obj['v']!r}")
    return float(obj["v"])


def _decode_datetime(obj: Mapping[str, Any]) -> datetime:
    value = datetime.fromisoformat(obj["v"])
    if "tz" in obj:
        value = value.replace(tzinfo=decode_zone(obj["tz"]))
    return value.replace(fold=obj.get("fold", 0))


def _decode_time(obj: Mapping[str, Any]) -> time:
    value = time.fromisoformat(obj["v"])
    if "tz" in obj:
        value = value.replace(tzinfo=decode_zone(obj["tz"]))
    return value.replace(fold=obj.get("fold", 0))


def _decode_timedelta(obj: Mapping[str, Any]) -> timedelta:
    days, seconds, microseconds = obj["v"]
    return timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _decode_enum(obj: Mapping[str, Any]) -> enum.Enum:
    enum_class = _import_class(obj["type"], enum.Enum, "enum")
    try:
        return enum_class(obj["v"])  # type: ignore[no-any-return]
    except ValueError as exc:
        raise DeserializationError(
            f"{obj['v']!r} is not a member of the enum {obj['type']!r} (was the member "
            f"renamed or removed?)"
        ) from exc


_DECODERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "tuple": lambda obj: tuple(obj["v"]),
    "set": lambda obj: set(obj["v"]),
    "frozenset": lambda obj: frozenset(obj["v"]),
    "dict": lambda obj: dict(obj["v"]),
    "bytes": lambda obj: base64.b64decode(obj["v"], validate=True),
    "bytearray": lambda obj: bytearray(base64.b64decode(obj["v"], validate=True)),
    "float": _decode_float,
    "datetime": _decode_datetime,
    "date": lambda obj: date.fromisoformat(obj["v"]),
    "time": _decode_time,
    "timedelta": _decode_timedelta,
    "uuid": lambda obj: UUID(obj["v"]),
    "decimal": lambda obj: Decimal(obj["v"]),
    "zone": lambda obj: decode_zone(obj["v"]),
    "enum": _decode_enum,
    "trigger": lambda obj: Trigger.from_state(obj["v"]),
    "calendar": lambda obj: Calendar.from_state(obj["v"]),
    "retry": lambda obj: retry_policy_from_state(obj["v"]),
    "exception": lambda obj: build_exception(obj["v"]),
}


def decode_object(obj: dict[str, Any]) -> Any:
    """Decode one JSON object whose members are already decoded (a ``json`` object hook).

    Raises:
        DeserializationError: for unknown tags and malformed payloads.
    """
    if TAG not in obj:
        return obj
    tag = obj[TAG]
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        raise DeserializationError(
            f"unknown type tag {tag!r} in stored JSON (written by a newer version of horae?)"
        )
    try:
        return decoder(obj)
    except DeserializationError:
        raise
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        binascii.Error,
        InvalidOperation,
        RecursionError,
    ) as exc:
        raise DeserializationError(
            f"invalid {tag!r} value in stored JSON: {_short_repr(obj)} "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def decode(tree: Any) -> Any:
    """Decode a JSON-safe tree made by :func:`encode` (the inverse of :func:`encode`)."""
    if isinstance(tree, list):
        return [decode(item) for item in tree]
    if isinstance(tree, dict):
        return decode_object({key: decode(item) for key, item in tree.items()})
    return tree


# ---- retry policies ------------------------------------------------------------------


def retry_policy_to_state(policy: _structures.RetryPolicy) -> dict[str, Any]:
    """Return the JSON-safe state of *policy*: durations in seconds, types by reference.

    Raises:
        _EncodeError: when an exception type in ``retry_on`` cannot be imported back.
    """
    return {
        "max_attempts": policy.max_attempts,
        "backoff": duration_to_seconds(policy.backoff),
        "max_backoff": duration_to_seconds(policy.max_backoff),
        "jitter": policy.jitter,
        "retry_on": [_exception_type_ref(exc_type) for exc_type in policy.retry_on],
    }


def _exception_type_ref(exc_type: type[BaseException]) -> str:
    try:
        return type_ref(exc_type)
    except SerializationError as exc:
        raise _EncodeError(
            f"cannot serialize the retry policy: the exception type {exc_type!r} in "
            f"retry_on is not importable ({exc})"
        ) from exc


def retry_policy_from_state(state: Mapping[str, Any]) -> _structures.RetryPolicy:
    """The inverse of :func:`retry_policy_to_state`."""
    return _structures.RetryPolicy(
        max_attempts=state["max_attempts"],
        backoff=seconds_to_duration(state["backoff"]),
        max_backoff=seconds_to_duration(state["max_backoff"]),
        jitter=state["jitter"],
        retry_on=tuple(
            _import_class(ref, BaseException, "exception type") for ref in state["retry_on"]
        ),
    )


def duration_to_seconds(value: timedelta) -> int | float:
    """A duration as seconds: an ``int`` when whole, else a ``float`` (exact to the
    microsecond for durations below about 280 years)."""
    microseconds = value // _MICROSECOND
    if microseconds % 1_000_000 == 0:
        return microseconds // 1_000_000
    return microseconds / 1_000_000


def seconds_to_duration(value: object) -> timedelta:
    """The inverse of :func:`duration_to_seconds`; also accepts a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, float) and math.isfinite(value):
        return timedelta(microseconds=round(value * 1_000_000))
    raise DeserializationError(f"invalid duration {value!r}: expected a number of seconds")


# ---- exceptions ----------------------------------------------------------------------


def serialize_exception(exc: BaseException) -> dict[str, Any]:
    """Describe *exc* as a JSON-safe dict, so that it can be rebuilt best-effort later.

    The dict has ``"type"`` (the exception class's reference, or ``None`` when the class
    cannot be imported, e.g. one defined inside a function), ``"type_name"`` (its
    ``module.qualname`` for display), ``"message"`` (``str(exc)``) and, when its
    arguments can be encoded, ``"args"`` (encoded as by JSONSerializer). Tracebacks,
    causes and custom attributes are not kept.

    Args:
        exc: the exception.

    Returns:
        A JSON-safe dict for :func:`deserialize_exception`.
    """
    exc_type = type(exc)
    try:
        ref: str | None = type_ref(exc_type)
    except SerializationError:
        ref = None
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the rest of the result
        message = f"<unprintable {exc_type.__qualname__}>"
    data: dict[str, Any] = {
        "type": ref,
        "type_name": f"{exc_type.__module__}.{exc_type.__qualname__}",
        "message": message,
    }
    # best effort: without encodable arguments it is rebuilt from the message
    with contextlib.suppress(_EncodeError, RecursionError):
        data["args"] = encode(list(exc.args))
    return data


def build_exception(data: Mapping[str, Any]) -> BaseException:
    """Rebuild an exception from :func:`serialize_exception` output with decoded args."""
    ref = data.get("type")
    if ref is None:
        raise DeserializationError(
            f"cannot rebuild the exception {data.get('type_name')!r}: its class is not "
            f"importable (defined inside a function?); only its message was kept: "
            f"{data.get('message')!r}"
        )
    exc_type = _import_class(ref, BaseException, "exception type")
    args = tuple(data["args"]) if "args" in data else (data.get("message", ""),)
    try:
        return exc_type(*args)  # type: ignore[no-any-return]
    except Exception:
        # A constructor with another signature: create the object without running
        # __init__, as pickle does, and set the arguments it was raised with.
        try:
            exc = exc_type.__new__(exc_type, *args)
            exc.args = args
            return exc  # type: ignore[no-any-return]
        except Exception as exc2:
            raise DeserializationError(
                f"cannot rebuild the exception {ref!r} with the arguments {args!r}: "
                f"{type(exc2).__name__}: {exc2}"
            ) from exc2


def deserialize_exception(data: Mapping[str, Any]) -> BaseException:
    """Rebuild the exception that :func:`serialize_exception` described (best effort).

    The rebuilt exception has the original class and arguments where these can be
    imported and passed to the constructor (failing that, it is created without calling
    ``__init__``, as pickle does); it has no traceback.

    Args:
        data: the dict from :func:`serialize_exception`.

    Returns:
        The rebuilt exception.

    Raises:
        DeserializationError: when the class cannot be imported or instantiated.
    """
    if not isinstance(data, Mapping):
        raise DeserializationError(
            f"an exception description must be a mapping, not {type(data).__name__}"
        )
    decoded = dict(data)
    if "args" in decoded:
        decoded["args"] = decode(decoded["args"])
        if not isinstance(decoded["args"], list):
            raise DeserializationError(f"invalid exception arguments {decoded['args']!r}")
    return build_exception(decoded)
