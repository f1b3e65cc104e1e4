"""PickleSerializer: any picklable value, for stores that only trusted parties can write.

Loading a pickle can run arbitrary code, so never point a scheduler that uses this
serializer at a store that someone else can write to. :class:`JSONSerializer` is the
safe default.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from types import MappingProxyType
from typing import Any

from horae._exceptions import DeserializationError, SerializationError

from ._base import Serializer

__all__ = ["PickleSerializer"]


def _reduce_mappingproxy(proxy: MappingProxyType[Any, Any]) -> tuple[type, tuple[Any, ...]]:
    # horae freezes kwargs and metadata into mapping proxies, which pickle refuses; they
    # are stored as the dict they show (equal to the proxy, as with JSONSerializer).
    return dict, (dict(proxy),)


_DISPATCH_TABLE = copyreg.dispatch_table.copy()
_DISPATCH_TABLE[MappingProxyType] = _reduce_mappingproxy


class PickleSerializer(Serializer):
    """Encodes values with :mod:`pickle`.

    Use it when job arguments or results are objects that :class:`JSONSerializer` does
    not support. **Only with trusted stores**: unpickling runs code named in the data, so
    anyone who can write to the store can run code on every scheduler node. Classes and
    functions inside the values are pickled by reference, so they must be importable in
    every process (no lambdas, closures or classes defined inside functions). A
    ``MappingProxyType`` (as in ``Schedule.kwargs``) comes back as the ``dict`` it shows.

    Args:
        protocol: the pickle protocol (default: the highest this Python supports; use a
            lower one when older Pythons share the store).

    Example::

        >>> serializer = PickleSerializer()
        >>> serializer.deserialize(serializer.serialize({"answer": 42}))
        {'answer': 42}
    """

    __slots__ = ("protocol",)

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        given: object = protocol
        if type(given) is not int or not 0 <= given <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(
                f"invalid pickle protocol {protocol!r} (allowed: 0-{pickle.HIGHEST_PROTOCOL})"
            )
        self.protocol = protocol

    def serialize(self, obj: Any) -> bytes:
        """Pickle *obj*.

        Args:
            obj: the value to encode.

        Returns:
            The pickle.

        Raises:
            SerializationError: when *obj* cannot be pickled (the message names the
                reason pickle gave).
        """
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=self.protocol)
        pickler.dispatch_table = _DISPATCH_TABLE
        try:
            pickler.dump(obj)
        except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError
            raise SerializationError(
                f"cannot pickle {_short_repr(obj)} of type {type(obj).__qualname__}: "
                f"{type(exc).__name__}: {exc}; make the value picklable (module-level "
                f"classes and functions only) or convert it to plain data"
            ) from exc
        return buffer.getvalue()

    def deserialize(self, data: bytes) -> Any:
        """Unpickle *data* (which must come from a trusted store).

        Args:
            data: the pickle (``bytes``, ``bytearray`` or ``memoryview``).

        Returns:
            The value.

        Raises:
            DeserializationError: when *data* is not a valid pickle or refers to classes
                or functions that cannot be imported.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DeserializationError(
                f"PickleSerializer.deserialize() expects bytes, not {type(data).__name__}"
            )
        try:
            return pickle.loads(data)  # noqa: S301 -- documented: trusted stores only
        except Exception as exc:  # unpickling can raise nearly anything
            raise DeserializationError(
                f"cannot unpickle the stored data ({type(exc).__name__}: {exc}); it is "
                f"corrupt, or refers to a class or function that is no longer importable"
            ) from exc

    def __repr__(self) -> str:
        return f"PickleSerializer(protocol={self.protocol})"


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the pickling error
        text = f"<{type(value).__qualname__} object>"
    return text if len(text) <= 80 else text[:77] + "..."
