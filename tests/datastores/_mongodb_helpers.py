"""Helpers of the MongoDB store tests: the server fixture and a restartable private server.

``mongodb_uri`` (session-scoped) yields the URI of a MongoDB-wire-protocol server that can
run transactions: ``HORAE_MONGODB_URI`` if set; else ``mongodb://127.0.0.1:27017`` if a
replica set member (or mongos) answers there; else an in-process SecantusDB server on a
free port, started here and stopped at the end of the session. So CI needs nothing
installed or started beyond the test dependencies.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from secantus import SecantusDBServer

from conftest import require_service

DEFAULT_URI = "mongodb://127.0.0.1:27017"


def answers_with_transactions(uri: str, timeout: float = 1.0) -> bool:
    """Whether a replica set member or mongos answers at *uri* within *timeout*."""
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        hello = client.admin.command("hello")
    except PyMongoError:
        return False
    finally:
        client.close()
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    """The URI of a MongoDB-wire server that runs transactions (see the module docstring)."""
    configured = os.environ.get("HORAE_MONGODB_URI")
    if configured:
        if not answers_with_transactions(configured, timeout=5.0):
            require_service(
                "MongoDB", f"HORAE_MONGODB_URI={configured!r} does not answer as a replica set"
            )
        yield configured
        return
    if _port_open(27017) and answers_with_transactions(DEFAULT_URI):
        yield DEFAULT_URI
        return
    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:")
    try:
        server.start()
    except OSError as exc:  # pragma: no cover - depends on the machine
        require_service("MongoDB", f"cannot start an in-process SecantusDB server: {exc}")
    try:
        yield server.uri
    finally:
        server.stop()


class RestartableServer:
    """A private SecantusDB server on disk that can be stopped and started again on the
    same port with the same data (for the outage tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = 0
        self._server: SecantusDBServer | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        server = SecantusDBServer(host="127.0.0.1", port=self.port, storage_path=str(self.path))
        server.start()
        self.port = server.address[1]
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
