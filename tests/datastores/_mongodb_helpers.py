"""Helpers of the MongoDB store tests: the server fixture and a restartable private server.

``mongodb_uri`` (session-scoped) yields the URI of a MongoDB-wire-protocol server that can
run transactions: ``HORAE_MONGODB_URI`` if set; else ``mongodb://127.0.0.1:27017`` if a
replica set member (or mongos) answers there; else an in-process SecantusDB server on a
free port, started here and stopped at the end of the session. So CI needs nothing
installed or started beyond the test dependencies.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
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


def _port_below_ephemeral_range() -> int:
    """A free port below the kernel's ephemeral range.

    While a server on an ephemeral port is down, a client that keeps connecting to it may
    be given that very port as its own source port and connect to itself (a TCP
    self-connection), and then the server cannot bind its port again. Ports outside the
    range are never handed out as source ports.
    """
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low = int(text.split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low // 2), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class RestartableServer:
    """A private SecantusDB server process on disk that can be stopped and started again
    on the same port with the same data (for the outage tests).

    A separate process, so that stopping it really closes its port and connections, as a
    crashed or restarted database server would.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _port_below_ephemeral_range()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "secantus", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--storage-path", str(self.path / "data")]
        with open(self.path / "server.log", "ab") as log:
            self._process = subprocess.Popen(
                command, cwd=self.path, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (self.path / "server.log").read_text(errors="replace")
                raise RuntimeError(f"the SecantusDB server did not start:\n{log_text}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM: it shuts down cleanly, keeping its data)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
