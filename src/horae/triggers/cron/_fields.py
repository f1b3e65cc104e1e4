"""The cron field grammar: what each field accepts, parsing a field into terms, the error
messages, and expanding terms into the sorted values the engine searches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

import attrs

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
#: Weekday names in the keyword form's numbering (0 = Monday), as ``date.weekday()``.
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Weekday names in crontab numbering (0 = Sunday; 7 is Sunday too).
CRONTAB_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@attrs.frozen(eq=False)  # compared and hashed by identity: there is one of each
class FieldSpec:
    """What one field accepts."""

    name: str
    low: int
    high: int
    names: Mapping[str, int]
    allowed: str  # for error messages: "0-59", "1-12 or jan-dec", ...
    #: day / day_of_week: "?" means "*"; day_of_week: "xth y", "y#x", "last y", "yL".
    kind: str = "plain"


def _names(names: tuple[str, ...], first: int) -> dict[str, int]:
    return {name: first + index for index, name in enumerate(names)}


YEAR = FieldSpec("year", 1970, 9999, {}, "1970-9999")
MONTH = FieldSpec("month", 1, 12, _names(MONTH_NAMES, 1), "1-12 or jan-dec")
DAY = FieldSpec("day", 1, 31, {}, "1-31, L, L-n, nW, LW, 'xth y' or 'last y'", "day")
WEEK = FieldSpec("week", 1, 53, {}, "1-53")
DAY_OF_WEEK = FieldSpec(
    "day_of_week", 0, 6, _names(WEEKDAY_NAMES, 0), "0-6 or mon-sun, 0 = Monday", "dow"
)
CRONTAB_DAY_OF_WEEK = FieldSpec(
    "day_of_week",
    0,
    7,
    _names(CRONTAB_WEEKDAY_NAMES, 0),
    "0-7 or sun-sat, 0 and 7 = Sunday",
    "dow",
)
HOUR = FieldSpec("hour", 0, 23, {}, "0-23")
MINUTE = FieldSpec("minute", 0, 59, {}, "0-59")
SECOND = FieldSpec("second", 0, 59, {}, "0-59")

#: The fields from the most to the least significant (the keyword form's order).
FIELD_NAMES = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
KEYWORD_SPECS = {
    spec.name: spec for spec in (YEAR, MONTH, DAY, WEEK, DAY_OF_WEEK, HOUR, MINUTE, SECOND)
}
CRONTAB_SPECS = {**KEYWORD_SPECS, "day_of_week": CRONTAB_DAY_OF_WEEK}


class Term(NamedTuple):
    """One comma-separated part of a field.

    ``kind`` is one of:

    * ``"all"``: ``*`` or ``*/step`` (``start``/``end`` are the field's bounds);
    * ``"range"``: ``a``, ``a-b``, ``a-b/step`` (a single value has ``start == end``);
    * ``"from"``: ``a/step``, from ``a`` to the field's maximum;
    * ``"last"``: day ``L`` (``start`` 0) or ``L-n`` (``start`` n);
    * ``"nearest"``: day ``nW``, the weekday nearest day ``start``;
    * ``"last_weekday"``: day ``LW``;
    * ``"nth"``: weekday ``start`` (in the field's own numbering), ``end``-th of the month;
    * ``"last_of"``: the last weekday ``start`` of the month.
    """

    kind: str
    start: int
    end: int
    step: int = 1


_NUMBER = r"[0-9]+"
_ATOM = r"[0-9]+|[a-z]+"
_I = re.IGNORECASE | re.ASCII
_ALL_RE = re.compile(r"[*?](?:/(?P<step>[0-9]+))?")
_RANGE_RE = re.compile(rf"(?P<a>{_ATOM})(?:-(?P<b>{_ATOM}))?(?:/(?P<step>{_NUMBER}))?", _I)
_LAST_RE = re.compile(r"(?:l|last)(?:-(?P<n>[0-9]+))?", _I)
_NEAREST_RE = re.compile(r"(?P<n>[0-9]+)w", _I)
_NTH_RE = re.compile(rf"(?P<n>[0-9]+)(?:st|nd|rd|th) +(?P<day>{_ATOM})", _I)
_HASH_NTH_RE = re.compile(rf"(?P<day>{_ATOM})#(?P<n>[0-9]+)", _I)
_LAST_OF_RE = re.compile(rf"last +(?P<day>{_ATOM})", _I)
_SUFFIX_LAST_RE = re.compile(r"(?P<day>[0-9]+|[a-z]+?)l", _I)


def invalid_value(spec: FieldSpec, text: str, rule: str | None = None) -> ValueError:
    """The one error format for a bad field: it names the field, the text and the rule."""
    return ValueError(
        f"invalid value {text!r} for field {spec.name!r} (allowed: {rule or spec.allowed})"
    )


def normalize(value: object, name: str) -> str:
    """Turn a field argument (``str`` or ``int``) into text: stripped, single spaces, no
    spaces around commas. Case is kept, so that error messages quote the user's text."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(
            f"field {name!r} must be a str or an int, not {type(value).__name__} {value!r}"
        )
    text = re.sub(r" *, *", ",", " ".join(str(value).split()))
    if not text:
        raise ValueError(f"field {name!r} is empty; use '*' for every value")
    return text


def canonical(spec: FieldSpec, text: str) -> str:
    """The stored spelling of a valid field: lower case, except the cron letters ``L``
    and ``W`` (``L``, ``L-2``, ``15W``, ``LW``, ``5L``), so that ``MON`` equals ``mon``."""
    terms = text.lower().split(",")
    if spec.kind == "day":
        terms = [
            term.upper() if term == "lw" or re.fullmatch(r"l(-[0-9]+)?|[0-9]+w", term) else term
            for term in terms
        ]
    elif spec.kind == "dow":
        terms = [term[:-1] + "L" if _SUFFIX_LAST_RE.fullmatch(term) else term for term in terms]
    return ",".join(terms)


@lru_cache(maxsize=2048)
def parse_field(spec: FieldSpec, text: str) -> tuple[Term, ...]:
    """Parse the normalized *text* of one field into terms (raises ``ValueError``)."""
    return tuple(_parse_term(spec, part) for part in text.split(","))


def _parse_term(spec: FieldSpec, text: str) -> Term:
    match = _ALL_RE.fullmatch(text)
    if match and (text[0] == "*" or spec.kind != "plain"):
        return Term("all", spec.low, spec.high, _step(spec, text, match["step"]))
    if spec.kind != "plain":
        special = _parse_special(spec, text)
        if special is not None:
            return special
    match = _RANGE_RE.fullmatch(text)
    if match is None:
        raise invalid_value(spec, text)
    start = _value(spec, match["a"])
    if match["b"] is None:
        if match["step"] is None:
            return Term("range", start, start)
        return Term("from", start, spec.high, _step(spec, text, match["step"]))
    end = _value(spec, match["b"])
    if end == 0 and spec is CRONTAB_DAY_OF_WEEK and match["b"].isalpha() and start > 0:
        end = 7  # "fri-sun": Sunday closes a crontab range as 7
    if start > end:
        raise ValueError(
            f"invalid range {text!r} for field {spec.name!r}: {match['a']!r} comes after "
            f"{match['b']!r}; write the smaller value first, or a list such as "
            f"'{match['a']}-{spec.high},{spec.low}-{match['b']}' to wrap around"
        )
    return Term("range", start, end, _step(spec, text, match["step"]))


def _parse_special(spec: FieldSpec, text: str) -> Term | None:
    """The day and day_of_week extras: L, L-n, nW, LW, xth y, y#x, last y, yL."""
    if spec.kind == "day":
        if text.lower() == "lw":
            return Term("last_weekday", 0, 0)
        match = _LAST_RE.fullmatch(text)
        if match:
            offset = int(match["n"] or 0)
            if offset > 30:
                raise invalid_value(spec, text, "L-n with n in 0-30")
            return Term("last", offset, offset)
        match = _NEAREST_RE.fullmatch(text)
        if match:
            return Term("nearest", _value(spec, match["n"], text), 0)
    # "xth y" and "last y" work in both fields (APScheduler 3 puts them in the day field)
    weekdays = DAY_OF_WEEK if spec.kind == "day" else spec
    match = _NTH_RE.fullmatch(text) or (
        _HASH_NTH_RE.fullmatch(text) if spec.kind == "dow" else None
    )
    if match:
        nth = int(match["n"])
        if not 1 <= nth <= 5:
            raise invalid_value(spec, text, "the n-th weekday of a month is 1st-5th (1-5)")
        return Term("nth", _weekday(spec, weekdays, match["day"], text), nth)
    match = _LAST_OF_RE.fullmatch(text)
    if match is None and spec.kind == "dow":
        match = _SUFFIX_LAST_RE.fullmatch(text)
        if text.lower() == "l":
            raise invalid_value(spec, text, "'last fri' or '5L' for the last weekday of a month")
    if match:
        return Term("last_of", _weekday(spec, weekdays, match["day"], text), 0)
    return None


def _weekday(spec: FieldSpec, weekdays: FieldSpec, atom: str, text: str) -> int:
    value = weekdays.names.get(atom.lower())
    if value is None:
        if not atom.isdigit() or not weekdays.low <= int(atom) <= weekdays.high:
            raise invalid_value(spec, text, f"a weekday {weekdays.allowed}")
        value = int(atom)
    return value


def _value(spec: FieldSpec, atom: str, text: str | None = None) -> int:
    if atom.isdigit():
        value = int(atom)
        if spec.low <= value <= spec.high:
            return value
    elif atom.lower() in spec.names:
        return spec.names[atom.lower()]
    raise invalid_value(spec, text or atom)


def _step(spec: FieldSpec, text: str, step: str | None) -> int:
    if step is None:
        return 1
    span = spec.high - spec.low + 1
    value = int(step)
    if not 1 <= value <= span:
        raise ValueError(
            f"invalid step {step!r} in {text!r} for field {spec.name!r} (allowed: 1-{span})"
        )
    return value


@lru_cache(maxsize=2048)
def expand(spec: FieldSpec, text: str) -> tuple[int, ...]:
    """The sorted values that the plain terms of *text* select (specials are ignored).

    Values are in the field's own numbering (crontab weekdays: 0 and 7 are Sunday).
    """
    values: set[int] = set()
    for term in parse_field(spec, text):
        if term.kind in ("all", "range", "from"):
            values.update(range(term.start, term.end + 1, term.step))
    return tuple(sorted(values))


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= number % 100 <= 20 else _SUFFIXES.get(number % 10, "th")
    return f"{number}{suffix}"


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}
