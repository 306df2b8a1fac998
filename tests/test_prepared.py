"""Prepared statements store exactly what SQLAlchemy would, and fail like SQLAlchemy does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from workflow import Tierflow
from workflow.models import UTCDateTime
from workflow.prepared import Prepared
from workflow.records import E, T

from .conftest import FakeClock

ROW = {
    "account_id": 0,  # set per test
    "seq": 0,
    "kind": "transition",
    "trigger": "request_info",
    "from_state": "l1_triage",
    "to_state": "waiting_on_customer",
    "actor": "ana",
    "role": "l1_agent",
    "note": "¿qué usuario usa? \u00e9\u4e2d",
    "data": {"nested": [1, 2.5, None, True], "text": "ok"},
    "changes": {},
    "response": True,
    "visibility": "public",
    "at": datetime(2026, 11, 24, 13, 5, 7, 123456, tzinfo=UTC),
}
KEYS = (*ROW, "ticket_id")


@pytest.fixture
def ticket(tf: Tierflow, clock: FakeClock) -> tuple[int, int]:
    account_id = tf.account_id("acme")
    t = tf.create_ticket(
        account="acme", kind="technical", category="login_password", subject="s", channel="chat"
    )
    return account_id, t.id


def raw_rows(tf: Tierflow, ticket_id: int, seqs: tuple[int, int]) -> list[tuple[object, ...]]:
    """The stored rows as the driver returns them, without any SQLAlchemy type processing."""
    cols = ", ".join(f'"{c}"' for c in ROW if c != "account_id")
    with tf.db.read() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                f"SELECT {cols} FROM ticket_event WHERE ticket_id = {int(ticket_id)} "
                f"AND seq IN ({seqs[0]}, {seqs[1]}) ORDER BY seq"
            )
        ]


def test_an_insert_stores_what_connection_execute_stores(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    account_id, ticket_id = ticket
    row = {**ROW, "account_id": account_id, "ticket_id": ticket_id}
    with tf.db.write() as conn:
        conn.execute(sa.insert(E), {**row, "seq": 100})
        Prepared(sa.insert(E), keys=KEYS).execute_many(conn, [{**row, "seq": 101}])
    via_sqlalchemy, via_prepared = raw_rows(tf, ticket_id, (100, 101))
    assert via_sqlalchemy[1:] == via_prepared[1:]
    assert (via_sqlalchemy[0], via_prepared[0]) == (100, 101)


def test_a_select_reads_what_connection_execute_reads(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    _account_id, ticket_id = ticket
    stmt = sa.select(T).where(T.c.id == sa.bindparam("b_id"))
    with tf.db.read() as conn:
        expected = dict(conn.execute(stmt, {"b_id": ticket_id}).mappings().one())
        got = Prepared(stmt).first(conn, {"b_id": ticket_id})
        missing = Prepared(stmt).first(conn, {"b_id": ticket_id + 1000})
    assert got == expected
    assert got["created_at"].tzinfo is UTC  # the UTCDateTime result processor ran
    assert missing is None


def test_an_update_reports_the_rows_it_matched(tf: Tierflow, ticket: tuple[int, int]) -> None:
    _account_id, ticket_id = ticket
    stmt = Prepared(
        sa.update(T)
        .where(T.c.id == sa.bindparam("b_id"), T.c.version == sa.bindparam("b_version"))
        .values(subject=sa.bindparam("subject"))
    )
    with tf.db.write() as conn:
        assert stmt.execute(conn, {"b_id": ticket_id, "b_version": 1, "subject": "new"}) == 1
        assert stmt.execute(conn, {"b_id": ticket_id, "b_version": 99, "subject": "x"}) == 0
    assert tf.get_ticket(account="acme", ticket_id=ticket_id).subject == "new"


def test_a_driver_error_is_sqlalchemys_error_and_rolls_back(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    account_id, ticket_id = ticket
    row = {**ROW, "account_id": account_id, "ticket_id": ticket_id, "seq": 1}  # seq 1 exists
    insert = Prepared(sa.insert(E), keys=KEYS)
    with pytest.raises(sa.exc.IntegrityError) as caught, tf.db.write() as conn:
        insert.execute_many(conn, [{**row, "seq": 50}])
        insert.execute_many(conn, [row])
    assert caught.value.orig is not None
    assert raw_rows(tf, ticket_id, (50, 50)) == []  # the whole transaction was rolled back


def test_a_statement_that_needs_defaults_is_refused_when_compiled(tf: Tierflow) -> None:
    partial = Prepared(sa.insert(E), keys=("ticket_id", "account_id", "seq", "kind", "at"))
    with tf.db.read() as conn, pytest.raises(ValueError) as caught:
        partial.compiled(conn.dialect)
    assert str(caught.value) == (
        "statement needs SQLAlchemy's execution context "
        "(defaults for ['data', 'changes', 'response', 'visibility'], literal or callable values)"
    )


def test_a_missing_value_is_a_key_error_before_anything_runs(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    stmt = Prepared(sa.select(T.c.id).where(T.c.id == sa.bindparam("b_id")))
    with tf.db.read() as conn, pytest.raises(KeyError, match="b_id"):
        stmt.first(conn, {})


def test_a_json_none_is_stored_as_connection_execute_stores_it(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    account_id, ticket_id = ticket
    row = {**ROW, "account_id": account_id, "ticket_id": ticket_id, "data": None}
    with tf.db.write() as conn:
        conn.execute(sa.insert(E), {**row, "seq": 100})
        Prepared(sa.insert(E), keys=KEYS).execute_many(conn, [{**row, "seq": 101}])
    via_sqlalchemy, via_prepared = raw_rows(tf, ticket_id, (100, 101))
    assert via_sqlalchemy[1:] == via_prepared[1:]


def test_a_read_begins_its_transaction_first_like_connection_execute(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    _account_id, ticket_id = ticket
    stmt = Prepared(sa.select(T.c.id).where(T.c.id == sa.bindparam("b_id")))
    statements: list[str] = []
    with tf.db.read() as conn:
        raw = conn.connection.dbapi_connection
        if tf.db.is_sqlite:  # every statement SQLite runs on this connection, in order
            raw.set_trace_callback(lambda sql: statements.append(sql.split()[0]))  # type: ignore[union-attr]
        assert not conn.in_transaction()
        assert stmt.first(conn, {"b_id": ticket_id}) == {"id": ticket_id}
        assert conn.in_transaction()
        if tf.db.is_sqlite:
            raw.set_trace_callback(None)  # type: ignore[union-attr]
            assert statements == ["BEGIN", "SELECT"]  # one snapshot for what follows


def test_a_lost_writer_connection_is_sqlalchemys_error_and_the_next_write_works(
    tf: Tierflow, ticket: tuple[int, int]
) -> None:
    if not tf.db.is_sqlite:
        pytest.skip("SQLite's single writer connection (PostgreSQL's pool: tests/test_pg.py)")
    _account_id, ticket_id = ticket
    with tf.db.write() as conn:
        raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.close()  # the writer's connection dies between two units of work
    with pytest.raises(sa.exc.DBAPIError) as caught:
        tf.fire(account="acme", ticket_id=ticket_id, trigger="triage", role="l1_agent")
    assert caught.value.connection_invalidated
    fired = tf.fire(account="acme", ticket_id=ticket_id, trigger="triage", role="l1_agent")
    assert (fired.state, fired.version) == ("l1_triage", 2)


def _composed(t: Any, dialect: sa.Dialect) -> tuple[Any, Any]:
    """SQLAlchemy's own composition: process_bind_param then the dialect's processor (and
    the reverse for results)."""
    impl = t.impl_instance
    bind, result = impl.bind_processor(dialect), impl.result_processor(dialect, None)
    return (
        lambda v: bind(t.process_bind_param(v, dialect)),
        lambda v: t.process_result_value(result(v), dialect),
    )


INSTANTS = [
    datetime(2026, 11, 24, 13, 5, 7, 123456, tzinfo=UTC),
    datetime(2026, 11, 24, 13, 5, 7, tzinfo=UTC),  # no microseconds: still written
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),  # year 1: zero-padded
    datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-4))),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Madrid")),
    datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Madrid")),
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(0))),  # UTC, not the UTC object
]


def test_sqlite_instants_are_bound_and_read_as_the_composed_processors_do() -> None:
    dialect = sqlite.dialect()
    t = UTCDateTime().dialect_impl(dialect)  # as SQLAlchemy uses it
    bind, result = t.bind_processor(dialect), t.result_processor(dialect, None)
    slow_bind, slow_result = _composed(t, dialect)
    assert bind(None) is None and result(None) is None
    for v in INSTANTS:
        stored = bind(v)
        assert stored == slow_bind(v) and isinstance(stored, str)
        assert result(stored) == slow_result(stored) == v.astimezone(UTC)
        assert result(stored).tzinfo is UTC
    for text in ["2026-11-24 13:05:07", "2026-11-24", "2026-11-24 13:05:07.5+02:00"]:
        assert result(text) == slow_result(text) and result(text).tzinfo is UTC
    with pytest.raises(ValueError, match="naive datetime"):
        bind(datetime(2026, 11, 24, 13, 5))
    with pytest.raises(ValueError, match="naive datetime"):
        slow_bind(datetime(2026, 11, 24, 13, 5))
    for bad in ["yesterday", 12]:
        with pytest.raises((ValueError, TypeError)) as fast_error:
            result(bad)
        with pytest.raises((ValueError, TypeError)) as slow_error:
            slow_result(bad)
        assert fast_error.type is slow_error.type
    pg = postgresql.dialect()  # elsewhere: SQLAlchemy's own composition
    pg_bind = UTCDateTime().dialect_impl(pg).bind_processor(pg)
    assert pg_bind is not None and pg_bind(INSTANTS[5]) == INSTANTS[5].astimezone(UTC)
