"""Every data store: horae's five vs APScheduler 4.0.0a6's SQLAlchemy store (issue 4).

Two scenarios per store, each in a fresh child process with its own namespace (a
PostgreSQL schema, a Redis key prefix, a MongoDB database, a SQLite file under /tmp),
dropped afterwards:

* **burst**: N date schedules, all due at the moment the scheduler starts, are added
  while the scheduler is entered but not started. Then the clock starts, the scheduler
  starts, and the clock stops at the N-th ``JobReleased``: each job goes through the
  whole path (acquire the schedule, create the job and advance the schedule, acquire
  the job, run a no-op ``async def``, release the job with its result). Reported: jobs/s,
  and the scheduler process's CPU seconds (the database server's CPU is not in it).
* **add_many**: N interval schedules (hourly, first fire in an hour) added one
  ``add_schedule`` call at a time: µs per add.

The comparison is APScheduler 4's ``SQLAlchemyDataStore`` on PostgreSQL (asyncpg) and
on SQLite (aiosqlite), plus its ``MemoryDataStore`` for reference, in the same run. Its
tasks are configured once by id with ``max_running_jobs=None`` (as horae's default; its
own default of 1 would run one job at a time) and its schedules are added by task id.
Both systems use their local event broker (one process; the broker is not measured).

Services: PostgreSQL at ``$BENCH_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), Redis at ``$BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``), MongoDB at ``$BENCH_MONGODB_URI``, else
``mongodb://127.0.0.1:27017`` when a replica set answers there, else an in-process
SecantusDB server started by this script (in the parent process, so its CPU is not
counted in the scheduler's). A store whose service is missing is reported, not fatal.

Run ``bash benchmarks/run.sh stores`` (full, for the docs) or ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _jobs
from _common import (
    TIMES,
    child_priority,
    cpu_seconds,
    emit,
    load_average,
    machine_summary,
    print_table,
    run_child,
)

SCRIPT = str(Path(__file__).resolve())
POSTGRES_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MONGODB_DEFAULT = "mongodb://127.0.0.1:27017"

#: (system, store) in table order; the key of each child process.
TARGETS = [
    ("horae", "memory"),
    ("horae", "sqlite"),
    ("horae", "postgres"),
    ("horae", "redis"),
    ("horae", "mongodb"),
    ("APScheduler 4", "memory"),
    ("APScheduler 4", "sqlite"),
    ("APScheduler 4", "postgres"),
]
CHILD_NAMES = {"horae": "horae", "APScheduler 4": "aps4"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)  # noqa: TID251 - benchmarks read the wall clock


class _Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.failed = 0
        self.done = asyncio.Event()

    def __call__(self, event: Any) -> None:
        self.count += 1
        if str(getattr(event.outcome, "name", event.outcome)) != "success":
            self.failed += 1
        if self.count >= self.target:
            self.done.set()


# ---- namespaces -----------------------------------------------------------------------------


async def _drop_postgres_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def _drop_redis_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


async def _drop_mongodb_database(uri: str, database: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def _remove_sqlite(path: str) -> None:
    for name in glob.glob(f"{path}*"):
        with contextlib.suppress(OSError):
            os.remove(name)


@contextlib.asynccontextmanager
async def horae_store(store: str, tag: str) -> AsyncIterator[Any]:
    """A horae data store of kind *store* in a namespace of its own, dropped afterwards."""
    if store == "memory":
        from horae.datastores import MemoryDataStore

        yield MemoryDataStore()
    elif store == "sqlite":
        from horae.datastores.sqlite import SQLiteDataStore

        path = f"/tmp/bench_stores_{tag}.sqlite3"
        try:
            yield SQLiteDataStore(path)
        finally:
            _remove_sqlite(path)
    elif store == "postgres":
        from horae.datastores.postgres import PostgresDataStore

        try:
            yield PostgresDataStore(POSTGRES_DSN, schema=f"bench_{tag}")
        finally:
            await _drop_postgres_schema(f"bench_{tag}")
    elif store == "redis":
        from horae.datastores.redis import RedisDataStore

        try:
            yield RedisDataStore(REDIS_URL, prefix=f"bench_{tag}")
        finally:
            await _drop_redis_prefix(f"bench_{tag}")
    elif store == "mongodb":
        from horae.datastores.mongodb import MongoDBDataStore

        uri = os.environ["BENCH_MONGODB_URI"]
        try:
            yield MongoDBDataStore(uri, database=f"bench_{tag}")
        finally:
            await _drop_mongodb_database(uri, f"bench_{tag}")
    else:
        raise ValueError(store)


@contextlib.asynccontextmanager
async def aps4_store(store: str, tag: str) -> AsyncIterator[Any]:
    """An APScheduler 4 data store of kind *store* in a namespace of its own."""
    if store == "memory":
        from apscheduler.datastores.memory import MemoryDataStore

        yield MemoryDataStore()
        return
    from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
    from sqlalchemy.ext.asyncio import create_async_engine

    if store == "sqlite":
        path = f"/tmp/bench_stores_{tag}.sqlite3"
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        try:
            yield SQLAlchemyDataStore(engine)
        finally:
            await engine.dispose()
            _remove_sqlite(path)
    elif store == "postgres":
        url = POSTGRES_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
        engine = create_async_engine(url)
        try:
            yield SQLAlchemyDataStore(engine, schema=f"bench_{tag}")
        finally:
            await engine.dispose()
            await _drop_postgres_schema(f"bench_{tag}")
    else:
        raise ValueError(store)


# ---- the measured children ------------------------------------------------------------------


async def horae_burst(store_name: str, n: int, tag: str) -> dict[str, Any]:
    from horae import AsyncScheduler
    from horae.events import JobReleased
    from horae.triggers import DateTrigger

    counter = _Counter(n)
    async with horae_store(store_name, tag) as store, AsyncScheduler(store) as scheduler:
        scheduler.subscribe(counter, JobReleased)
        run_time = _utcnow()
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.add_schedule(_jobs.noop_async, DateTrigger(run_time))
        add_seconds = time.perf_counter() - started
        cpu_before, started = cpu_seconds(), time.perf_counter()
        await scheduler.start_in_background()
        await counter.done.wait()
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_before
        await scheduler.stop()
        await scheduler.wait_until_stopped()
    return _burst_result(n, elapsed, cpu_used, add_seconds, counter)


async def horae_add_many(store_name: str, n: int, tag: str) -> dict[str, Any]:
    from horae import AsyncScheduler
    from horae.triggers import IntervalTrigger

    async with horae_store(store_name, tag) as store, AsyncScheduler(store) as scheduler:
        first = _utcnow() + timedelta(hours=1)
        cpu_before, started = cpu_seconds(), time.perf_counter()
        for _ in range(n):
            await scheduler.add_schedule(
                _jobs.noop_async, IntervalTrigger(hours=1, start_time=first)
            )
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_before
        count = len(await scheduler.get_schedules())
    return {"add_us": elapsed / n * 1e6, "cpu_us": cpu_used / n * 1e6, "stored": count}


async def aps4_burst(store_name: str, n: int, tag: str) -> dict[str, Any]:
    from apscheduler import AsyncScheduler, JobReleased
    from apscheduler.triggers.date import DateTrigger

    counter = _Counter(n)
    async with aps4_store(store_name, tag) as store, AsyncScheduler(store) as scheduler:
        await scheduler.configure_task("noop", func=_jobs.noop_async, max_running_jobs=None)
        scheduler.subscribe(counter, {JobReleased})
        run_time = _utcnow()
        started = time.perf_counter()
        for _ in range(n):
            await scheduler.add_schedule("noop", DateTrigger(run_time))
        add_seconds = time.perf_counter() - started
        cpu_before, started = cpu_seconds(), time.perf_counter()
        await scheduler.start_in_background()
        await counter.done.wait()
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_before
        await scheduler.stop()
        await scheduler.wait_until_stopped()
    return _burst_result(n, elapsed, cpu_used, add_seconds, counter)


async def aps4_add_many(store_name: str, n: int, tag: str) -> dict[str, Any]:
    from apscheduler import AsyncScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    async with aps4_store(store_name, tag) as store, AsyncScheduler(store) as scheduler:
        await scheduler.configure_task("noop", func=_jobs.noop_async, max_running_jobs=None)
        first = _utcnow() + timedelta(hours=1)
        cpu_before, started = cpu_seconds(), time.perf_counter()
        for _ in range(n):
            await scheduler.add_schedule("noop", IntervalTrigger(hours=1, start_time=first))
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds() - cpu_before
        count = len(await scheduler.get_schedules())
    return {"add_us": elapsed / n * 1e6, "cpu_us": cpu_used / n * 1e6, "stored": count}


def _burst_result(
    n: int, elapsed: float, cpu_used: float, add_seconds: float, counter: _Counter
) -> dict[str, Any]:
    return {
        "jobs_per_s": n / elapsed,
        "seconds": elapsed,
        "cpu_s": cpu_used,
        "add_us": add_seconds / n * 1e6,
        "not_success": counter.failed,
    }


CHILDREN: dict[str, Callable[..., Any]] = {
    "horae:burst": horae_burst,
    "horae:add_many": horae_add_many,
    "aps4:burst": aps4_burst,
    "aps4:add_many": aps4_add_many,
}


def child_main(argv: list[str]) -> None:
    system, scenario, store, n = argv
    tag = f"{system}_{store}_{scenario}_{os.getpid()}"
    emit(asyncio.run(CHILDREN[f"{system}:{scenario}"](store, int(n), tag)))


# ---- services -------------------------------------------------------------------------------


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _answers_as_replica_set(uri: str) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=1000)
    try:
        hello = client.admin.command("hello")
    except PyMongoError:
        return False
    finally:
        client.close()
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"


@contextlib.contextmanager
def mongodb_service() -> Any:
    """Set BENCH_MONGODB_URI for the children, starting SecantusDB in-process if needed;
    yields a description of the server."""
    if os.environ.get("BENCH_MONGODB_URI"):
        yield f"MongoDB at $BENCH_MONGODB_URI ({os.environ['BENCH_MONGODB_URI']})"
        return
    if _port_open("127.0.0.1", 27017) and _answers_as_replica_set(MONGODB_DEFAULT):
        os.environ["BENCH_MONGODB_URI"] = MONGODB_DEFAULT
        yield f"MongoDB replica set at {MONGODB_DEFAULT}"
        return
    from secantus import SecantusDBServer

    server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:")
    server.start()
    os.environ["BENCH_MONGODB_URI"] = server.uri
    try:
        yield "SecantusDB 0.7.0b3, in memory, started in the benchmark's parent process"
    finally:
        server.stop()
        del os.environ["BENCH_MONGODB_URI"]


def _server_versions() -> str:
    import asyncpg
    from redis import Redis

    async def postgres_version() -> str:
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    try:
        postgres = f"PostgreSQL {asyncio.run(postgres_version())}"
    except Exception as exc:  # reported, not fatal
        postgres = f"PostgreSQL unavailable ({exc})"
    try:
        redis = f"Redis {Redis.from_url(REDIS_URL).info('server')['redis_version']}"
    except Exception as exc:  # reported, not fatal
        redis = f"Redis unavailable ({exc})"
    return f"{postgres}, {redis}"


# ---- the parent -----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, under a minute")
    parser.add_argument("--only", default="burst,add_many", help="scenarios to run")
    parser.add_argument("--stores", default="", help="comma-separated system:store filter")
    parser.add_argument(
        "--mongodb-n",
        type=int,
        default=None,
        help="N for the MongoDB store (default: N, or 1,000 against the in-process SecantusDB)",
    )
    args = parser.parse_args()
    burst_n = add_n = 100 if args.quick else 10_000
    targets = TARGETS
    if args.stores:
        wanted = set(args.stores.split(","))
        targets = [t for t in TARGETS if f"{CHILD_NAMES[t[0]]}:{t[1]}" in wanted]

    mode = "quick" if args.quick else "full"
    print(f"# Data stores: horae vs APScheduler 4 ({mode} mode)\n")
    packages = ["horae", "apscheduler", "anyio", "sqlalchemy", "asyncpg", "aiosqlite"]
    print(machine_summary([*packages, "redis", "pymongo", "secantusdb"]))
    print(child_priority() + "\n")
    print(f"Command: `bash benchmarks/run.sh stores{' --quick' if args.quick else ''}`\n")
    with mongodb_service() as mongodb:
        print(f"Services: {_server_versions()}, {mongodb}.\n")
        mongodb_n = args.mongodb_n
        if mongodb_n is None:
            # SecantusDB is a test server written in Python that runs one transaction at a
            # time; 10,000 schedules would take most of an hour there and say little.
            mongodb_n = min(burst_n, 1_000) if mongodb.startswith("SecantusDB") else burst_n
        for scenario, n in (("burst", burst_n), ("add_many", add_n)):
            if scenario not in args.only.split(","):
                continue
            sizes = {target: mongodb_n if target[1] == "mongodb" else n for target in targets}
            _scenario_table(scenario, sizes)
    print(f"Load average at the end (1/5/15 min): {load_average()}")


def _scenario_table(scenario: str, sizes: dict[tuple[str, str], int]) -> None:
    n = max(sizes.values())
    if scenario == "burst":
        print(f"## Burst: {n:,} date schedules due at once, to the last JobReleased\n")
    else:
        print(f"## add_many: {n:,} interval schedules, one add_schedule call each\n")
    results = {}
    for (system, store), size in sizes.items():
        args = [CHILD_NAMES[system], scenario, store, str(size)]
        result = run_child(SCRIPT, args, timeout=1800)
        result["load"] = load_average().split(" / ")[0]
        result["n"] = size
        results[(system, store)] = result
    rows = []
    for (system, store), result in results.items():
        aps = results.get(("APScheduler 4", store), {})
        if scenario == "burst":
            vs_store = (
                f"{result['jobs_per_s'] / aps['jobs_per_s']:.1f}{TIMES}"
                if system == "horae" and "jobs_per_s" in result and "jobs_per_s" in aps
                else ""
            )
            rows.append([
                system, store, f"{result['n']:,}", _fmt(result.get("jobs_per_s")),
                _fmt(result.get("seconds"), 2),
                _fmt(result.get("cpu_s"), 2), _fmt(result.get("add_us")), vs_store,
                result.get("error", "") or _fmt(result.get("not_success")), result["load"],
            ])  # fmt: skip
        else:
            vs_store = (
                f"{aps['add_us'] / result['add_us']:.1f}{TIMES}"
                if system == "horae" and "add_us" in result and "add_us" in aps
                else ""
            )
            rows.append([
                system, store, f"{result['n']:,}", _fmt(result.get("add_us")),
                _fmt(result.get("cpu_us")),
                vs_store, result.get("error", "") or _fmt(result.get("stored")), result["load"],
            ])  # fmt: skip
    if scenario == "burst":
        headers = ["system", "store", "N", "jobs/s", "s to last JobReleased", "CPU s",
                   "µs per add (date schedule)", "horae ÷ APS4, same store",
                   "not success / error", "load"]  # fmt: skip
    else:
        headers = ["system", "store", "N", "µs per add", "CPU µs per add",
                   "horae faster than APS4, same store", "stored / error", "load"]  # fmt: skip
    print_table(headers, rows)
    print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
