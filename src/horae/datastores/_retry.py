"""Retrying a store operation through transient connection failures, with back-off.

Every persistent store wraps its driver calls in :class:`Retrier`: a transient error
(connection refused or reset, failover in progress) is logged and retried with
exponential back-off and jitter, up to ``max_wait`` in total; any other error, or one
that outlasts ``max_wait``, is raised as :exc:`~horae.DataStoreError` from the driver's
exception, so driver exceptions never escape the public API.

Only operations that are safe to repeat may be retried: every store method is written
so that repeating it after an unknown outcome (the connection died after the server
committed) cannot duplicate anything (idempotent inserts, fenced updates).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import attrs

from horae._exceptions import DataStoreError, HoraeError

_T = TypeVar("_T")


@attrs.define(kw_only=True)
class Retrier:
    """Runs store operations, retrying transient failures with exponential back-off.

    Attributes:
        is_transient: tells whether a driver exception is worth retrying.
        store_name: used in log lines and error messages ("PostgreSQL", "Redis", ...).
        logger: where retries are logged (warning level, with the attempt number).
        initial_delay: first back-off in seconds; doubles each attempt up to max_delay.
        max_delay: longest single back-off in seconds.
        max_wait: give up (raise DataStoreError) after about this many seconds in all.
    """

    is_transient: Callable[[BaseException], bool]
    store_name: str
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("horae.datastores"))
    initial_delay: float = 0.1
    max_delay: float = 5.0
    max_wait: float = 60.0

    async def run(self, description: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``await operation()``; retry it while it fails transiently.

        *description* names the operation in logs ("acquire_schedules").
        """
        delay = self.initial_delay
        waited = 0.0
        attempt = 1
        while True:
            try:
                return await operation()
            except HoraeError:  # noqa: PERF203 - retrying is the point of the loop
                raise  # lookups, conflicts, schema errors: the store's own verdicts
            except Exception as exc:
                if not self.is_transient(exc) or waited >= self.max_wait:
                    raise DataStoreError(
                        f"{self.store_name} {description} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                # full jitter keeps many nodes from reconnecting in lock step
                sleep_for = random.uniform(delay / 2, delay)  # noqa: S311 - not crypto
                self.logger.warning(
                    "%s %s failed (attempt %d: %s: %s); retrying in %.2fs",
                    self.store_name,
                    description,
                    attempt,
                    type(exc).__name__,
                    exc,
                    sleep_for,
                )
                await anyio.sleep(sleep_for)
                waited += sleep_for
                delay = min(delay * 2, self.max_delay)
                attempt += 1
