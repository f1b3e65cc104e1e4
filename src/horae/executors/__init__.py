"""Job executors: where a job's callable runs (``async_``: the event loop, ``thread``: a
thread pool, ``process``: a process pool). ``_base`` holds the JobExecutor interface."""

from __future__ import annotations

from ._base import JobExecutor as JobExecutor
