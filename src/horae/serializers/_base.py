"""The Serializer interface: turns values (job arguments, results, exceptions) into bytes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Serializer(ABC):
    """Encodes and decodes the values that persistent stores keep.

    Contract: ``deserialize(serialize(x)) == x`` for every value the serializer accepts;
    anything it cannot encode raises :exc:`~horae.SerializationError` (at the time the
    user hands it over, never later in the scheduler's loop); undecodable bytes raise
    :exc:`~horae.DeserializationError`. Triggers, datetimes, timedeltas, zones, UUIDs and
    enums are always supported.
    """

    __slots__ = ()

    @abstractmethod
    def serialize(self, obj: Any) -> bytes:
        """Encode *obj*."""

    @abstractmethod
    def deserialize(self, data: bytes) -> Any:
        """Decode *data*."""
