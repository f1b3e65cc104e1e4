"""The ``horae`` command line (also ``python -m horae``): the parser and the exit codes.

Subcommands: ``run`` (:mod:`horae._cli_run`), ``schedules list|show|pause|resume|remove``
(:mod:`horae._cli_schedules`) and ``cron`` (here: next fire times and the English
description of an expression). Exit codes: 0 success, 1 schedule not found, 2 usage or
bad input, 3 store unreachable, 130 stopped by a second signal (``run``, which also
exits with 1 when the scheduler or its factory raised).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime

from ._cli_run import add_run_parser
from ._cli_schedules import EXIT_UNREACHABLE, EXIT_USAGE, CommandError, add_schedules_parser
from ._exceptions import DataStoreError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="horae", description="horae: an asyncio-native scheduler."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_run_parser(commands)
    add_schedules_parser(commands)

    cron = commands.add_parser(
        "cron",
        help="print the next fire times and the description of a cron expression",
        description="Print the next fire times and the English description of a crontab "
        "expression (5, 6 or 7 fields, or a macro such as @daily).",
    )
    cron.add_argument("expression", help='a crontab expression, e.g. "*/15 9-17 * * mon-fri"')
    cron.add_argument("--tz", default=None, help="IANA time zone (default: the local zone)")
    cron.add_argument(
        "-n", "--count", type=int, default=10, help="how many fire times (default: 10)"
    )
    cron.add_argument(
        "--after", default=None, help="start after this ISO 8601 time (default: now)"
    )
    cron.add_argument("--seed", default=None, help="seed for H fields (e.g. a schedule id)")
    cron.add_argument("--json", action="store_true", help="print JSON instead of text")
    cron.set_defaults(handler=_cron)
    return parser


def _cron(args: argparse.Namespace) -> int:
    from ._validation import as_aware_datetime, as_timezone, current_time
    from .triggers import CronTrigger

    if args.count < 1:
        raise ValueError(f"-n/--count must be at least 1, got {args.count}")
    tz = as_timezone(args.tz, name="--tz")
    trigger = CronTrigger.from_crontab(args.expression, timezone=tz, seed=args.seed)
    after: datetime = (
        as_aware_datetime(args.after, tz, name="--after")
        if args.after is not None
        else current_time(tz)
    )
    times: list[datetime] = []
    current: datetime | None = after
    while current is not None and len(times) < args.count:
        current = trigger.next(current)
        if current is not None:
            times.append(current)
    if args.json:
        payload = {
            "expression": args.expression,
            "timezone": str(tz),
            "description": trigger.describe(),
            "next": [t.isoformat() for t in times],
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(trigger.describe())
    print(f"next {len(times)} fire time(s) in {tz}:")
    for t in times:
        print(f"  {t.isoformat(sep=' ')}  ({t.strftime('%a')})")
    if len(times) < args.count:
        print("  (no further fire times)")
    return 0


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``horae`` command; return the process exit code.

    Exit codes: 0 success, 1 schedule not found, 2 usage or bad input (argparse's own
    errors included), 3 store unreachable, 130 a second signal cancelled ``run``.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    command = " ".join(filter(None, [args.command, getattr(args, "action", None)]))
    try:
        return int(args.handler(args))
    except CommandError as exc:
        return _fail(command, str(exc), exc.exit_code)
    except DataStoreError as exc:
        return _fail(command, str(exc), EXIT_UNREACHABLE)
    except (ValueError, TypeError) as exc:  # ConfigurationError is a ValueError
        return _fail(command, str(exc), EXIT_USAGE)
    except KeyboardInterrupt:  # Ctrl+C while connecting or importing
        return _fail(command, "interrupted", 130)


def _fail(command: str, message: str, exit_code: int) -> int:
    print(f"horae {command}: error: {message}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
