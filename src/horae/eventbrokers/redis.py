"""RedisEventBroker: events between nodes through Redis pub/sub."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from horae._exceptions import ConfigurationError
from horae._store_urls import hide_password, mask_url
from horae.datastores._redis_client import describe_server, is_transient

from ._remote import RemoteBroker

#: How long dropping the listening connection may take.
_DISCONNECT_TIMEOUT = 2.0


class RedisEventBroker(RemoteBroker):
    """Shares events between schedulers through Redis pub/sub.

    One connection is subscribed to the channel for as long as the broker runs;
    ``publish`` sends ``PUBLISH`` on another connection of the client's pool. Every
    instance connected to the same server and channel gets every event
    (:attr:`shared` is True), in one order for all: the server's (see
    :mod:`horae.eventbrokers._remote`, which also describes how the broker reconnects
    and why ``publish`` never raises). Redis takes messages of any size, so large
    events need nothing special.

    Pub/sub does not go through Redis Cluster's key slots and is not replicated to a
    replica you fail over to; a node that is not subscribed at the moment of a
    ``PUBLISH`` misses that message (the scheduler then finds the work by polling).

    Args:
        url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL (the broker
            makes and closes its own client, whose connections are named
            ``horae-broker:<channel>`` in ``CLIENT LIST``), or a
            ``redis.asyncio.Redis`` client that the caller owns (never closed by the
            broker; its subscription holds one of the client's pooled connections).
            A client of your own keeps its retry settings, so it may reconnect a
            dropped subscription by itself without the broker noticing.
        channel: the pub/sub channel. Nodes that should see each other's events use
            the same channel (and the same database number does not matter: pub/sub
            channels are server-wide).
        connect_timeout: seconds that :meth:`start` (and each reconnection) may take.
        reconnect_delay: the first back-off in seconds after a lost connection; it
            doubles on each failed attempt up to ``max_reconnect_delay``.
        max_reconnect_delay: the longest back-off between reconnection attempts.
        health_check_interval: after this many seconds without a message, the
            subscribed connection sends ``PING`` to prove it is alive.
        publish_timeout: seconds that :meth:`publish` waits for the server to take an
            event and send it back before delivering it locally anyway.
        delivery_grace_period: how many seconds :meth:`stop` waits for queued async
            deliveries before it cancels them.

    Raises:
        ConfigurationError: for a URL of another scheme, an empty channel, or something
            that is neither a URL nor a client.
        ValueError: for a timing argument that is not a positive number.
    """

    def __init__(
        self,
        url_or_client: str | Redis,
        channel: str = "horae",
        *,
        connect_timeout: float = 10.0,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        health_check_interval: float = 10.0,
        publish_timeout: float = 5.0,
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
        self._url: str | None = None
        self._user_client: Redis | None = None
        if isinstance(url_or_client, str):
            if urlsplit(url_or_client).scheme not in ("redis", "rediss", "unix"):
                raise ConfigurationError(
                    f"invalid Redis URL {mask_url(url_or_client)!r}: it must start with "
                    f"redis://, rediss:// or unix://"
                )
            self._url = url_or_client
        elif isinstance(url_or_client, Redis):
            self._user_client = url_or_client
        else:
            raise ConfigurationError(
                f"RedisEventBroker needs a Redis URL or a redis.asyncio.Redis client, not "
                f"{type(url_or_client).__name__}"
            )
        self.channel = _check_channel(channel)
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None

    def __repr__(self) -> str:
        target = repr(mask_url(self._url)) if self._url is not None else "<client>"
        return f"{type(self).__name__}({target}, channel={self.channel!r})"

    @property
    def _server(self) -> str:
        client = self._client or self._user_client
        where = describe_server(client) if client is not None else mask_url(self._url or "")
        return f"Redis at {where}, channel {self.channel!r}"

    def _is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc)

    # ---- connections -------------------------------------------------------------------

    async def _open(self) -> None:
        if self._url is None:
            self._client = self._user_client
            return
        # The broker reconnects by itself, with back-off, so the driver's own retries
        # are off (they would hide a lost subscription and multiply the waits). The
        # client name lets operators (and the outage tests) find the connections; URL
        # query arguments win.
        name = re.sub(r"[^!-~]", "_", f"horae-broker:{self.channel}")
        try:
            self._client = Redis.from_url(
                self._url,
                client_name=name,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=self.connect_timeout,
                socket_timeout=self.publish_timeout,
            )
        except ValueError as exc:
            detail = hide_password(str(exc), self._url)
            raise ConfigurationError(
                f"invalid Redis URL {mask_url(self._url)!r}: {detail}"
            ) from exc

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._url is not None:
            await client.aclose()

    async def _connect(self) -> None:
        assert self._client is not None
        pubsub = self._client.pubsub()
        self._pubsub = pubsub
        await pubsub.subscribe(self.channel)
        # SUBSCRIBE's reply arrives as a message. Until it has, a PUBLISH (our own
        # included) may not reach us, so the broker only counts as connected after it.
        while True:
            message = await pubsub.get_message(timeout=self.connect_timeout)
            if message is None:
                raise TimeoutError()
            if message["type"] == "subscribe":
                return

    async def _listen(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=self.health_check_interval)
            if message is None:
                # Silence: prove that the connection is alive (a server that vanished
                # without closing the socket would otherwise look merely quiet).
                if awaiting_pong:
                    raise TimeoutError(
                        f"no answer to PING within {self.health_check_interval:g} s"
                    )
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False  # any message proves the connection alive
            if message["type"] == "message":
                data = message["data"]
                self._receive(
                    data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                )

    async def _disconnect(self, *, broken: bool) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            return
        try:
            # Closes the subscribed connection (the server drops the subscription with
            # it) and hands it back to the pool, which reconnects it when needed.
            with anyio.fail_after(_DISCONNECT_TIMEOUT):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        except Exception as exc:
            self._logger.debug("dropped the subscribed connection uncleanly: %r", exc)

    # ---- sending -----------------------------------------------------------------------

    def _frame(self, message: str) -> str:
        return message

    async def _send(self, wire: str, message: str) -> None:
        assert self._client is not None
        await self._client.publish(self.channel, wire)

    async def _send_many(self, frames: Sequence[tuple[str, str]]) -> None:
        # one round trip for every message of a batch (a pipeline, not a transaction)
        assert self._client is not None
        if len(frames) == 1:
            await self._send(*frames[0])
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for wire, _message in frames:
                pipe.publish(self.channel, wire)
            await pipe.execute()


def _check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not channel:
        raise ConfigurationError(
            f"invalid Redis pub/sub channel {channel!r}: use a non-empty str such as 'horae'"
        )
    return channel
