"""The Redis store's connection: client ownership, schema version, scripts, retries, events.

:class:`RedisConnection` is the base of :class:`~horae.datastores.redis.RedisDataStore`;
it knows how to reach Redis and run things there, not what a schedule or a job is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from logging import Logger
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from horae._clock import Clock, SystemClock
from horae._exceptions import ConfigurationError, DataStoreError, SchemaVersionError
from horae._store_urls import hide_password, mask_url
from horae.datastores import _redis_job_scripts as job_scripts
from horae.datastores import _redis_scripts as scripts
from horae.datastores._base import StoreCapabilities
from horae.datastores._redis_codec import Arg
from horae.datastores._retry import Retrier
from horae.eventbrokers._base import EventBroker
from horae.eventbrokers._batching import CommittedEvents
from horae.events import Event
from horae.serializers import JSONSerializer, PickleSerializer, Serializer

#: The layout version this code writes; a prefix written by a newer one is refused.
SCHEMA_VERSION = 1
#: How long connecting may take before start() gives up, in seconds.
CONNECT_TIMEOUT = 5.0
#: How long one call may wait for its reply before it counts as a transient failure
#: (and is retried: a hung server must not hang the scheduler), in seconds.
SOCKET_TIMEOUT = 15.0
#: Connections the store opens at most; further concurrent calls wait up to
#: POOL_TIMEOUT seconds for one (then fail transiently and are retried).
POOL_SIZE = 50
POOL_TIMEOUT = 20.0

_T = TypeVar("_T")
_SCRIPTS = {
    "acquire_schedules": scripts.ACQUIRE_SCHEDULES,
    "release_schedules": scripts.RELEASE_SCHEDULES,
    "add_schedule": scripts.ADD_SCHEDULE,
    "remove_schedules": scripts.REMOVE_SCHEDULES,
    "set_paused": scripts.SET_PAUSED,
    "add_task": scripts.ADD_TASK,
    "remove_task": scripts.REMOVE_TASK,
    "add_jobs": job_scripts.ADD_JOBS,
    "acquire_jobs": job_scripts.ACQUIRE_JOBS,
    "extend_job_leases": job_scripts.EXTEND_JOB_LEASES,
    "release_job": job_scripts.RELEASE_JOB,
    "cancel_job": job_scripts.CANCEL_JOB,
    "cleanup": job_scripts.CLEANUP,
}


def is_transient(exc: BaseException) -> bool:
    """Connection trouble, a server still loading its data, or a failover in progress."""
    if isinstance(exc, AuthenticationError):
        return False
    return isinstance(
        exc,
        (
            RedisConnectionError,
            RedisTimeoutError,
            BusyLoadingError,
            ReadOnlyError,
            TryAgainError,
            ClusterDownError,
            OSError,
        ),
    )


def describe_server(client: Redis) -> str:
    """Where *client* connects to ("host:port" or the unix socket), for messages."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"the unix socket {kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


class RedisConnection:
    """A Redis client (owned or borrowed), the registered scripts, and how to call them.

    Args:
        url_or_client: see :class:`~horae.datastores.redis.RedisDataStore`.
        prefix: every key starts with ``"<prefix>:"``.
        serializer: encodes user payloads (JSON by default).
    """

    def __init__(
        self, url_or_client: str | Redis, prefix: str, serializer: Serializer | None
    ) -> None:
        if not prefix:
            raise ConfigurationError(f"invalid Redis key prefix {prefix!r}: use a non-empty str")
        self._url: str | None = None
        self._client: Redis | None = None
        if isinstance(url_or_client, str):
            if urlsplit(url_or_client).scheme not in ("redis", "rediss", "unix"):
                raise ConfigurationError(
                    f"invalid Redis URL {mask_url(url_or_client)!r}: it must start with "
                    f"redis://, rediss:// or unix://"
                )
            self._url = url_or_client
        elif isinstance(url_or_client, Redis):
            if url_or_client.connection_pool.connection_kwargs.get("decode_responses"):
                raise ConfigurationError(
                    "the Redis client given to RedisDataStore decodes responses; create it "
                    "with decode_responses=False (the store keeps binary payloads)"
                )
            self._client = url_or_client
        else:
            raise ConfigurationError(
                f"RedisDataStore needs a Redis URL or a redis.asyncio.Redis client, not "
                f"{type(url_or_client).__name__}"
            )
        self._prefix = prefix
        self._serializer = serializer if serializer is not None else JSONSerializer()
        self._capabilities = StoreCapabilities(
            persistent=True,
            shared=True,
            requires_references=True,
            keeps_exception_objects=isinstance(self._serializer, PickleSerializer),
        )
        self._broker: EventBroker | None = None
        self._events = CommittedEvents()
        self._logger: Logger = logging.getLogger("horae.datastores.redis")
        self._clock: Clock = SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="Redis")
        self._scripts: dict[str, AsyncScript] = {}

    def __repr__(self) -> str:
        target = mask_url(self._url) if self._url is not None else self._client
        return f"{type(self).__name__}({target!r}, prefix={self._prefix!r})"

    # ---- life cycle -------------------------------------------------------------------

    async def _open(self, event_broker: EventBroker, logger: Logger, clock: Clock | None) -> None:
        self._logger = logger
        self._clock = clock if clock is not None else SystemClock()
        self._retrier = Retrier(is_transient=is_transient, store_name="Redis", logger=logger)
        owned = self._url is not None and self._client is None
        client = self._connect(self._url) if owned and self._url else self._client
        assert client is not None
        try:
            await self._check_schema(client)
        except BaseException:
            if owned:
                await client.aclose()
            raise
        self._client = client
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
        self._broker = event_broker

    def _connect(self, url: str) -> Redis:
        # Our Retrier retries every call (the scripts are safe to repeat), so the
        # driver's own retries are off: they would multiply the back-off. A blocking
        # pool makes a burst of concurrent calls wait for a connection instead of
        # failing with "Too many connections". The client name lets operators (and the
        # outage tests) find the store's connections. URL query arguments win.
        name = re.sub(r"[^!-~]", "_", f"horae-datastore:{self._prefix}")
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=POOL_SIZE,
                timeout=POOL_TIMEOUT,
                client_name=name,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"invalid Redis URL {mask_url(url)!r}: {hide_password(str(exc), url)}"
            ) from exc
        return Redis.from_pool(pool)

    _where = staticmethod(describe_server)

    async def _check_schema(self, client: Redis) -> None:
        """Record the schema version under a new prefix, or check the recorded one.

        Not retried: a server that cannot be reached at start is reported at once
        (naming the host, never the password), so a wrong URL fails fast.
        """
        where = self._where(client)
        key = f"{self._prefix}:version"
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(key, SCHEMA_VERSION, nx=True)
                pipe.get(key)
                _, stored = await pipe.execute()
        except AuthenticationError as exc:
            raise DataStoreError(f"Redis at {where} refused the credentials: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise DataStoreError(
                f"cannot connect to Redis at {where}: {exc} (check the URL and that the "
                f"server is running)"
            ) from exc
        try:
            version = int(stored)
        except (TypeError, ValueError):
            raise DataStoreError(
                f"the key {key!r} in Redis at {where} holds {stored!r}, not a horae schema "
                f"version; is the prefix {self._prefix!r} used by something else?"
            ) from None
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the Redis data under the prefix {self._prefix!r} at {where} was created by "
                f"a newer version of horae (schema version {version}, this version supports "
                f"{SCHEMA_VERSION}); upgrade horae"
            )

    async def _close(self) -> None:
        self._broker = None
        self._scripts = {}
        if self._url is not None and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _started(self) -> Redis:
        if self._broker is None or self._client is None:
            raise RuntimeError(
                "the RedisDataStore is not started; call 'await store.start(broker, "
                "logger)' first (a scheduler does this when it starts)"
            )
        return self._client

    # ---- calls ------------------------------------------------------------------------

    async def _run(self, description: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        return await self._retrier.run(description, operation)

    async def _eval(self, name: str, args: Sequence[Arg]) -> Any:
        """Run the script *name* with the prefix and *args*, retrying transient errors.

        Every script is safe to repeat: the ones that change something either check
        what they change (fencing, ids already stored) or take a token and replay their
        first reply (see :mod:`horae.datastores._redis_scripts`).
        """
        self._started()
        script = self._scripts[name]
        argv = [self._prefix, *args]
        return await self._run(name, lambda: script(args=argv))

    async def _pipeline(self, description: str, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands that *build* queues on a MULTI pipeline, in one round trip."""
        client = self._started()

        async def operation() -> list[Any]:
            async with client.pipeline(transaction=True) as pipe:
                build(pipe)
                result: list[Any] = await pipe.execute()
                return result

        return await self._run(description, operation)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _read_hashes(
        self, description: str, kind: str, ids: Sequence[str]
    ) -> list[dict[bytes, bytes]]:
        """The hashes ``<prefix>:<kind>:<id>`` that exist, in one round trip."""
        if not ids:
            self._started()
            return []

        def build(pipe: Any) -> None:
            for item_id in ids:
                pipe.hgetall(self._key(kind, item_id))

        return [raw for raw in await self._pipeline(description, build) if raw]

    async def _read_all(self, description: str, index: str, kind: str) -> list[dict[bytes, bytes]]:
        """Every hash listed in the index set (for ``get_*(None)``, not a hot path)."""
        (members,) = await self._pipeline(description, lambda p: p.smembers(self._key(index)))
        return await self._read_hashes(description, kind, sorted(m.decode() for m in members))

    async def _publish(self, events: Iterable[Event]) -> None:
        # the events of operations that finish together go out together, never raising
        await self._events.publish(self._broker, events, self._logger)
