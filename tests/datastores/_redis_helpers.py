"""Test doubles around a real Redis: a lossy TCP proxy, a private server, a counting client.

* :class:`LossyProxy` forwards a connection to Redis and can drop the reply to the next
  command: Redis runs the command, the client sees its connection die (an *unknown
  outcome*, the hardest case for retries).
* :class:`RedisServer` runs a ``redis-server`` of its own on a free port, which a test
  may stop and start again (a real outage; data survives through an fsynced AOF).
* :class:`CountingRedis` is a client that counts the round trips it makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LossyProxy:
    """Forwards TCP connections to Redis; ``drop_replies = n`` loses the next n replies.

    Losing a reply closes that client connection (and its upstream connection) after
    Redis has run the command, so the client cannot know whether it ran.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.drop_replies = 0
        self.dropped = 0
        self.port = 0

    async def __aenter__(self) -> LossyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._writers.update(pair)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, lossy: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if lossy and self.drop_replies > 0:
                        self.drop_replies -= 1
                        self.dropped += 1
                        break
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                # one side ending (or a lost reply) ends the whole connection
                for each in pair:
                    each.close()

        try:
            await asyncio.gather(
                pump(reader, up_writer, lossy=False), pump(up_reader, writer, lossy=True)
            )
        finally:
            for each in pair:
                with contextlib.suppress(OSError):
                    await each.wait_closed()
                self._writers.discard(each)


class RedisServer:
    """A ``redis-server`` process of its own, on a free port, that can be stopped and
    started again with its data (append-only file, fsynced on every write)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self._binary = binary
        self._directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(self._directory),
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on port {self.port} within 10 s")

    def stop(self) -> None:
        """Shut the server down (SIGTERM: it finishes the running command and exits)."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


class CountingRedis(Redis):
    """A client that counts its round trips: single commands and pipeline executions."""

    round_trips = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        type(self).round_trips += 1
        # redis-py leaves execute_command unannotated
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> Any:
            type(self).round_trips += 1
            return await execute(raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe
