"""Records: Task/Schedule/Job/JobResult <-> the flat dicts that persistent stores keep."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import attrs
import pytest
from _serializer_values import BERLIN, NEW_YORK, TRIGGER_KINDS, make_trigger

from horae import (
    CoalescePolicy,
    DeserializationError,
    JobOutcome,
    OverlapPolicy,
    SerializationError,
)
from horae._structures import Job, JobResult, RetryPolicy, Schedule, Task
from horae.serializers import JSONSerializer, PickleSerializer, Serializer
from horae.serializers._records import (
    JOB_FIELDS,
    JOB_RESULT_FIELDS,
    SCHEDULE_FIELDS,
    TASK_FIELDS,
    TIME_ZONES,
    from_epoch_us,
    job_from_dict,
    job_result_from_dict,
    job_result_to_dict,
    job_to_dict,
    schedule_from_dict,
    schedule_to_dict,
    task_from_dict,
    task_to_dict,
    to_epoch_us,
)

UTC = timezone.utc
T0 = datetime(2024, 7, 1, 8, 59, 59, 999999, tzinfo=BERLIN)
JOB_ID = UUID("12345678-1234-5678-1234-567812345678")
RETRY = RetryPolicy(
    max_attempts=4,
    backoff=timedelta(seconds=2.5),
    max_backoff=timedelta(minutes=10),
    jitter=False,
    retry_on=(KeyError, SerializationError),
)
SERIALIZERS = [
    pytest.param(JSONSerializer(), id="json"),
    pytest.param(PickleSerializer(), id="pickle"),
]


def full_task() -> Task:
    return Task(
        id="reports",
        func_ref="myapp.jobs:send_report",
        job_executor="processpool",
        max_running_jobs=3,
        misfire_grace_time=timedelta(seconds=30),
        job_timeout=timedelta(minutes=5, microseconds=1),
        retry=RETRY,
        metadata={"owner": "ops", "tags": ("a", "b")},
    )


def full_schedule(trigger: Any = None) -> Schedule:
    return Schedule(
        id="nightly",
        task_id="reports",
        trigger=trigger if trigger is not None else make_trigger("interval"),
        args=(1, "two", (3,)),
        kwargs={"when": T0, "ids": {JOB_ID}},
        paused=True,
        pause_reason="maintenance",
        paused_until=T0 + timedelta(days=1),
        job_executor="async",
        coalesce=CoalescePolicy.all,
        misfire_grace_time=timedelta(seconds=1),
        max_jitter=timedelta(milliseconds=250),
        max_running_jobs=2,
        job_timeout=timedelta(hours=1),
        retry=RETRY,
        overlap=OverlapPolicy.buffer_one,
        max_catchup=10,
        job_result_expiration_time=timedelta(days=7),
        metadata={"team": "data"},
        next_fire_time=T0 + timedelta(hours=1),
        last_fire_time=T0,
        acquired_by="node-1",
        acquired_until=T0 + timedelta(seconds=30),
    )


def full_job() -> Job:
    return Job(
        id=JOB_ID,
        task_id="reports",
        args=(b"bytes",),
        kwargs={"x": 1.5},
        schedule_id="nightly",
        scheduled_fire_time=T0,
        jitter=timedelta(milliseconds=120),
        start_time=T0 + timedelta(milliseconds=120),
        start_deadline=T0 + timedelta(seconds=30),
        job_executor="threadpool",
        max_running_jobs=1,
        job_timeout=timedelta(seconds=90),
        retry=RETRY,
        attempt=2,
        result_expiration_time=timedelta(hours=2),
        created_at=T0 - timedelta(seconds=1),
        metadata={"trace_id": "abc"},
        acquired_by="worker-7",
        acquired_until=T0 + timedelta(minutes=1),
        started_at=T0 + timedelta(seconds=1),
    )


def full_result(**changes: Any) -> JobResult:
    values: dict[str, Any] = {
        "job_id": JOB_ID,
        "task_id": "reports",
        "schedule_id": "nightly",
        "scheduled_fire_time": T0,
        "outcome": JobOutcome.error,
        "started_at": T0 + timedelta(seconds=1),
        "finished_at": T0 + timedelta(seconds=2),
        "expires_at": T0 + timedelta(hours=2),
        "attempt": 3,
        "return_value": {"rows": [1, 2]},
        "exception": ValueError("bad row", 2),
        "exception_type": "builtins.ValueError",
        "exception_message": "('bad row', 2)",
    }
    values.update(changes)
    return JobResult(**values)


#: (name, record field map, object factory, to_dict, from_dict)
KINDS: list[Any] = [
    pytest.param(TASK_FIELDS, full_task, task_to_dict, task_from_dict, id="task"),
    pytest.param(
        SCHEDULE_FIELDS, full_schedule, schedule_to_dict, schedule_from_dict, id="schedule"
    ),
    pytest.param(JOB_FIELDS, full_job, job_to_dict, job_from_dict, id="job"),
    pytest.param(
        JOB_RESULT_FIELDS, full_result, job_result_to_dict, job_result_from_dict, id="result"
    ),
]
ToDict = Callable[[Any, Serializer], dict[str, Any]]
FromDict = Callable[[Mapping[str, Any], Serializer], Any]


def assert_same_record_object(actual: Any, expected: Any) -> None:
    assert actual == expected
    for field in attrs.fields(type(expected)):
        value = getattr(expected, field.name)
        if isinstance(value, datetime):
            # times come back in their own zone
            assert getattr(actual, field.name).tzinfo is value.tzinfo
            assert getattr(actual, field.name).isoformat() == value.isoformat()


@pytest.mark.parametrize(("fields", "make", "to_dict", "from_dict"), KINDS)
def test_fields_cover_every_attribute(
    fields: Mapping[str, str], make: Callable[[], Any], to_dict: ToDict, from_dict: FromDict
) -> None:
    obj = make()
    assert list(fields) == [field.name for field in attrs.fields(type(obj))] + [TIME_ZONES]


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(("fields", "make", "to_dict", "from_dict"), KINDS)
def test_round_trip(
    serializer: Serializer,
    fields: Mapping[str, str],
    make: Callable[[], Any],
    to_dict: ToDict,
    from_dict: FromDict,
) -> None:
    obj = make()
    record = to_dict(obj, serializer)
    assert list(record) == list(fields)
    assert_same_record_object(from_dict(record, serializer), obj)


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(("fields", "make", "to_dict", "from_dict"), KINDS)
def test_defaults_round_trip(
    serializer: Serializer,
    fields: Mapping[str, str],
    make: Callable[[], Any],
    to_dict: ToDict,
    from_dict: FromDict,
) -> None:
    full = make()
    required = {
        field.name: getattr(full, field.name)
        for field in attrs.fields(type(full))
        if field.default is attrs.NOTHING
    }
    obj = type(full)(**required)
    assert from_dict(to_dict(obj, serializer), serializer) == obj


_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "uuid": (UUID,),
    "time": (datetime,),
    "seconds": (int, float),
    "enum": (str,),
    "json": (dict,),
    "payload": (bytes,),
}


@pytest.mark.parametrize(("fields", "make", "to_dict", "from_dict"), KINDS)
def test_record_values_have_their_kinds(
    fields: Mapping[str, str], make: Callable[[], Any], to_dict: ToDict, from_dict: FromDict
) -> None:
    record = to_dict(make(), JSONSerializer())
    for name, kind in fields.items():
        value = record[name]
        assert isinstance(value, _KIND_TYPES[kind]), (name, value)
        assert not isinstance(value, bool) or kind == "bool", name
        if kind == "time":
            assert isinstance(value, datetime)
            assert value.tzinfo is UTC
        if kind == "json":
            json.dumps(value)


def test_schedule_record_mapping() -> None:
    record = schedule_to_dict(full_schedule(), JSONSerializer())
    assert record["trigger"] == make_trigger("interval").to_state()
    assert record["coalesce"] == "all"
    assert record["overlap"] == "buffer_one"
    assert record["paused"] is True
    assert record["max_jitter"] == 0.25
    assert record["job_result_expiration_time"] == 7 * 86400
    assert record["next_fire_time"] == datetime(2024, 7, 1, 7, 59, 59, 999999, tzinfo=UTC)
    assert record["next_fire_time"].tzinfo is UTC
    assert record["time_zones"] == {
        "paused_until": "Europe/Berlin",
        "next_fire_time": "Europe/Berlin",
        "last_fire_time": "Europe/Berlin",
        "acquired_until": "Europe/Berlin",
    }
    assert record["retry"] == {
        "max_attempts": 4,
        "backoff": 2.5,
        "max_backoff": 600,
        "jitter": False,
        "retry_on": ["builtins:KeyError", "horae:SerializationError"],
    }
    assert json.loads(record["args"]) == {
        "__horae__": "tuple",
        "v": [1, "two", {"__horae__": "tuple", "v": [3]}],
    }


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_schedule_with_every_trigger_kind(kind: str) -> None:
    schedule = full_schedule(make_trigger(kind))
    record = schedule_to_dict(schedule, JSONSerializer())
    json.dumps(record["trigger"])
    assert schedule_from_dict(record, JSONSerializer()).trigger == schedule.trigger


def _as_text_row(record: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """What a store without native types (SQLite, Redis) hands back."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        kind = fields[name]
        if value is None:
            row[name] = None
        elif kind == "time":
            row[name] = value.isoformat()
        elif kind == "uuid":
            row[name] = str(value).encode()
        elif kind == "bool":
            row[name] = int(value)
        elif kind == "json":
            row[name] = json.dumps(value)
        elif kind in ("int", "seconds"):
            row[name] = str(value)
        elif kind == "payload":
            row[name] = memoryview(value)
        else:
            row[name] = value.encode()
    return row


@pytest.mark.parametrize(("fields", "make", "to_dict", "from_dict"), KINDS)
def test_from_dict_accepts_driver_representations(
    fields: Mapping[str, str], make: Callable[[], Any], to_dict: ToDict, from_dict: FromDict
) -> None:
    serializer = JSONSerializer()
    obj = make()
    record = to_dict(obj, serializer)
    assert from_dict(_as_text_row(record, fields), serializer) == obj
    # numeric times (epoch microseconds) and naive UTC datetimes (sqlite3, pymongo)
    numeric = {
        name: to_epoch_us(value) if fields[name] == "time" and value is not None else value
        for name, value in record.items()
    }
    assert from_dict(numeric, serializer) == obj
    naive = {
        name: value.replace(tzinfo=None) if fields[name] == "time" and value else value
        for name, value in record.items()
    }
    assert from_dict(naive, serializer) == obj


def test_from_dict_ignores_unknown_keys_and_defaults_missing_ones() -> None:
    serializer = JSONSerializer()
    record = task_to_dict(full_task(), serializer)
    record["store_version"] = 7
    del record["retry"]
    record["metadata"] = None
    task = task_from_dict(record, serializer)
    assert task == attrs.evolve(full_task(), retry=None, metadata={})


def test_times_in_a_dst_fold_round_trip() -> None:
    first = datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK)
    second = first.replace(fold=1)
    schedule = attrs.evolve(full_schedule(), last_fire_time=first, next_fire_time=second)
    record = schedule_to_dict(schedule, JSONSerializer())
    assert record["next_fire_time"] - record["last_fire_time"] == timedelta(hours=1)
    loaded = schedule_from_dict(record, JSONSerializer())
    assert loaded == schedule
    assert (loaded.last_fire_time, loaded.next_fire_time) == (first, second)
    assert loaded.next_fire_time is not None
    assert loaded.next_fire_time.fold == 1


def test_nonexistent_wall_time_comes_back_as_the_real_one() -> None:
    in_gap = datetime(2024, 3, 31, 2, 30, tzinfo=BERLIN)  # 02:00-03:00 does not exist
    record = schedule_to_dict(
        attrs.evolve(full_schedule(), next_fire_time=in_gap), JSONSerializer()
    )
    loaded = schedule_from_dict(record, JSONSerializer())
    assert loaded.next_fire_time == datetime(2024, 3, 31, 3, 30, tzinfo=BERLIN)


def test_time_field_updated_alone_is_shown_in_the_recorded_zone() -> None:
    record = schedule_to_dict(full_schedule(), JSONSerializer())
    record["next_fire_time"] = datetime(2025, 1, 1, 12, tzinfo=UTC)  # a store's UPDATE
    loaded = schedule_from_dict(record, JSONSerializer())
    assert loaded.next_fire_time is not None
    assert loaded.next_fire_time.isoformat() == "2025-01-01T13:00:00+01:00"


@pytest.mark.parametrize(
    "zones",
    [
        pytest.param({"next_fire_time": "Mars/Olympus_Mons"}, id="unknown-zone"),
        pytest.param({"next_fire_time": 42}, id="malformed-zone"),
        pytest.param("{not json", id="not-json"),
        pytest.param(["next_fire_time"], id="not-a-mapping"),
        pytest.param(None, id="none"),
    ],
)
def test_unreadable_zones_leave_times_in_utc(zones: Any) -> None:
    record = schedule_to_dict(full_schedule(), JSONSerializer())
    record["time_zones"] = zones
    loaded = schedule_from_dict(record, JSONSerializer())
    assert loaded.next_fire_time == full_schedule().next_fire_time
    assert loaded.next_fire_time is not None
    assert loaded.next_fire_time.tzinfo is UTC


def test_epoch_microseconds() -> None:
    moment = datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=NEW_YORK)
    assert to_epoch_us(moment) == 1_704_128_400_000_001
    assert from_epoch_us(to_epoch_us(moment)) == moment
    assert from_epoch_us(0) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(
        SerializationError,
        match=r"^the datetime datetime\.datetime\(2024, 1, 1, 0, 0\) is naive; attach a time "
        r"zone$",
    ):
        to_epoch_us(datetime(2024, 1, 1))


# ---- job results and exceptions ------------------------------------------------------


def _local_exception() -> BaseException:
    class LocalError(Exception):
        pass

    return LocalError("lost class")


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_result_exception_round_trip(serializer: Serializer) -> None:
    result = job_result_from_dict(job_result_to_dict(full_result(), serializer), serializer)
    assert type(result.exception) is ValueError
    assert result.exception.args == ("bad row", 2)
    assert result.return_value == {"rows": [1, 2]}


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_unencodable_exception_is_stored_as_none(serializer: Serializer) -> None:
    result = full_result(
        exception=_local_exception(),
        exception_type="test_records.LocalError",
        exception_message="lost class",
    )
    record = job_result_to_dict(result, serializer)
    assert record["exception"] is None
    loaded = job_result_from_dict(record, serializer)
    assert loaded.exception is None
    assert loaded.exception_type == "test_records.LocalError"
    assert loaded.exception_message == "lost class"


@pytest.mark.parametrize("stored", [b"garbage", JSONSerializer().serialize("not an exception")])
def test_undecodable_exception_is_loaded_as_none(stored: bytes) -> None:
    record = job_result_to_dict(full_result(), JSONSerializer())
    record["exception"] = stored
    result = job_result_from_dict(record, JSONSerializer())
    assert result.exception is None
    assert result.exception_type == "builtins.ValueError"


def test_unencodable_return_value() -> None:
    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize JobResult\.return_value: cannot serialize <object object at "
        r"0x[0-9a-f]+> of type builtins\.object with JSON",
    ):
        job_result_to_dict(full_result(return_value=object()), JSONSerializer())


# ---- errors --------------------------------------------------------------------------


class LocalErrorHolder:
    class NotImportable(Exception):
        pass


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: schedule_to_dict(
                attrs.evolve(full_schedule(), args=(1, object())), JSONSerializer()
            ),
            r"^cannot serialize Schedule\.args: cannot serialize <object object at "
            r"0x[0-9a-f]+> of type builtins\.object with JSON .* \(at value\[1\]\)$",
            id="schedule-args",
        ),
        pytest.param(
            lambda: job_to_dict(
                attrs.evolve(full_job(), kwargs={"f": lambda: None}), PickleSerializer()
            ),
            r"^cannot serialize Job\.kwargs: cannot pickle \{'f': <function .*<lambda>",
            id="job-kwargs-pickle",
        ),
        pytest.param(
            lambda: task_to_dict(
                attrs.evolve(full_task(), metadata={"x": object()}), JSONSerializer()
            ),
            r"^cannot serialize Task\.metadata: cannot serialize <object object",
            id="task-metadata",
        ),
        pytest.param(
            lambda: task_to_dict(
                attrs.evolve(full_task(), retry=RetryPolicy(retry_on=(_local_exception_type(),))),
                JSONSerializer(),
            ),
            r"^cannot serialize Task\.retry: cannot serialize the retry policy: the exception "
            r"type <class '.*LocalError'> in retry_on is not importable \(cannot reference "
            r"<class '.*LocalError'>: it is defined inside _local_exception_type\(\)",
            id="task-retry",
        ),
        pytest.param(
            lambda: schedule_to_dict(
                attrs.evolve(full_schedule(), next_fire_time=datetime(2024, 1, 1)),
                JSONSerializer(),
            ),
            r"^cannot serialize Schedule\.next_fire_time: the datetime "
            r"datetime\.datetime\(2024, 1, 1, 0, 0\) is naive; attach a time zone$",
            id="naive-time",
        ),
    ],
)
def test_serialization_errors_name_the_field(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        build()


def _local_exception_type() -> type[BaseException]:
    class LocalError(Exception):
        pass

    return LocalError


def _schedule_record(**changes: Any) -> dict[str, Any]:
    record = schedule_to_dict(full_schedule(), JSONSerializer())
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("record", "message"),
    [
        pytest.param(
            _schedule_record(args=b"garbage"),
            r"^invalid stored Schedule\.args value b'garbage' \(DeserializationError: cannot "
            r"decode b'garbage' as JSON: Expecting value: line 1 column 1 \(char 0\)\)$",
            id="corrupt-payload",
        ),
        pytest.param(
            _schedule_record(kwargs="text"),
            r"^invalid stored Schedule\.kwargs value 'text' \(TypeError: expected serialized "
            r"bytes, not str\)$",
            id="payload-not-bytes",
        ),
        pytest.param(
            _schedule_record(trigger={"type": "sundial", "version": 1}),
            r"^invalid stored Schedule\.trigger value \{'type': 'sundial', 'version': 1\} "
            r"\(DeserializationError: unknown trigger type 'sundial' in stored state",
            id="unknown-trigger",
        ),
        pytest.param(
            _schedule_record(trigger="{not json"),
            r"^invalid stored Schedule\.trigger value '\{not json' \(JSONDecodeError: ",
            id="trigger-not-json",
        ),
        pytest.param(
            _schedule_record(coalesce="sometimes"),
            r"^invalid stored Schedule\.coalesce value 'sometimes' \(ValueError: 'sometimes' is "
            r"not a valid CoalescePolicy\)$",
            id="unknown-enum-value",
        ),
        pytest.param(
            _schedule_record(paused="maybe"),
            r"^invalid stored Schedule\.paused value 'maybe' \(ValueError: expected 0, 1, "
            r"'true' or 'false'\)$",
            id="bad-bool",
        ),
        pytest.param(
            _schedule_record(max_running_jobs=1.5),
            r"^invalid stored Schedule\.max_running_jobs value 1\.5 \(TypeError: expected an "
            r"integer, not float\)$",
            id="bad-int",
        ),
        pytest.param(
            _schedule_record(acquired_by=42),
            r"^invalid stored Schedule\.acquired_by value 42 \(TypeError: expected a string, "
            r"not int\)$",
            id="bad-str",
        ),
        pytest.param(
            _schedule_record(next_fire_time="tomorrow"),
            r"^invalid stored Schedule\.next_fire_time value 'tomorrow' \(ValueError: Invalid "
            r"isoformat string: 'tomorrow'\)$",
            id="bad-time",
        ),
        pytest.param(
            _schedule_record(max_jitter=float("nan")),
            r"^invalid stored Schedule\.max_jitter value nan \(ValueError: expected a finite "
            r"number of seconds, not nan\)$",
            id="bad-seconds",
        ),
        pytest.param(
            _schedule_record(retry={"max_attempts": 3}),
            r"^invalid stored Schedule\.retry value \{'max_attempts': 3\} \(KeyError: "
            r"'backoff'\)$",
            id="bad-retry",
        ),
        pytest.param(
            {"id": "orphan"},
            r"^cannot rebuild a stored Schedule: .*missing 2 required keyword-only arguments: "
            r"'task_id' and 'trigger'$",
            id="missing-required-fields",
        ),
        pytest.param(
            ["not", "a", "mapping"],
            r"^a stored Schedule must be a mapping, not list$",
            id="not-a-mapping",
        ),
    ],
)
def test_deserialization_errors_name_the_field(record: Any, message: str) -> None:
    with pytest.raises(DeserializationError, match=message):
        schedule_from_dict(record, JSONSerializer())


def test_job_id_must_be_a_uuid() -> None:
    record = job_to_dict(full_job(), JSONSerializer())
    record["id"] = "not-a-uuid"
    with pytest.raises(
        DeserializationError,
        match=r"^invalid stored Job\.id value 'not-a-uuid' \(ValueError: badly formed "
        r"hexadecimal UUID string\)$",
    ):
        job_from_dict(record, JSONSerializer())


def test_job_id_as_raw_bytes() -> None:
    record = job_to_dict(full_job(), JSONSerializer())
    record["id"] = JOB_ID.bytes
    assert job_from_dict(record, JSONSerializer()).id == JOB_ID
