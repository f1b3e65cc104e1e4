"""Triggers: immutable objects that compute fire times.

Layout: ``_base`` (the Trigger interface and state registry), ``cron/`` (parser, fields,
trigger), ``interval``, ``date``, ``calendarinterval``, ``combining``, and ``_shorthand``
(turns ``"*/5 * * * *"`` or ``("cron", hour="*/2")`` into a trigger).
"""

from __future__ import annotations

from ._base import Trigger as Trigger
from .calendarinterval import CalendarIntervalTrigger as CalendarIntervalTrigger
from .combining import AndTrigger as AndTrigger
from .combining import OrTrigger as OrTrigger
from .cron import CronTrigger as CronTrigger
from .date import DateTrigger as DateTrigger
from .interval import IntervalTrigger as IntervalTrigger
