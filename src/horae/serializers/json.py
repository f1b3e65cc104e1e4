"""JSONSerializer: the default serializer of the persistent stores (no pickle, no code).

The encoding (plain JSON plus tagged objects for the other supported types) is
described in :mod:`horae.serializers._jsoncodec`; the exception helpers
:func:`serialize_exception` and :func:`deserialize_exception` are public here.
"""

from __future__ import annotations

import json
from typing import Any

from horae._exceptions import DeserializationError, SerializationError

from ._base import Serializer
from ._jsoncodec import decode_object, deserialize_exception, encode_or_raise, serialize_exception

__all__ = ["JSONSerializer", "deserialize_exception", "serialize_exception"]


class JSONSerializer(Serializer):
    """Encodes values as UTF-8 JSON, with tags for the types JSON lacks.

    Supported values, which round-trip to equal values of the same type: ``None``,
    ``bool``, ``int``, ``float`` (also NaN and infinities), ``str``, ``bytes``,
    ``bytearray``, ``list``, ``tuple`` (kept apart from lists), ``dict`` (with keys of any
    supported hashable type), ``set``, ``frozenset``, ``datetime`` (naive or aware; a
    ``ZoneInfo`` zone and the ``fold`` are kept), ``date``, ``time``, ``timedelta``,
    ``UUID``, ``Decimal``, enum members of importable enum classes, time zones
    (``ZoneInfo`` and ``datetime.timezone``), triggers and calendars (by their versioned
    state), :class:`~horae.RetryPolicy` (exception types by reference), and exceptions of
    importable classes (rebuilt best-effort, see :func:`serialize_exception`; they have
    no traceback and do not compare equal). A ``MappingProxyType`` is encoded as the dict
    it shows.

    Subclasses of the container and scalar types (``OrderedDict``, named tuples, ...) and
    every other type raise :exc:`~horae.SerializationError` that names the type and where
    in the value it was found: decoding them as their base type would change the value
    silently. Convert such values, or use :class:`~horae.serializers.PickleSerializer`.

    Decoding never runs code from the data, but it imports the modules that enum, retry
    policy and exception references name, and accepts only enum classes and exception
    types from them.

    Example::

        >>> serializer = JSONSerializer()
        >>> serializer.deserialize(serializer.serialize((1, {"a": b"x"})))
        (1, {'a': b'x'})
    """

    __slots__ = ()

    def serialize(self, obj: Any) -> bytes:
        """Encode *obj* as UTF-8 JSON.

        Args:
            obj: the value to encode.

        Returns:
            The JSON document as bytes.

        Raises:
            SerializationError: when *obj* contains an unsupported value (the message
                names its type and its position inside *obj*).
        """
        tree = encode_or_raise(obj)
        try:
            text = json.dumps(tree, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError as exc:  # an integer too long for int -> str conversion
            raise SerializationError(f"cannot serialize the value as JSON: {exc}") from exc
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates cannot be written as UTF-8; JSON escapes keep them intact.
            return json.dumps(tree, allow_nan=False, separators=(",", ":")).encode("ascii")

    def deserialize(self, data: bytes) -> Any:
        """Decode what :meth:`serialize` made.

        Args:
            data: the JSON document (``bytes``, ``bytearray`` or ``memoryview``).

        Returns:
            The value.

        Raises:
            DeserializationError: when *data* is not valid UTF-8 JSON, contains an unknown
                or malformed tagged value, or names a class that cannot be imported.
        """
        if isinstance(data, memoryview):  # type: ignore[unreachable]
            data = data.tobytes()  # type: ignore[unreachable]
        if not isinstance(data, (bytes, bytearray)):
            raise DeserializationError(
                f"JSONSerializer.deserialize() expects bytes, not {type(data).__name__}"
            )
        try:
            return json.loads(data, object_hook=decode_object)
        except DeserializationError:
            raise
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            preview = bytes(data[:60])
            raise DeserializationError(
                f"cannot decode {preview!r}{'...' if len(data) > 60 else ''} as JSON: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return "JSONSerializer()"
