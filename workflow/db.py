"""The database seam: an engine for a URL, and read / write transactions.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout,
and writes are serialised: one process-wide lock, one writer connection kept open, and
``BEGIN IMMEDIATE``, so threads never fight over the file lock ("database is locked") and a
transaction never has to upgrade its lock half-way. Other backends (PostgreSQL through
``postgresql+psycopg://``) use a pre-pinged pool and rely on the compare-and-set on
``ticket.version`` for concurrency.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .prepared import driver_sql

__all__ = ["DEFAULT_URL", "Database", "database_url"]

DEFAULT_URL = "sqlite:///tierflow.db"


def database_url(url: str | None = None) -> str:
    """``url``, else ``$TIERFLOW_DATABASE_URL``, else a SQLite file in the working directory."""
    return url or os.environ.get("TIERFLOW_DATABASE_URL") or DEFAULT_URL


class Database:
    def __init__(self, url: str | None = None, *, pool_size: int = 10) -> None:
        self.url = database_url(url)
        u = sa.engine.make_url(self.url)
        self.is_sqlite = u.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            if u.database and u.database != ":memory:":
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        self._write_lock: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        self._named: dict[str, threading.Lock] = {}
        self._writer_conn: Connection | None = None
        self.on_transaction: Callable[[float], None] | None = None
        """Called with the seconds each transaction took (metrics hook; one call per unit)."""
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        start = time.perf_counter()
        try:
            if self._write_lock is None:
                with self.engine.connect() as conn, conn.begin():
                    yield conn
            else:  # SQLite: one writer connection, kept open, used under the lock
                with self._write_lock:
                    conn = self._writer()
                    try:
                        with conn.begin():
                            yield conn
                    except sa.exc.DBAPIError as exc:
                        if exc.connection_invalidated:
                            self._writer_conn = None
                        raise
        finally:
            if self.on_transaction is not None:
                self.on_transaction(time.perf_counter() - start)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        start = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                yield conn
        finally:
            if self.on_transaction is not None:
                self.on_transaction(time.perf_counter() - start)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to become the only runner of ``name`` (a background job) among every process
        on this database: a PostgreSQL advisory lock, a process lock on SQLite. Yields
        whether we got it; never waits."""
        if self.is_sqlite or self.engine.dialect.name != "postgresql":
            lock = self._named.setdefault(name, threading.Lock())
            got = lock.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    lock.release()
            return
        key = _lock_key(name)
        with self.engine.connect() as conn:
            got = bool(
                conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def lock_in_transaction(self, conn: Connection, name: str) -> None:
        """Serialise transactions on ``name`` until ``conn``'s transaction ends: a PostgreSQL
        transaction-level advisory lock. SQLite needs none: its writes already run one at a
        time."""
        if self.engine.dialect.name == "postgresql":
            conn.execute(_XACT_LOCK, {"k": _lock_key(name)})

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def _writer(self) -> Connection:
        if self._writer_conn is None or self._writer_conn.closed:
            conn = self.engine.connect()
            conn.execution_options(tierflow_immediate=True)
            self._writer_conn = conn
        return self._writer_conn

    def dispose(self) -> None:
        if self._write_lock is not None:
            with self._write_lock:
                if self._writer_conn is not None:
                    self._writer_conn.close()
                    self._writer_conn = None
        self.engine.dispose()


_XACT_LOCK = sa.text("SELECT pg_advisory_xact_lock(:k)")


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _sqlite_pragmas(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("tierflow_immediate")
        driver_sql(conn, "BEGIN IMMEDIATE" if immediate else "BEGIN")
