"""Data store URLs: parsing ``sqlite:///…``, ``postgresql://…``, ``redis://…`` and
``mongodb://…`` into the store they describe, and masking passwords in URLs.

Used by the command line (``--store URL``) and reusable by anything else that takes a
store as a URL (the APScheduler 3 compatibility layer). Nothing here imports a driver:
:func:`create_data_store` imports the store module of the URL's kind only when called.

Accepted forms (``*`` marks the horae options, removed before the URL reaches the
driver)::

    sqlite:///relative/path.db          sqlite:////absolute/path.db
    postgresql://user:pw@host:5432/db?schema=*horae   (also postgres://, postgresql+driver://)
    redis://:pw@host:6379/0?prefix=*horae             (also rediss://, unix://)
    mongodb://user:pw@host/DATABASE?replicaSet=rs0    (database also as ?database=*name;
                                                       also mongodb+srv://)
    memory://                           (also sqlite:// and sqlite:///:memory:)
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import attrs

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from .datastores._base import DataStore
    from .serializers._base import Serializer

StoreKind = Literal["memory", "sqlite", "postgresql", "redis", "mongodb"]

_SCHEMES: dict[str, StoreKind] = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
}
#: The query option that names each kind's namespace (schema, key prefix, database).
_NAMESPACE_OPTION: dict[StoreKind, str] = {
    "postgresql": "schema",
    "redis": "prefix",
    "mongodb": "database",
}
_EXAMPLES = (
    "sqlite:///path/to/file.db, postgresql://user:password@host:5432/database, "
    "redis://host:6379/0, mongodb://host:27017/database"
)
_PASSWORD_OPTION = re.compile(r"(?i)([?&](?:password|pass|pwd)=)([^&#]*)")


def _split_user_info(url: str) -> tuple[str, str, str, str] | None:
    """``(scheme://, user, password, rest from the '@' on)`` of a URL with a password."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return None
    # The user info ends at the last '@' before the query or fragment starts (a password
    # may contain '/' or '@' when it was not percent-encoded, so the path cannot tell).
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = head.rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return None
    user, _, password = rest[:at].partition(":")
    return scheme + separator, user, password, rest[at:]


def mask_url(url: str) -> str:
    """*url* with its password (in the user info or a ``password=`` option) shown as ``***``.

    The one function that every store, broker and message uses to show a connection
    URL. Safe on anything: text that is not a URL comes back unchanged.

    >>> mask_url("postgresql://app:s3cret@db:5432/prod")
    'postgresql://app:***@db:5432/prod'
    >>> mask_url("mongodb://app:a/b@db/prod")
    'mongodb://app:***@db/prod'
    >>> mask_url("redis://cache:6379/0?password=s3cret")
    'redis://cache:6379/0?password=***'
    """
    parts = _split_user_info(url)
    if parts is not None:
        scheme, user, _, rest = parts
        url = f"{scheme}{user}:***{rest}"
    return _PASSWORD_OPTION.sub(r"\1***", url)


def hide_password(text: str, url: str) -> str:
    """*text* (say, a driver's error message about *url*) with *url*'s password shown as ``***``.

    Drivers quote parts of the URL they could not parse: a password with an unescaped
    '/' is read as a port number or a path, so each piece of the password (split at
    '/', '?', '#', '@' and ':') is hidden too, where it stands as a whole word.

    >>> hide_password("bad port 'se' in redis://:se/cret@h", "redis://:se/cret@h")
    "bad port '***' in redis://:***@h"
    """
    secrets = [match.group(2) for match in _PASSWORD_OPTION.finditer(url)]
    parts = _split_user_info(url)
    if parts is not None:
        secrets.append(parts[2])
    secrets += [unquote(secret) for secret in secrets]
    text = mask_url(text)
    for secret in sorted({secret for secret in secrets if secret}, key=len, reverse=True):
        text = text.replace(secret, "***")
        for piece in re.split(r"[/?#@:]", secret):
            if piece and piece != secret:
                text = re.sub(rf"(?<![\w*]){re.escape(piece)}(?![\w*])", "***", text)
    return text


@attrs.frozen(kw_only=True)
class StoreURL:
    """A data store URL, parsed and checked (see :func:`parse_store_url`).

    Attributes:
        kind: ``"memory"``, ``"sqlite"``, ``"postgresql"``, ``"redis"`` or ``"mongodb"``.
        target: what the store's constructor takes: the SQLite file path, or the
            connection URL with the horae options removed (and a ``+driver`` suffix of
            a SQLAlchemy-style PostgreSQL URL dropped). It may hold a password: never
            print it, print :attr:`masked`.
        namespace: the PostgreSQL schema, Redis key prefix or MongoDB database named in
            the URL, or ``None`` for the store's default (``"horae"``).
        masked: the URL as given, with its password shown as ``***``.
    """

    kind: StoreKind
    target: str = attrs.field(repr=False)
    namespace: str | None = None
    masked: str

    def __str__(self) -> str:
        return self.masked


def parse_store_url(url: str) -> StoreURL:
    """Parse a data store URL (see the module docstring for the accepted forms).

    Raises:
        ConfigurationError: for an unknown scheme (suggesting the closest one), a URL
            without a path where one is needed, an unknown horae option, or two
            different MongoDB database names. Messages never show the password.
        TypeError: when *url* is not a str.
    """
    if not isinstance(url, str):
        raise TypeError(f"a store URL must be a str, not {type(url).__name__}")
    masked = mask_url(url)
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    base_scheme = scheme.partition("+")[0] if scheme != "mongodb+srv" else scheme
    kind = _SCHEMES.get(base_scheme) if separator else None
    if kind is None:
        raise ConfigurationError(_unknown_scheme_message(scheme if separator else "", masked))
    if kind == "memory":
        return StoreURL(kind="memory", target="", masked=masked)
    if kind == "sqlite":
        return _parse_sqlite(url, masked)
    parts = urlsplit(url)
    option = _NAMESPACE_OPTION[kind]
    query = parse_qsl(parts.query, keep_blank_values=True)
    namespace_values = [value for key, value in query if key == option]
    rest = [(key, value) for key, value in query if key != option]
    if len(namespace_values) > 1 or (namespace_values and not namespace_values[0]):
        raise ConfigurationError(
            f"invalid store URL {masked!r}: give the option {option!r} once, with a "
            f"non-empty value"
        )
    namespace = namespace_values[0] if namespace_values else None
    if kind == "mongodb":
        namespace = _mongodb_database(parts.path, namespace, masked)
    target = url
    if kind == "postgresql":  # postgres://, postgresql+asyncpg://, ... → postgresql://
        target = "postgresql" + url[len(scheme) :]
    if namespace_values:  # rebuild the query without the horae option
        base = target.partition("?")[0]
        target = f"{base}?{urlencode(rest, safe=':/,')}" if rest else base
    return StoreURL(kind=kind, target=target, namespace=namespace, masked=masked)


def _unknown_scheme_message(scheme: str, masked: str) -> str:
    if not scheme:
        return (
            f"invalid store URL {masked!r}: expected a URL such as {_EXAMPLES} (a plain "
            f"file path needs the sqlite:/// prefix)"
        )
    close = difflib.get_close_matches(scheme, list(_SCHEMES), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}://'?" if close else ""
    return (
        f"unsupported store URL scheme {scheme + '://'!r} in {masked!r} (supported: "
        f"{_EXAMPLES}){hint}"
    )


def _parse_sqlite(url: str, masked: str) -> StoreURL:
    rest = url.partition("://")[2]
    if rest in ("", "/", "/:memory:"):
        return StoreURL(kind="memory", target="", masked=masked)
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"invalid SQLite URL {masked!r}: use three slashes before a relative path "
            f"('sqlite:///data/horae.db') and four before an absolute one "
            f"('sqlite:////var/lib/horae.db')"
        )
    path, _, query = rest[1:].partition("?")
    if query:
        raise ConfigurationError(
            f"invalid SQLite URL {masked!r}: SQLite URLs take no options (found {'?' + query!r})"
        )
    return StoreURL(kind="sqlite", target=unquote(path), masked=masked)


def _mongodb_database(path: str, option: str | None, masked: str) -> str | None:
    from_path = unquote(path.lstrip("/")) or None
    if from_path is not None and option is not None and from_path != option:
        raise ConfigurationError(
            f"invalid MongoDB URL {masked!r}: it names the database twice, {from_path!r} "
            f"in the path and {option!r} in ?database=; keep one"
        )
    return option if option is not None else from_path


def create_data_store(
    url: str | StoreURL,
    *,
    serializer: Serializer | None = None,
    connect_timeout: float | None = None,
) -> DataStore:
    """Make the data store that *url* describes (not started yet).

    Args:
        url: a store URL, or one already parsed by :func:`parse_store_url`.
        serializer: the serializer of job arguments and results (the store's default,
            JSON, when ``None``).
        connect_timeout: seconds to wait for the server when the store starts (each
            store's default when ``None``; no effect on SQLite and memory stores).

    Raises:
        ConfigurationError: for a URL that :func:`parse_store_url` refuses, or that the
            store's own checks refuse.
        ModuleNotFoundError: when the driver of that kind of store is not installed
            (install the ``horae[postgres]``, ``horae[redis]`` or ``horae[mongodb]``
            extra).
    """
    parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
    if parsed.kind == "memory":
        from .datastores.memory import MemoryDataStore

        return MemoryDataStore()
    if parsed.kind == "sqlite":
        from .datastores.sqlite import SQLiteDataStore

        return SQLiteDataStore(parsed.target, serializer=serializer)
    namespace = parsed.namespace or "horae"
    if parsed.kind == "postgresql":
        from .datastores.postgres import PostgresDataStore

        if connect_timeout is None:
            return PostgresDataStore(parsed.target, namespace, serializer=serializer)
        return PostgresDataStore(
            parsed.target, namespace, serializer=serializer, connect_timeout=connect_timeout
        )
    if parsed.kind == "redis":
        from .datastores.redis import RedisDataStore

        target = parsed.target
        if connect_timeout is not None and "socket_connect_timeout=" not in target:
            # the store's client takes options from the URL's query (they win)
            separator = "&" if "?" in target else "?"
            target = f"{target}{separator}socket_connect_timeout={connect_timeout:g}"
        return RedisDataStore(target, namespace, serializer=serializer)
    from .datastores.mongodb import MongoDBDataStore

    if connect_timeout is None:
        return MongoDBDataStore(parsed.target, namespace, serializer=serializer)
    return MongoDBDataStore(
        parsed.target, namespace, serializer=serializer, server_selection_timeout=connect_timeout
    )
