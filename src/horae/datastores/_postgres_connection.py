"""The PostgreSQL store's connections: DSNs, the pool, transient errors, the schema.

:func:`describe_dsn` checks a DSN and names its server without its password;
:func:`open_pool` connects (failing fast with a clear message); :func:`is_transient`
tells the :class:`~horae.datastores._retry.Retrier` which driver errors are worth
retrying; :func:`create_or_check_schema` creates the tables or checks their version.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]
import attrs

from horae._exceptions import ConfigurationError, DataStoreError, SchemaVersionError
from horae._store_urls import hide_password, mask_url
from horae.datastores._postgres_schema import SCHEMA_VERSION, schema_ddl, version_table_ddl
from horae.datastores._retry import Retrier

_T = TypeVar("_T")
#: ``operation(connection, retrying)``: see :meth:`PoolRunner.run`.
Operation = Callable[[Any, bool], Awaitable[_T]]

#: SQLSTATEs worth retrying: serialization failure, deadlock (both roll the transaction
#: back whole), server shutting down or starting up, too many connections.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})

#: The application_name of the store's own connections (unless the DSN sets one).
DEFAULT_APPLICATION_NAME = "horae"


@attrs.frozen
class DsnInfo:
    """What a DSN says, safe to print: no password in any field."""

    where: str  # "host:port" (or several, comma-separated)
    database: str | None
    user: str | None
    masked: str  # the DSN with its password replaced by "***"
    sets_application_name: bool


def describe_dsn(dsn: str) -> DsnInfo:
    """Check that *dsn* is a PostgreSQL URL and describe it without its password.

    Raises:
        ConfigurationError: when it is not a ``postgresql://`` (or ``postgres://``) URL.
    """
    if not isinstance(dsn, str):
        raise TypeError(f"expected a DSN string or an asyncpg pool, not {type(dsn).__name__}")
    # parsed without its password, which may hold an unescaped '/' that ends the host part
    parts = urlsplit(mask_url(dsn))
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"invalid PostgreSQL DSN {mask_url(dsn)!r}: expected a URL such as "
            f"'postgresql://user:password@host:5432/database'"
        )
    query = parse_qs(parts.query)
    port = query.get("port", ["5432"])[0]
    hostpart = parts.netloc.rpartition("@")[2]
    hosts = hostpart.split(",") if hostpart else query.get("host", ["localhost"])[0].split(",")
    where = ",".join(
        host if host.startswith("/") or _has_port(host) else f"{host}:{port}" for host in hosts
    )
    return DsnInfo(
        where=where,
        database=unquote(parts.path.lstrip("/")) or None,
        user=unquote(parts.username) if parts.username else None,
        masked=mask_url(dsn),
        sets_application_name="application_name" in query,
    )


def _has_port(host: str) -> bool:
    return host.rpartition(":")[2].isdigit() and not host.endswith("]")


def _hint(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "nothing accepts connections there; is the server running on that host and port?"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"no answer within {timeout:g} s; is the host reachable (firewall, address)?"
    if isinstance(exc, socket.gaierror):
        return "the host name cannot be resolved; check its spelling"
    if isinstance(
        exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
    ):
        return "the server refused the credentials; check the user name and password"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "that database does not exist; create it or fix the DSN"
    return "check the DSN and that the server is running"


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does.

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release, one more round trip per operation. The
    store and the broker leave no session state on a pooled connection: their advisory
    locks are transaction-scoped, they declare no cursors outside transactions, and they
    change no settings. (asyncpg still rolls back an open transaction and drops the
    Python-side listeners before calling this.) The one exception, the broker's
    listening connection, resets itself before it goes back (see
    ``PostgresEventBroker._disconnect``).
    """


async def open_pool(dsn: str, info: DsnInfo, timeout: float) -> asyncpg.Pool:
    """Create a connection pool for *dsn*, failing within about *timeout* seconds.

    Released connections are not reset (see :func:`_keep_session`).

    Raises:
        DataStoreError: naming the server, the database and what went wrong (never the
            password) when the first connection cannot be made.
        ConfigurationError: when asyncpg finds the DSN malformed.
    """
    settings = {} if info.sets_application_name else {"application_name": DEFAULT_APPLICATION_NAME}
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=10,
            timeout=timeout,
            server_settings=settings,
            reset=_keep_session,
        )
    except ValueError as exc:  # a malformed port, sslmode, ... (asyncpg checks on connect)
        detail = hide_password(str(exc), dsn)
        raise ConfigurationError(f"invalid PostgreSQL DSN {info.masked!r}: {detail}") from exc
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        detail = hide_password(f"{type(exc).__name__}: {exc}", dsn)
        raise DataStoreError(
            f"cannot connect to PostgreSQL at {info.where} (database {info.database!r}, "
            f"user {info.user!r}): {detail}; {_hint(exc, timeout)}"
        ) from exc


class PoolRunner:
    """Runs operations on pooled connections, retrying them through lost connections.

    A connection that the server closed is noticed by the pool, which opens a new one
    for the next attempt; the :class:`Retrier` waits between attempts with back-off.
    """

    def __init__(self, pool: asyncpg.Pool, retrier: Retrier, logger: logging.Logger) -> None:
        self._pool = pool
        self._retrier = retrier
        self._logger = logger

    async def run(self, description: str, operation: Operation[_T]) -> _T:
        """Run ``operation(connection, retrying)``, retrying transient failures.

        ``retrying`` is True from the second attempt on: an earlier attempt may have
        committed just before its connection died, so the operation may have to
        recognise its own earlier work.
        """
        attempts = 0

        async def attempt() -> _T:
            nonlocal attempts
            attempts += 1
            conn = await self._pool.acquire()
            try:
                result = await operation(conn, attempts > 1)
            except BaseException:
                await self._release(conn)
                raise
            await self._release(conn)
            return result

        return await self._retrier.run(description, attempt)

    async def fetch(self, description: str, query: str, *args: Any) -> list[Any]:
        """``connection.fetch(query, *args)`` through :meth:`run`."""

        async def operation(conn: Any, retrying: bool) -> list[Any]:
            rows: list[Any] = await conn.fetch(query, *args)
            return rows

        return await self.run(description, operation)

    async def _release(self, conn: Any) -> None:
        try:
            await self._pool.release(conn)
        except Exception as exc:
            # Resetting a connection that the server has just closed fails; the pool
            # then drops it and opens a new one when needed. The operation's outcome
            # (its result or its own error) stands.
            self._logger.debug("dropped a broken PostgreSQL connection: %r", exc)


def is_transient(exc: BaseException) -> bool:
    """Whether *exc* is a failure that the same operation may overcome when retried.

    Lost and refused connections (the pool reconnects on the next attempt), a server
    that is restarting, and serialization failures or deadlocks (the transaction was
    rolled back whole, so repeating it is safe).
    """
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state in _TRANSIENT_SQLSTATES or state.startswith("08")
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed", "the underlying connection is closed", ...
        return "closed" in str(exc)
    # The protocol lost track of a connection that died mid-operation ("cannot switch
    # to state ..."); the pool replaces the connection.
    return isinstance(exc, asyncpg.InternalClientError)


async def create_or_check_schema(conn: asyncpg.Connection, schema: str, quoted: str) -> None:
    """Create the store's schema and tables on first use, or check their version.

    One transaction under an advisory lock named after the schema, so that processes
    starting at once against a new database serialize here (``CREATE ... IF NOT
    EXISTS`` alone races on PostgreSQL's catalogs); the second one finds the version the
    first recorded. Starting again changes nothing.

    Raises:
        SchemaVersionError: when the schema was created by a newer horae.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"horae:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(version_table_ddl(quoted))
        version = await conn.fetchval(
            f"SELECT version FROM {quoted}.schema_version"  # noqa: S608 - quoted identifier
        )
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the PostgreSQL schema {schema!r} was created by a newer version of horae "
                f"(schema version {version}, this version supports {SCHEMA_VERSION}); "
                f"upgrade horae"
            )
        await conn.execute(";\n".join(schema_ddl(quoted)))
        if version is None:
            await conn.execute(
                f"INSERT INTO {quoted}.schema_version (version) VALUES ($1)",  # noqa: S608 - quoted identifier
                SCHEMA_VERSION,
            )
