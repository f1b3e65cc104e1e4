"""The MongoDB store's connection: client ownership, the schema, retries, transactions, events.

:class:`MongoDBConnection` is the base of :class:`~horae.datastores.mongodb.MongoDBDataStore`;
it knows how to reach MongoDB and run things there, not what a schedule or a job is.

Collections (all in the store's database):

* ``metadata``: ``{_id: "schema", version: N}`` (:data:`SCHEMA_VERSION`).
* ``tasks``: ``_id`` = task id; index ``limited (max_running_jobs)``.
* ``schedules``: ``_id`` = schedule id; indexes ``due (paused, next_fire_time, _id)``,
  ``pause_end (paused, paused_until)`` and ``lease (acquired_until)``. Besides the
  record fields: ``rev`` (bumped by every write, so an acquisition can tell that a
  document is still the one it read), ``claim`` (the token of the acquisition that holds
  it) and ``fired_until`` (the exactly-once watermark, see ``release_schedules``).
* ``jobs``: ``_id`` = job id (UUID); ``seq`` (an ObjectId) orders jobs with equal start
  times by insertion; indexes ``pending (acquired_by, start_time, seq)``, ``order
  (start_time, seq)``, ``lease (acquired_until)``, ``deadline (start_deadline)`` and
  ``schedule (schedule_id, start_time, seq)`` (``get_schedule_jobs``). Besides the
  record fields: ``released`` (``{token, started_at, retry_at}`` of the ``release_job``
  call that last retried the job, so that a repeat of that call finds what it did).
* ``job_results``: ``_id`` = job id; index ``expiry (expires_at)``.
* ``locks``: ``{_id: "task:<id>" | "schedule:<id>", n}``: written by every
  ``acquire_jobs`` transaction that claims a job under a running limit, so that two such
  transactions conflict (see ``acquire_jobs``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from logging import Logger
from typing import Any, TypeVar

import anyio
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    CollectionInvalid,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from horae._clock import Clock, SystemClock
from horae._exceptions import ConfigurationError, DataStoreError, SchemaVersionError
from horae._store_urls import hide_password, mask_url
from horae.datastores._base import StoreCapabilities
from horae.datastores._retry import Retrier
from horae.eventbrokers._base import EventBroker
from horae.events import Event
from horae.serializers import JSONSerializer, PickleSerializer, Serializer

#: The layout version this code writes; a database written by a newer one is refused.
SCHEMA_VERSION = 1
#: How long finding a usable server may take before an operation fails, in seconds.
SERVER_SELECTION_TIMEOUT = 5.0

_T = TypeVar("_T")
_Document = dict[str, Any]

#: Server error codes that mean "try again": elections, shutdowns, network trouble, write
#: conflicts and lock timeouts (see the MongoDB error code list).
_TRANSIENT_CODES = frozenset(
    {6, 7, 24, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)
#: How many times a transaction that lost a write conflict is tried again at once (with
#: a few milliseconds of jitter) before the conflict counts as a failure to back off from.
_CONFLICT_ATTEMPTS = 40

_INDEXES: dict[str, list[IndexModel]] = {
    "tasks": [IndexModel([("max_running_jobs", ASCENDING)], name="limited")],
    "schedules": [
        IndexModel(
            [("paused", ASCENDING), ("next_fire_time", ASCENDING), ("_id", ASCENDING)],
            name="due",
        ),
        IndexModel([("paused", ASCENDING), ("paused_until", ASCENDING)], name="pause_end"),
        IndexModel([("acquired_until", ASCENDING)], name="lease"),
    ],
    "jobs": [
        IndexModel(
            [("acquired_by", ASCENDING), ("start_time", ASCENDING), ("seq", ASCENDING)],
            name="pending",
        ),
        IndexModel([("start_time", ASCENDING), ("seq", ASCENDING)], name="order"),
        IndexModel([("acquired_until", ASCENDING)], name="lease"),
        IndexModel([("start_deadline", ASCENDING)], name="deadline"),
        IndexModel(
            [("schedule_id", ASCENDING), ("start_time", ASCENDING), ("seq", ASCENDING)],
            name="schedule",
        ),
    ],
    "job_results": [IndexModel([("expires_at", ASCENDING)], name="expiry")],
}
_COLLECTIONS = ("metadata", "tasks", "schedules", "jobs", "job_results", "locks")


class Conflict(Exception):
    """A conditional write inside a transaction did not match what the transaction read;
    the transaction is aborted and run again (never seen outside this module's loop)."""


def is_transient(exc: BaseException) -> bool:
    """Connection trouble, an election or shutdown in progress, or a lost write conflict."""
    if isinstance(exc, (ConnectionFailure, WTimeoutError, OSError)):
        return True
    if isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError")
        or exc.has_error_label("UnknownTransactionCommitResult")
        or exc.has_error_label("RetryableWriteError")
    ):
        return True
    return isinstance(exc, OperationFailure) and exc.code in _TRANSIENT_CODES


def _valid_database_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name.encode()) < 64
        and not any(char in name for char in '/\\. "$\x00')
    )


class MongoDBConnection:
    """A MongoDB client (owned or borrowed), the store's database, and how to call it.

    Args:
        uri_or_client: see :class:`~horae.datastores.mongodb.MongoDBDataStore`.
        database: the name of the database that holds the store's collections.
        serializer: encodes user payloads (JSON by default).
        server_selection_timeout: seconds to wait for a usable server (owned clients).
    """

    def __init__(
        self,
        uri_or_client: str | AsyncMongoClient[Any],
        database: str,
        serializer: Serializer | None,
        server_selection_timeout: float,
    ) -> None:
        self._uri: str | None = None
        self._client: AsyncMongoClient[Any] | None = None
        if isinstance(uri_or_client, str):
            if not uri_or_client.startswith(("mongodb://", "mongodb+srv://")):
                raise ConfigurationError(
                    f"invalid MongoDB URI {mask_url(uri_or_client)!r}: it must start with "
                    f"mongodb:// or mongodb+srv://"
                )
            self._uri = uri_or_client
        elif isinstance(uri_or_client, AsyncMongoClient):
            self._client = uri_or_client
        else:
            raise ConfigurationError(
                f"MongoDBDataStore needs a MongoDB URI or a pymongo AsyncMongoClient, not "
                f"{type(uri_or_client).__name__} (Motor clients are not supported)"
            )
        if not _valid_database_name(database):
            raise ConfigurationError(
                f"invalid MongoDB database name {database!r}: use 1-63 bytes without "
                f"'/', '\\', '.', ' ', '\"' or '$'"
            )
        if server_selection_timeout <= 0:
            raise ConfigurationError(
                f"invalid server_selection_timeout {server_selection_timeout!r}: use a "
                f"positive number of seconds"
            )
        self._database_name = database
        self._selection_timeout = server_selection_timeout
        self._serializer = serializer if serializer is not None else JSONSerializer()
        self._capabilities = StoreCapabilities(
            persistent=True,
            shared=True,
            requires_references=True,
            keeps_exception_objects=isinstance(self._serializer, PickleSerializer),
        )
        self._db: AsyncDatabase[_Document] | None = None
        self._broker: EventBroker | None = None
        self._logger: Logger = logging.getLogger("horae.datastores.mongodb")
        self._clock: Clock = SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="MongoDB")

    def __repr__(self) -> str:
        target = mask_url(self._uri) if self._uri is not None else self._client
        return f"{type(self).__name__}({target!r}, database={self._database_name!r})"

    # ---- life cycle -------------------------------------------------------------------

    async def _open(self, event_broker: EventBroker, logger: Logger, clock: Clock | None) -> None:
        self._logger = logger
        self._clock = clock if clock is not None else SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="MongoDB", logger=logger)
        owned = self._uri is not None
        client = self._connect(self._uri) if self._uri is not None else self._client
        assert client is not None
        try:
            await self._check_server(client)
            db = client.get_database(
                self._database_name,
                codec_options=CodecOptions(
                    document_class=dict, uuid_representation=UuidRepresentation.STANDARD
                ),
                # acknowledged means stored on a majority: a failover cannot undo it
                write_concern=WriteConcern("majority"),
            )
            await self._create_or_check_schema(client, db)
        except BaseException:
            if owned:
                await client.close()
            raise
        if owned:
            self._client = client
        self._db = db
        self._broker = event_broker

    def _connect(self, uri: str) -> AsyncMongoClient[Any]:
        timeout_ms = int(self._selection_timeout * 1000)
        try:
            return AsyncMongoClient(
                uri,
                appname="horae",
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                # No streaming monitor and no RTT monitor connection: that connection is
                # opened in the background after the first contact, and closing the
                # client while it connects leaks its socket (pymongo 4.x). Polling finds a
                # new primary as fast, since every failed operation asks for a check.
                serverMonitoringMode="poll",
            )
        except (PyMongoError, ValueError) as exc:  # pymongo raises both for a bad URI
            raise ConfigurationError(
                f"invalid MongoDB URI {mask_url(uri)!r}: {hide_password(str(exc), uri)}"
            ) from exc

    @staticmethod
    def _where(client: AsyncMongoClient[Any]) -> str:
        servers = client.topology_description.server_descriptions()
        return ", ".join(f"{host}:{port}" for host, port in servers) or "MongoDB"

    async def _check_server(self, client: AsyncMongoClient[Any]) -> None:
        """Reach the server and check that it can run transactions.

        Not retried: a server that cannot be reached at start is reported at once
        (naming the hosts, never the password), so a wrong URI fails within the server
        selection timeout.
        """
        try:
            hello = await client.admin.command("hello")
        except OperationFailure as exc:
            if exc.code == 18:
                raise DataStoreError(
                    f"MongoDB at {self._where(client)} refused the credentials: {exc}"
                ) from exc
            raise DataStoreError(f"MongoDB at {self._where(client)} failed: {exc}") from exc
        except (PyMongoError, OSError) as exc:
            raise DataStoreError(
                f"cannot connect to MongoDB at {self._where(client)}: {exc} (check the URI "
                f"and that the server is running)"
            ) from exc
        if not hello.get("setName") and hello.get("msg") != "isdbgrid":
            raise DataStoreError(
                f"MongoDB at {self._where(client)} is a standalone server, but "
                f"MongoDBDataStore needs multi-document transactions: run it as a replica "
                f"set (a single-node one will do: start mongod with --replSet NAME and run "
                f"rs.initiate() once) or use a sharded cluster"
            )

    async def _create_or_check_schema(
        self, client: AsyncMongoClient[Any], db: AsyncDatabase[_Document]
    ) -> None:
        """Create the collections and indexes, record the version, or refuse a newer one.

        Every step is idempotent, so nodes that start together do not trip over each
        other, and a restart changes nothing.
        """
        where = f"the MongoDB database {self._database_name!r} at {self._where(client)}"
        try:
            stored = await db["metadata"].find_one({"_id": "schema"})
            if stored is None or stored.get("version") == SCHEMA_VERSION:
                await self._create_collections(db)
            if stored is None:
                try:
                    await db["metadata"].insert_one({"_id": "schema", "version": SCHEMA_VERSION})
                    return
                except DuplicateKeyError:
                    stored = await db["metadata"].find_one({"_id": "schema"})
        except PyMongoError as exc:
            raise DataStoreError(f"cannot prepare {where}: {exc}") from exc
        version = None if stored is None else stored.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise DataStoreError(
                f"{where} holds {stored!r} as its schema record, not a horae schema "
                f"version; is the database used by something else?"
            )
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{where} was created by a newer version of horae (schema version "
                f"{version}, this version supports {SCHEMA_VERSION}); upgrade horae"
            )

    @staticmethod
    async def _create_collections(db: AsyncDatabase[_Document]) -> None:
        # Transactions need their collections to exist beforehand (before MongoDB 4.4 a
        # transaction cannot create one), so every collection is made here.
        existing = set(await db.list_collection_names())
        for name in _COLLECTIONS:
            if name not in existing:
                try:
                    await db.create_collection(name)
                except CollectionInvalid:
                    pass  # another node made it meanwhile
                except OperationFailure as exc:
                    if exc.code != 48:  # NamespaceExists: likewise
                        raise
        for name, indexes in _INDEXES.items():
            await db[name].create_indexes(indexes)

    async def _close(self) -> None:
        self._broker = None
        self._db = None
        if self._uri is not None and self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def _started(self) -> AsyncDatabase[_Document]:
        if self._broker is None or self._db is None:
            raise RuntimeError(
                "the MongoDBDataStore is not started; call 'await store.start(broker, "
                "logger)' first (a scheduler does this when it starts)"
            )
        return self._db

    # ---- calls ------------------------------------------------------------------------

    async def _run(self, description: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run *operation* (which must be safe to repeat), retrying transient errors."""
        self._started()
        return await self._retrier.run(description, operation)

    async def _transaction(
        self, description: str, body: Callable[[AsyncClientSession], Awaitable[_T]]
    ) -> _T:
        """Run ``body(session)`` in a transaction and commit it, retrying as needed.

        A transaction that loses a write conflict to another node's (the label
        ``TransientTransactionError`` without a network error) is aborted and run again
        at once, a few dozen times, since the other transaction has already committed and
        the next try sees its result. Network errors, and conflicts that persist, go to
        the :class:`Retrier`, which backs off. *body* must therefore be safe to run again
        after an aborted or unknown attempt: every body re-reads what it depends on and
        repeats its conditions in its writes.
        """
        db = self._started()
        client = db.client

        async def attempts() -> _T:
            for attempt in range(_CONFLICT_ATTEMPTS):
                try:
                    async with client.start_session(causal_consistency=False) as session:
                        transaction = await session.start_transaction(
                            read_concern=ReadConcern("snapshot"),
                            write_concern=WriteConcern("majority"),
                        )
                        async with transaction:
                            return await body(session)
                except Conflict:
                    pass
                except OperationFailure as exc:
                    if not exc.has_error_label("TransientTransactionError"):
                        raise
                    if attempt == _CONFLICT_ATTEMPTS - 1:
                        raise
                await anyio.sleep(random.uniform(0, 0.001 * min(2**attempt, 20)))  # noqa: S311
            raise DataStoreError(f"MongoDB {description}: conditional writes kept missing")

        return await self._retrier.run(description, attempts)

    async def _publish(self, events: Iterable[Event]) -> None:
        broker = self._broker
        if broker is None:
            return
        for event in events:
            await self._publish_one(broker, event)

    async def _publish_one(self, broker: EventBroker, event: Event) -> None:
        # The change is already committed; a broker failure must not make the caller
        # believe it was not (it would retry). Nodes that miss the event poll.
        try:
            await broker.publish(event)
        except Exception:
            self._logger.exception("could not publish %s", type(event).__name__)
