"""APScheduler 3's job stores, each describing the horae data store that keeps its jobs.

A compat job store is a configuration object: it makes one horae
:class:`~horae.datastores.DataStore` (once; the same object serves every start of the
scheduler) and the scheduler talks to that. Job stores of the same kind with different
names stay apart: ``RedisJobStore(jobs_key=...)`` becomes the key prefix,
``MongoDBJobStore(database=..., collection=...)`` the database ``<database>_<collection>``
and ``SQLAlchemyJobStore(tablename=...)`` the PostgreSQL schema. Persistent stores
pickle job arguments (as APScheduler 3 does), with ``pickle_protocol``.

Each store also names its horae target in ``repr()`` (passwords hidden).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from horae._exceptions import ConfigurationError
from horae._store_urls import mask_url
from horae.datastores import DataStore
from horae.datastores.memory import MemoryDataStore
from horae.serializers import PickleSerializer

__all__ = (
    "BaseJobStore",
    "HoraeJobStore",
    "MemoryJobStore",
    "MongoDBJobStore",
    "RedisJobStore",
    "SQLAlchemyJobStore",
)

#: Redis connection arguments that map onto a ``redis://`` URL.
_REDIS_URL_ARGS = frozenset({"host", "port", "username", "password", "ssl", "unix_socket_path"})
#: Redis connection arguments that redis-py reads from the URL's query string.
_REDIS_QUERY_ARGS = frozenset(
    {"socket_timeout", "socket_connect_timeout", "socket_keepalive", "client_name",
     "health_check_interval", "retry_on_timeout"}
)  # fmt: skip
_MONGO_INVALID = re.compile(r'[/\\. "$\x00]')


class BaseJobStore:
    """The base of the compat job stores.

    Subclasses implement :meth:`_make_data_store`; :attr:`data_store` makes it once.
    """

    def __init__(self) -> None:
        self._data_store: DataStore | None = None

    @property
    def data_store(self) -> DataStore:
        """The horae data store that keeps this job store's jobs (made on first use)."""
        if self._data_store is None:
            self._data_store = self._make_data_store()
        return self._data_store

    def _make_data_store(self) -> DataStore:
        raise NotImplementedError(f"{type(self).__name__} does not make a data store")

    def shutdown(self) -> None:
        """Kept for APScheduler 3 code; the scheduler closes the data store itself."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class HoraeJobStore(BaseJobStore):
    """Any horae data store used as a job store (``jobstores={"x": SQLiteDataStore()}``).

    Args:
        data_store: the horae data store.
    """

    def __init__(self, data_store: DataStore) -> None:
        super().__init__()
        if not isinstance(data_store, DataStore):
            raise TypeError(f"expected a horae DataStore, not {type(data_store).__name__}")
        self._data_store = data_store

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self._data_store!r})>"


class MemoryJobStore(BaseJobStore):
    """Keeps jobs in memory (:class:`~horae.datastores.MemoryDataStore`): nothing is
    persisted; jobs may use lambdas and closures."""

    def _make_data_store(self) -> DataStore:
        return MemoryDataStore()


class RedisJobStore(BaseJobStore):
    """Keeps jobs in Redis (:class:`~horae.datastores.RedisDataStore`).

    Args:
        db: the database number.
        jobs_key: the horae key prefix (every key is ``"<jobs_key>:..."``), so job stores
            with different ``jobs_key`` never share jobs.
        run_times_key: accepted for APScheduler 3 code; horae indexes run times under
            ``jobs_key`` as well.
        pickle_protocol: the pickle protocol for job arguments and results.
        **connect_args: ``host`` (default ``"localhost"``), ``port`` (6379),
            ``username``, ``password``, ``ssl``, ``unix_socket_path``, and
            ``socket_timeout``, ``socket_connect_timeout``, ``socket_keepalive``,
            ``client_name``, ``health_check_interval``, ``retry_on_timeout``.

    Raises:
        ValueError: ``db`` is ``None``, or a key is empty (APScheduler 3's checks).
        ConfigurationError: a connection argument that horae cannot pass on.
    """

    def __init__(
        self,
        db: int | str = 0,
        jobs_key: str = "apscheduler.jobs",
        run_times_key: str = "apscheduler.run_times",
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
        **connect_args: Any,
    ) -> None:
        super().__init__()
        if db is None:
            raise ValueError('The "db" parameter must not be empty')
        if not jobs_key:
            raise ValueError('The "jobs_key" parameter must not be empty')
        if not run_times_key:
            raise ValueError('The "run_times_key" parameter must not be empty')
        self.jobs_key = jobs_key
        self.run_times_key = run_times_key
        self.pickle_protocol = pickle_protocol
        self.url = self._url(int(db), connect_args)

    @staticmethod
    def _url(db: int, args: Mapping[str, Any]) -> str:
        unknown = sorted(set(args) - _REDIS_URL_ARGS - _REDIS_QUERY_ARGS)
        if unknown:
            raise ConfigurationError(
                f"RedisJobStore cannot pass {', '.join(map(repr, unknown))} on to horae's "
                f"Redis store (supported: "
                f"{', '.join(sorted(_REDIS_URL_ARGS | _REDIS_QUERY_ARGS))})"
            )
        query = {name: str(args[name]) for name in sorted(_REDIS_QUERY_ARGS) if name in args}
        if args.get("unix_socket_path"):
            query["db"] = str(db)
            return f"unix://{args['unix_socket_path']}?{urlencode(query)}"
        credentials = ""
        if args.get("username") or args.get("password"):
            user = quote(str(args.get("username") or ""), safe="")
            password = quote(str(args.get("password") or ""), safe="")
            credentials = f"{user}:{password}@"
        host = str(args.get("host") or "localhost")
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        scheme = "rediss" if args.get("ssl") else "redis"
        url = f"{scheme}://{credentials}{host}:{int(args.get('port') or 6379)}/{db}"
        return f"{url}?{urlencode(query)}" if query else url

    def _make_data_store(self) -> DataStore:
        from horae.datastores.redis import RedisDataStore

        serializer = PickleSerializer(self.pickle_protocol)
        return RedisDataStore(self.url, prefix=self.jobs_key, serializer=serializer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({mask_url(self.url)}, jobs_key={self.jobs_key!r})>"


class MongoDBJobStore(BaseJobStore):
    """Keeps jobs in MongoDB (:class:`~horae.datastores.MongoDBDataStore`; it needs a
    replica set or sharded cluster, for transactions).

    Args:
        database: with ``collection``, names the horae database
            ``"<database>_<collection>"`` (characters MongoDB refuses become ``_``), which
            keeps it apart from an APScheduler 3 ``jobs`` collection in ``database``.
        collection: see ``database``.
        client: a MongoDB URI, or a ``pymongo.AsyncMongoClient`` that the caller owns
            (then ``connect_args`` must be empty).
        pickle_protocol: the pickle protocol for job arguments and results.
        **connect_args: ``host`` (a host name or a ``mongodb://`` URI, default
            ``"localhost"``), ``port`` (27017), ``username``, ``password``, and any other
            MongoDB URI option (``replicaSet``, ``authSource``, ``tls``, ...). ``w`` is
            ignored: horae writes with majority acknowledgement.

    Raises:
        ValueError: ``database`` or ``collection`` is empty (APScheduler 3's checks).
    """

    def __init__(
        self,
        database: str = "apscheduler",
        collection: str = "jobs",
        client: Any = None,
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
        **connect_args: Any,
    ) -> None:
        super().__init__()
        if not database:
            raise ValueError('The "database" parameter must not be empty')
        if not collection:
            raise ValueError('The "collection" parameter must not be empty')
        self.pickle_protocol = pickle_protocol
        self.database = _MONGO_INVALID.sub("_", f"{database}_{collection}")[:63]
        self._client: Any = None
        if client is not None:
            if connect_args:
                raise ConfigurationError("give MongoDBJobStore either client= or connect_args")
            if not isinstance(client, str) and type(client).__name__ != "AsyncMongoClient":
                raise ConfigurationError(
                    f"MongoDBJobStore(client=...) needs a MongoDB URI or a "
                    f"pymongo.AsyncMongoClient, not {type(client).__name__}; pass "
                    f"host='mongodb://...' instead of a synchronous MongoClient"
                )
            self._client = client
            self.uri = client if isinstance(client, str) else None
        else:
            self.uri = self._uri(connect_args)

    @staticmethod
    def _uri(args: Mapping[str, Any]) -> str:
        options = {k: v for k, v in args.items() if k not in ("host", "port", "w")}
        username, password = options.pop("username", None), options.pop("password", None)
        host = args.get("host") or "localhost"
        if isinstance(host, (list, tuple)):
            host = ",".join(map(str, host))
        host = str(host)
        if host.startswith(("mongodb://", "mongodb+srv://")):
            uri = host
        else:
            credentials = ""
            if username or password:
                credentials = f"{quote(str(username or ''), safe='')}:"
                credentials += f"{quote(str(password or ''), safe='')}@"
            port = args.get("port")
            if port and "," not in host and ":" not in host:
                host = f"{host}:{int(port)}"
            uri = f"mongodb://{credentials}{host}/"
        if options:
            values = {
                k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()
            }
            uri += ("&" if "?" in uri else "?") + urlencode(values)
        return uri

    def _make_data_store(self) -> DataStore:
        from horae.datastores.mongodb import MongoDBDataStore

        target: Any = self._client if self._client is not None else self.uri
        serializer = PickleSerializer(self.pickle_protocol)
        return MongoDBDataStore(target, self.database, serializer=serializer)

    def __repr__(self) -> str:
        target = mask_url(self.uri) if self.uri is not None else repr(self._client)
        return f"<{type(self).__name__} ({target}, database={self.database!r})>"


class SQLAlchemyJobStore(BaseJobStore):
    """Keeps jobs in SQLite or PostgreSQL, chosen by the SQLAlchemy-style URL.

    * ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` become a
      :class:`~horae.datastores.SQLiteDataStore` (``sqlite://`` and
      ``sqlite:///:memory:`` a :class:`~horae.datastores.MemoryDataStore`);
    * ``postgresql://user:password@host:port/database`` (also ``postgres://`` and any
      ``+driver`` such as ``postgresql+psycopg2://`` or ``postgresql+asyncpg://``, the
      driver being dropped: horae uses asyncpg) becomes a
      :class:`~horae.datastores.PostgresDataStore` whose schema is ``tablename``.

    Args:
        url: the database URL.
        engine: a SQLAlchemy ``Engine`` whose URL to use instead of ``url``.
        tablename: the PostgreSQL schema that holds the store's tables (SQLite files
            hold one store each, so it is not used there).
        metadata: accepted for APScheduler 3 code; not used.
        pickle_protocol: the pickle protocol for job arguments and results.
        tableschema: accepted for APScheduler 3 code; not used.
        engine_options: accepted for APScheduler 3 code; not used.

    Raises:
        ValueError: neither ``url`` nor ``engine`` was given.
        ConfigurationError: a URL of another database.
    """

    def __init__(
        self,
        url: str | None = None,
        engine: Any = None,
        tablename: str = "apscheduler_jobs",
        metadata: Any = None,
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
        tableschema: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if engine is not None:
            engine_url = engine.url
            render = getattr(engine_url, "render_as_string", None)
            url = render(hide_password=False) if callable(render) else str(engine_url)
        if not url:
            raise ValueError('Need either "engine" or "url" defined')
        self.tablename = tablename
        self.pickle_protocol = pickle_protocol
        self.kind, self.url = self._classify(str(url))

    @staticmethod
    def _classify(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        backend = parts.scheme.split("+", 1)[0]
        rest = url.split("://", 1)[1] if "://" in url else ""
        if backend == "sqlite":
            path = rest.split("?", 1)[0]
            if path in ("", "/", "/:memory:"):
                return "memory", "sqlite://"
            return "sqlite", f"sqlite://{path}"
        if backend in ("postgresql", "postgres"):
            return "postgres", f"postgresql://{rest}"
        raise ConfigurationError(
            f"unsupported database URL {mask_url(url)!r} for SQLAlchemyJobStore: horae.compat "
            f"supports sqlite:///path/to/file.db (or sqlite:////absolute/path.db) and "
            f"postgresql://user:password@host:port/database (with any +driver suffix)"
        )

    def _make_data_store(self) -> DataStore:
        serializer = PickleSerializer(self.pickle_protocol)
        if self.kind == "memory":
            return MemoryDataStore()
        if self.kind == "sqlite":
            from horae.datastores.sqlite import SQLiteDataStore

            return SQLiteDataStore(self.url, serializer=serializer)
        from horae.datastores.postgres import PostgresDataStore

        return PostgresDataStore(self.url, schema=self.tablename, serializer=serializer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (url={mask_url(self.url)!r})>"


#: Job store plugin names of APScheduler 3 (``{"type": "redis", ...}``) horae supports.
JOBSTORE_TYPES: dict[str, type[BaseJobStore]] = {
    "memory": MemoryJobStore,
    "redis": RedisJobStore,
    "mongodb": MongoDBJobStore,
    "sqlalchemy": SQLAlchemyJobStore,
}
