"""PostgreSQL-only promises: the pool recovers when the server drops every connection (as a
restart does), and background jobs take an advisory lock across processes."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, FakeClock
from tests.scenarios import ACCOUNT, reach
from workflow import TicketView, Tierflow
from workflow.db import IDLE_PING, POOL_SIZE, Database
from workflow.prepared import driver_sql

pytestmark = pytest.mark.skipif(PG_URL is None, reason="TIERFLOW_TEST_POSTGRES_URL is unset")


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    return db_url


def _terminate_backends_named(url: str, application_name: str) -> int:
    """End the server processes of the connections this test opened (those carrying its unique
    ``application_name``) in the database the URL names; nobody else's."""
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": application_name},
            ).fetchall()
            conn.commit()
    finally:
        admin.dispose()
    return len(rows)


class IdleClock:
    """The monotonic clock the pool's idle ping reads; moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _named_tierflow(pg_url: str, clock: FakeClock) -> tuple[Tierflow, str, IdleClock]:
    """A Tierflow whose connections carry a unique ``application_name`` (so the test can end
    them, and only them) and whose pool's idle ping reads an :class:`IdleClock`."""
    name = f"tierflow-test-{uuid.uuid4().hex[:12]}"
    mine = sa.make_url(pg_url).update_query_dict({"application_name": name})
    db = Database(mine.render_as_string(hide_password=False))
    idle = IdleClock()
    assert db.idle_ping is not None
    db.idle_ping.clock = idle
    return Tierflow(db, clock=clock), name, idle


def _ask(tf: Tierflow, ticket_id: int) -> TicketView:
    return tf.fire(
        account=ACCOUNT,
        ticket_id=ticket_id,
        trigger="request_info",
        role="l1_agent",
        note="which browser?",
    )


def _served_again(tf: Tierflow, ticket_id: int) -> None:
    """The next unit of work commits, and the pool answers."""
    assert _ask(tf, ticket_id).state == "waiting_on_customer"
    assert tf.db.ping()
    tf.db.dispose()


def test_pool_recovers_when_connections_are_dropped(pg_url: str, clock: FakeClock) -> None:
    """The server drops every connection (as a restart does) and they sit idle past the
    ping's threshold: the next unit of work gets a fresh connection, transparently."""
    tf, name, idle = _named_tierflow(pg_url, clock)
    tf.create_account(slug=ACCOUNT, name="Acme")
    t = reach(tf, "l1_triage")
    assert sa.make_url(pg_url).database == sa.make_url(PG_URL or "").database
    assert _terminate_backends_named(pg_url, name) >= 1  # the pool's idle connections die
    idle.now += IDLE_PING + 0.5
    _served_again(tf, t.id)


def test_a_connection_used_within_the_idle_window_is_not_pinged(
    pg_url: str, clock: FakeClock
) -> None:
    """Under load a connection goes back to work without a ping (one round trip less per
    unit). Dropped within that window, it fails one unit; every connection idle since before
    that failure is then pinged, so the next unit is served by a fresh one."""
    tf, name, _idle = _named_tierflow(pg_url, clock)
    tf.create_account(slug=ACCOUNT, name="Acme")
    t = reach(tf, "l1_triage")
    with contextlib.ExitStack() as held:  # three connections in the pool, all to be dropped
        for _ in range(3):
            held.enter_context(tf.db.read()).exec_driver_sql("SELECT 1")
    assert _terminate_backends_named(pg_url, name) == 3
    with pytest.raises(sa.exc.DBAPIError) as lost:
        _ask(tf, t.id)
    assert lost.value.connection_invalidated
    _served_again(tf, t.id)


def test_background_jobs_hold_an_advisory_lock_across_engines(
    pg_url: str, clock: FakeClock
) -> None:
    a = Tierflow(pg_url, clock=clock)
    b = Tierflow(pg_url, clock=clock)
    with a.db.exclusive("tierflow:sla-scan") as mine:
        assert mine
        with b.db.exclusive("tierflow:sla-scan") as theirs:
            assert not theirs
        assert b.scan_sla() == 0
    with b.db.exclusive("tierflow:sla-scan") as now_mine:
        assert now_mine
    with a.db.engine.connect() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
        assert held.scalar_one() == 0
    a.db.dispose()
    b.db.dispose()


def test_opposite_moves_on_shared_count_rows_never_fail(pg_url: str, clock: FakeClock) -> None:
    """Tickets in one count shard moving in opposite directions at once (l1_triage <->
    waiting_on_customer) lock the same two state_count rows: in one order, never a deadlock."""
    import threading

    tf = Tierflow(pg_url, clock=clock)
    tf.create_account(slug=ACCOUNT, name="Acme")
    tickets = [reach(tf, "l1_triage").id for _ in range(41)]
    same_shard = [t for t in tickets if t % 8 == tickets[0] % 8]
    for tid in same_shard[1::2]:  # half start on the other side
        tf.fire(account=ACCOUNT, ticket_id=tid, trigger="request_info", role="l1_agent", note="x")
    errors: list[BaseException] = []

    def flip(tid: int) -> None:
        try:
            for _ in range(30):
                state = tf.get_ticket(account=ACCOUNT, ticket_id=tid).state
                if state == "l1_triage":
                    tf.fire(
                        account=ACCOUNT,
                        ticket_id=tid,
                        trigger="request_info",
                        role="l1_agent",
                        note="x",
                    )
                else:
                    tf.fire(
                        account=ACCOUNT, ticket_id=tid, trigger="customer_replied", role="customer"
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(t,)) for t in same_shard]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    assert tf.check() == []
    tf.db.dispose()


def _syncs(trace: str) -> int:
    """How many times the client waited for the server (libpq trace: Sync or simple Query)."""
    return sum(
        1
        for line in trace.splitlines()
        if "\tF\t" in line and ("\tSync" in line or "\tQuery" in line)
    )


def test_a_units_last_statements_and_its_commit_take_one_round_trip(
    pg_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    tf = Tierflow(pg_url, clock=clock)
    assert (tf.db.engine.pool.size(), tf.db.engine.pool._max_overflow) == (POOL_SIZE, 0)
    tf.create_account(slug=ACCOUNT, name="Acme")
    trace = tmp_path / "trace"
    with trace.open("w") as out, tf.db.write() as conn:
        driver_sql(conn, "SELECT 1")  # the transaction is open
        raw = conn.connection.dbapi_connection
        raw.pgconn.trace(out.fileno())
        with tf.db.closing(conn):
            driver_sql(conn, "UPDATE account SET name = 'Acme 2'")
            driver_sql(conn, "UPDATE account SET name = 'Acme 3'")
        raw.pgconn.untrace()
        assert raw.info.transaction_status == 0  # committed (libpq: idle)
    assert _syncs(trace.read_text()) == 1
    assert tf.account_settings(account=ACCOUNT).name == "Acme 3"
    tf.db.dispose()


def test_an_error_among_a_units_last_statements_rolls_it_back(
    pg_url: str, clock: FakeClock
) -> None:
    """The error is raised (as SQLAlchemy's, with the SQLSTATE a retry looks at) where the
    block ends, nothing of the unit is written, and the connection serves the next unit."""
    tf = Tierflow(pg_url, clock=clock)
    tf.create_account(slug=ACCOUNT, name="Acme")
    with pytest.raises(sa.exc.IntegrityError) as caught, tf.db.write() as conn:
        driver_sql(conn, "UPDATE account SET name = 'renamed'")
        with tf.db.closing(conn):
            driver_sql(
                conn,
                "INSERT INTO account (slug, name, created_at) "
                f"SELECT slug, name, created_at FROM account WHERE slug = '{ACCOUNT}'",
            )
            driver_sql(conn, "UPDATE account SET name = 'after the error'")
    assert getattr(caught.value.orig, "sqlstate", None) == "23505"
    assert tf.account_settings(account=ACCOUNT).name == "Acme"
    tf.create_account(slug="globex", name="Globex")  # the pool's connections are clean
    with tf.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM account")).scalar() == 2
    tf.db.dispose()


def test_a_read_keeps_the_connections_prepared_statements(
    pg_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    """A read ends with a COMMIT of a READ ONLY transaction: psycopg drops every statement it
    prepared on a connection after a ROLLBACK (and sends DEALLOCATE ALL), so each read made
    the next units of work on that pooled connection parse and plan their statements again.
    A read still cannot write."""
    tf = Tierflow(Database(pg_url, pool_size=1), clock=clock)  # one connection: the same
    tf.create_account(slug=ACCOUNT, name="Acme")
    rename = "UPDATE account SET name = %(name)s"
    for i in range(8):  # psycopg prepares a statement on its 5th run on a connection
        with tf.db.write() as conn:
            conn.connection.dbapi_connection.execute(rename, {"name": f"Acme {i}"})
    trace = tmp_path / "trace"
    with trace.open("w") as out:
        with tf.db.read() as conn:
            raw = conn.connection.dbapi_connection
            raw.pgconn.trace(out.fileno())
            assert conn.execute(sa.text("SELECT name FROM account")).scalar() == "Acme 7"
        with tf.db.write() as conn:
            conn.connection.dbapi_connection.execute(rename, {"name": "Acme 8"})
        raw.pgconn.untrace()
    # what the client sent: (message, its text), from lines "<when> F <length> <message> ..."
    sent = [
        (f[3], "\t".join(f[4:]))
        for f in (line.split("\t") for line in trace.read_text().splitlines())
        if f[1:2] == ["F"]
    ]
    assert ("Query", ' "BEGIN READ ONLY"') in sent
    assert not [m for m in sent if "ROLLBACK" in m[1] or "DEALLOCATE" in m[1]]
    assert not [m for m in sent if m[0] == "Parse" and "UPDATE account" in m[1]]  # prepared
    with pytest.raises(sa.exc.DBAPIError) as refused, tf.db.read() as conn:
        conn.execute(sa.text("UPDATE account SET name = 'from a read'"))
    assert getattr(refused.value.orig, "sqlstate", None) == "25006"  # read-only transaction
    assert tf.account_settings(account=ACCOUNT).name == "Acme 8"
    tf.db.dispose()
