"""SQLiteDataStore(synchronous=...): the durability level is an explicit choice."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from horae.datastores.sqlite import SQLiteDataStore
from horae.eventbrokers.local import LocalEventBroker

LOGGER = logging.getLogger("horae.tests.datastores")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def pragma_synchronous(store: SQLiteDataStore) -> Any:
    thread = store._thread
    assert thread is not None
    row = await thread.call(lambda conn: conn.execute("PRAGMA synchronous").fetchone())
    return row["synchronous"]


@pytest.mark.anyio
@pytest.mark.parametrize(("choice", "level"), [(None, 2), ("FULL", 2), ("NORMAL", 1)])
async def test_full_by_default_normal_on_request(
    tmp_path: Path, choice: str | None, level: int
) -> None:
    options = {} if choice is None else {"synchronous": choice}
    store = SQLiteDataStore(tmp_path / "db.sqlite3", **options)  # type: ignore[arg-type]
    broker = LocalEventBroker()
    await store.start(broker, LOGGER)
    try:
        assert await pragma_synchronous(store) == level  # 2 = FULL, 1 = NORMAL
    finally:
        await store.stop()


def test_other_levels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be 'FULL' or 'NORMAL'"):
        SQLiteDataStore(tmp_path / "db.sqlite3", synchronous="OFF")  # type: ignore[arg-type]
