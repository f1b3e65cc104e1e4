"""The cron engine.

Layout: ``_fields`` (the field grammar and its errors), ``_parser`` (crontab strings,
macros, ``H`` hashes, keyword defaults), ``_engine`` (the compiled plan and the next-fire
search), ``_zones`` (skipped and repeated wall times per zone), ``_describe`` (``str`` and
English), ``_trigger`` (the public :class:`CronTrigger`).
"""

from __future__ import annotations

from ._trigger import CronTrigger as CronTrigger

__all__ = ["CronTrigger"]
