"""horae.compat: run code written for APScheduler 3 on horae, changing only its imports.

::

    # from apscheduler.schedulers.blocking import BlockingScheduler
    from horae.compat import BlockingScheduler
    # from apscheduler.jobstores.redis import RedisJobStore
    from horae.compat.jobstores import RedisJobStore

Layout: ``schedulers`` (Blocking, Background, AsyncIO) over ``_base`` (BaseScheduler: the
job API) and ``_lifecycle`` (start, shutdown, pause, configuration); ``_core`` drives a
horae ``Scheduler`` and ``_codec`` maps jobs to horae schedules; ``_bridge`` turns horae's
events into APScheduler 3's; ``_config`` reads APScheduler 3 configuration; ``job``,
``triggers``, ``jobstores``, ``executors`` and ``events`` mirror APScheduler 3's modules.

Inside horae.compat APScheduler 3's rules hold: weekday 0 is Monday, an interval first
fires one interval after the job is added, ``misfire_grace_time=1``, ``coalesce=True`` and
``max_instances=1`` by default (``job_defaults=`` overrides them), job ids are
``uuid4().hex``, ``next_run_time=None`` adds a job paused.
"""

from __future__ import annotations

from ._base import STATE_PAUSED as STATE_PAUSED
from ._base import STATE_RUNNING as STATE_RUNNING
from ._base import STATE_STOPPED as STATE_STOPPED
from ._base import BaseScheduler as BaseScheduler
from ._errors import ConflictingIdError as ConflictingIdError
from ._errors import JobLookupError as JobLookupError
from ._errors import SchedulerAlreadyRunningError as SchedulerAlreadyRunningError
from ._errors import SchedulerNotRunningError as SchedulerNotRunningError
from ._util import undefined as undefined
from .job import Job as Job
from .schedulers import AsyncIOScheduler as AsyncIOScheduler
from .schedulers import BackgroundScheduler as BackgroundScheduler
from .schedulers import BlockingScheduler as BlockingScheduler
