"""horae.compat's job stores: how each maps onto a horae data store, that differently
named stores stay apart, and that jobs survive a restart (a new scheduler object on the
same store sees them, and runs them)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _compat_helpers import (
    POSTGRES_DSN,
    Recorder,
    compat_mongodb_uri,
    mongo_database,
    postgres_schema,
    redis_conf,
    redis_keys,
    shut_down_afterwards,
    wait_until,
)
from pymongo import MongoClient

import horae
from horae._clock import SystemClock
from horae.compat import BackgroundScheduler
from horae.compat.events import EVENT_JOB_EXECUTED
from horae.compat.jobstores import (
    MemoryJobStore,
    MongoDBJobStore,
    RedisJobStore,
    SQLAlchemyJobStore,
)
from horae.datastores.memory import MemoryDataStore
from horae.datastores.mongodb import MongoDBDataStore
from horae.datastores.postgres import PostgresDataStore
from horae.datastores.redis import RedisDataStore
from horae.datastores.sqlite import SQLiteDataStore

__all__ = ["compat_mongodb_uri", "mongo_database", "postgres_schema", "redis_conf"]

RAN: list[Any] = []
RAN_LOCK = threading.Lock()


def record(value: Any) -> Any:
    """A module-level job (persistent stores keep callables by reference)."""
    with RAN_LOCK:
        RAN.append(value)
    return value


class Payload:
    """A job argument that only pickle can store (APScheduler 3's stores pickle)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _survives_a_restart(make_jobstores: Any, tag: str) -> None:
    """Add jobs, shut down; a new scheduler on new job store objects sees and runs them."""
    sched = BackgroundScheduler(jobstores=make_jobstores(), timezone="UTC")
    soon = SystemClock().now() + timedelta(seconds=1)
    sched.add_job(record, "date", run_date=soon, args=[Payload(7)], id="soon", name=tag)
    sched.add_job(record, "cron", hour="*/2", minute=1, args=[tag], id="later")
    sched.start(paused=True)
    with shut_down_afterwards(sched):
        before = [
            (j.id, j.name, str(j.trigger), j.next_run_time, j.args) for j in sched.get_jobs()
        ]
    assert [row[0] for row in before] == ["soon", "later"]

    restarted = BackgroundScheduler(jobstores=make_jobstores(), timezone="UTC")
    recorder = Recorder()
    restarted.add_listener(recorder, EVENT_JOB_EXECUTED)
    restarted.start()
    with shut_down_afterwards(restarted):
        after = [
            (j.id, j.name, str(j.trigger), j.next_run_time, j.args) for j in restarted.get_jobs()
        ]
        assert after == before
        (event,) = recorder.wait_for(EVENT_JOB_EXECUTED, job_id="soon")
        assert event.retval == Payload(7)
        assert [job.id for job in restarted.get_jobs()] == ["later"]
        restarted.remove_all_jobs()


# ---- SQLAlchemyJobStore ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "store_type"),
    [
        ("sqlite:///jobs.sqlite", SQLiteDataStore),
        ("sqlite:////tmp/compat_jobs.sqlite", SQLiteDataStore),
        ("sqlite+pysqlite:///jobs.sqlite", SQLiteDataStore),
        ("sqlite://", MemoryDataStore),
        ("sqlite:///:memory:", MemoryDataStore),
        ("postgresql://postgres@127.0.0.1:5432/test", PostgresDataStore),
        ("postgresql+psycopg2://postgres:secret@127.0.0.1/test", PostgresDataStore),
        ("postgresql+asyncpg://postgres@127.0.0.1/test", PostgresDataStore),
        ("postgres://postgres@127.0.0.1/test", PostgresDataStore),
    ],
)
def test_sqlalchemy_urls_map_onto_horae_stores(url: str, store_type: type) -> None:
    jobstore = SQLAlchemyJobStore(url=url)
    assert isinstance(jobstore.data_store, store_type)
    assert jobstore.data_store is jobstore.data_store  # made once, kept across restarts
    assert "secret" not in repr(jobstore)


def test_sqlalchemy_refuses_other_databases_and_missing_urls() -> None:
    with pytest.raises(horae.ConfigurationError) as raised:
        SQLAlchemyJobStore(url="mysql+pymysql://me:secret@db.example/jobs")
    message = str(raised.value)
    assert "unsupported database URL 'mysql+pymysql://me:***@db.example/jobs'" in message
    assert "sqlite:///path/to/file.db" in message
    assert "postgresql://" in message
    with pytest.raises(ValueError, match='Need either "engine" or "url" defined'):
        SQLAlchemyJobStore()


def test_sqlalchemy_takes_the_url_of_an_engine() -> None:
    class Engine:
        url = "sqlite:///from-engine.sqlite"

    assert isinstance(SQLAlchemyJobStore(engine=Engine()).data_store, SQLiteDataStore)


def test_jobs_in_sqlite_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite"
    _survives_a_restart(lambda: {"default": SQLAlchemyJobStore(url=url)}, "sqlite")


def test_jobs_in_postgresql_survive_a_restart(postgres_schema: str) -> None:
    url = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg2://", 1)
    _survives_a_restart(
        lambda: {"default": SQLAlchemyJobStore(url=url, tablename=postgres_schema)}, "postgres"
    )


# ---- RedisJobStore ----------------------------------------------------------------------


def test_redis_connect_arguments_become_a_url() -> None:
    store = RedisJobStore(db=2, host="cache", port=6380, password="p@ss", socket_timeout=3)
    assert store.url == "redis://:p%40ss@cache:6380/2?socket_timeout=3"
    assert "p%40ss" not in repr(store)
    assert RedisJobStore(unix_socket_path="/run/redis.sock").url == "unix:///run/redis.sock?db=0"
    assert RedisJobStore(ssl=True).url == "rediss://localhost:6379/0"
    assert isinstance(RedisJobStore().data_store, RedisDataStore)
    with pytest.raises(horae.ConfigurationError, match="cannot pass 'decode_responses'"):
        RedisJobStore(decode_responses=True)
    with pytest.raises(ValueError, match='The "jobs_key" parameter must not be empty'):
        RedisJobStore(jobs_key="")


def test_redis_stores_with_different_jobs_keys_stay_apart(redis_conf: dict[str, Any]) -> None:
    server = {"host": redis_conf["host"], "port": redis_conf["port"], "db": redis_conf["db"]}
    first, second = f"{redis_conf['jobs_key']}.a", f"{redis_conf['jobs_key']}.b"
    sched = BackgroundScheduler(
        jobstores={
            "default": MemoryJobStore(),
            "a": RedisJobStore(jobs_key=first, **server),
            "b": RedisJobStore(jobs_key=second, **server),
        }
    )
    sched.add_job(record, "interval", hours=1, id="same", args=["a"], jobstore="a")
    sched.add_job(record, "interval", hours=1, id="same", args=["b"], jobstore="b")
    sched.start(paused=True)
    with shut_down_afterwards(sched):
        assert [job.args for job in sched.get_jobs(jobstore="a")] == [("a",)]
        assert [job.args for job in sched.get_jobs(jobstore="b")] == [("b",)]
        sched.remove_job("same", jobstore="a")
        assert [job.args for job in sched.get_jobs()] == [("b",)]
    assert redis_keys(redis_conf, f"{first}:") != []  # its own keys, under its jobs_key
    assert not set(redis_keys(redis_conf, f"{first}:")) & set(redis_keys(redis_conf, f"{second}:"))


def test_jobs_in_redis_survive_a_restart(redis_conf: dict[str, Any]) -> None:
    server = {k: redis_conf[k] for k in ("host", "port", "db", "jobs_key", "run_times_key")}
    _survives_a_restart(lambda: {"default": RedisJobStore(**server)}, "redis")


def test_a_lambda_cannot_go_to_a_persistent_store(redis_conf: dict[str, Any]) -> None:
    server = {k: redis_conf[k] for k in ("host", "port", "db", "jobs_key")}
    sched = BackgroundScheduler(
        jobstores={"default": MemoryJobStore(), "redis": RedisJobStore(**server)}
    )
    sched.start(paused=True)
    with shut_down_afterwards(sched):
        with pytest.raises(horae.SerializationError, match="lambda"):
            sched.add_job(lambda: None, "interval", hours=1, jobstore="redis")
        assert sched.get_jobs() == []
        sched.add_job(lambda: None, "interval", hours=1, jobstore="default")  # memory: fine


# ---- MongoDBJobStore --------------------------------------------------------------------


def test_mongodb_connect_arguments_become_a_uri() -> None:
    store = MongoDBJobStore(
        host="db1", port=27018, username="me", password="p/w", replicaSet="rs0"
    )
    assert store.uri == "mongodb://me:p%2Fw@db1:27018/?replicaSet=rs0"
    assert store.database == "apscheduler_jobs"
    assert MongoDBJobStore(database="app", collection="my.jobs").database == "app_my_jobs"
    assert MongoDBJobStore(host="mongodb://a,b/?replicaSet=x", tls=True).uri == (
        "mongodb://a,b/?replicaSet=x&tls=true"
    )
    assert isinstance(MongoDBJobStore().data_store, MongoDBDataStore)
    with pytest.raises(horae.ConfigurationError, match=r"host='mongodb://\.\.\.'"):
        MongoDBJobStore(client=MongoClient(connect=False))
    with pytest.raises(ValueError, match='The "collection" parameter must not be empty'):
        MongoDBJobStore(collection="")


def test_jobs_in_mongodb_survive_a_restart(compat_mongodb_uri: str, mongo_database: str) -> None:
    _survives_a_restart(
        lambda: {"default": MongoDBJobStore(database=mongo_database, host=compat_mongodb_uri)},
        "mongodb",
    )
    client: MongoClient[dict[str, Any]] = MongoClient(compat_mongodb_uri)
    try:
        assert f"{mongo_database}_jobs" in client.list_database_names()
    finally:
        client.close()


# ---- memory ------------------------------------------------------------------------------


def test_memory_jobs_with_lambdas_keep_running_when_the_core_restarts() -> None:
    runs: list[int] = []
    sched = BackgroundScheduler()
    sched.add_job(lambda: runs.append(1), "interval", seconds=0.2, id="local")
    sched.start()
    with shut_down_afterwards(sched):
        wait_until(lambda: len(runs) >= 1)
        sched.add_jobstore(MemoryJobStore(), "extra")  # restarts the horae core
        seen = len(runs)
        wait_until(lambda: len(runs) > seen)
