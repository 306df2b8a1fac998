"""Per-account ticket numbers: the id routes, bodies and events show is the ticket's number
within its account (1, 2, 3, ...), so nothing reveals another account's volume. On SQLite and
PostgreSQL (``db_url``); the migration numbers existing tickets per account in id order."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from tests.api_client import Api
from tests.conftest import FakeClock
from workflow import Idempotency, NotFound, Tierflow, outbox, schema
from workflow.db import Database

TICKET = {"kind": "technical", "category": "login_password", "channel": "chat"}


def _create(tf: Tierflow, account: str, subject: str, **kw: Any) -> int:
    return tf.create_ticket(account=account, subject=subject, **TICKET, **kw).id


def _numbers(db: Database) -> list[tuple[int, int, int]]:
    """(account id, number, id) of every ticket, by id."""
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT account_id, number, id FROM ticket ORDER BY id"))
        return [tuple(r) for r in rows]


# Interleaved creates in three accounts: each counts on its own, from 1.
CREATES = [
    ("acme", 1),
    ("globex", 1),
    ("acme", 2),
    ("acme", 3),
    ("initech", 1),
    ("globex", 2),
    ("acme", 4),
    ("initech", 2),
]


@pytest.fixture
def three(db_url: str, clock: FakeClock) -> Iterator[Tierflow]:
    tf = Tierflow(db_url, clock=clock)
    for slug in ("acme", "globex", "initech"):
        tf.create_account(slug=slug, name=slug.title())
    yield tf
    tf.db.dispose()


def test_each_account_numbers_its_tickets_from_one(three: Tierflow) -> None:
    got = [(acct, _create(three, acct, f"{acct} #{n}")) for acct, n in CREATES]
    assert got == CREATES
    for acct, n in CREATES:  # each number is that account's ticket, in every account
        assert three.get_ticket(account=acct, ticket_id=n).subject == f"{acct} #{n}"
    # the internal ids are global; numbers per account follow them in order
    rows = _numbers(three.db)
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    assert [r[1] for r in rows] == [n for _acct, n in CREATES]
    with pytest.raises(NotFound) as err:
        three.get_ticket(account="globex", ticket_id=3)  # acme and only acme has a 3
    assert str(err.value) == "ticket 3 not found"


def test_units_of_work_and_reads_address_the_accounts_own_number(three: Tierflow) -> None:
    for acct, n in CREATES:
        _create(three, acct, f"{acct} #{n}")
    t = three.fire(account="globex", ticket_id=2, trigger="triage", role="l1_agent", note="n")
    assert (t.id, t.subject, t.state) == (2, "globex #2", "l1_triage")
    assert three.get_ticket(account="acme", ticket_id=2).state == "new"  # acme's 2 untouched
    events = three.events(account="globex", ticket_id=2)
    assert [e.kind for e in events] == ["created", "transition"]
    assert [e.kind for e in three.events(account="acme", ticket_id=2)] == ["created"]
    assert three.respond(account="acme", ticket_id=4, body="hi", role="l1_agent").id == 4
    assert [o.trigger for o in three.explain(account="initech", ticket_id=2, role="l1_agent")]
    page, cursor = three.list_tickets(account="acme", limit=2)
    assert [v.id for v in page] == [1, 2]
    assert cursor is not None and base64.urlsafe_b64decode(cursor + "==") == b"t:2"
    page, cursor = three.list_tickets(account="acme", limit=2, cursor=cursor)
    assert ([v.id for v in page], cursor) == ([3, 4], None)
    assert [v.id for v in three.queue(account="globex")] == [1, 2]


def test_outbox_events_carry_the_number(three: Tierflow) -> None:
    for acct, n in CREATES:
        _create(three, acct, f"{acct} #{n}")
    three.fire(account="initech", ticket_id=2, trigger="triage", role="l1_agent")
    events = outbox.read_after(three, "initech", 0)
    assert [(e.type, e.ticket_id, e.ticket["id"]) for e in events] == [
        ("ticket.created", 1, 1),
        ("ticket.created", 2, 2),
        ("ticket.transitioned", 2, 2),
    ]
    assert json.loads(events[-1].payload())["ticket"]["id"] == 2


def test_an_idempotent_replay_takes_no_number(three: Tierflow) -> None:
    key = Idempotency("k-1", "fingerprint")
    first = three.create_ticket(account="acme", subject="s", **TICKET, idempotency=key)
    again = three.create_ticket(account="acme", subject="s", **TICKET, idempotency=key)
    assert (first.id, again.id) == (1, 1)
    assert _create(three, "acme", "next") == 2


def test_concurrent_creates_get_distinct_consecutive_numbers(three: Tierflow) -> None:
    """Writers racing in one account (on PostgreSQL truly concurrent) never collide, never
    skip, and an account's numbers run in the order of the ids."""
    per_thread, threads = 10, 4
    got: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        try:
            start.wait(timeout=30)
            for j in range(per_thread):
                n = _create(three, "acme", f"w{i}-{j}")
                with lock:
                    got.append(n)
        except BaseException as exc:  # reported below, with the numbers
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    _create(three, "globex", "meanwhile, elsewhere")
    for w in workers:
        w.join(timeout=120)
    assert not failures, failures
    assert sorted(got) == list(range(1, per_thread * threads + 1))
    acme = [r for r in _numbers(three.db) if r[0] == three.account_id("acme")]
    assert [r[1] for r in acme] == list(range(1, per_thread * threads + 1))  # by id
    assert _create(three, "globex", "next") == 2


# --- over HTTP ----------------------------------------------------------------------------
@pytest.fixture
def globex(client: TestClient) -> Api:
    return Api(client, "globex")


def test_api_ids_are_per_account(acme: Api, globex: Api) -> None:
    """Both accounts start at 1; another account's number in your route is yours or a 404."""
    c = acme.client
    a1 = acme.create(subject="acme one")
    g1 = globex.create(subject="globex one")
    a2 = acme.create(subject="acme two")
    assert (a1["id"], g1["id"], a2["id"]) == (1, 1, 2)
    r = c.post(
        globex.url("/tickets"),
        json={**TICKET, "subject": "globex two"},
        headers=globex.as_("l1_agent"),
    )
    assert r.status_code == 201 and r.json()["id"] == 2
    assert r.headers["location"] == "/v1/accounts/globex/tickets/2"
    mine = c.get(globex.url("/tickets/1"), headers=globex.as_("customer")).json()
    assert (mine["id"], mine["subject"]) == (1, "globex one")
    acme.create(subject="acme three")
    r = c.get(globex.url("/tickets/3"), headers=globex.as_("supervisor"))
    assert r.status_code == 404 and "acme" not in r.text
    assert r.json()["detail"] == "ticket 3 not found"
    fired = globex.fire(2, "triage", "l1_agent")
    assert (fired["id"], fired["subject"]) == (2, "globex two")
    still = c.get(acme.url("/tickets/2"), headers=acme.as_("customer")).json()
    assert (still["subject"], still["state"]) == ("acme two", "new")
    listed = c.get(globex.url("/tickets"), headers=globex.as_("supervisor")).json()
    assert [t["id"] for t in listed["items"]] == [1, 2]
    queue = c.get(acme.url("/queue"), headers=acme.as_("supervisor")).json()
    assert sorted(t["id"] for t in queue) == [1, 2, 3]


def test_api_cursor_is_per_account(acme: Api, globex: Api) -> None:
    for i in range(3):
        globex.create(subject=f"g{i}")
        acme.create(subject=f"a{i}")
    c = acme.client
    seen: list[int] = []
    cursors: list[str] = []
    url = acme.url("/tickets?limit=1")
    while True:
        page = c.get(url, headers=acme.as_("supervisor")).json()
        seen += [t["id"] for t in page["items"]]
        if page["next_cursor"] is None:
            break
        cursors.append(page["next_cursor"])
        url = acme.url(f"/tickets?limit=1&cursor={page['next_cursor']}")
    assert seen == [1, 2, 3]
    assert [base64.urlsafe_b64decode(x + "==") for x in cursors] == [b"t:1", b"t:2"]


# --- the migration ------------------------------------------------------------------------
def _downgrade(db: Database, revision: str) -> None:
    cfg = schema._config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migration_numbers_existing_tickets_in_id_order(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    for slug in ("acme", "globex", "initech"):
        tf.create_account(slug=slug, name=slug.title())
    for acct, n in CREATES:
        _create(tf, acct, f"{acct} #{n}")
    before = _numbers(tf.db)
    tf.db.dispose()
    db = Database(db_url)
    _downgrade(db, "0013")  # tickets as they were: global ids, no numbers
    with db.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("ticket")}
    assert "number" not in columns
    schema.upgrade(db)
    assert _numbers(db) == before  # per account, 1, 2, 3 ... in id order
    db.dispose()
    tf = Tierflow(db_url, clock=clock)  # each account's counter goes on after its last
    assert [_create(tf, a, "new") for a in ("acme", "globex", "initech")] == [5, 3, 3]
    tf.db.dispose()
