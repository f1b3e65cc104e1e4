"""``horae schedules list|show|pause|resume|remove --store URL``: inspecting and managing
the schedules of a persistent data store from a shell.

Each command opens the store named by the URL (through an :class:`AsyncScheduler` whose
processing is never started, so that lookups and unpausing follow the scheduler's own
rules), does one thing, and closes it. Running schedulers that share the store see the
change when they next read it (at the latest after their polling interval).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, tzinfo
from typing import Literal

import anyio

from ._cli_format import (
    SCHEDULE_HEADERS,
    dump_json,
    format_time,
    key_values,
    schedule_details,
    schedule_json,
    schedule_row,
    table,
)
from ._exceptions import ConfigurationError, DataStoreError, ScheduleLookupError
from ._scheduler import AsyncScheduler
from ._store_urls import StoreURL, create_data_store, parse_store_url
from .datastores._base import DataStore
from .events import ScheduleDeserializationFailed
from .serializers._base import Serializer

#: Exit codes (also documented in docs/guide/cli.md).
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CommandError(Exception):
    """A failure to report as ``horae <command>: error: <message>`` with an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_schedules_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schedules`` and its subcommands to the ``horae`` parser."""
    schedules = commands.add_parser(
        "schedules",
        help="list, show, pause, resume or remove the schedules of a persistent store",
        description="Inspect and manage the schedules of a persistent data store.",
    )
    actions = schedules.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="the data store: sqlite:///path.db, postgresql://user:pw@host/db[?schema=S], "
        "redis://host:6379/0[?prefix=P] or mongodb://host/database",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--tz", default=None, help="show times in this IANA zone (default: the local zone)"
    )
    common.add_argument(
        "--serializer",
        choices=("json", "pickle"),
        default="json",
        help="the serializer the schedulers use for arguments (default: json)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the store's server (default: 5)",
    )
    actions.add_parser(
        "list", parents=[common], help="list every schedule", description="List every schedule."
    ).set_defaults(handler=run_schedules)
    show = actions.add_parser(
        "show", parents=[common], help="show one schedule", description="Show one schedule."
    )
    show.add_argument("id", help="the schedule id")
    show.add_argument(
        "-n", "--upcoming", type=int, default=5, help="how many upcoming fire times (default: 5)"
    )
    show.set_defaults(handler=run_schedules)
    pause = actions.add_parser(
        "pause", parents=[common], help="pause a schedule", description="Pause a schedule."
    )
    pause.add_argument("id", help="the schedule id")
    pause.add_argument("--reason", default=None, help="why (shown by 'show')")
    pause.add_argument(
        "--until", default=None, help="unpause by itself at this ISO 8601 time (default: never)"
    )
    pause.set_defaults(handler=run_schedules)
    resume = actions.add_parser(
        "resume",
        parents=[common],
        help="resume (unpause) a schedule",
        description="Resume a paused schedule. Fire times missed while it was paused are "
        "handled by its coalesce policy, unless --skip-missed is given.",
    )
    resume.add_argument("id", help="the schedule id")
    resume.add_argument(
        "--skip-missed", action="store_true", help="skip the fire times missed while paused"
    )
    resume.set_defaults(handler=run_schedules)
    remove = actions.add_parser(
        "remove", parents=[common], help="remove a schedule", description="Remove a schedule."
    )
    remove.add_argument("id", help="the schedule id")
    remove.set_defaults(handler=run_schedules)


def run_schedules(args: argparse.Namespace) -> int:
    """Run one ``horae schedules`` action; return the exit code."""
    from ._validation import as_timezone

    if args.timeout <= 0:
        raise CommandError(f"--timeout must be positive, got {args.timeout:g}", EXIT_USAGE)
    if getattr(args, "upcoming", 0) < 0:
        raise CommandError(f"-n/--upcoming must not be negative, got {args.upcoming}", 2)
    parsed = parse_store_url(args.store)
    tz = as_timezone(args.tz, name="--tz")
    until = _pause_until(args, tz)
    check_openable(parsed)
    return anyio.run(_run_action, args, parsed, tz, until)


def check_openable(parsed: StoreURL) -> None:
    """Refuse stores the command line cannot inspect (before creating anything)."""
    if parsed.kind == "memory":
        raise CommandError(
            f"{parsed.masked!r} is an in-memory store, which lives inside one process; "
            f"give the URL of a persistent store (sqlite:///, postgresql://, redis://, "
            f"mongodb://)",
            EXIT_USAGE,
        )
    if parsed.kind == "sqlite" and not os.path.isfile(parsed.target):
        raise CommandError(
            f"the SQLite database {os.path.abspath(parsed.target)!r} does not exist (relative "
            f"paths start from the working directory; use sqlite:////absolute/path.db for an "
            f"absolute path)",
            EXIT_UNREACHABLE,
        )


def _pause_until(args: argparse.Namespace, tz: tzinfo) -> datetime | None:
    from ._validation import as_aware_datetime

    if getattr(args, "until", None) is None:
        return None
    return as_aware_datetime(args.until, tz, name="--until")


def _serializer(name: Literal["json", "pickle"]) -> Serializer:
    if name == "pickle":
        from .serializers.pickle import PickleSerializer

        return PickleSerializer()
    from .serializers.json import JSONSerializer

    return JSONSerializer()


async def _run_action(
    args: argparse.Namespace, parsed: StoreURL, tz: tzinfo, until: datetime | None
) -> int:
    try:
        store = create_data_store(
            parsed,
            serializer=_serializer(args.serializer),
            connect_timeout=args.timeout,
        )
    except ModuleNotFoundError as exc:
        extra = {"postgresql": "postgres"}.get(parsed.kind, parsed.kind)
        raise CommandError(
            f"the {parsed.kind} driver is not installed ({exc}); install it with "
            f"pip install 'horae[{extra}]'",
            EXIT_USAGE,
        ) from exc
    logger = logging.getLogger("horae.cli")
    scheduler = AsyncScheduler(store, cleanup_interval=None, logger=logger)
    try:
        async with scheduler:
            scheduler.subscribe(_warn_unreadable, ScheduleDeserializationFailed)
            return await _dispatch(scheduler, store, args, parsed, tz, until)
    except ScheduleLookupError as exc:
        raise CommandError(
            f"no schedule with the id {exc.id!r} in {parsed.masked} (see 'horae schedules "
            f"list --store ...')",
            EXIT_NOT_FOUND,
        ) from exc
    except DataStoreError as exc:
        raise CommandError(f"{exc} [store: {parsed.masked}]", EXIT_UNREACHABLE) from exc
    except ConfigurationError:
        raise
    except OSError as exc:  # a driver error that escaped the store's translation
        raise CommandError(
            f"cannot reach the store {parsed.masked}: {exc}", EXIT_UNREACHABLE
        ) from exc


def _warn_unreadable(event: ScheduleDeserializationFailed) -> None:
    print(
        f"warning: the stored schedule {event.schedule_id!r} cannot be read and is left "
        f"out: {event.exception}",
        file=sys.stderr,
    )


async def _dispatch(
    scheduler: AsyncScheduler,
    store: DataStore,
    args: argparse.Namespace,
    parsed: StoreURL,
    tz: tzinfo,
    until: datetime | None,
) -> int:
    action = args.action
    if action == "list":
        schedules = await scheduler.get_schedules()
        if args.json:
            print(dump_json([schedule_json(schedule) for schedule in schedules]))
        elif not schedules:
            print(f"no schedules in {parsed.masked}")
        else:
            print(table(SCHEDULE_HEADERS, [schedule_row(s, tz) for s in schedules]))
        return 0
    schedule_id: str = args.id
    if action == "show":
        schedule = await scheduler.get_schedule(schedule_id)
        upcoming = (
            await scheduler.preview(schedule_id, args.upcoming)
            if args.upcoming and schedule.next_fire_time is not None
            else []
        )
        if args.json:
            print(dump_json(schedule_json(schedule, upcoming)))
        else:
            print(key_values(schedule_details(schedule, upcoming, tz)))
        return 0
    if action == "pause":
        schedule = await store.pause_schedule(schedule_id, reason=args.reason, until=until)
        _report(args, "paused", schedule_id, tz, schedule.next_fire_time)
        return 0
    if action == "resume":
        await scheduler.unpause_schedule(
            schedule_id, resume_from="now" if args.skip_missed else None
        )
        remaining = [s for s in await scheduler.get_schedules() if s.id == schedule_id]
        if not remaining:
            _report(args, "removed", schedule_id, tz, None, "its trigger has no fire times left")
        else:
            _report(args, "resumed", schedule_id, tz, remaining[0].next_fire_time)
        return 0
    await scheduler.remove_schedule(schedule_id)
    _report(args, "removed", schedule_id, tz, None)
    return 0


def _report(
    args: argparse.Namespace,
    action: str,
    schedule_id: str,
    tz: tzinfo,
    next_fire_time: datetime | None,
    note: str | None = None,
) -> None:
    if args.json:
        payload = {
            "id": schedule_id,
            "action": action,
            "next_fire_time": None if next_fire_time is None else next_fire_time.isoformat(),
        }
        if note:
            payload["note"] = note
        print(dump_json(payload))
        return
    message = f"{action} schedule {schedule_id!r}"
    if note:
        message += f" ({note})"
    elif next_fire_time is not None and action == "resumed":
        message += f"; next fire time: {format_time(next_fire_time, tz)}"
    print(message)
