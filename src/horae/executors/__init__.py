"""Job executors: where a job's callable runs (``async_``: the event loop, ``thread``: a
thread pool, ``process``: a process pool). ``_base`` holds the JobExecutor interface."""

from __future__ import annotations

from ._base import JobExecutor as JobExecutor
from .async_ import AsyncJobExecutor as AsyncJobExecutor
from .process import ProcessPoolJobExecutor as ProcessPoolJobExecutor
from .thread import ThreadPoolJobExecutor as ThreadPoolJobExecutor
