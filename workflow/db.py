"""The database seam: an engine for a URL, and read / write transactions.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout,
and writes are serialised: one process-wide lock, one writer connection kept open, and
``BEGIN IMMEDIATE``, so threads never fight over the file lock ("database is locked") and a
transaction never has to upgrade its lock half-way. Units of work that queue up behind that
lock are committed together (:meth:`Database.serialised`: group commit, a savepoint each);
:meth:`Database.submit` queues a unit without a waiting thread: the writer thread runs it
(on other backends, one of a few unit threads: :data:`UNIT_THREADS`); an event loop queues its
units with :meth:`Database.enqueue` and runs them itself, group by group, with
:meth:`Database.lead_queued` while the writer is free (no hand-off between threads).
Writers of one SQLite file in different processes (the API's group commits, the webhooks
dispatcher, a CLI command, a second worker) take turns (:class:`_Turns`): SQLite's own busy
handler retries after growing sleeps and seldom finds the lock free between two groups of a
busy writer thread. Other backends (PostgreSQL through ``postgresql+psycopg://``) use a pool
whose connections are pinged when handed out after an idle spell (:class:`_IdlePing`) and rely
on the compare-and-set on ``ticket.version`` for concurrency.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .prepared import driver_sql, translated

__all__ = ["DEFAULT_URL", "MAX_GROUP", "UNIT_THREADS", "Database", "database_url"]

log = logging.getLogger("tierflow")

DEFAULT_URL = "sqlite:///tierflow.db"
MAX_GROUP = 64
"""At most this many queued units of work share one SQLite transaction."""
TURN_WAIT = 10.0
"""Seconds a SQLite writer waits for its turn before it goes ahead to SQLite's busy handler
(whose own timeout, 30 s, then decides)."""
_POLL = 0.0002
"""Seconds between two looks at a lock file while waiting for a turn."""

POOL_SIZE = 20
"""Connections each process keeps to a server database (PostgreSQL), none beyond them by
default: overflow connections were opened and closed hundreds of times per 10 s under load."""

UNIT_THREADS = 4
"""Threads each process runs submitted units of work in on a server database (PostgreSQL), by
default (``Database(unit_threads=...)``; ``TIERFLOW_UNIT_THREADS`` for ``serve``):
few threads, each with its transaction's round trips, keep the interpreter's hand-offs and the
row-lock waits down - measured with 2 workers on 2 cores against a thread per request
(FastAPI's pool of 40): 4-23 % more triggers per second and a slowest request half as slow;
3 and 4 threads did best, 2, 6 and 8 less well."""

IDLE_PING = 1.0
"""Seconds a pooled server connection may have been idle and still be handed out without a
ping first (:class:`_IdlePing`)."""

R = TypeVar("R")


@dataclass(eq=False, slots=True)
class _Queued(Generic[R]):
    """A unit of work waiting for its group: what to run, then its outcome. A caller of
    ``serialised`` waits on ``wake``; a unit given to ``submit`` has a ``future`` instead."""

    fn: Callable[[], R]
    wake: threading.Event | None = None
    future: Future[R] | None = None
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Group:
    """The transaction a leader runs its group in (per thread: the leader's)."""

    conn: Connection
    after: list[Callable[[], None]] = field(default_factory=list)


def database_url(url: str | None = None) -> str:
    """``url``, else ``$TIERFLOW_DATABASE_URL``, else a SQLite file in the working directory."""
    return url or os.environ.get("TIERFLOW_DATABASE_URL") or DEFAULT_URL


class Database:
    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int = POOL_SIZE,
        max_overflow: int = 0,
        unit_threads: int = UNIT_THREADS,
    ) -> None:
        if unit_threads < 1:
            raise ValueError(f"unit_threads must be at least 1, not {unit_threads}")
        self.url = database_url(url)
        u = sa.engine.make_url(self.url)
        self.is_sqlite = u.get_backend_name() == "sqlite"
        # JSON columns (a ticket's SLA clocks, an event's data) through pydantic-core: the same
        # values back, ~3x faster each way than the json module (written without spaces)
        kwargs: dict[str, Any] = {
            "json_serializer": _json_text,
            "json_deserializer": pydantic_core.from_json,
        }
        if self.is_sqlite:
            if u.database and u.database != ":memory:":
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        self._psycopg = self.engine.dialect.driver == "psycopg"
        """psycopg 3: pipelined closing statements (:meth:`closing`), READ ONLY reads ended by
        a COMMIT (:meth:`read`)."""
        self.idle_ping: _IdlePing | None = None if self.is_sqlite else _IdlePing(self.engine)
        self._write_lock: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        self._named: dict[str, threading.Lock] = {}
        self._writer_conn: Connection | None = None
        self._local = threading.local()  # .group: the _Group this thread leads, if any
        self._queue: list[_Queued[Any]] = []
        self._queue_lock = threading.Lock()
        self._leading = False
        self._writer_thread: threading.Thread | None = None
        self._writer_wake = threading.Event()  # the writer thread is to lead, or to stop
        self._writer_leads = False  # the lead was given to the writer thread (under the lock)
        self._writer_stop = False
        self.unit_threads = unit_threads
        """Threads that run submitted units without group commit (:data:`UNIT_THREADS`)."""
        self._units: ThreadPoolExecutor | None = None  # submit, without group commit
        u_db = u.database or ""
        self.group_commit = self.is_sqlite and u_db not in ("", ":memory:")
        """Units of work queued behind the SQLite writer commit together (a file database:
        an in-memory one is a database per connection)."""
        self._turns = _Turns(u_db) if self.group_commit else None
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
            elif (group := getattr(self._local, "group", None)) is not None:
                # inside a group (see serialised): this unit is a savepoint of its transaction
                with _savepoint(group.conn):
                    yield group.conn
            else:  # SQLite: one writer connection, kept open, used under the lock
                with self._writer_taken():
                    conn = self._writer()
                    try:
                        with conn.begin():
                            yield conn
                    except BaseException as exc:
                        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                            self._writer_conn = None
                        else:
                            _end_open_transaction(conn)
                        raise
        finally:
            if self.on_transaction is not None:
                self.on_transaction(time.perf_counter() - start)

    @contextmanager
    def _writer_taken(self) -> Iterator[None]:
        """The writer connection's lock and the file's write turn, waited for - unless this
        thread holds them already (:meth:`lead_queued`, for the group it runs)."""
        if getattr(self._local, "holding", False):
            yield
            return
        assert self._write_lock is not None
        with self._write_lock:
            if self._turns is None:
                yield
            else:
                with self._turns.turn():
                    yield

    def _take_writer_now(self) -> bool:
        """Take the writer connection's lock and the file's write turn if both are free at
        once (this thread then holds them: :meth:`_give_writer_back`); never waits."""
        assert self._write_lock is not None
        if not self._write_lock.acquire(blocking=False):
            return False
        if self._turns is not None and not self._turns.take_now():
            self._write_lock.release()
            return False
        self._local.holding = True
        return True

    def _give_writer_back(self) -> None:
        assert self._write_lock is not None
        self._local.holding = False
        if self._turns is not None:
            self._turns.give_back()
        self._write_lock.release()

    def serialised(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` (a unit of work: its writes go through :meth:`write`) and return once
        what it wrote is committed.

        SQLite (a file): group commit. Callers queue; one of them, the leader, takes the
        writer and runs every queued unit (at most :data:`MAX_GROUP`) in one ``BEGIN
        IMMEDIATE`` transaction, each in a savepoint of its own, then commits once and hands
        every caller its own result or exception. A unit that fails rolls back to its
        savepoint only; if the commit itself fails, every unit of the group gets that error
        (nothing of it was written). Durability is that of a single transaction: a caller
        returns after the COMMIT, as before. Callbacks registered with :meth:`after_commit`
        run after that COMMIT. Elsewhere (PostgreSQL, in-memory SQLite, or already inside a
        queued unit) ``fn`` simply runs."""
        if not self.group_commit or self._inside():
            return fn()
        me: _Queued[R] = _Queued(fn, threading.Event())
        with self._queue_lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            assert me.wake is not None
            me.wake.wait()  # set when done, or when handed the lead
        if not me.done:
            self._lead(me)
        if me.error is not None:
            raise me.error
        result: R = me.result
        return result

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        """Queue ``fn`` (a unit of work, or a call that runs one) like :meth:`serialised`,
        without a thread waiting for it: the future completes with its result or exception
        after the COMMIT that holds its writes (the same durability). The units run in a
        writer thread of this database, which leads the groups while units are queued.
        Without :attr:`group_commit` (PostgreSQL, in-memory SQLite) each unit is its own
        transaction, run by one of :attr:`unit_threads` threads in the order submitted. A
        future cancelled before its unit started skips the unit."""
        if not self.group_commit:
            units = self._units  # made once: no lock per unit on the trigger's path
            if units is None:
                with self._queue_lock:
                    if self._units is None:
                        self._units = ThreadPoolExecutor(
                            self.unit_threads, thread_name_prefix="tierflow-unit"
                        )
                    units = self._units
            return units.submit(fn)
        future: Future[R] = Future()
        me: _Queued[R] = _Queued(fn, future=future)
        with self._queue_lock:
            self._queue.append(me)
            if not self._leading:
                self._leading = True
                self._writer_takes_lead()
        return future

    def enqueue(self, fn: Callable[[], R]) -> Future[R]:
        """Queue ``fn`` like :meth:`submit`, for the calling thread to run soon with
        :meth:`lead_queued` (an event loop: at the end of its current iteration, so that the
        units of every request it read in that iteration share one transaction). Nothing
        starts the unit before that call, or before another leader reaches it. Without
        :attr:`group_commit` this is :meth:`submit`."""
        if not self.group_commit:
            return self.submit(fn)
        future: Future[R] = Future()
        with self._queue_lock:
            self._queue.append(_Queued(fn, future=future))
        return future

    def lead_queued(self) -> None:
        """Run the queued units in this thread, group by group, as :meth:`submit`'s writer
        thread would - while nobody else leads, and as long as the writer connection and the
        file's write turn are free at once. This thread never waits for another writer: when
        one holds the file (another process, a thread of this one) the writer thread takes
        over the queue and waits in its place. Returns when the queue is empty or handed on
        (at once when another thread leads: that leader runs them)."""
        if not self.group_commit:
            return
        with self._queue_lock:
            if self._leading or not self._queue:
                return
            self._leading = True
        self._lead(None, now=True)

    def _writer_takes_lead(self) -> None:
        """(Under the queue lock, leading.) The writer thread leads from here on."""
        self._writer_leads = True
        self._writer_wake.set()
        if self._writer_thread is None:
            self._writer_stop = False
            self._writer_thread = threading.Thread(
                target=self._writer_loop, name="tierflow-writer", daemon=True
            )
            self._writer_thread.start()

    def _inside(self) -> bool:
        """Whether this thread is running a queued unit (its nested units simply run)."""
        return getattr(self._local, "group", None) is not None or getattr(
            self._local, "unit", False
        )

    def _writer_loop(self) -> None:
        while True:
            self._writer_wake.wait()
            with self._queue_lock:
                self._writer_wake.clear()
                leads, self._writer_leads = self._writer_leads, False
            if leads:
                self._lead(None)
            if self._writer_stop:
                return

    def _hand_lead(self, q: _Queued[Any]) -> None:
        """(Under the queue lock.) The lead goes to ``q``'s waiting caller, or to the writer
        thread for a submitted unit."""
        if q.wake is not None:
            q.wake.set()
        else:
            self._writer_takes_lead()

    def _lead(self, me: _Queued[Any] | None, *, now: bool = False) -> None:
        """Run groups of queued units, oldest first: until ``me`` is done (a caller of
        ``serialised``; then the lead goes to the oldest waiting unit), or, for the writer
        thread and :meth:`lead_queued` (``me`` None), until the queue is empty. ``now``: each
        group only if the writer is free at once, else the writer thread leads on."""
        idle = False
        while not idle and (me is None or not me.done):
            if now and not self._take_writer_now():
                with self._queue_lock:
                    self._writer_takes_lead()
                return
            with self._queue_lock:
                batch, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            batch = [q for q in batch if q.future is None or _start(q.future)]
            try:
                self._run_group(batch)
            finally:
                if now:
                    self._give_writer_back()
                for q in batch:
                    if q is not me:
                        _finish(q)
                with self._queue_lock:
                    if not self._queue:
                        self._leading, idle = False, True
                    elif me is not None and me.done:  # hand the lead to the oldest waiting unit
                        self._hand_lead(self._queue[0])

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the current unit of work is committed: after its group's COMMIT
        inside :meth:`serialised` (in the leader's thread, an exception logged), else now."""
        group = getattr(self._local, "group", None)
        if group is None:
            fn()
        else:
            group.after.append(fn)

    def _run_group(self, batch: list[_Queued[Any]]) -> None:
        if not batch:
            return
        if len(batch) == 1:  # alone: its own transaction, no savepoint
            one = batch[0]
            self._local.unit = True
            try:
                one.result = one.fn()
            except BaseException as exc:
                one.error = exc
            finally:
                self._local.unit = False
            one.done = True
            return
        after: list[Callable[[], None]] = []
        try:
            with self.write() as conn:
                self._local.group = group = _Group(conn)
                try:
                    for q in batch:
                        try:
                            q.result = q.fn()
                        except BaseException as exc:  # rolled back to its savepoint
                            q.error = exc
                finally:
                    self._local.group = None
            after = group.after
        except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the group was written
            for q in batch:
                if q.error is None:
                    q.result, q.error = None, exc
        finally:
            for q in batch:
                q.done = True
        for fn in after:
            try:
                fn()
            except Exception:
                log.exception("a callback after commit failed")

    @contextmanager
    def closing(self, conn: Connection) -> Iterator[None]:
        """The last statements of ``conn``'s unit of work, then its COMMIT. PostgreSQL: the
        statements run in psycopg's pipeline mode with the COMMIT queued behind them, so they
        cost one round trip together (their results are not waited for: run none whose
        answer the unit reads); the unit is committed when the block ends, and an error of
        any of them (a deadlock, a constraint, the COMMIT's own) is raised there, as
        SQLAlchemy's, with the transaction rolled back. Elsewhere the block simply runs and
        :meth:`write` commits."""
        if not self._psycopg:
            yield
            return
        raw: Any = conn.connection.dbapi_connection
        try:
            try:
                with raw.pipeline():
                    yield
                    with raw.cursor() as cur:  # the pipeline's one Sync sends them all
                        cur.execute("COMMIT")
            except conn.dialect.loaded_dbapi.Error as exc:
                raise translated(conn, exc, "COMMIT", ()) from exc
        except BaseException:
            if not conn.invalidated and raw.info.transaction_status != _PG_IDLE:
                raw.rollback()  # an error in the pipeline leaves the transaction aborted
            raise
        conn.commit()  # (SQLAlchemy's side: the server has committed, the driver sends nothing)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read. PostgreSQL (psycopg): a READ ONLY transaction, ended by a COMMIT - a
        ROLLBACK makes psycopg drop every statement it prepared on the connection (and send
        DEALLOCATE ALL), so the pooled connection's next units of work would be parsed and
        planned afresh; committing a transaction that cannot write ends it the same way."""
        start = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                if not self._psycopg:
                    yield conn
                    return
                conn.execution_options(postgresql_readonly=True)
                yield conn
                if conn.in_transaction():
                    conn.commit()
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
        with self._queue_lock:  # units enqueued that nobody led: run here, before the end
            orphans = bool(self._queue) and not self._leading
            if orphans:
                self._leading = True
        if orphans:
            self._lead(None)
        with self._queue_lock:
            thread, self._writer_thread = self._writer_thread, None
            units, self._units = self._units, None
        if units is not None:  # its threads end once they have run every unit submitted
            units.shutdown()
        if thread is not None:  # it ends once it has answered every unit it was given
            self._writer_stop = True
            self._writer_wake.set()
            thread.join()
        if self._write_lock is not None:
            with self._write_lock:
                if self._writer_conn is not None:
                    self._writer_conn.close()
                    self._writer_conn = None
                if self._turns is not None:
                    self._turns.close()
        self.engine.dispose()


_XACT_LOCK = sa.text("SELECT pg_advisory_xact_lock(:k)")
_PG_IDLE = 0
"""libpq's PQTRANS_IDLE: no transaction open on the connection."""


_IDLE_SINCE = "tierflow_idle_since"


class _IdlePing:
    """Pessimistic disconnect handling that costs nothing under load (SQLAlchemy's documented
    custom ``checkout`` ping): a pooled connection idle for more than ``after`` seconds is
    pinged before it is handed out, and one that fails the ping makes the pool invalidate its
    connections and hand out a fresh one (``DisconnectionError``), as ``pool_pre_ping``
    would. ``pool_pre_ping`` cost every unit of work one round trip more; a connection in use
    within the last ``after`` seconds is handed out as it is. One killed within that window
    fails its next statement instead; from then on every connection idle since before that
    failure is pinged too (a server that dropped one has usually dropped them all), so one
    unit fails, not one per pooled connection. A restarted server is down for longer than
    the window."""

    def __init__(self, engine: Engine, after: float = IDLE_PING) -> None:
        self.after = after
        self.clock: Callable[[], float] = time.monotonic
        self._lost_at: float | None = None  # when a connection was last found dead
        self._dialect = engine.dialect
        sa.event.listen(engine, "checkin", self._checkin)
        sa.event.listen(engine, "checkout", self._checkout)
        sa.event.listen(engine, "invalidate", self._invalidated)

    def _checkin(self, dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:
            record.info[_IDLE_SINCE] = self.clock()

    def _invalidated(self, _dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        self._lost_at = self.clock()

    def _checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)  # None: a fresh connection, nothing to ask
        if since is None:
            return
        lost_at = self._lost_at
        if self.clock() - since <= self.after and (lost_at is None or since > lost_at):
            return
        try:
            self._dialect.do_ping(dbapi_conn)
        except self._dialect.loaded_dbapi.Error as exc:
            raise sa.exc.InvalidatePoolError(f"ping failed: {exc}") from exc


class _Turns:
    """Turns between the writers of one SQLite file, in whatever process: a write-intent
    turnstile of two ``flock`` files beside the database.

    A writer first takes ``<database>.write-intent`` (exclusive): it announces that it waits,
    and queues behind a writer that announced before it. Holding it, it takes
    ``<database>.write-turn`` (exclusive), which the writer in its transaction holds until its
    COMMIT or ROLLBACK, then lets the intent go and runs ``BEGIN IMMEDIATE`` - which finds
    SQLite's lock free. A writer that has just committed and wants the lock again (the API's
    writer thread, group after group) finds the intent taken by the one waiting, and waits for
    that one's turn to begin; so two busy writers alternate, transaction by transaction,
    instead of the one that just committed taking the lock again while SQLite's busy handler
    of the other sleeps. Uncontended, a turn costs four ``flock`` calls.

    A wait looks at the lock every :data:`_POLL` seconds (``flock`` cannot wait with a time
    limit); after :data:`TURN_WAIT` seconds the writer goes ahead without its turn (a writer
    that is not tierflow's, or a transaction that takes that long): SQLite's busy handler and
    its timeout decide then, as they did before. The lock files are opened per process (and
    per :class:`Database`), so ``flock`` tells apart every writer; a crashed process's locks
    are released by the kernel."""

    def __init__(self, database: str) -> None:
        self.paths = (Path(f"{database}.write-intent"), Path(f"{database}.write-turn"))
        self._files: tuple[int, int] | None = None
        self._pid = 0

    def _fds(self) -> tuple[int, int] | None:
        """The lock files, opened once per process (read-only is enough for ``flock``: a file
        another user created still serves); ``None`` if they cannot be opened (then writes
        go without turns, as before them)."""
        if self._files is None or self._pid != os.getpid():  # not inherited through fork
            fds: list[int] = []
            try:
                for p in self.paths:
                    fds.append(os.open(p, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
            except OSError as exc:
                for fd in fds:
                    os.close(fd)
                if not self._pid:
                    log.warning("SQLite writers take no turns: %s", exc)
                self._pid = os.getpid()
                return None
            self._files, self._pid = (fds[0], fds[1]), os.getpid()
        return self._files

    def take_now(self) -> bool:
        """Take the turn if it is free at once (nobody waits for it, nobody holds it); never
        waits. True: this process holds it until :meth:`give_back`."""
        fds = self._fds()
        if fds is None:
            return True
        intent, turn = fds
        if not _flock(intent, 0.0):  # a deadline already past: one try each
            return False
        try:
            return _flock(turn, 0.0)
        finally:
            fcntl.flock(intent, fcntl.LOCK_UN)

    def give_back(self) -> None:
        """End a turn taken by :meth:`take_now`."""
        if self._files is not None:
            fcntl.flock(self._files[1], fcntl.LOCK_UN)

    @contextmanager
    def turn(self) -> Iterator[None]:
        fds = self._fds()
        if fds is None:
            yield
            return
        intent, turn = fds
        deadline = time.monotonic() + TURN_WAIT
        announced = _flock(intent, deadline)
        try:
            mine = _flock(turn, deadline)
        finally:
            if announced:
                fcntl.flock(intent, fcntl.LOCK_UN)
        try:
            yield
        finally:
            if mine:
                fcntl.flock(turn, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._files is not None and self._pid == os.getpid():
            for fd in self._files:
                os.close(fd)
        self._files = None


def _flock(fd: int, deadline: float) -> bool:
    """Take ``fd``'s exclusive lock, waiting until ``deadline`` at most; whether we have it."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _start(future: Future[Any]) -> bool:
    """Whether a submitted unit is to run (False: its future was cancelled before it)."""
    return future.set_running_or_notify_cancel()


def _finish(q: _Queued[Any]) -> None:
    """Answer a queued unit once its group is over: its future, or its waiting caller."""
    if q.future is None:
        assert q.wake is not None
        q.wake.set()
    elif q.error is not None:
        q.future.set_exception(q.error)
    else:
        q.future.set_result(q.result)


def _end_open_transaction(conn: Connection) -> None:
    """After a failed COMMIT the SQLite connection may still be inside the transaction it
    could not commit: roll it back, so the next ``BEGIN IMMEDIATE`` starts clean."""
    raw = conn.connection.dbapi_connection if not conn.closed else None
    if raw is not None and getattr(raw, "in_transaction", False):
        raw.rollback()


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """One unit of a group: released on success, rolled back to on any exception."""
    driver_sql(conn, "SAVEPOINT unit")
    try:
        yield
    except BaseException:
        driver_sql(conn, "ROLLBACK TO unit")
        driver_sql(conn, "RELEASE unit")
        raise
    driver_sql(conn, "RELEASE unit")


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
