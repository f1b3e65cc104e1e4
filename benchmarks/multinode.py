"""Three scheduler processes on one shared store: horae vs APScheduler 4.0.0a6 (issue 5).

For each system and store, in the same run:

1. N one-off schedules are added from this process, their fire times spread evenly at
   random over a W-second window that opens once they are all in (default N = 3,000,
   W = 10 s: 300 fires a second, the issue's scenario);
2. three node processes (``multinode.py --node ...``, role "both", default settings:
   lease 30 s, 100 concurrent jobs) share the store and the broker;
3. every job appends ``"<schedule id> <fire time> <wall time>"`` to a file of its own
   process, so duplicates are counted, not prevented;
4. once every fire ran (or a timeout passed) the nodes are stopped with SIGTERM.

Reported: **jobs/s** (distinct fires run / seconds from the window's opening to the
last run; N / W when a system keeps up), **duplicates** (fires run more than once),
**misses** (fires never run), and **p50 / p99 lateness** (wall time in the job minus its
fire time).

Systems: horae with PostgreSQL + PostgresEventBroker, Redis + RedisEventBroker, MongoDB
(SecantusDB, a MongoDB-wire server written in Python, started here; local broker, so
nodes find each other's work by polling) and APScheduler 4.0.0a6 with its SQLAlchemy
store on PostgreSQL and its asyncpg broker (in ``.venv-bench``, with anyio 4.13.0). The
MongoDB row uses fewer schedules (``--mongodb-schedules``): SecantusDB is far slower
than a real mongod. Every system gets its own schema/prefix/database, dropped after.

Run ``bash benchmarks/run.sh multinode`` (``--quick``: 600 schedules). The default
scenario offers 300 fires a second, which a system that keeps up runs at 300 jobs/s, so
it cannot show more than that; ``--window 1`` puts the same 3,000 fires into one second
to measure how many jobs a second each system can run at most (its throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _common import load_average, machine_summary, print_table, ratio

SCRIPT = Path(__file__).resolve()
DSN = os.environ.get("HORAE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HORAE_REDIS_URL", "redis://127.0.0.1:6379/0")
LOG_VARIABLE = "MULTINODE_BENCH_LOG"
NODES = 3
#: seconds per schedule that adding is allowed to take before the window opens
SEED_BUDGET = {"horae": 0.006, "aps4": 0.02}

_descriptors: dict[str, int] = {}


def wall() -> float:
    return time.clock_gettime(time.CLOCK_REALTIME)


async def record_job(schedule_id: str, fire: str) -> None:
    """The job of both systems: note which fire ran, and when (one ``os.write``)."""
    path = os.environ[LOG_VARIABLE]
    descriptor = _descriptors.get(path)
    if descriptor is None:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _descriptors[path] = descriptor
    os.write(descriptor, f"{schedule_id} {fire} {wall()}\n".encode())


# ---- node processes -------------------------------------------------------------------------


def horae_scheduler(config: dict[str, Any]) -> Any:
    from horae import AsyncScheduler

    kind, namespace = config["store"], config["namespace"]
    if kind == "postgres":
        from horae.datastores.postgres import PostgresDataStore
        from horae.eventbrokers.postgres import PostgresEventBroker

        store: Any = PostgresDataStore(DSN, namespace)
        broker: Any = PostgresEventBroker(DSN, namespace, schema=namespace)
    elif kind == "redis":
        from horae.datastores.redis import RedisDataStore
        from horae.eventbrokers.redis import RedisEventBroker

        store, broker = (
            RedisDataStore(REDIS_URL, namespace),
            RedisEventBroker(REDIS_URL, namespace),
        )
    else:
        from horae.datastores.mongodb import MongoDBDataStore
        from horae.eventbrokers.local import LocalEventBroker

        store, broker = MongoDBDataStore(config["mongodb_uri"], namespace), LocalEventBroker()
    return AsyncScheduler(store, broker, identity=config.get("identity", "seeder"))


def aps4_scheduler(config: dict[str, Any]) -> Any:
    from apscheduler import AsyncScheduler
    from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
    from apscheduler.eventbrokers.asyncpg import AsyncpgEventBroker

    url = DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
    store = SQLAlchemyDataStore(url, schema=config["namespace"])
    broker = AsyncpgEventBroker(DSN, channel=config["namespace"])
    return AsyncScheduler(store, broker, identity=config.get("identity", "seeder"))


async def run_node(system: str, config: dict[str, Any]) -> None:
    """Run one node until SIGTERM."""
    make = horae_scheduler if system == "horae" else aps4_scheduler
    scheduler = make(config)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with scheduler:
        await scheduler.start_in_background()
        print("ready", flush=True)
        await stop.wait()
        await scheduler.stop()
        await scheduler.wait_until_stopped()


# ---- seeding and namespaces ------------------------------------------------------------------


async def seed(system: str, config: dict[str, Any], fires: list[tuple[str, datetime]]) -> None:
    import multinode  # the job by reference, as "multinode:record_job", in every process

    scheduler = (horae_scheduler if system == "horae" else aps4_scheduler)(config)
    semaphore = asyncio.Semaphore(16)
    async with scheduler:
        if system == "horae":
            from horae.triggers import DateTrigger

            async def add(schedule_id: str, at: datetime) -> None:
                async with semaphore:
                    await scheduler.add_schedule(
                        multinode.record_job, DateTrigger(at), id=schedule_id,
                        args=(schedule_id, at.isoformat()),
                    )  # fmt: skip
        else:
            from apscheduler.triggers.date import DateTrigger as APSDateTrigger

            # APScheduler 4 limits a task to one running job unless told otherwise.
            await scheduler.configure_task(
                "record", func=multinode.record_job, max_running_jobs=None
            )

            async def add(schedule_id: str, at: datetime) -> None:
                async with semaphore:
                    await scheduler.add_schedule(
                        "record", APSDateTrigger(at), id=schedule_id,
                        args=(schedule_id, at.isoformat()),
                    )  # fmt: skip

        await asyncio.gather(*(add(schedule_id, at) for schedule_id, at in fires))


async def drop_namespace(store: str, namespace: str, mongodb_uri: str | None) -> None:
    if store == "postgres":
        import asyncpg

        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        finally:
            await conn.close()
    elif store == "redis":
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()
    elif mongodb_uri is not None:
        from pymongo import AsyncMongoClient

        mongo: Any = AsyncMongoClient(mongodb_uri)
        await mongo.drop_database(namespace)
        await mongo.close()


# ---- one measured run ------------------------------------------------------------------------


def start_node(system: str, config: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, LOG_VARIABLE: str(log)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--node", system, json.dumps(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(log.with_suffix(".stderr"), "wb"),
        env=env,
        cwd=SCRIPT.parent,
    )


def read_runs(logs: list[Path]) -> list[tuple[str, str, float]]:
    runs = []
    for log in logs:
        if log.exists():
            for line in log.read_text().splitlines():
                schedule_id, fire, at = line.split(" ")
                runs.append((schedule_id, fire, float(at)))
    return runs


def measure(system: str, store: str, count: int, window: float, mongodb_uri: str | None,
            workdir: Path) -> dict[str, Any]:  # fmt: skip
    namespace = f"bench_mn_{uuid.uuid4().hex[:10]}"
    config = {"store": store, "namespace": namespace, "mongodb_uri": mongodb_uri}
    rng = random.Random(5)
    lead = 8 + count * SEED_BUDGET[system] * (4 if store == "mongodb" else 1)
    opens = datetime.fromtimestamp(wall(), timezone.utc) + timedelta(seconds=lead)
    fires = [
        (f"s{n:05}", opens + timedelta(milliseconds=int(rng.random() * window * 1000)))
        for n in range(count)
    ]
    nodes: list[subprocess.Popen[bytes]] = []
    logs = [workdir / f"{namespace}-{n}.log" for n in range(NODES)]
    try:
        started = time.monotonic()
        asyncio.run(seed(system, config, fires))
        seeded = time.monotonic() - started
        for n, log in enumerate(logs):
            nodes.append(start_node(system, {**config, "identity": f"node-{n}"}, log))
        for node in nodes:
            assert node.stdout is not None
            if node.stdout.readline().strip() != b"ready":
                raise RuntimeError("a node did not start; see its .stderr file")
        deadline = time.monotonic() + lead + window + 180
        while time.monotonic() < deadline:
            if len({run[0] for run in read_runs(logs)}) >= count:
                break
            time.sleep(0.5)
        time.sleep(2)  # late duplicates
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
            if node.stdout is not None:
                node.stdout.close()
        asyncio.run(drop_namespace(store, namespace, mongodb_uri))
    runs = read_runs(logs)
    counts = Counter((run[0], run[1]) for run in runs)
    lateness = sorted(at - datetime.fromisoformat(fire).timestamp() for _, fire, at in runs)
    planned = {(schedule_id, at.isoformat()) for schedule_id, at in fires}
    last = max((run[2] for run in runs), default=opens.timestamp())
    drained = max(last - opens.timestamp(), window)
    return {
        "system": system,
        "store": store,
        "schedules": count,
        "jobs_per_s": len(set(counts) & planned) / drained,
        "duplicates": sum(1 for n in counts.values() if n > 1),
        "misses": len(planned - set(counts)),
        "p50": statistics.median(lateness) if lateness else None,
        "p99": lateness[min(len(lateness) - 1, int(0.99 * len(lateness)))] if lateness else None,
        "seed_s": seeded,
        "late_start_s": max(0.0, seeded - lead),
        "load": load_average().split(" / ")[0],
    }


class MongoServer:
    """A SecantusDB server in a child process (the benchmark's MongoDB)."""

    CODE = (
        "import sys\nfrom secantus import SecantusDBServer\n"
        "s = SecantusDBServer(host='127.0.0.1', port=0, storage_path=':memory:')\n"
        "s.start(); print(s.uri, flush=True); sys.stdin.read(); s.stop()\n"
    )

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        return self.process.stdout.readline().decode().strip()

    def __exit__(self, *exc_info: object) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="600 schedules")
    parser.add_argument("--schedules", type=int, default=None)
    parser.add_argument("--mongodb-schedules", type=int, default=None)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--only", default="horae:postgres,horae:redis,horae:mongodb,aps4:postgres")
    args = parser.parse_args()
    count = args.schedules or (600 if args.quick else 3000)
    mongo_count = args.mongodb_schedules or min(count, 600)
    scratch = tempfile.TemporaryDirectory(prefix="horae-multinode-bench-")
    workdir = Path(scratch.name)
    print(f"# Three nodes on one store: horae vs APScheduler 4 ({count:,} schedules over "
          f"{args.window:g} s)\n")  # fmt: skip
    print(machine_summary(["horae", "apscheduler", "anyio", "asyncpg", "redis", "pymongo"]))
    command = " ".join(["bash benchmarks/run.sh multinode", *sys.argv[1:]])
    print(f"\nCommand: `{command}`\n")
    results = []
    with scratch, MongoServer() as mongodb_uri:
        for entry in args.only.split(","):
            system, store = entry.split(":")
            n = mongo_count if store == "mongodb" else count
            print(f"running {entry} with {n:,} schedules ...", file=sys.stderr, flush=True)
            results.append(measure(system, store, n, args.window, mongodb_uri, workdir))
    label = {"horae": "horae", "aps4": "APScheduler 4.0.0a6"}
    broker = {
        ("horae", "postgres"): "PostgresEventBroker",
        ("horae", "redis"): "RedisEventBroker",
        ("horae", "mongodb"): "local (polling)",
        ("aps4", "postgres"): "AsyncpgEventBroker",
    }
    baseline = next((r["jobs_per_s"] for r in results if r["system"] == "aps4"), None)
    rows = [
        [
            label[r["system"]], r["store"], broker[r["system"], r["store"]], r["schedules"],
            _fmt(r["jobs_per_s"], 1), r["duplicates"], r["misses"], _fmt(r["p50"]),
            _fmt(r["p99"]), ratio(r["jobs_per_s"], baseline), _fmt(r["seed_s"], 1),
            _fmt(r["late_start_s"], 1), r["load"],
        ]
        for r in results
    ]  # fmt: skip
    print_table(
        ["system", "store", "broker", "schedules", "jobs/s", "duplicates", "misses",
         "p50 late (s)", "p99 late (s)", "vs APS4", "adding (s)", "window late (s)", "load"],
        rows,
    )  # fmt: skip
    print(
        "\njobs/s: distinct fires run / seconds from the window's opening to the last run "
        f"(at most {count / args.window:,.0f} when a system keeps up). 'window late': how "
        "long after the window opened the schedules were all in (fires then queue up)."
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--node":
        asyncio.run(run_node(sys.argv[2], json.loads(sys.argv[3])))
    else:
        main()
