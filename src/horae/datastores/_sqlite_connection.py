"""The SQLite store's connection: opening the file, and the one thread that uses it.

:func:`connect` opens the database in WAL mode and creates or checks the schema;
:class:`SQLiteThread` owns the connection and runs every operation on its own thread;
:func:`is_transient` tells the Retrier which errors are worth waiting for.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from horae._exceptions import ConfigurationError, DataStoreError
from horae.datastores._sqlite_schema import MIN_SQLITE_VERSION, create_or_check_schema, dict_row

_T = TypeVar("_T")

#: SQLITE_BUSY and SQLITE_LOCKED (extended result codes keep them in the low byte).
_TRANSIENT_CODES = frozenset({5, 6})
_TRANSIENT_TEXT = ("database is locked", "database table is locked", "database is busy")
_OPEN_HINTS = {
    14: "check that its directory exists and that this process may create files in it",
    26: "the file exists but is not a SQLite database; give a new file name",
}


def is_transient(exc: BaseException) -> bool:
    """Another connection holds the lock we need: worth waiting for and retrying."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _TRANSIENT_CODES
    return any(text in str(exc) for text in _TRANSIENT_TEXT)


def database_path(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"the SQLite database path must be a str or os.PathLike, not {path!r}")
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///"):
            raise ConfigurationError(
                f"invalid SQLite URL {text!r}: expected 'sqlite:///relative/path.db' or "
                f"'sqlite:////absolute/path.db'"
            )
        text = text[len("sqlite:///") :]
    if text in ("", ":memory:") or text.startswith("file::memory:") or "mode=memory" in text:
        raise ConfigurationError(
            f"SQLiteDataStore cannot use the in-memory database {text or path!r}: it would "
            f"live in the store's private connection, so nothing would persist or be "
            f"shared; use MemoryDataStore() for an in-memory store, or give a file path"
        )
    return text


def _open_error(database: str, exc: sqlite3.Error) -> DataStoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # Python 3.10: recognize the two common cases by their text
        code = 14 if "unable to open" in str(exc) else 26 if "not a database" in str(exc) else 0
    hint = _OPEN_HINTS.get(code & 0xFF, "")
    return DataStoreError(
        f"cannot open the SQLite database {os.path.abspath(database)!r}: {exc}"
        + (f"; {hint}" if hint else "")
    )


def connect(
    database: str, busy_timeout: float, synchronous: str = "FULL"
) -> tuple[sqlite3.Connection, str]:
    """Open the database, switch it to WAL and create or check the schema.

    *synchronous* is ``"FULL"`` or ``"NORMAL"`` (see ``SQLiteDataStore``).

    Returns the connection and its journal mode. Raises DataStoreError for a path that
    cannot be opened, transient errors (locked) as they are, for the Retrier.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise DataStoreError(
            f"SQLiteDataStore needs SQLite {'.'.join(map(str, MIN_SQLITE_VERSION))} or "
            f"newer; this Python uses SQLite {sqlite3.sqlite_version}"
        )
    try:
        # isolation_level=None: no implicit transactions; ours are explicit BEGINs.
        # timeout is the busy timeout: how long a statement waits for another
        # connection's lock before it fails with "database is locked".
        conn = sqlite3.connect(database, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise _open_error(database, exc) from exc
    try:
        conn.row_factory = dict_row
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
        # FULL: a transaction that COMMIT acknowledged survives a power cut, not only a
        # crash of this process (WAL with NORMAL may lose the last few on power loss,
        # never the database's consistency; the caller may choose that for speed).
        level = "NORMAL" if synchronous == "NORMAL" else "FULL"
        conn.execute(f"PRAGMA synchronous = {level}")
        create_or_check_schema(conn, database)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error) and not is_transient(exc):
            raise _open_error(database, exc) from exc
        raise
    return conn, str(mode)


class SQLiteThread:
    """One sqlite3 connection and the one thread that ever touches it.

    Operations queue up on a single-thread executor and run one after another; the
    caller awaits an asyncio future that the thread completes, so the event loop keeps
    running meanwhile. A cancelled caller stops waiting; an operation already running
    finishes (or rolls back) on the thread before the next one starts, so the
    connection is never left inside a transaction.
    """

    def __init__(self, database: str, busy_timeout: float, synchronous: str = "FULL") -> None:
        self._database = database
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="horae-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> str:
        """Connect (on the thread); return the journal mode."""
        return await asyncio.wrap_future(self._executor.submit(self._open))

    def _open(self) -> str:
        self._close()  # a retried open starts afresh
        self._conn, mode = connect(self._database, self._busy_timeout, self._synchronous)
        return mode

    async def call(self, func: Callable[..., _T], *args: Any) -> _T:
        """Run ``func(connection, *args)`` on the thread and return its result."""
        return await asyncio.wrap_future(self._executor.submit(self._invoke, func, args))

    def _invoke(self, func: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        conn = self._conn
        if conn is None:
            raise DataStoreError("the SQLite connection is closed (the store was stopped)")
        if conn.in_transaction:  # never expected: every operation ends its transaction
            conn.execute("ROLLBACK")
        return func(conn, *args)

    async def close(self) -> None:
        """Close the connection (after the operations queued before) and the thread."""
        future = self._executor.submit(self._close)
        # The thread runs what was queued, _close last, then exits; shielded so that a
        # cancelled stop() cannot leave the connection open.
        self._executor.shutdown(wait=False)
        await asyncio.shield(asyncio.wrap_future(future))

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
