"""Records as Redis hashes, script arguments, and readers for the scripts' flat replies.

A record (see :mod:`horae.serializers._records`) becomes a hash with one field per
record key: times as decimal epoch microseconds (what the Lua scripts compare and use
as sorted-set scores), booleans as ``"1"``/``"0"``, JSON fields as JSON text, payloads
as the serializer's bytes; ``None`` values are left out. Reading back hands the hash to
the record layer, which accepts these shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias
from uuid import UUID

import attrs

from horae._structures import Job
from horae.serializers import Serializer
from horae.serializers._records import job_to_dict, to_epoch_us

#: What the scripts take as arguments (redis-py encodes str as UTF-8, bytes as they are).
Arg: TypeAlias = str | bytes

_MICROSECOND = timedelta(microseconds=1)


def us(value: datetime) -> str:
    """An aware datetime as the decimal epoch microseconds the scripts compare."""
    return str(to_epoch_us(value))


def opt_us(value: datetime | None) -> str:
    """Like :func:`us`; ``None`` becomes the empty string the scripts read as absent."""
    return "" if value is None else us(value)


def to_hash(record: Mapping[str, Any]) -> dict[str, Arg]:
    """Encode a record as hash fields (``None`` values are left out)."""
    fields: dict[str, Arg] = {}
    for name, value in record.items():
        if value is None:
            continue
        if isinstance(value, bool):
            fields[name] = "1" if value else "0"
        elif isinstance(value, datetime):
            fields[name] = us(value)
        elif isinstance(value, (bytes, str)):
            fields[name] = value
        elif isinstance(value, Mapping):
            fields[name] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, (int, UUID)):
            fields[name] = str(value)
        elif isinstance(value, float):
            fields[name] = repr(value)
        else:  # pragma: no cover - the record layer only produces the types above
            raise TypeError(f"cannot store {name}={value!r} in a Redis hash")
    return fields


def from_hash(raw: Mapping[bytes, bytes], kinds: Mapping[str, str]) -> dict[str, Any]:
    """Decode hash fields into a record for ``*_from_dict``."""
    record: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = raw.get(name.encode())
        if value is None:
            continue
        if kind == "time" and value.lstrip(b"-").isdigit():
            record[name] = int(value)
        else:
            record[name] = value  # malformed values are reported by *_from_dict
    return record


def flat_pairs(fields: Mapping[str, Arg]) -> list[Arg]:
    """``[count, field, value, ...]`` as the scripts read a variable set of fields."""
    args: list[Arg] = [str(len(fields))]
    for name, value in fields.items():
        args += (name, value)
    return args


def job_group(job: Job) -> str:
    """The group of a pending job: the jobs that the same running limits hold back.

    The schedule-level limit only applies to jobs made by a schedule; it is part of the
    key so that one group never mixes jobs with different limits.
    """
    limit = job.max_running_jobs if job.schedule_id is not None else None
    return json.dumps([job.task_id, job.schedule_id, limit], separators=(",", ":"))


def job_args(job: Job, serializer: Serializer) -> list[Arg]:
    """The script arguments that insert *job* as a pending job.

    Raises:
        SerializationError: when a payload of the job cannot be encoded.
    """
    pending = attrs.evolve(job, acquired_by=None, acquired_until=None, started_at=None)
    fields = to_hash(job_to_dict(pending, serializer))
    # release_job and the store's own results compute expires_at inside the script
    fields["rexp_us"] = str(job.result_expiration_time // _MICROSECOND)
    return [
        str(job.id),
        job_group(job),
        us(job.start_time),
        opt_us(job.start_deadline),
        opt_us(job.scheduled_fire_time),
        *flat_pairs(fields),
    ]


class Reply:
    """Reads a script's flat reply from the front, one item at a time."""

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = items
        self._index = 0

    def __bool__(self) -> bool:
        return self._index < len(self._items)

    def raw(self) -> bytes:
        item = self._items[self._index]
        self._index += 1
        return item if isinstance(item, bytes) else str(item).encode()

    def integer(self) -> int:
        return int(self.raw())

    def text(self) -> str:
        return self.raw().decode()

    def opt_text(self) -> str | None:
        """A string, or ``None`` for the empty string the scripts send for absent."""
        value = self.raw()
        return value.decode() if value else None

    def opt_integer(self) -> int | None:
        value = self.raw()
        return int(value) if value else None

    def hash(self) -> dict[bytes, bytes]:
        """A hash sent as ``count, field, value, ...`` (count = fields + values)."""
        count = self.integer()
        items = [self.raw() for _ in range(count)]
        return dict(zip(items[::2], items[1::2], strict=True))

    def rest(self) -> dict[bytes, bytes]:
        """Every remaining item, read as ``field, value, ...`` pairs."""
        items = [self.raw() for _ in range(len(self._items) - self._index)]
        return dict(zip(items[::2], items[1::2], strict=True))

    def hashes(self) -> Iterator[dict[bytes, bytes]]:
        """``n`` hashes, each as :meth:`hash` reads them."""
        for _ in range(self.integer()):
            yield self.hash()
