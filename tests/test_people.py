"""People and tokens that die: users per account, tokens of a person or of an integration,
listing without secrets, revocation, expiry, and the history naming the person."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.tokens import TokenStore, digest
from tests.api_client import Api, auth
from tests.conftest import FakeClock
from workflow import AlreadyExists, Tierflow, people, schema
from workflow.db import Database
from workflow.models import AccountUser
from workflow.records import take_number


def _post(acme: Api, path: str, body: dict[str, Any], role: str = "supervisor") -> Any:
    return acme.client.post(acme.url(path), json=body, headers=acme.as_(role))


def test_users_and_their_tokens(acme: Api) -> None:
    r = _post(
        acme,
        "/users",
        {
            "name": "Camila Rojas",
            "email": "Camila@Example.com",
            "roles": ["l1_agent", "l2_specialist"],
        },
    )
    assert r.status_code == 201, r.text
    camila = r.json()
    assert (camila["name"], camila["email"], camila["roles"], camila["org_wide"]) == (
        "Camila Rojas",
        "camila@example.com",
        ["l1_agent", "l2_specialist"],
        False,
    )
    r = _post(
        acme, "/users", {"name": "Other", "email": "camila@example.com", "roles": ["customer"]}
    )
    assert r.status_code == 409 and "camila@example.com" in r.json()["detail"]
    r = _post(acme, "/users", {"name": "X", "roles": ["wizard"]})
    assert r.status_code == 422 and "unknown role 'wizard'" in r.json()["detail"]
    # a token for Camila as one of her roles; she does not hold l3_engineer
    r = _post(acme, "/tokens", {"role": "l2_specialist", "name": "laptop", "user_id": camila["id"]})
    assert r.status_code == 201, r.text
    assert r.json()["user"]["id"] == camila["id"] and r.json()["name"] == "laptop"
    camila_token = r.json()["token"]
    r = _post(acme, "/tokens", {"role": "l3_engineer", "name": "x", "user_id": camila["id"]})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        f"role: user {camila['id']} (Camila Rojas) does not hold role 'l3_engineer' "
        "(holds: l1_agent, l2_specialist)"
    )
    r = _post(acme, "/tokens", {"role": "l1_agent", "name": "x", "user_id": 999})
    assert r.status_code == 422 and r.json()["detail"] == "user_id: no user 999 in account 'acme'"
    # only managers see people
    assert acme.client.get(acme.url("/users"), headers=acme.as_("l1_agent")).status_code == 403
    names = [
        u["name"]
        for u in acme.client.get(acme.url("/users"), headers=acme.as_("supervisor")).json()
    ]
    assert "Camila Rojas" in names and "customer of acme" in names
    # the history names the person, not the token
    t = acme.create()
    r = acme.client.post(
        acme.url(f"/tickets/{t['id']}/triggers/triage"), json={}, headers=auth(camila_token)
    )
    assert r.status_code == 403  # the token acts as l2_specialist, not as l1_agent
    acme.fire(t["id"], "triage", "l1_agent")
    events = acme.client.get(acme.url(f"/tickets/{t['id']}/events"), headers=acme.as_("l1_agent"))
    assert [(e["actor"], e["role"]) for e in events.json()] == [
        ("customer of acme", "customer"),
        ("l1_agent of acme", "l1_agent"),
    ]


def test_compatible_token_creation_names_an_integration_or_creates_the_user(acme: Api) -> None:
    r = _post(acme, "/tokens", {"role": "integration", "name": "chat widget"})
    assert r.status_code == 201 and r.json()["user"] is None
    r = _post(acme, "/tokens", {"role": "customer", "name": "Bea", "email": "bea@example.com"})
    assert r.status_code == 201
    assert (r.json()["user"]["name"], r.json()["user"]["email"]) == ("Bea", "bea@example.com")


def test_list_and_revoke_tokens(acme: Api, clock: FakeClock) -> None:
    c = acme.client
    r = _post(acme, "/tokens", {"role": "integration", "name": "phone system"})
    phone = r.json()
    assert c.get(acme.url("/queue"), headers=auth(phone["token"])).status_code == 200
    listed = c.get(acme.url("/tokens"), headers=acme.as_("supervisor"))
    assert listed.status_code == 200
    rows = {t["id"]: t for t in listed.json()}
    assert len(rows) == 8
    row = rows[phone["id"]]
    assert row == {
        "id": phone["id"],
        "role": "integration",
        "name": "phone system",
        "user": None,
        "created_at": "2026-11-24T14:00:00Z",
        "last_used_at": "2026-11-24T14:00:00Z",
        "expires_at": None,
        "revoked_at": None,
    }
    assert not any(tok in listed.text for tok in [*acme.tokens.values(), phone["token"]])
    assert c.get(acme.url("/tokens"), headers=acme.as_("l1_agent")).status_code == 403
    assert c.get(acme.url("/tokens"), headers=acme.as_("customer")).status_code == 403
    clock.advance(minutes=5)
    r = c.delete(acme.url(f"/tokens/{phone['id']}"), headers=acme.as_("supervisor"))
    assert r.status_code == 204
    r = c.get(acme.url("/queue"), headers=auth(phone["token"]))
    assert r.status_code == 401 and r.json()["detail"] == "unknown, expired or revoked token"
    revoked = [
        t
        for t in c.get(acme.url("/tokens"), headers=acme.as_("supervisor")).json()
        if t["id"] == phone["id"]
    ]
    assert revoked[0]["revoked_at"] == "2026-11-24T14:05:00Z"
    assert (
        c.delete(acme.url(f"/tokens/{phone['id']}"), headers=acme.as_("supervisor")).status_code
        == 204
    )
    assert c.delete(acme.url("/tokens/99999"), headers=acme.as_("supervisor")).status_code == 404
    assert (
        c.delete(acme.url(f"/tokens/{phone['id']}"), headers=acme.as_("l1_agent")).status_code
        == 403
    )


def test_another_accounts_token_cannot_be_listed_or_revoked(client: TestClient) -> None:
    acme, globex = Api(client, "acme"), Api(client, "globex")
    r = client.get(globex.url("/tokens"), headers=acme.as_("supervisor"))
    assert r.status_code == 404
    theirs = _post(globex, "/tokens", {"role": "integration", "name": "theirs"}).json()
    r = client.delete(acme.url(f"/tokens/{theirs['id']}"), headers=acme.as_("supervisor"))
    assert r.status_code == 404
    assert client.get(globex.url("/queue"), headers=auth(theirs["token"])).status_code == 200


def test_a_token_with_an_expiry(acme: Api, clock: FakeClock) -> None:
    expires = clock.now + timedelta(days=1)
    r = _post(
        acme, "/tokens", {"role": "integration", "name": "temp", "expires_at": expires.isoformat()}
    )
    assert r.status_code == 201 and r.json()["expires_at"] == "2026-11-25T14:00:00Z"
    token = r.json()["token"]
    assert acme.client.get(acme.url("/queue"), headers=auth(token)).status_code == 200
    clock.set(expires)
    assert acme.client.get(acme.url("/queue"), headers=auth(token)).status_code == 401
    r = _post(
        acme,
        "/tokens",
        {"role": "integration", "name": "late", "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert r.status_code == 422 and r.json()["detail"].startswith(
        "expires_at: 2020-01-01T00:00:00+00:00 is not"
    )


def test_reset_admin_rotates(engine: Tierflow) -> None:
    tokens = TokenStore(engine, None)
    first = tokens.ensure_admin()
    assert first is not None and tokens.resolve(first) is not None
    second = tokens.reset_admin()
    assert tokens.resolve(first) is None  # at once: admin tokens are never cached
    found = tokens.resolve(second)
    assert found is not None and found.is_admin


def test_a_failed_admin_rotation_leaves_the_old_token_working(
    engine: Tierflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = TokenStore(engine, None)
    first = tokens.ensure_admin()
    assert first is not None

    def broken(token: str) -> str:
        raise OSError("disk gone")

    monkeypatch.setattr("api.tokens.digest", broken)  # the new row cannot be written
    with pytest.raises(OSError, match="disk gone"):
        tokens.reset_admin()
    monkeypatch.setattr("api.tokens.digest", digest)
    found = tokens.resolve(first)  # one transaction: the old token was not revoked either
    assert found is not None and found.is_admin


def test_platform_token_numbers_are_never_issued_twice(engine: Tierflow) -> None:
    tokens = TokenStore(engine, None)
    tokens.ensure_admin()  # 1
    first, _ = tokens.issue_platform(role="designer", name="Dee")  # 2
    tokens.reset_admin()  # 3 (1 kept, revoked)
    tokens.reset_admin()  # 4 (3 kept, revoked)
    second, _ = tokens.issue_platform(role="designer", name="Eve")
    assert (first, second) == (2, 5)
    TOK = sa.Table("api_token", sa.MetaData(), autoload_with=engine.db.engine)
    with engine.db.read() as conn:
        rows = conn.execute(
            sa.select(TOK.c.number, TOK.c.role, TOK.c.revoked_at.is_not(None))
            .where(TOK.c.account_id.is_(None))
            .order_by(TOK.c.number)
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, "admin", True),
        (2, "designer", False),
        (3, "admin", True),
        (4, "admin", False),
        (5, "designer", False),
    ]


def test_migration_0009_makes_existing_tokens_peoples(db_url: str) -> None:
    db = Database(db_url)
    schema.upgrade(db, "0008")
    at = datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO account (id, slug, name, created_at) VALUES (1, 'acme', 'Acme', :at)"
            ),
            {"at": at},
        )
        rows = [
            (1, None, "admin", "platform admin"),
            (2, 1, "l1_agent", "Ana"),
            (3, 1, "integration", "chat widget"),
            (4, 1, "customer", "Bea"),
        ]
        for tid, acct, role, name in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO api_token (id, account_id, role, name, token_hash, created_at) "
                    "VALUES (:id, :a, :r, :n, :h, :at)"
                ),
                {"id": tid, "a": acct, "r": role, "n": name, "h": digest(name), "at": at},
            )
    schema.upgrade(db)
    with db.engine.connect() as conn:
        users = conn.execute(
            sa.text("SELECT id, account_id, name, email, roles FROM account_user ORDER BY id")
        ).all()
        linked = dict(conn.execute(sa.text("SELECT id, user_id FROM api_token")).all())
    assert [(u.account_id, u.name, u.email) for u in users] == [(1, "Ana", None), (1, "Bea", None)]
    roles = [json.loads(u.roles) if isinstance(u.roles, str) else u.roles for u in users]
    assert roles == [["l1_agent"], ["customer"]]
    assert linked == {1: None, 2: users[0].id, 3: None, 4: users[1].id}
    db.dispose()


def test_concurrent_creates_of_one_email_give_a_clear_conflict(tf: Tierflow) -> None:
    """Two creates of the same e-mail at once: the second answers AlreadyExists (409 in the
    API), never a database error. Made deterministic on PostgreSQL: the first create holds its
    transaction open until the second is seen waiting for it."""
    if tf.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: the two creates cannot overlap")
    account_id = tf.account_id("acme")
    first = tf.db.engine.connect()
    first.begin()
    number = take_number(first, account_id, "last_user_number")
    first.execute(
        sa.insert(AccountUser.__table__),  # type: ignore[attr-defined]
        {
            "account_id": account_id,
            "number": number,
            "name": "Bea",
            "email": "bea@example.com",
            "roles": ["customer"],
            "org_wide": False,
            "created_at": tf.clock(),
        },
    )
    outcome: list[BaseException | people.User] = []

    def second() -> None:
        try:
            outcome.append(
                people.create_user(
                    tf, account="acme", name="Bea B", roles=["customer"], email="Bea@example.com"
                )
            )
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    with tf.db.engine.connect() as probe:
        for _ in range(2000):  # bounded: until the second create waits for the first
            waiting = probe.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            probe.rollback()
            if waiting:
                break
            thread.join(0.005)
        else:
            pytest.fail("the second create never waited for the first")
    first.commit()
    first.close()
    thread.join(10)
    assert not thread.is_alive()
    [result] = outcome
    assert isinstance(result, AlreadyExists)
    assert str(result) == "email: a user of 'acme' already has e-mail 'bea@example.com'"
    assert [u.name for u in people.users(tf, account="acme")] == ["Bea"]
