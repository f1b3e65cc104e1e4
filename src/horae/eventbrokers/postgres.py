"""PostgresEventBroker: events between nodes through PostgreSQL's LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import anyio
import asyncpg  # type: ignore[import-untyped]

from horae._exceptions import ConfigurationError, DataStoreError, EventBrokerError
from horae.datastores._postgres_connection import DsnInfo, describe_dsn, is_transient, open_pool
from horae.datastores._postgres_schema import quote_schema

from ._remote import RemoteBroker, positive_seconds

#: NOTIFY refuses payloads of this many bytes or more (PostgreSQL's default build).
NOTIFY_LIMIT = 8000
#: The table (in the broker's schema) that carries the events too big for NOTIFY.
PAYLOAD_TABLE = "horae_event_payloads"
#: How a notification that refers to a stored payload starts; an inline one is a JSON
#: object and starts with "{". The rest is "<origin>:<payload id>".
_REF_PREFIX = "horae-ref:"
#: How long dropping the listening connection may take before it is terminated.
_DISCONNECT_TIMEOUT = 2.0

_NOTIFY = "SELECT pg_notify($1, $2)"
# Several notifications in one statement (one round trip, one transaction), sent in the
# array's order. PostgreSQL folds identical payloads of one transaction into one, so
# the payloads of one statement must differ (see _send_many).
_NOTIFY_MANY = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
# One statement, so one transaction: the notification goes out at commit, when the row
# is visible to the receivers. Rows older than the retention go in the same statement,
# so the table stays as small as the events of the last couple of minutes.
_STORE_AND_NOTIFY = """
WITH expired AS (
    DELETE FROM {table} WHERE created_at < now() - make_interval(secs => $5)
), stored AS (
    INSERT INTO {table} (id, payload) VALUES ($1, $2) RETURNING id
)
SELECT pg_notify($3, $4) FROM stored
"""
# UNLOGGED: the rows live for minutes and need neither WAL nor crash safety.
_CREATE_TABLE = """
CREATE UNLOGGED TABLE IF NOT EXISTS {table} (
    id uuid PRIMARY KEY,
    payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
# Lets operators (and the outage tests) tell the listening connection from the others:
# the DSN's application_name (or "horae") followed by " listener". The broker's own pool
# does not reset released connections (see open_pool), so _disconnect resets this one
# (RESET ALL restores the original name) before handing it back.
_NAME_LISTENER = (
    "SELECT set_config('application_name', "
    "left(current_setting('application_name'), 54) || ' listener', false)"
)


class PostgresEventBroker(RemoteBroker):
    """Shares events between schedulers through PostgreSQL's LISTEN/NOTIFY.

    One connection listens on the channel for as long as the broker runs; ``publish``
    sends ``pg_notify`` on another connection of the pool. Every instance connected to
    the same database and channel gets every event (:attr:`shared` is True), in one
    order for all: the server's (see :mod:`horae.eventbrokers._remote`, which also
    describes how the broker reconnects and why ``publish`` never raises).

    **Large events.** NOTIFY takes payloads of less than 8000 bytes. An event whose
    message is larger is stored in the table ``<schema>.horae_event_payloads`` (created
    on first use, ``UNLOGGED``) and the notification carries only its id; receivers read
    the row. The same statement that stores a row deletes those older than
    ``payload_retention`` seconds, so a receiver that falls behind by more than that
    misses the event (logged; the scheduler finds the work by polling). Events are
    small (ids and times), so this only happens for unusual ones, such as a
    ``JobReleased`` with a very long exception message.

    Args:
        dsn_or_pool: a ``postgresql://user:password@host:port/database`` DSN (the
            broker opens and closes its own pool, whose connections identify themselves
            as ``application_name=horae`` unless the DSN sets another), or an
            ``asyncpg.Pool`` that the caller owns (never closed by the broker; the
            broker holds one of its connections for listening while it runs).
        channel: the NOTIFY channel, 1 to 63 bytes. Nodes that should see each other's
            events use the same channel.
        schema: the schema of the payload table for large events (the data store's
            schema is a good choice).
        connect_timeout: seconds that :meth:`start` (and each reconnection) may take.
        reconnect_delay: the first back-off in seconds after a lost connection; it
            doubles on each failed attempt up to ``max_reconnect_delay``.
        max_reconnect_delay: the longest back-off between reconnection attempts.
        health_check_interval: after this many seconds without a notification, the
            listening connection runs ``SELECT 1`` to prove it is alive.
        publish_timeout: seconds that :meth:`publish` waits for the server to take an
            event and send it back before delivering it locally anyway.
        payload_retention: seconds that a large event's row is kept.
        delivery_grace_period: how many seconds :meth:`stop` waits for queued async
            deliveries before it cancels them.

    Raises:
        ConfigurationError: for a DSN that is not a PostgreSQL URL, or an unusable
            channel or schema name.
        ValueError: for a timing argument that is not a positive number.
    """

    def __init__(
        self,
        dsn_or_pool: str | asyncpg.Pool,
        channel: str = "horae",
        *,
        schema: str = "horae",
        connect_timeout: float = 10.0,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        health_check_interval: float = 10.0,
        publish_timeout: float = 5.0,
        payload_retention: float = 120.0,
        delivery_grace_period: float = 5.0,
    ) -> None:
        super().__init__(
            connect_timeout=connect_timeout,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            health_check_interval=health_check_interval,
            publish_timeout=publish_timeout,
            delivery_grace_period=delivery_grace_period,
        )
        self._dsn: DsnInfo | None = None
        self._dsn_text = ""
        self._user_pool: asyncpg.Pool | None = None
        if isinstance(dsn_or_pool, asyncpg.Pool):
            self._user_pool = dsn_or_pool
        else:
            self._dsn = describe_dsn(dsn_or_pool)
            self._dsn_text = dsn_or_pool
        self.channel = _check_channel(channel)
        self._schema = schema
        self._quoted_schema = quote_schema(schema)
        self._table = f"{self._quoted_schema}.{PAYLOAD_TABLE}"
        self.payload_retention = positive_seconds(payload_retention, "payload_retention")
        self._pool: asyncpg.Pool | None = None
        self._conn: Any = None  # the listening connection (a pool connection proxy)
        self._queue: asyncio.Queue[str | None] | None = None
        self._callbacks: tuple[Any, Any] | None = None
        self._table_ready = False

    def __repr__(self) -> str:
        target = "<pool>" if self._dsn is None else repr(self._dsn.masked)
        return f"{type(self).__name__}({target}, channel={self.channel!r})"

    @property
    def _server(self) -> str:
        if self._dsn is None:
            return f"PostgreSQL (through the pool passed in), channel {self.channel!r}"
        return (
            f"PostgreSQL at {self._dsn.where} (database {self._dsn.database!r}), "
            f"channel {self.channel!r}"
        )

    def _is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc)

    # ---- connections -------------------------------------------------------------------

    async def _open(self) -> None:
        if self._dsn is None:
            self._pool = self._user_pool
            return
        try:
            self._pool = await open_pool(self._dsn_text, self._dsn, self.connect_timeout)
        except DataStoreError as exc:
            # the store's message names the server and never the password; only the
            # class differs for a broker
            raise EventBrokerError(str(exc)) from exc

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None or self._dsn is None:
            return
        try:
            with anyio.fail_after(self.publish_timeout):
                await pool.close()
        except TimeoutError:
            pool.terminate()  # a connection hangs (lost server); do not wait for it

    async def _connect(self) -> None:
        assert self._pool is not None
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def on_notification(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            queue.put_nowait(payload)

        def on_termination(_conn: Any) -> None:
            queue.put_nowait(None)  # after the notifications that came before the loss

        conn = await self._pool.acquire()
        self._conn, self._queue = conn, queue
        self._callbacks = (on_notification, on_termination)
        conn.add_termination_listener(on_termination)
        await conn.execute(_NAME_LISTENER)
        await conn.add_listener(self.channel, on_notification)

    async def _listen(self) -> None:
        conn, queue = self._conn, self._queue
        assert conn is not None
        assert queue is not None
        while True:
            try:
                with anyio.fail_after(self.health_check_interval):
                    payload = await queue.get()
            except TimeoutError:
                # Silence: prove that the connection is alive (a server that vanished
                # without closing the socket never triggers the termination listener).
                await conn.fetchval("SELECT 1", timeout=self.health_check_interval)
                continue
            if payload is None:
                raise ConnectionError("the server closed the listening connection")
            await self._handle(conn, payload)

    async def _disconnect(self, *, broken: bool) -> None:
        conn, self._conn = self._conn, None
        callbacks, self._callbacks = self._callbacks, None
        self._queue = None
        pool = self._pool
        if conn is None or pool is None:
            return
        try:
            if callbacks is not None:
                conn.remove_termination_listener(callbacks[1])
                if not broken and not conn.is_closed():
                    try:
                        with anyio.fail_after(_DISCONNECT_TIMEOUT):
                            # asyncpg warns when a connection that still listens goes
                            # back to the pool
                            await conn.remove_listener(self.channel, callbacks[0])
                            if self._dsn is not None:
                                # our pool skips the reset on release; this connection
                                # changed its application_name (a pool passed in
                                # resets it as its owner configured)
                                await conn.reset()
                    except Exception:
                        broken = True
            if broken and not conn.is_closed():
                conn.terminate()  # the pool opens a fresh connection when needed
            # A terminated connection was released already, and this does nothing.
            await pool.release(conn, timeout=_DISCONNECT_TIMEOUT)
        except Exception as exc:
            self._logger.debug("dropped the listening connection uncleanly: %r", exc)

    # ---- sending and receiving ---------------------------------------------------------

    #: Batches are packed into notifications that NOTIFY takes (see RemoteBroker).
    _batch_limit = NOTIFY_LIMIT - 1

    def _frame(self, message: str) -> str:
        if len(message.encode("utf-8")) < NOTIFY_LIMIT:
            return message
        return f"{_REF_PREFIX}{self._origin}:{uuid4()}"

    async def _send_many(self, frames: Sequence[tuple[str, str]]) -> None:
        # Runs of inline notifications go out in one statement each; a large event
        # (stored in the payload table) takes a statement of its own, in its place.
        pool = self._pool
        assert pool is not None
        run: list[str] = []
        for wire, message in [*frames, ("", "")]:
            if wire and not wire.startswith(_REF_PREFIX) and wire not in run:
                run.append(wire)
                continue
            if len(run) == 1:
                await pool.execute(_NOTIFY, self.channel, run[0])
            elif run:
                await pool.execute(_NOTIFY_MANY, self.channel, run)
            run = []
            if wire.startswith(_REF_PREFIX):
                await self._send(wire, message)
            elif wire:
                run.append(wire)  # equal to one in the run just sent: a new statement

    async def _send(self, wire: str, message: str) -> None:
        pool = self._pool
        assert pool is not None
        if not wire.startswith(_REF_PREFIX):
            await pool.execute(_NOTIFY, self.channel, wire)
            return
        payload_id = UUID(wire.rpartition(":")[2])
        try:
            await self._create_payload_table(pool)
            await pool.execute(
                _STORE_AND_NOTIFY.format(table=self._table),
                payload_id,
                message,
                self.channel,
                wire,
                self.payload_retention,
            )
        except BaseException:
            self._table_ready = False  # perhaps dropped meanwhile: create it next time
            raise

    async def _create_payload_table(self, pool: asyncpg.Pool) -> None:
        if self._table_ready:
            return
        async with pool.acquire() as conn, conn.transaction():
            # The data store's lock for this schema: concurrent CREATE ... IF NOT
            # EXISTS statements race on PostgreSQL's catalogs, so they take turns.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"horae:{self._schema}"
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._quoted_schema}")
            await conn.execute(_CREATE_TABLE.format(table=self._table))
        self._table_ready = True

    async def _handle(self, conn: Any, payload: str) -> None:
        """Deliver one notification; a large event is first read from its table."""
        if not payload.startswith(_REF_PREFIX):
            self._receive(payload)
            return
        if self._take_echo(payload):
            return  # our own: the event is in hand, no need to read it back
        origin, _, reference = payload[len(_REF_PREFIX) :].partition(":")
        if origin == self._origin:
            return  # a late echo; its publisher has already delivered it here
        message = await self._load_payload(conn, reference)
        if message is not None:
            self._receive(message)

    async def _load_payload(self, conn: Any, reference: str) -> str | None:
        try:
            payload_id = UUID(reference)
        except ValueError:
            self._logger.warning("ignored a malformed message on %s", self._server)
            return None
        try:
            # On the listening connection: it is ours alone, so a busy pool cannot
            # delay the listener, and the notifications behind this one wait in order.
            message: str | None = await conn.fetchval(
                f"SELECT payload FROM {self._table} WHERE id = $1",  # noqa: S608 - quoted identifier
                payload_id,
                timeout=self.publish_timeout,
            )
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise  # the connection is in trouble: reconnect
            self._logger.warning("could not read a large event from %s: %s", self._table, exc)
            return None
        if message is None:
            self._logger.warning(
                "a large event in %s was gone before this node read it (older than "
                "payload_retention=%gs); the scheduler finds the work by polling",
                self._table,
                self.payload_retention,
            )
        return message


def _check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not channel or "\x00" in channel:
        raise ConfigurationError(
            f"invalid PostgreSQL NOTIFY channel {channel!r}: use a non-empty str such as 'horae'"
        )
    if len(channel.encode("utf-8")) > 63:
        raise ConfigurationError(
            f"invalid PostgreSQL NOTIFY channel {channel!r}: it is longer than "
            f"PostgreSQL's 63-byte limit for names"
        )
    return channel
