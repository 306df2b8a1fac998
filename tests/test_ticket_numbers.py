"""Per-account numbers: the id routes, bodies and events show for a ticket - and for a user -
is its number within its account (1, 2, 3, ...), so nothing reveals another account's volume.
On SQLite and PostgreSQL (``db_url``); the migrations number existing tickets and users per
account in id order."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from api.tokens import TokenStore
from tests.api_client import Api
from tests.conftest import FakeClock
from workflow import Idempotency, InputError, NotFound, Tierflow, outbox, schema
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


# --- users ----------------------------------------------------------------------------------
USERS = [("acme", 1), ("globex", 1), ("globex", 2), ("acme", 2), ("initech", 1), ("acme", 3)]


def _people(tf: Tierflow) -> dict[tuple[str, int], int]:
    """Interleaved users (ids and numbers differ) and, per account, a ticket requested by its
    last user and assigned to its first."""
    got = {}
    for acct, n in USERS:
        user = tf.create_user(account=acct, name=f"{acct} user {n}", roles=["l1_agent"])
        got[(acct, n)] = user.id
    for acct in ("acme", "globex", "initech"):
        last = max(n for a, n in USERS if a == acct)
        t = tf.create_ticket(account=acct, subject="s", requester_id=last, **TICKET)
        tf.fire(account=acct, ticket_id=t.id, trigger="triage", role="l1_agent")
        tf.assign(account=acct, ticket_id=t.id, assignee_id=1, role="l1_agent")
    return got


def test_each_account_numbers_its_users_from_one(three: Tierflow) -> None:
    assert _people(three) == {k: k[1] for k in USERS}
    assert [u.id for u in three.users(account="acme")] == [1, 2, 3]
    assert three.get_user(account="globex", user_id=2).name == "globex user 2"
    with pytest.raises(NotFound):
        three.get_user(account="globex", user_id=3)  # acme's and only acme's
    t = three.get_ticket(account="acme", ticket_id=1)
    assert (t.requester_id, t.assignee_id) == (3, 1)
    assigned = three.events(account="acme", ticket_id=1)[-1]
    assert (assigned.kind, assigned.changes) == ("assigned", {"assignee_id": 1})
    assert [v.id for v in three.list_tickets(account="globex", assignee=1)[0]] == [1]
    with pytest.raises(InputError) as err:  # another account's user number 3: not globex's
        three.assign(account="globex", ticket_id=1, assignee_id=3, role="l1_agent")
    assert err.value.detail == "assignee_id: no user 3 in account 'globex'"
    assert three.check() == []


def test_api_user_ids_are_per_account(acme: Api, globex: Api) -> None:
    """A person's token, the tickets they request and the assignee are all per-account ids."""
    c = acme.client
    people = {}
    for api, name in ((acme, "Ana"), (globex, "Gus"), (globex, "Gia"), (acme, "Abe")):
        r = c.post(
            api.url("/users"),
            json={"name": name, "roles": ["customer", "l1_agent"]},
            headers=api.as_("supervisor"),
        )
        assert r.status_code == 201, r.text
        people[name] = r.json()["id"]
    # (each account's tokens fixture made one user per staff role first)
    listed = c.get(globex.url("/users"), headers=globex.as_("supervisor")).json()
    assert [u["id"] for u in listed] == list(range(1, len(listed) + 1))
    assert people["Gia"] == people["Gus"] + 1 and people["Abe"] == people["Ana"] + 1
    r = c.post(
        globex.url("/tokens"),
        json={"role": "customer", "name": "phone", "user_id": people["Gia"]},
        headers=globex.as_("supervisor"),
    )
    assert r.status_code == 201 and r.json()["user"]["id"] == people["Gia"]
    gia = {"Authorization": f"Bearer {r.json()['token']}"}
    t = c.post(globex.url("/tickets"), json={**TICKET, "subject": "mine"}, headers=gia).json()
    assert t["requester_id"] == people["Gia"]
    assert c.get(globex.url(f"/tickets/{t['id']}"), headers=gia).status_code == 200
    tokens = c.get(globex.url("/tokens"), headers=globex.as_("supervisor")).json()
    assert [tk["user"]["id"] for tk in tokens if tk["name"] == "phone"] == [people["Gia"]]
    r = c.put(
        globex.url(f"/tickets/{t['id']}/assignee"),
        json={"assignee_id": people["Gus"]},
        headers=globex.as_("supervisor"),
    )
    assert r.status_code == 200 and r.json()["assignee_id"] == people["Gus"]
    mine = c.get(globex.url(f"/tickets?assignee={people['Gus']}"), headers=gia).json()
    assert [x["id"] for x in mine["items"]] == [t["id"]]
    events = c.get(globex.url(f"/tickets/{t['id']}/events"), headers=globex.as_("supervisor"))
    assert events.json()[-1]["changes"] == {"assignee_id": people["Gus"]}


def test_migration_numbers_existing_users_in_id_order(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    for slug in ("acme", "globex", "initech"):
        tf.create_account(slug=slug, name=slug.title())
    _people(tf)
    tickets = [(t.account, t.id, t.requester_id, t.assignee_id) for t in _all(tf)]
    events = _assigned(tf.db)
    tf.db.dispose()
    db = Database(db_url)
    _downgrade(db, "0014")  # users as they were: tickets and events hold primary keys
    with db.engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT name, id FROM account_user")).all())
        stored = conn.execute(
            sa.text("SELECT requester_id, assignee_id FROM ticket ORDER BY id")
        ).all()
    assert [tuple(r) for r in stored] == [
        (keys["acme user 3"], keys["acme user 1"]),
        (keys["globex user 2"], keys["globex user 1"]),
        (keys["initech user 1"], keys["initech user 1"]),
    ]
    assert keys["globex user 2"] != 2  # (so the upgrade below has something to renumber)
    assert _assigned(db) == [keys["acme user 1"], keys["globex user 1"], keys["initech user 1"]]
    schema.upgrade(db)
    assert _assigned(db) == events == [1, 1, 1]
    db.dispose()
    tf = Tierflow(db_url, clock=clock)
    assert [(t.account, t.id, t.requester_id, t.assignee_id) for t in _all(tf)] == tickets
    assert tickets == [("acme", 1, 3, 1), ("globex", 1, 2, 1), ("initech", 1, 1, 1)]
    assert tf.create_user(account="globex", name="next", roles=["l1_agent"]).id == 3
    assert tf.check() == []
    tf.db.dispose()


def _all(tf: Tierflow) -> list[Any]:
    return [tf.get_ticket(account=a, ticket_id=1) for a in ("acme", "globex", "initech")]


def _assigned(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT changes FROM ticket_event WHERE kind = 'assigned' ORDER BY id")
        ).scalars()
        return [(json.loads(c) if isinstance(c, str) else c)["assignee_id"] for c in rows]


# --- tokens ---------------------------------------------------------------------------------
def test_api_token_ids_are_per_account(acme: Api, globex: Api) -> None:
    c = acme.client
    roles = len(acme.tokens) - 1  # (one token per role each, issued by the fixture; not admin)
    for api in (acme, globex):
        listed = c.get(api.url("/tokens"), headers=api.as_("supervisor")).json()
        assert [t["id"] for t in listed] == list(range(1, roles + 1))
    issued = {}
    for api in (globex, acme):
        r = c.post(
            api.url("/tokens"),
            json={"role": "integration", "name": f"widget of {api.account}"},
            headers=api.as_("supervisor"),
        )
        assert r.status_code == 201
        issued[api.account] = r.json()
    assert issued["acme"]["id"] == issued["globex"]["id"] == roles + 1
    widget = {"Authorization": f"Bearer {issued['globex']['token']}"}
    r = c.delete(globex.url(f"/tokens/{roles + 1}"), headers=globex.as_("supervisor"))
    assert r.status_code == 204
    assert c.get(globex.url("/queue"), headers=widget).status_code == 401
    acmes = {"Authorization": f"Bearer {issued['acme']['token']}"}
    assert c.get(acme.url("/queue"), headers=acmes).status_code == 200  # acme's number 8 lives
    r = c.delete(globex.url(f"/tokens/{roles + 2}"), headers=globex.as_("supervisor"))
    assert r.status_code == 404
    platform = [
        c.post("/v1/tokens", json={"role": "designer", "name": n}, headers=acme.as_("admin"))
        for n in ("Dora", "Dan")
    ]
    assert [p.json()["id"] for p in platform] == [1, 2]


def test_migration_numbers_existing_tokens_in_id_order(db_url: str, clock: FakeClock) -> None:
    tf = Tierflow(db_url, clock=clock)
    for slug in ("acme", "globex"):
        tf.create_account(slug=slug, name=slug.title())
    store = TokenStore(tf, None)
    issued = [
        store.issue(account=acct, role="integration", name=f"{acct} {i}")[0]
        for i, acct in enumerate(["acme", "globex", "globex", "acme", "globex"])
    ]
    assert issued == [1, 1, 2, 2, 3]
    assert store.issue_platform(role="designer", name="Dora")[0] == 1
    tf.db.dispose()
    _unnumbered_and_back(db_url, "0015", "api_token", _tokens)
    tf = Tierflow(db_url, clock=clock)
    store = TokenStore(tf, None)
    assert store.issue(account="globex", role="integration", name="next")[0] == 4
    assert store.issue_platform(role="designer", name="Dan")[0] == 2
    tf.db.dispose()


def _tokens(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT account_id, number, name FROM api_token ORDER BY id"))
        return [tuple(r) for r in rows]


WEBHOOKS_KEY = b"test-webhooks-key-0123456789abcdef"


def test_webhook_subscriptions_are_numbered_per_account_and_never_renumbered(
    tf: Tierflow,
) -> None:
    """A subscription's id (and so its deliveries' ``webhook-id``) is its number in the
    account; a deleted one's number is not given again."""
    from workflow.webhooks import Webhooks, webhook_id

    tf.create_account(slug="globex", name="Globex")
    hooks = Webhooks(tf, WEBHOOKS_KEY, allow_private=True)
    made = [
        (acct, hooks.create(account=acct, url="http://127.0.0.1:9/")[0].id)
        for acct in ["acme", "globex", "globex", "acme", "globex"]
    ]
    assert made == [("acme", 1), ("globex", 1), ("globex", 2), ("acme", 2), ("globex", 3)]
    assert [s.id for s in hooks.all(account="globex")] == [1, 2, 3]
    assert hooks.get(account="acme", subscription_id=2).account == "acme"
    with pytest.raises(NotFound, match="webhook 3 not found"):
        hooks.get(account="acme", subscription_id=3)
    hooks.delete(account="globex", subscription_id=3)
    assert hooks.create(account="globex", url="http://127.0.0.1:9/")[0].id == 4
    assert webhook_id(4, 17) == "msg_4_17"


def test_migration_numbers_existing_webhooks_in_id_order(db_url: str, clock: FakeClock) -> None:
    from workflow.webhooks import Webhooks

    tf = Tierflow(db_url, clock=clock)
    for slug in ("acme", "globex"):
        tf.create_account(slug=slug, name=slug.title())
    hooks = Webhooks(tf, WEBHOOKS_KEY, allow_private=True)
    for acct in ["globex", "acme", "globex", "globex"]:
        hooks.create(account=acct, url="http://127.0.0.1:9/", description=acct)
    assert [n for _, n, _ in _webhooks(tf.db)] == [1, 1, 2, 3]
    tf.db.dispose()
    _unnumbered_and_back(db_url, "0016", "webhook_subscription", _webhooks)
    tf = Tierflow(db_url, clock=clock)
    hooks = Webhooks(tf, WEBHOOKS_KEY, allow_private=True)
    assert hooks.create(account="globex", url="http://127.0.0.1:9/")[0].id == 4
    assert hooks.create(account="acme", url="http://127.0.0.1:9/")[0].id == 2
    tf.db.dispose()


def _webhooks(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        q = "SELECT account_id, number, description FROM webhook_subscription ORDER BY id"
        return [tuple(r) for r in conn.execute(sa.text(q))]


def _unnumbered_and_back(
    db_url: str, revision: str, table: str, rows: Callable[[Database], list[tuple[Any, ...]]]
) -> None:
    """Down to ``revision`` (``table`` without numbers) and up again: the same rows, numbered
    as they were (in id order per account)."""
    db = Database(db_url)
    before = rows(db)
    _downgrade(db, revision)
    with db.engine.connect() as conn:
        assert "number" not in {c["name"] for c in sa.inspect(conn).get_columns(table)}
    schema.upgrade(db)
    assert rows(db) == before
    db.dispose()
