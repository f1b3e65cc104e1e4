"""Turns the shorthand that ``add_schedule`` accepts into a trigger object.

``add_schedule(func, trigger, **trigger_args)`` takes a :class:`Trigger`, a crontab
string (``"*/5 * * * *"``, ``"@daily"``) or a trigger kind with its keyword arguments,
as in APScheduler 3 (``"interval", seconds=3``). :func:`build_trigger` is the one place
that knows these forms.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import timedelta, tzinfo
from typing import Any, NamedTuple

from horae._validation import as_timedelta, reject_unknown_kwargs, suggest

from ._base import Trigger
from .calendarinterval import CalendarIntervalTrigger
from .date import DateTrigger
from .interval import IntervalTrigger

#: The trigger kinds that ``add_schedule(func, kind, **trigger_args)`` accepts.
TRIGGER_KINDS = ("calendarinterval", "cron", "date", "interval")

# APScheduler 3 spellings -> horae names, per kind. CalendarIntervalTrigger's own names
# are start_date/end_date, so there the *_time spellings are the aliases.
_ALIASES: dict[str, dict[str, str]] = {
    "cron": {"start_date": "start_time", "end_date": "end_time"},
    "crontab": {"start_date": "start_time", "end_date": "end_time"},
    "interval": {"start_date": "start_time", "end_date": "end_time"},
    "date": {"run_date": "run_time", "next_run_time": "run_time"},
    "calendarinterval": {"start_time": "start_date", "end_time": "end_date"},
}


class TriggerSpec(NamedTuple):
    """What :func:`build_trigger` returns: the trigger and the schedule's jitter."""

    #: The trigger to store in the schedule.
    trigger: Trigger
    #: From ``jitter=`` (APScheduler 3's spelling of the schedule's ``max_jitter``), or
    #: ``None`` when it was not given.
    max_jitter: timedelta | None


def build_trigger(
    trigger: Trigger | str,
    trigger_args: Mapping[str, Any] | None = None,
    *,
    timezone: tzinfo | str | None = None,
    seed: str | None = None,
) -> TriggerSpec:
    """Build the trigger that ``add_schedule(func, trigger, **trigger_args)`` means.

    ``trigger`` may be:

    * a :class:`Trigger` object, used as it is; ``trigger_args`` may then hold only
      ``jitter`` (everything else belongs in the trigger's constructor);
    * a trigger kind, ``"cron"``, ``"interval"``, ``"date"`` or ``"calendarinterval"``,
      built with ``trigger_args`` as keyword arguments;
    * a crontab expression (``"*/5 * * * *"``, ``"0 9 * * mon-fri"``, ``"@daily"``),
      built with ``CronTrigger.from_crontab``; ``trigger_args`` may hold its keyword
      arguments (``timezone``, ``start_time``, ``end_time``, ``seed``).

    The APScheduler 3 spellings ``start_date``/``end_date`` (for ``start_time`` and
    ``end_time``) and ``run_date``/``next_run_time`` (for the date trigger's
    ``run_time``) are accepted; for ``"calendarinterval"``, whose own names are
    ``start_date``/``end_date``, ``start_time``/``end_time`` are accepted instead.
    ``jitter`` (a ``timedelta`` or seconds) is taken out of ``trigger_args`` for every
    form and returned as the schedule's ``max_jitter``.

    Args:
        trigger: A trigger, a trigger kind or a crontab expression.
        trigger_args: Keyword arguments for the trigger kind.
        timezone: The zone to use when ``trigger_args`` gives none (the scheduler's
            default zone); ignored for trigger objects.
        seed: The seed for ``H`` fields of a crontab expression (the schedule id), unless
            ``trigger_args`` gives one.

    Returns:
        The trigger and the ``max_jitter`` from ``jitter`` (``None`` if not given).

    Raises:
        ValueError: An unknown trigger kind (the message lists the kinds and suggests the
            closest), a bad crontab expression or a bad argument value.
        TypeError: A misspelt or unknown argument (with a *did you mean* suggestion),
            arguments next to a trigger object, or ``trigger`` of the wrong type.
    """
    args = dict(trigger_args or {})
    max_jitter = _as_jitter(args.pop("jitter", None))
    if isinstance(trigger, Trigger):
        if args:
            names = ", ".join(repr(name) for name in args)
            raise TypeError(
                f"trigger arguments ({names}) cannot be combined with a trigger object "
                f"({type(trigger).__name__}); pass them to its constructor instead, or give "
                f"the trigger kind, e.g. add_schedule(func, 'cron', hour=9)"
            )
        return TriggerSpec(trigger, max_jitter)
    if not isinstance(trigger, str):
        raise TypeError(
            f"trigger must be a Trigger, a crontab expression such as '*/5 * * * *' or a "
            f"trigger kind ({', '.join(map(repr, TRIGGER_KINDS))}), not "
            f"{type(trigger).__name__} {trigger!r}"
        )
    text = trigger.strip()
    if text in TRIGGER_KINDS:
        factory, owner, kind = _factory_for_kind(text)
    elif text.startswith("@") or len(text.split()) > 1:
        factory, owner, kind = _crontab_factory(text)
        if seed is not None:
            args.setdefault("seed", seed)
    else:
        raise ValueError(_unknown_kind_message(text))
    args = _rename_aliases(args, _ALIASES[kind])
    reject_unknown_kwargs(owner, args, [*_parameters(factory), *_ALIASES[kind], "jitter"])
    if timezone is not None:
        args.setdefault("timezone", timezone)
    return TriggerSpec(factory(**args), max_jitter)


def _factory_for_kind(kind: str) -> tuple[Callable[..., Trigger], str, str]:
    factories: dict[str, type[Trigger]] = {
        "interval": IntervalTrigger,
        "date": DateTrigger,
        "calendarinterval": CalendarIntervalTrigger,
    }
    # The cron engine is imported only when asked for, so that the other kinds never
    # depend on it (or on its import order).
    trigger_class = factories[kind] if kind in factories else _cron_trigger_class()
    return trigger_class, trigger_class.__name__, kind


def _crontab_factory(expr: str) -> tuple[Callable[..., Trigger], str, str]:
    cron_class = _cron_trigger_class()

    def from_crontab(**kwargs: Any) -> Trigger:
        trigger: Trigger = cron_class.from_crontab(expr, **kwargs)
        return trigger

    # keep from_crontab's signature (minus expr) for the argument check
    from_crontab.__signature__ = _without_first(  # type: ignore[attr-defined]
        inspect.signature(cron_class.from_crontab)
    )
    return from_crontab, "CronTrigger.from_crontab", "crontab"


def _cron_trigger_class() -> Any:
    from .cron import CronTrigger

    return CronTrigger


def _without_first(signature: inspect.Signature) -> inspect.Signature:
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def _parameters(factory: Callable[..., Any]) -> list[str]:
    """The keyword parameter names of *factory* (a class or a function)."""
    parameters = inspect.signature(factory).parameters.values()
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in keyword_kinds]


def _rename_aliases(args: dict[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    renamed: dict[str, Any] = {}
    for name, value in args.items():
        target = aliases.get(name, name)
        if target in renamed:
            given = [other for other in args if aliases.get(other, other) == target]
            raise TypeError(
                f"{' and '.join(map(repr, given))} mean the same argument; give only {target!r}"
            )
        renamed[target] = value
    return renamed


def _as_jitter(value: Any) -> timedelta | None:
    if value is None:
        return None
    jitter = as_timedelta(value, name="jitter")
    if jitter < timedelta(0):
        raise ValueError(f"jitter must not be negative, got {jitter!r}")
    return jitter


def _unknown_kind_message(text: str) -> str:
    message = f"unknown trigger kind {text!r}"
    close = suggest(text.lower(), TRIGGER_KINDS)
    if close is not None:
        message += f"; did you mean {close!r}?"
    return (
        f"{message} (known kinds: {', '.join(map(repr, TRIGGER_KINDS))}; or pass a "
        f"crontab expression such as '*/5 * * * *' or '@daily')"
    )
