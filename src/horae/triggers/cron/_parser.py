"""Turning user input into the eight canonical field texts: crontab strings (macros, 5, 6
or 7 fields, Jenkins-style ``H`` hashes) and the keyword form (with its defaults)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from ._fields import (
    CRONTAB_SPECS,
    FIELD_NAMES,
    KEYWORD_SPECS,
    FieldSpec,
    canonical,
    invalid_value,
    normalize,
    parse_field,
)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

#: The crontab layouts by field count: ``minute hour day month day_of_week``, with an
#: optional leading second and trailing year.
_LAYOUTS = {
    5: ("minute", "hour", "day", "month", "day_of_week"),
    6: ("second", "minute", "hour", "day", "month", "day_of_week"),
    7: ("second", "minute", "hour", "day", "month", "day_of_week", "year"),
}
#: What a field left out of the keyword form becomes when it is less significant than
#: the least significant field given (APScheduler 3's rule). week and day_of_week are
#: filters, so their "minimum" is no filter at all.
_KEYWORD_DEFAULTS = {
    "year": "*",
    "month": "1",
    "day": "1",
    "week": "*",
    "day_of_week": "*",
    "hour": "0",
    "minute": "0",
    "second": "0",
}
#: Where ``H`` picks from when no range is given: days stop at 28 so that every month
#: has the day (as in Jenkins).
_HASH_BOUNDS = {"day": (1, 28), "day_of_week": (0, 6)}
_HASH_RE = re.compile(
    r"h(?:\((?P<a>[0-9]+)-(?P<b>[0-9]+)\))?(?:/(?P<step>[0-9]+))?", re.IGNORECASE
)


def keyword_fields(values: Mapping[str, object]) -> dict[str, str]:
    """The canonical field texts of ``CronTrigger(year=..., ..., second=...)``.

    Args:
        values: The eight field arguments by name; ``None`` means not given.

    Raises:
        ValueError: A field is invalid.
        TypeError: A field is neither a ``str`` nor an ``int``.
    """
    given = {name: normalize(value, name) for name, value in values.items() if value is not None}
    if not given:
        # every minute at second 0, like crontab's "* * * * *"
        return {name: ("0" if name == "second" else "*") for name in FIELD_NAMES}
    least = max(FIELD_NAMES.index(name) for name in given)
    fields = {}
    for index, name in enumerate(FIELD_NAMES):
        spec = KEYWORD_SPECS[name]
        if name in given:
            text = _question_mark(spec, given[name])
        else:
            text = "*" if index < least else _KEYWORD_DEFAULTS[name]
        if any(_HASH_RE.fullmatch(term) for term in text.split(",")):
            raise invalid_value(
                spec,
                text,
                f"{spec.allowed}; 'H' works only in CronTrigger.from_crontab(expr, seed=...)",
            )
        parse_field(spec, text)
        fields[name] = canonical(spec, text)
    return fields


def crontab_fields(expr: str, seed: str | None) -> dict[str, str]:
    """The canonical field texts of a crontab expression (``H`` resolved with *seed*).

    Raises:
        ValueError: The expression is invalid, or it uses ``H`` without a seed.
        TypeError: *expr* or *seed* is not a string.
    """
    if not isinstance(expr, str):
        raise TypeError(f"a crontab expression must be a str, not {type(expr).__name__} {expr!r}")
    if seed is not None and not isinstance(seed, str):
        raise TypeError(
            f"seed must be a str (the schedule id), not {type(seed).__name__} {seed!r}"
        )
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ValueError(
                f"unknown crontab macro {expr.strip()!r} (known: {', '.join(MACROS)})"
            )
        text = MACROS[text.lower()]
    parts = text.split(" ") if text else []
    layout = _LAYOUTS.get(len(parts))
    if layout is None:
        raise ValueError(
            f"a crontab expression has 5 fields (minute hour day month day_of_week), 6 "
            f"(a leading second) or 7 (and a trailing year); got {len(parts)} in {expr!r}"
        )
    fields = dict.fromkeys(FIELD_NAMES, "*")
    fields["second"] = "0"
    for name, part in zip(layout, parts, strict=True):
        spec = CRONTAB_SPECS[name]
        text = _question_mark(spec, _resolve_hashes(spec, part, seed, expr))
        parse_field(spec, text)
        fields[name] = canonical(spec, text)
    return fields


def _question_mark(spec: FieldSpec, text: str) -> str:
    # "?" ("no specific value", Quartz) is "*" in the day fields; the OR rule looks at
    # the leading "*", so store it as one.
    if spec.kind != "plain" and text.startswith("?"):
        return "*" + text[1:]
    return text


def _resolve_hashes(spec: FieldSpec, text: str, seed: str | None, expr: str) -> str:
    """Replace each ``H`` term of *text* with the value(s) it stands for."""
    if "h" not in text.lower():
        return text
    terms = text.split(",")
    for index, term in enumerate(terms):
        match = _HASH_RE.fullmatch(term)
        if match is None:
            continue
        if spec.name == "year":
            raise invalid_value(spec, term, f"{spec.allowed}; 'H' is not supported for years")
        if seed is None:
            raise ValueError(
                f"{expr!r} uses 'H' in field {spec.name!r}, which needs a seed to pick its "
                f"value: CronTrigger.from_crontab(expr, seed='<the schedule id>')"
            )
        terms[index] = _hash_term(spec, term, match, seed)
    return ",".join(terms)


def _hash_term(spec: FieldSpec, term: str, match: re.Match[str], seed: str) -> str:
    low, high = _HASH_BOUNDS.get(spec.name, (spec.low, spec.high))
    if match["a"] is not None:
        low, high = int(match["a"]), int(match["b"])
        if not spec.low <= low <= high <= spec.high:
            raise invalid_value(spec, term, f"H(a-b) with {spec.low} <= a <= b <= {spec.high}")
    # A stable hash (never Python's hash(), which is salted per process): every node
    # and every restart must pick the same value for the same schedule.
    digest = hashlib.sha256(f"{seed}\x00{spec.name}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    if match["step"] is None:
        return str(low + number % (high - low + 1))
    step = int(match["step"])
    if not 1 <= step <= spec.high - spec.low + 1:
        raise ValueError(
            f"invalid step {match['step']!r} in {term!r} for field {spec.name!r} "
            f"(allowed: 1-{spec.high - spec.low + 1})"
        )
    start = low + number % min(step, high - low + 1)
    return f"{start}-{high}/{step}"
