"""Helpers of the remote broker tests: starting brokers, waiting, a proxy for outages.

:class:`OutageProxy` is a TCP proxy in front of a real server that a test can cut off,
stall and restore:

* ``cut()`` closes every connection through the proxy and closes new ones at once (a
  server that went away: clients see their connections end).
* ``stall()`` keeps every connection open but forwards nothing any more, in either
  direction, and new connections get no answer (a network that silently drops packets:
  clients notice only through timeouts and health checks).
* ``restore()`` closes what was cut or stalled and forwards new connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from horae._contract_broker import EventRecorder, sample_event
from horae.eventbrokers import EventBroker
from horae.events import TaskAdded

LOGGER = logging.getLogger("horae.tests.brokers")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def started(*brokers: EventBroker) -> AsyncIterator[None]:
    """Start *brokers* (with :data:`LOGGER`) and stop them afterwards, in reverse."""
    running: list[EventBroker] = []
    try:
        for broker in brokers:
            with anyio.fail_after(10):
                await broker.start(LOGGER)
            running.append(broker)
        yield
    finally:
        with anyio.fail_after(15):
            for broker in reversed(running):
                await broker.stop()


async def wait_until(condition: Callable[[], bool], within: float = 10) -> None:
    """Poll *condition* every 5 ms until it holds (fail after *within* seconds)."""
    with anyio.fail_after(within):
        # `connected` is a plain property with no event to wait on, so poll it
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


class OutageProxy:
    """Forwards TCP connections from ``127.0.0.1:<port>`` to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.mode = "open"
        self.port = 0

    async def __aenter__(self) -> OutageProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self._close_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        self.mode = "cut"
        self._close_all()

    def stall(self) -> None:
        self.mode = "stalled"

    def restore(self) -> None:
        # connections that lost data while stalled are no use to anybody any more
        self._close_all()
        self.mode = "open"

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        pair = [writer]
        try:
            if self.mode == "cut":
                return
            if self.mode == "stalled":
                while await reader.read(65536):
                    pass  # swallowed: nothing answers
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                return
            pair.append(up_writer)
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pump(reader, up_writer, pair), self._pump(up_reader, writer, pair)
            )
        finally:
            for each in pair:
                each.close()
                with contextlib.suppress(OSError):
                    await each.wait_closed()
                self._writers.discard(each)
            self._tasks.discard(task)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: list[asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await source.read(65536):
                if self.mode == "stalled":
                    continue  # dropped on the floor, the connection stays open
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            # one side ending ends the whole connection
            for each in pair:
                each.close()


# ---- what the PostgreSQL and Redis brokers share ------------------------------------------

#: Short back-offs and timeouts, so that outages resolve within a test's time.
FAST: dict[str, Any] = {
    "connect_timeout": 5.0,
    "reconnect_delay": 0.05,
    "max_reconnect_delay": 0.2,
    "health_check_interval": 0.5,
    "publish_timeout": 1.0,
}


def task_added(number: int) -> TaskAdded:
    return TaskAdded(timestamp=sample_event(TaskAdded).timestamp, task_id=f"t{number}")


async def check_a_killed_connection_reconnects(
    first: EventBroker,
    second: EventBroker,
    kill: Callable[[], Awaitable[None]],
    server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """*kill* ends *first*'s listening connection: it reconnects by itself (logging the
    loss and the return, naming *server*) and delivery resumes both ways."""
    async with started(first, second):
        here, there = EventRecorder(), EventRecorder()
        first.subscribe(here)
        second.subscribe(there)
        with caplog.at_level(logging.INFO, LOGGER.name):
            await kill()
            await wait_until(lambda: not first.connected)
            await wait_until(lambda: first.connected)
        await second.publish(task_added(1))
        assert await here.wait_for(1) == [task_added(1)]
        await first.publish(task_added(2))
        assert await there.wait_for(2) == [task_added(1), task_added(2)]
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"lost the connection to {server}" in m for m in messages)
    assert any(f"reconnected to {server}" in m for m in messages)


async def check_publishing_while_disconnected(
    broker: EventBroker,
    kill: Callable[[], Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After *kill* ends *broker*'s connection (with a long back-off), publishing does
    not raise, delivers in this process, and is logged once per outage; stopping does
    not wait out the back-off."""
    async with started(broker):
        recorder = EventRecorder()
        broker.subscribe(recorder)
        await kill()
        await wait_until(lambda: not broker.connected)
        with caplog.at_level(logging.WARNING, LOGGER.name):
            await broker.publish(task_added(0))  # does not raise
            await broker.publish(task_added(1))
        assert recorder.events == [task_added(0), task_added(1)]  # delivered here at once
        started_stop = time.monotonic()
    assert time.monotonic() - started_stop < 5  # stop() does not wait out the back-off
    unsent = [r for r in caplog.records if "delivered to this process only" in r.getMessage()]
    assert len(unsent) == 1  # once per outage, not once per event
