"""The machinery of the multi-node tests: services and namespaces, node processes, the
workload, and counting what ran.

* :class:`Backend` is one store + broker configuration under a namespace of its own
  (PostgreSQL schema, Redis key prefix and channel, MongoDB database, SQLite file),
  made and dropped by the ``backend`` fixture of the test module.
* :class:`Cluster` starts node processes (``_multinode_node.py``), kills them, stops
  them, and never leaves one behind: every process it started is killed when the
  cluster is closed, and each child also gets ``SIGKILL`` from the kernel if the test
  runner dies first (``PR_SET_PDEATHSIG``).
* :func:`spread_plans` makes schedules whose fire times are spread over a window, and
  :func:`seed` stores them through a (not started) scheduler of the test process.
* :class:`Tally` counts the executions that the jobs recorded, per (schedule, fire
  time): the tests read duplicates and misses from it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]
import attrs
import pytest
from _multinode_jobs import LOG_VARIABLE
from _multinode_node import make_store
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError
from redis.asyncio import Redis

from conftest import require_service
from horae import AsyncScheduler, CoalescePolicy
from horae._clock import SystemClock
from horae.triggers import DateTrigger, IntervalTrigger, Trigger

HERE = Path(__file__).parent
NODE_SCRIPT = HERE / "_multinode_node.py"
MONGOD_SCRIPT = HERE / "_multinode_mongod.py"
POSTGRES_DSN = os.environ.get("HORAE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HORAE_REDIS_URL", "redis://127.0.0.1:6379/0")
#: ``HORAE_MULTINODE_FULL=1`` runs every store at the issue's full size.
FULL = os.environ.get("HORAE_MULTINODE_FULL", "") not in ("", "0")
_PR_SET_PDEATHSIG = 1


def wall_seconds() -> float:
    """Seconds since the epoch, as the jobs record it (comparable across processes)."""
    return time.clock_gettime(time.CLOCK_REALTIME)


def utc_key(moment: datetime) -> str:
    """How the jobs and the event logs write a fire time."""
    return moment.astimezone(timezone.utc).isoformat()


# ---- backends ------------------------------------------------------------------------


@attrs.frozen
class Backend:
    """A store and a broker, described as the node script takes them (JSON-safe).

    Attributes:
        name: ``"<store>+<broker>"``, for test ids and messages.
        store: the node's ``"store"`` spec.
        broker: the node's ``"broker"`` spec.
        namespace: the unique name of this backend's schema/prefix/database/file.
    """

    name: str
    store: dict[str, Any]
    broker: dict[str, Any]
    namespace: str

    @property
    def store_kind(self) -> str:
        return str(self.store["kind"])

    @property
    def broker_kind(self) -> str:
        return str(self.broker["kind"])

    @property
    def shared_broker(self) -> bool:
        """Whether every node receives every node's events."""
        return self.broker_kind != "local"


def _with_query(dsn: str, **settings: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in settings.items())
    return f"{dsn}{'&' if '?' in dsn else '?'}{query}"


@contextlib.asynccontextmanager
async def open_backend(
    name: str, directory: Path, mongodb_uri: Callable[[], str]
) -> AsyncIterator[Backend]:
    """A :class:`Backend` named ``"<store>+<broker>"`` in a fresh namespace, dropped
    (with everything in it) afterwards. An unreachable service skips the test (fails
    it in CI) through ``require_service``.

    PostgreSQL runs with ``synchronous_commit=off``: these tests kill scheduler
    processes, never the server, so waiting for an fsync per commit would only cost
    time. Its connections are named ``application_name=<namespace>`` (the broker's
    listener ``"<namespace> listener"``), so a test can find and kill its own.
    """
    store_kind, _, broker_kind = name.partition("+")
    namespace = f"horae_mn_{uuid.uuid4().hex[:10]}"
    broker: dict[str, Any] = {"kind": "local"}
    if store_kind == "sqlite":
        yield Backend(
            name, {"kind": "sqlite", "path": str(directory / "store.db")}, broker, namespace
        )
    elif store_kind == "postgres":
        async with _postgres_schema(namespace):
            dsn = _with_query(POSTGRES_DSN, synchronous_commit="off", application_name=namespace)
            if broker_kind == "postgres":
                broker = {
                    "kind": "postgres",
                    "dsn": dsn,
                    "channel": namespace,
                    "schema": namespace,
                }
            store = {"kind": "postgres", "dsn": dsn, "schema": namespace}
            yield Backend(name, store, broker, namespace)
    elif store_kind == "redis":
        async with _redis_prefix(namespace):
            if broker_kind == "redis":
                broker = {"kind": "redis", "url": REDIS_URL, "channel": namespace}
            store = {"kind": "redis", "url": REDIS_URL, "prefix": namespace}
            yield Backend(name, store, broker, namespace)
    elif store_kind == "mongodb":
        uri = mongodb_uri()
        async with _mongodb_database(uri, namespace):
            store = {"kind": "mongodb", "uri": uri, "database": namespace}
            yield Backend(name, store, broker, namespace)
    else:
        raise ValueError(f"unknown backend {name!r}")


@contextlib.asynccontextmanager
async def _postgres_schema(schema: str) -> AsyncIterator[None]:
    try:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        require_service("PostgreSQL", f"cannot connect to {POSTGRES_DSN}: {exc}")
    try:
        yield
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@contextlib.asynccontextmanager
async def _redis_prefix(prefix: str) -> AsyncIterator[None]:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        require_service("Redis", f"cannot reach {REDIS_URL}: {exc}")
    try:
        yield
    finally:
        # SCAN, never KEYS or FLUSHALL: the server is shared
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()


@contextlib.asynccontextmanager
async def _mongodb_database(uri: str, database: str) -> AsyncIterator[None]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        yield
    finally:
        await client.drop_database(database)
        await client.close()


def _answers_as_replica_set(uri: str, timeout: float) -> bool:
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        hello = client.admin.command("hello")
    except PyMongoError:
        return False
    finally:
        client.close()
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"


@contextlib.contextmanager
def mongodb_server() -> Iterator[str]:
    """The URI of a MongoDB-wire server that runs transactions: ``HORAE_MONGODB_URI``,
    else a replica set at 127.0.0.1:27017, else a SecantusDB server started in a
    process of its own (``_multinode_mongod.py``) and stopped afterwards."""
    configured = os.environ.get("HORAE_MONGODB_URI")
    if configured:
        if not _answers_as_replica_set(configured, 5.0):
            require_service("MongoDB", f"{configured!r} does not answer as a replica set")
        yield configured
        return
    default = "mongodb://127.0.0.1:27017"
    if _answers_as_replica_set(default, 0.5):
        yield default
        return
    server = subprocess.Popen(
        [sys.executable, str(MONGOD_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    try:
        assert server.stdout is not None
        uri = server.stdout.readline().decode().strip()
        if not uri:
            require_service("MongoDB", "the SecantusDB server did not start")
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for pipe in (server.stdin, server.stdout):
            if pipe is not None:
                pipe.close()


#: A rough upper bound of the time to add one schedule from the test process, per store.
SEED_SECONDS = {"postgres": 0.004, "redis": 0.003, "sqlite": 0.01, "mongodb": 0.012}
#: Time for a few node processes to start (imports, connections, schema checks).
STARTUP_LEAD = timedelta(seconds=4)

BACKENDS = [
    pytest.param("sqlite", id="sqlite+local"),
    pytest.param("postgres+postgres", marks=pytest.mark.postgres),
    pytest.param("redis+redis", marks=pytest.mark.redis),
    pytest.param("mongodb", id="mongodb+local", marks=pytest.mark.mongodb),
]


def first_fire_time(backend: Backend, count: int) -> datetime:
    """When the first of *count* planned fires may come, if the schedules are added
    first and the nodes started afterwards: once both are done."""
    lead = STARTUP_LEAD + timedelta(seconds=count * SEED_SECONDS[backend.store_kind])
    return SystemClock().now() + lead


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[Callable[[], str]]:
    """Finds or starts a MongoDB-wire server the first time a test asks for it."""
    with contextlib.ExitStack() as stack:
        found: list[str] = []

        def uri() -> str:
            if not found:
                found.append(stack.enter_context(mongodb_server()))
            return found[0]

        yield uri


@pytest.fixture
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, mongodb_uri: Callable[[], str]
) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path, mongodb_uri) as made:
        yield made


# ---- node processes ------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask the kernel to SIGKILL this child when the test runner dies (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@attrs.define(eq=False)
class Node:
    """One node process and its files."""

    identity: str
    process: subprocess.Popen[bytes]
    events: Path
    jobs: Path
    stderr: Path
    killed: bool = False


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of *path* (a line being written is skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


class Cluster:
    """Node processes on one backend (use as a context manager: it kills leftovers)."""

    def __init__(self, backend: Backend, directory: Path, *, lease_seconds: float) -> None:
        self.backend = backend
        self.directory = directory
        self.lease_seconds = lease_seconds
        self.nodes: dict[str, Node] = {}

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(
        self, identity: str, role: str = "both", *, script: Path = NODE_SCRIPT, **extra: Any
    ) -> Node:
        """Start a node process; it runs until :meth:`stop` or :meth:`kill`. *script*
        is the node program (another one takes the same config file and environment)."""
        config = {
            "identity": identity,
            "role": role,
            "store": self.backend.store,
            "broker": self.backend.broker,
            "lease_seconds": self.lease_seconds,
            "events": str(self.directory / f"{identity}.events"),
            **extra,
        }
        config_path = self.directory / f"{identity}.json"
        config_path.write_text(json.dumps(config))
        jobs = self.directory / f"{identity}.jobs"
        stderr = self.directory / f"{identity}.stderr"
        env = {**os.environ, LOG_VARIABLE: str(jobs)}
        with stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, str(script), str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=HERE,
                preexec_fn=_die_with_parent,
            )
        node = Node(identity, process, Path(config["events"]), jobs, stderr)
        self.nodes[identity] = node
        return node

    async def wait_ready(self, seconds: float = 45.0) -> None:
        """Wait until every node started so far logged ``ready``."""

        def ready() -> bool:
            for node in self.nodes.values():
                if not any(line["kind"] == "ready" for line in read_lines(node.events)):
                    if node.process.poll() is not None:
                        raise AssertionError(
                            f"{node.identity} exited with {node.process.returncode} before "
                            f"it was ready:\n{self.stderr_tail(node)}"
                        )
                    return False
            return True

        assert await poll_until(ready, seconds=seconds), (
            f"nodes not ready within {seconds} s\n{self.describe()}"
        )

    def kill(self, identity: str) -> float:
        """``kill -9`` the node; return the monotonic time of the kill."""
        node = self.nodes[identity]
        node.process.kill()
        node.killed = True
        node.process.wait()
        return time.monotonic()

    async def stop(self, seconds: float = 20.0) -> None:
        """Stop every live node gracefully (SIGTERM) and check each exited cleanly."""
        live = [node for node in self.nodes.values() if node.process.poll() is None]
        for node in live:
            node.process.send_signal(signal.SIGTERM)
        await poll_until(
            lambda: all(node.process.poll() is not None for node in live), seconds=seconds
        )
        stuck = [node.identity for node in live if node.process.poll() is None]
        self.close()
        assert not stuck, f"nodes did not stop within {seconds} s: {stuck}\n{self.describe()}"
        failed = {
            node.identity: node.process.returncode
            for node in self.nodes.values()
            if not node.killed and node.process.returncode != 0
        }
        assert not failed, f"nodes exited with errors {failed}\n{self.describe()}"

    def close(self) -> None:
        """Kill every node that still runs (idempotent; the safety net of ``with``)."""
        for node in self.nodes.values():
            if node.process.poll() is None:
                node.process.kill()
            node.process.wait()

    def job_lines(self) -> list[dict[str, Any]]:
        """Every line that the jobs of every node wrote."""
        return [line for node in self.nodes.values() for line in read_lines(node.jobs)]

    def events(self, identity: str, kind: str) -> list[dict[str, Any]]:
        """The event-log lines of one kind that the node *identity* wrote."""
        return [line for line in read_lines(self.nodes[identity].events) if line["kind"] == kind]

    def stderr_tail(self, node: Node, lines: int = 30) -> str:
        text = node.stderr.read_text(errors="replace").splitlines()
        return "\n".join(f"  {node.identity}| {line}" for line in text[-lines:])

    def describe(self) -> str:
        """The end of every node's log, for assertion messages."""
        return "\n".join(self.stderr_tail(node) for node in self.nodes.values())

    def log_problems(self) -> list[str]:
        """Log lines at ERROR level or with a traceback, from every node."""
        problems = []
        for node in self.nodes.values():
            for line in node.stderr.read_text(errors="replace").splitlines():
                if " ERROR " in line or line.startswith("Traceback"):
                    problems.append(f"{node.identity}: {line}")
        return problems


# ---- the workload --------------------------------------------------------------------


@attrs.frozen
class Plan:
    """One schedule to add, and the fire times it must produce."""

    id: str
    func: Callable[..., Any]
    trigger: Trigger
    kwargs: dict[str, Any] = attrs.field(factory=dict)

    def fire_times(self) -> list[str]:
        """Every fire time of the (finite) trigger, as the jobs record them."""
        times = []
        current = self.trigger.next(None)
        while current is not None:
            times.append(utc_key(current))
            current = self.trigger.next(current)
        return times


def whole_milliseconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def spread_plans(
    func: Callable[..., Any],
    count: int,
    start: datetime,
    span: timedelta,
    *,
    seed: int = 5,
    interval_share: float = 0.1,
    interval: timedelta = timedelta(seconds=2),
) -> list[Plan]:
    """*count* schedules whose fire times lie in ``[start, start + span)``.

    Most are one-off :class:`DateTrigger` schedules at random moments; an
    ``interval_share`` of them are :class:`IntervalTrigger` schedules that fire every
    *interval* from a random moment until the end of the window, so schedules are also
    advanced and acquired again and again. Times are whole milliseconds.
    """
    rng = random.Random(seed)
    plans = []
    end = start + span
    for number in range(count):
        at = whole_milliseconds(start + span * rng.random())
        trigger: Trigger
        if rng.random() < interval_share:
            trigger = IntervalTrigger(
                seconds=interval.total_seconds(), start_time=at, end_time=end
            )
        else:
            trigger = DateTrigger(at)
        plans.append(Plan(f"s{number:05}", func, trigger))
    return plans


async def seed(backend: Backend, plans: Sequence[Plan], *, concurrency: int = 16) -> None:
    """Add the planned schedules through a scheduler of this process (not started:
    only its store is used), ``CoalescePolicy.all`` so that no fire time is merged."""
    semaphore = anyio.Semaphore(concurrency)
    async with AsyncScheduler(make_store(backend.store), identity="seeder") as scheduler:

        async def add(plan: Plan) -> None:
            async with semaphore:
                await scheduler.add_schedule(
                    plan.func,
                    plan.trigger,
                    id=plan.id,
                    kwargs=plan.kwargs,
                    coalesce=CoalescePolicy.all,
                )

        async with anyio.create_task_group() as group:
            for plan in plans:
                group.start_soon(add, plan)


# ---- counting ------------------------------------------------------------------------


@attrs.frozen
class Tally:
    """What the jobs recorded: executions per (schedule id, fire time)."""

    runs: Counter[tuple[str, str]]
    #: seconds between each execution's fire time and its start
    lateness: list[float]
    #: node identity -> executions it ran
    by_node: Counter[str]
    #: node identity -> the lateness of each execution it ran
    lateness_by_node: dict[str, list[float]]

    @classmethod
    def of(cls, lines: Sequence[dict[str, Any]]) -> Tally:
        starts = [line for line in lines if line["kind"] == "start"]
        lateness: dict[str, list[float]] = {}
        for line in starts:
            late = line["wall"] - datetime.fromisoformat(line["fire"]).timestamp()
            lateness.setdefault(line["node"], []).append(late)
        return cls(
            runs=Counter((line["schedule"], line["fire"]) for line in starts),
            lateness=[late for values in lateness.values() for late in values],
            by_node=Counter(line["node"] for line in starts),
            lateness_by_node=lateness,
        )

    def duplicates(self) -> dict[tuple[str, str], int]:
        return {key: count for key, count in self.runs.items() if count > 1}

    def missing(self, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return expected - set(self.runs)

    def unexpected(self, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return set(self.runs) - expected

    def percentile(self, share: float) -> float:
        ordered = sorted(self.lateness)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> str:
        if not self.lateness:
            return "no executions"
        return (
            f"{sum(self.runs.values())} executions, lateness p50 "
            f"{statistics.median(self.lateness):.3f} s, p99 {self.percentile(0.99):.3f} s, "
            f"max {max(self.lateness):.3f} s, by node {dict(sorted(self.by_node.items()))}"
        )


def expected_runs(plans: Sequence[Plan]) -> set[tuple[str, str]]:
    """Every (schedule id, fire time) that the plans must produce."""
    return {(plan.id, fire) for plan in plans for fire in plan.fire_times()}


async def wait_for_runs(
    cluster: Cluster, expected: set[tuple[str, str]], *, seconds: float
) -> Tally:
    """Wait until every expected run was recorded (or *seconds* passed); return the
    tally as it is then."""
    await poll_until(
        lambda: not Tally.of(cluster.job_lines()).missing(expected), seconds=seconds, interval=0.25
    )
    return Tally.of(cluster.job_lines())


async def poll_until(
    condition: Callable[[], bool], *, seconds: float, interval: float = 0.05
) -> bool:
    """Check *condition* every *interval* seconds until it holds (True) or *seconds*
    have passed (False). Polling, because what the tests wait for happens in other
    processes (files they write, their exit) and nothing there can set an event here."""
    with anyio.move_on_after(seconds):
        while not condition():  # noqa: ASYNC110 - see the docstring
            await anyio.sleep(interval)
        return True
    return False
