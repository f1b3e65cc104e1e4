"""Event.to_dict / Event.from_dict beyond the broker contract's round trip."""

from __future__ import annotations

from datetime import datetime, timezone
from uuid import UUID

import attrs
import pytest

from horae._enums import JobOutcome
from horae._exceptions import DeserializationError
from horae.events import Event, JobAdded, ScheduleRemoved

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_unknown_keys_from_a_newer_version_are_ignored() -> None:
    event = JobAdded(timestamp=T0, job_id=UUID(int=1), task_id="t", schedule_id=None)
    data = {**event.to_dict(), "added_in_a_later_release": 1}
    assert Event.from_dict(data) == event


def test_missing_required_field_raises_deserialization_error() -> None:
    data = ScheduleRemoved(timestamp=T0, schedule_id="s", task_id="t", finished=True).to_dict()
    del data["schedule_id"]
    with pytest.raises(DeserializationError, match="malformed ScheduleRemoved event"):
        Event.from_dict(data)


def test_events_with_real_type_annotations_round_trip() -> None:
    # an event class defined without ``from __future__ import annotations``
    real_types = attrs.make_class(
        "RealTypesEvent",
        {
            "when": attrs.field(type=datetime | None),  # type: ignore[arg-type]
            "job": attrs.field(type=UUID),
            "outcome": attrs.field(type=JobOutcome),
        },
        bases=(Event,),
        frozen=True,
        kw_only=True,
    )
    event = real_types(timestamp=T0, when=T0, job=UUID(int=2), outcome=JobOutcome.error)
    assert Event.from_dict(event.to_dict()) == event
