"""Data store URLs: parsing into a store kind, target and namespace; password masking."""

from __future__ import annotations

import pytest

from horae import ConfigurationError
from horae._store_urls import StoreURL, create_data_store, mask_url, parse_store_url
from horae.datastores.memory import MemoryDataStore
from horae.datastores.sqlite import SQLiteDataStore


@pytest.mark.parametrize(
    ("url", "kind", "target", "namespace"),
    [
        pytest.param("sqlite:///data/app.db", "sqlite", "data/app.db", None, id="sqlite-relative"),
        pytest.param("sqlite:////var/lib/a b.db", "sqlite", "/var/lib/a b.db", None, id="abs"),
        pytest.param("sqlite:///my%20file.db", "sqlite", "my file.db", None, id="sqlite-quoted"),
        pytest.param("sqlite://", "memory", "", None, id="sqlite-memory"),
        pytest.param("sqlite:///:memory:", "memory", "", None, id="sqlite-memory-path"),
        pytest.param("memory://", "memory", "", None, id="memory"),
        pytest.param(
            "postgresql://u:p@db:5432/prod?schema=jobs",
            "postgresql", "postgresql://u:p@db:5432/prod", "jobs", id="postgres-schema",
        ),
        pytest.param(
            "postgres+asyncpg://u@db/prod?sslmode=require",
            "postgresql", "postgresql://u@db/prod?sslmode=require", None, id="sqlalchemy-style",
        ),
        pytest.param(
            "redis://:pw@cache:6379/2?prefix=app&socket_timeout=3",
            "redis", "redis://:pw@cache:6379/2?socket_timeout=3", "app", id="redis-prefix",
        ),
        pytest.param("rediss://cache/0", "redis", "rediss://cache/0", None, id="rediss"),
        pytest.param(
            "unix:///run/redis.sock?db=1", "redis", "unix:///run/redis.sock?db=1", None, id="unix"
        ),
        pytest.param(
            "mongodb://u:p@a,b,c/app?replicaSet=rs0",
            "mongodb", "mongodb://u:p@a,b,c/app?replicaSet=rs0", "app", id="mongo-path",
        ),
        pytest.param(
            "mongodb+srv://cluster.example.com/?database=jobs",
            "mongodb", "mongodb+srv://cluster.example.com/", "jobs", id="mongo-option",
        ),
    ],
)  # fmt: skip
def test_parse(url: str, kind: str, target: str, namespace: str | None) -> None:
    parsed = parse_store_url(url)
    assert (parsed.kind, parsed.target, parsed.namespace) == (kind, target, namespace)
    assert str(parsed) == parsed.masked == mask_url(url)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/prod", "postgresql://app:***@db:5432/prod"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("mongodb://u:p@ss/w@a,b/db?x=1", "mongodb://u:***@a,b/db?x=1"),
        ("postgresql://db/prod?user=app&password=s3cret", "postgresql://db/prod?user=app&password=***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("sqlite:///dir@home/x.db", "sqlite:///dir@home/x.db"),
        ("not a url", "not a url"),
    ],
)  # fmt: skip
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_the_target_is_not_in_the_repr() -> None:
    parsed = parse_store_url("postgresql://app:s3cret@db/prod")
    assert "s3cret" not in repr(parsed)
    assert isinstance(parsed, StoreURL)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:pw@db/x", "unsupported store URL scheme 'mysql://' in 'mysql://u:***@db/x'"),
        ("mongo://db/x", "did you mean 'mongodb://'?"),
        ("jobs.sqlite3", "invalid store URL 'jobs.sqlite3': expected a URL such as"),
        ("sqlite:///x.db?timeout=3", "SQLite URLs take no options (found '?timeout=3')"),
        ("redis://h/0?prefix=", "give the option 'prefix' once, with a non-empty value"),
        ("postgresql://h/db?schema=a&schema=b", "give the option 'schema' once"),
        ("mongodb://h/a?database=b", "it names the database twice, 'a' in the path and 'b'"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_store_url(url)
    assert message in str(caught.value)
    assert "pw" not in str(caught.value)


def test_not_a_string() -> None:
    with pytest.raises(TypeError, match="a store URL must be a str, not int"):
        parse_store_url(5)  # type: ignore[arg-type]


def test_create_data_store(tmp_path: object) -> None:
    assert isinstance(create_data_store("memory://"), MemoryDataStore)
    store = create_data_store("sqlite:///jobs.sqlite3")
    assert isinstance(store, SQLiteDataStore)
    assert repr(store).startswith("SQLiteDataStore('jobs.sqlite3'")


def test_create_remote_stores_without_connecting() -> None:
    postgres = create_data_store("postgresql://app:s3cret@db/prod?schema=jobs", connect_timeout=2)
    assert repr(postgres) == "PostgresDataStore('postgresql://app:***@db/prod', schema='jobs')"
    redis = create_data_store("redis://:s3cret@cache/0?prefix=app", connect_timeout=2)
    assert repr(redis) == (
        "RedisDataStore('redis://:***@cache/0?socket_connect_timeout=2', prefix='app')"
    )
    mongo = create_data_store("mongodb://u:s3cret@db/app", connect_timeout=2)
    assert repr(mongo) == "MongoDBDataStore('mongodb://u:***@db/app', database='app')"
