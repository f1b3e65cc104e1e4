"""``horae run module:attribute``: run a scheduler defined in user code until a signal.

The attribute may be an :class:`~horae.AsyncScheduler` or :class:`~horae.Scheduler`, or a
callable taking no arguments (sync or async) that returns one, or that returns an async
context manager yielding an AsyncScheduler (an ``@asynccontextmanager`` function that
sets up schedules inside ``async with scheduler:``). The first SIGINT (Ctrl+C) or
SIGTERM stops the scheduler cleanly (running jobs get its stop grace period; exit code
0); a second one cancels the running jobs at once (exit code 130). A factory or
scheduler that raises ends the command with its traceback and exit code 1; a store or
broker that cannot be reached, with exit code 3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from ._cli_schedules import EXIT_UNREACHABLE, EXIT_USAGE, CommandError
from ._exceptions import DataStoreError, EventBrokerError
from ._scheduler import AsyncScheduler
from ._sync import Scheduler

#: Exit code when the factory or the scheduler raised.
EXIT_CRASHED = 1
#: Exit code after a second signal cancelled the running jobs (128 + SIGINT).
EXIT_FORCED = 130

_logger = logging.getLogger("horae.cli")
_MISSING = object()
_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` to the ``horae`` parser."""
    run = commands.add_parser(
        "run",
        help="run a scheduler defined in your code until SIGINT/SIGTERM",
        description="Import a scheduler (or a factory returning one) and run it until "
        "SIGINT or SIGTERM. The first signal stops it cleanly (exit code 0), a second "
        "one cancels running jobs at once (exit code 130).",
    )
    run.add_argument(
        "target",
        metavar="MODULE:ATTRIBUTE",
        help="e.g. myapp.jobs:scheduler, or myapp.jobs:make_scheduler (a factory)",
    )
    run.add_argument(
        "--app-dir",
        default=".",
        help="directory to import the module from (default: the working directory)",
    )
    run.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error", "critical"),
        help="log level when the application does not configure logging (default: info)",
    )
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Import the target, then run the scheduler it gives; return the exit code."""
    target = import_target(args.target, args.app_dir)
    if not logging.getLogger().handlers:  # the application did not configure logging
        logging.basicConfig(level=args.log_level.upper(), format=_LOG_FORMAT)
    try:
        if isinstance(target, Scheduler):
            return _run_sync(target)
        if isinstance(target, AsyncScheduler) or not callable(target):
            return asyncio.run(_run_async(target, args.target))
        if inspect.iscoroutinefunction(target):
            return asyncio.run(_run_async(target(), args.target))
        made = target()
        if isinstance(made, Scheduler):
            return _run_sync(made)
        return asyncio.run(_run_async(made, args.target))
    except (DataStoreError, EventBrokerError) as exc:
        raise CommandError(str(exc), EXIT_UNREACHABLE) from exc
    except CommandError:
        raise
    except Exception as exc:
        # The factory or the scheduler itself failed: show where.
        raise CommandError(
            f"{args.target!r} failed:\n{traceback.format_exc().rstrip()}", EXIT_CRASHED
        ) from exc


def import_target(spec: str, app_dir: str) -> Any:
    """The object that ``module:attribute.path`` names, imported from *app_dir*."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise CommandError(
            f"invalid target {spec!r}: expected 'module:attribute', e.g. 'myapp.jobs:scheduler'",
            EXIT_USAGE,
        )
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise CommandError(
                f"cannot import the module {module_name!r}: {exc} (looked in {directory} "
                f"and on sys.path; use --app-dir to point elsewhere)",
                EXIT_USAGE,
            ) from exc
        raise _import_failure(module_name) from exc
    except Exception as exc:
        raise _import_failure(module_name) from exc
    value: Any = module
    for part in attribute.split("."):
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            raise CommandError(
                f"the module {module_name!r} has no attribute {attribute!r}", EXIT_USAGE
            )
    return value


def _import_failure(module_name: str) -> CommandError:
    # The user's module itself raised: its traceback is what they need to see.
    details = traceback.format_exc()
    return CommandError(
        f"importing the module {module_name!r} raised an exception:\n{details.rstrip()}",
        EXIT_USAGE,
    )


def _run_sync(scheduler: Scheduler) -> int:
    # The facade handles Ctrl+C (KeyboardInterrupt) and SIGTERM itself: first a clean
    # stop, then (second Ctrl+C) cancellation; it returns normally either way.
    scheduler.run_until_stopped()
    return 0


async def _run_async(made: Any, spec: str) -> int:
    if inspect.isawaitable(made):
        made = await made
    if isinstance(made, AsyncScheduler):
        return await _serve(made)
    if isinstance(made, Scheduler):
        raise CommandError(
            f"{spec!r} is an async factory but returned a (sync) Scheduler; return an "
            f"AsyncScheduler from async factories",
            EXIT_USAGE,
        )
    if isinstance(made, AbstractAsyncContextManager) or hasattr(made, "__aenter__"):
        async with made as entered:
            if not isinstance(entered, AsyncScheduler):
                raise CommandError(
                    f"the async context manager from {spec!r} yielded "
                    f"{type(entered).__name__}, not an AsyncScheduler",
                    EXIT_USAGE,
                )
            return await _serve(entered)
    raise CommandError(
        f"{spec!r} gave {type(made).__name__}; expected an AsyncScheduler or Scheduler, a "
        f"function returning one, or an async context manager yielding an AsyncScheduler",
        EXIT_USAGE,
    )


async def _serve(scheduler: AsyncScheduler) -> int:
    """Run *scheduler* until a signal: the first stops it, the second cancels it."""
    run = asyncio.ensure_future(scheduler.run_until_stopped())
    stopping: set[asyncio.Future[None]] = set()  # keeps the stop task referenced
    signals_received = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_received
        signals_received += 1
        name = signal.Signals(signum).name
        if signals_received == 1:
            _logger.info(
                "Received %s; stopping the scheduler (send it again to cancel running jobs)",
                name,
            )
            stop = asyncio.ensure_future(scheduler.stop())
            stopping.add(stop)
            stop.add_done_callback(stopping.discard)
        else:
            _logger.warning("Received %s again; cancelling running jobs", name)
            run.cancel()

    with _signal_handlers(on_signal):
        try:
            await run
        except asyncio.CancelledError:
            if signals_received < 2:
                raise
            return EXIT_FORCED
    return 0


def _add_loop_handler(
    loop: asyncio.AbstractEventLoop, signum: int, callback: Callable[[int], None]
) -> bool:
    try:
        loop.add_signal_handler(signum, callback, signum)
    except (NotImplementedError, RuntimeError):
        return False
    return True


@contextlib.contextmanager
def _signal_handlers(callback: Callable[[int], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if _add_loop_handler(loop, signum, callback):
            installed.append(signum)
        else:  # Windows, or not the main thread
            with contextlib.suppress(ValueError):
                previous[signum] = signal.signal(
                    signum,
                    lambda number, _frame: loop.call_soon_threadsafe(callback, number),
                )
    try:
        yield
    finally:
        for installed_signal in installed:
            loop.remove_signal_handler(installed_signal)
        for replaced_signal, handler in previous.items():
            signal.signal(replaced_signal, handler)
