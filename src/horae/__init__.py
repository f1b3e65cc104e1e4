"""horae: an asyncio-native scheduler.

Layout: ``_enums``, ``_exceptions`` and ``_validation`` hold the shared vocabulary;
``triggers/`` computes fire times; ``calendars`` excludes times from them;
``_structures`` is the data model; ``_scheduler`` (AsyncScheduler) with
``_scheduler_loop`` (schedules → jobs), ``_worker`` (running jobs) and ``_tasks`` is the
core, ``_sync`` (Scheduler) its blocking facade; ``datastores/``, ``eventbrokers/``,
``executors/`` and ``serializers/`` are the pluggable parts. ``events`` is imported as a
submodule: ``from horae import events``.
"""

from __future__ import annotations

from ._context import current_job as current_job
from ._context import current_scheduler as current_scheduler
from ._enums import CoalescePolicy as CoalescePolicy
from ._enums import ConflictPolicy as ConflictPolicy
from ._enums import JobOutcome as JobOutcome
from ._enums import OverlapPolicy as OverlapPolicy
from ._enums import RunState as RunState
from ._enums import SchedulerRole as SchedulerRole
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import ConflictingIdError as ConflictingIdError
from ._exceptions import DataStoreError as DataStoreError
from ._exceptions import DeserializationError as DeserializationError
from ._exceptions import EventBrokerError as EventBrokerError
from ._exceptions import HoraeError as HoraeError
from ._exceptions import JobCancelled as JobCancelled
from ._exceptions import JobDeadlineMissed as JobDeadlineMissed
from ._exceptions import JobLookupError as JobLookupError
from ._exceptions import JobResultNotReady as JobResultNotReady
from ._exceptions import ScheduleLookupError as ScheduleLookupError
from ._exceptions import SchedulerClosedError as SchedulerClosedError
from ._exceptions import SchemaVersionError as SchemaVersionError
from ._exceptions import SerializationError as SerializationError
from ._exceptions import TaskLookupError as TaskLookupError
from ._scheduler import AsyncScheduler as AsyncScheduler
from ._scheduler_control import ScheduleSpec as ScheduleSpec
from ._scheduler_control import SyncResult as SyncResult
from ._structures import Job as Job
from ._structures import JobResult as JobResult
from ._structures import RetryPolicy as RetryPolicy
from ._structures import Schedule as Schedule
from ._structures import Task as Task
from ._sync import Scheduler as Scheduler
from ._tasks import task as task

__version__ = "0.1.0.dev0"
