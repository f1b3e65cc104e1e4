"""The three APScheduler 3 schedulers that horae.compat provides.

* :class:`BlockingScheduler`: ``start()`` blocks until the scheduler is shut down (from a
  job, another thread, Ctrl+C or SIGTERM): for scripts, like the seed example.
* :class:`BackgroundScheduler`: ``start()`` returns; jobs run in the background.
* :class:`AsyncIOScheduler`: for asyncio programs; coroutine jobs and job-run listeners
  run on the program's event loop.

All three keep horae's own event loop on a daemon thread of its own; jobs run in
horae's worker threads (or processes), coroutine jobs on an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from types import FrameType
from typing import Any

from ._base import BaseScheduler
from ._bridge import DeliveryThread
from ._core import Core
from ._util import as_bool, resolve_ref
from .events import SchedulerEvent
from .executors import AsyncIOExecutor, BaseExecutor

__all__ = ("AsyncIOScheduler", "BackgroundScheduler", "BlockingScheduler")


class BlockingScheduler(BaseScheduler):
    """A scheduler that runs in the foreground: :meth:`start` blocks until shutdown.

    It returns once the scheduler is shut down: by :meth:`shutdown` from a job, a
    listener or another thread, or by SIGTERM (main thread only; a clean shutdown, then
    ``start()`` returns normally). On Ctrl+C it shuts down cleanly and lets the
    ``KeyboardInterrupt`` propagate, as APScheduler 3 lets it propagate.

    Args:
        gconfig: see :class:`~horae.compat.BaseScheduler`.
        **options: see :class:`~horae.compat.BaseScheduler`.
    """

    _stopped: threading.Event | None = None

    def start(self, paused: bool = False) -> None:
        """Start, then block until the scheduler is shut down (see the class)."""
        stopped = self._stopped = threading.Event()
        super().start(paused)
        terminated = threading.Event()
        previous: Any = None
        in_main = threading.current_thread() is threading.main_thread()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            terminated.set()
            stopped.set()

        if in_main:
            previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            # Wake up now and then so that Ctrl+C is noticed on every platform.
            while not stopped.wait(1.0):
                pass
        except KeyboardInterrupt:
            if self.running:
                self.shutdown()
            raise
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if terminated.is_set() and self.running:
            self.shutdown()
        closing = self._closing
        if closing is not None:
            closing.result()  # a shutdown from a job did not wait: wait for it here

    def shutdown(self, wait: bool = True) -> None:
        """Shut down (see :meth:`BaseScheduler.shutdown`); :meth:`start` then returns."""
        super().shutdown(wait)
        if self._stopped is not None:
            self._stopped.set()


class BackgroundScheduler(BaseScheduler):
    """A scheduler that runs in the background: :meth:`start` returns at once.

    Args:
        gconfig: see :class:`~horae.compat.BaseScheduler`.
        **options: also ``daemon`` (default ``True``): with ``False`` the process stays
            alive until the scheduler is shut down, as with APScheduler 3's non-daemon
            thread.
    """

    _daemon = True
    _keeper: threading.Thread | None = None
    _stopped: threading.Event | None = None

    def _configure(self, config: dict[str, Any]) -> None:
        self._daemon = as_bool(config.pop("daemon", True))
        super()._configure(config)

    def start(self, paused: bool = False) -> None:
        """Start and return; jobs run in the background."""
        stopped = self._stopped = threading.Event()
        super().start(paused)
        if not self._daemon:
            self._keeper = threading.Thread(
                target=stopped.wait, name="horae-compat-keeper", daemon=False
            )
            self._keeper.start()

    def shutdown(self, wait: bool = True) -> None:
        """Shut down (see :meth:`BaseScheduler.shutdown`)."""
        super().shutdown(wait)
        if self._stopped is not None:
            self._stopped.set()


class AsyncIOScheduler(BaseScheduler):
    """A scheduler for asyncio programs.

    :meth:`start` must be called with an event loop running (or after
    ``configure(event_loop=loop)``); that loop runs the coroutine jobs (plain functions
    run in threads) and the listeners of job runs. Its methods are plain functions, as in
    APScheduler 3; they may briefly wait for the store (as APScheduler 3's blocking job
    stores did). :meth:`shutdown` never blocks the loop: it cancels the coroutine jobs
    still running (as APScheduler 3 does) and closes the rest in the background.

    Args:
        gconfig: see :class:`~horae.compat.BaseScheduler`.
        **options: also ``event_loop``: the loop to use (default: the running one).
    """

    _eventloop: asyncio.AbstractEventLoop | None = None

    def _configure(self, config: dict[str, Any]) -> None:
        self._eventloop = resolve_ref(config.pop("event_loop", None))
        super()._configure(config)

    def _create_default_executor(self) -> BaseExecutor:
        return AsyncIOExecutor()

    def start(self, paused: bool = False) -> None:
        """Start on the running event loop (or the configured one).

        Raises:
            RuntimeError: no event loop is running and none was configured.
        """
        if self._eventloop is None or self._eventloop.is_closed():
            self._eventloop = asyncio.get_running_loop()
        self._bridge.event_loop = self._eventloop
        super().start(paused)

    def _start_delivery(self) -> DeliveryThread | None:
        self._bridge.deliver = self._deliver_on_loop
        return None

    def _deliver_on_loop(self, event: SchedulerEvent) -> None:
        loop = self._eventloop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody listening
            loop.call_soon_threadsafe(self._listeners.dispatch, event)

    def _can_wait_for_shutdown(self, core: Core, delivery: DeliveryThread | None) -> bool:
        return False  # waiting would block the event loop that runs the jobs

    def _dispatch_shutdown(self, event: SchedulerEvent) -> None:
        self._deliver_on_loop(event)
