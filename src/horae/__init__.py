"""horae: an asyncio-native scheduler.

Layout: ``_enums``, ``_exceptions`` and ``_validation`` hold the shared vocabulary;
``triggers/`` computes fire times; ``calendars`` excludes times from them.
"""

from __future__ import annotations

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
from ._exceptions import HoraeError as HoraeError
from ._exceptions import JobCancelled as JobCancelled
from ._exceptions import JobDeadlineMissed as JobDeadlineMissed
from ._exceptions import JobLookupError as JobLookupError
from ._exceptions import JobResultNotReady as JobResultNotReady
from ._exceptions import ScheduleLookupError as ScheduleLookupError
from ._exceptions import SchemaVersionError as SchemaVersionError
from ._exceptions import SerializationError as SerializationError
from ._exceptions import TaskLookupError as TaskLookupError

__version__ = "0.1.0.dev0"
