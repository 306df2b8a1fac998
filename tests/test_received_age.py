"""``received_at`` further back than a configurable limit (default 400 days) is refused: by the
engine with an error naming the field and the limit, writing nothing; by the API with a 422."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api_client import ADMIN_TOKEN, Api, auth
from tests.conftest import FakeClock
from tests.scenarios import ACCOUNT, TECH, new_ticket
from workflow import InputError, Tierflow
from workflow.records import E, T


def _rows(tf: Tierflow) -> tuple[int, int]:
    with tf.db.read() as conn:
        tickets = conn.execute(sa.select(sa.func.count()).select_from(T)).scalar_one()
        events = conn.execute(sa.select(sa.func.count()).select_from(E)).scalar_one()
    return tickets, events


@pytest.mark.parametrize(
    ("limit", "age", "message"),
    [
        (None, timedelta(days=401), "more than 400 days before now"),  # the default
        (timedelta(days=10), timedelta(days=10, microseconds=1), "more than 10 days before now"),
        (timedelta(days=1), timedelta(days=2), "more than 1 day before now"),
        (timedelta(hours=1), timedelta(hours=2), "more than 3600 seconds before now"),
    ],
)
def test_too_old_received_at_is_refused_and_writes_nothing(
    db_url: str, clock: FakeClock, limit: timedelta | None, age: timedelta, message: str
) -> None:
    kw = {} if limit is None else {"max_received_age": limit}
    tf = Tierflow(db_url, clock=clock, **kw)
    tf.create_account(slug=ACCOUNT, name="Acme")
    received = clock.now - age
    with pytest.raises(InputError) as info:
        new_ticket(tf, TECH, received_at=received)
    assert info.value.field == "received_at"
    assert str(info.value) == (
        f"received_at: {received.isoformat()} is {message} (the limit on received_at)"
    )
    assert _rows(tf) == (0, 0)
    # exactly at the limit is accepted
    t = new_ticket(tf, TECH, received_at=clock.now - (limit or timedelta(days=400)))
    assert t.received_at == clock.now - (limit or timedelta(days=400))
    tf.db.dispose()


def test_without_a_limit_1970_is_accepted(db_url: str, clock: FakeClock) -> None:
    from datetime import UTC, datetime

    tf = Tierflow(db_url, clock=clock, max_received_age=None)
    tf.create_account(slug=ACCOUNT, name="Acme")
    t = new_ticket(tf, TECH, received_at=datetime(1970, 1, 2, 12, tzinfo=UTC))
    assert t.sla["first_response"]["status"] == "breached"
    tf.db.dispose()


def test_the_api_answers_422_naming_the_limit_from_its_setting(
    tmp_path: object, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/age.db"
    Tierflow(url).db.dispose()  # the schema, as `tierflow db upgrade` would
    monkeypatch.setenv("TIERFLOW_MAX_RECEIVED_AGE_DAYS", "30")
    app = create_app(Settings(database_url=url, admin_token=ADMIN_TOKEN), background=False)
    with TestClient(app) as client:
        acme = Api(client, "acme")
        old = "2020-01-01T09:00:00-04:00"
        r = client.post(
            acme.url("/tickets"),
            json={
                "kind": "technical",
                "category": "login_password",
                "subject": "Cannot log in",
                "channel": "chat",
                "received_at": old,
            },
            headers=acme.as_("customer"),
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        detail = f"received_at: {old} is more than 30 days before now (the limit on received_at)"
        assert body["detail"] == detail
        assert body["errors"] == [{"loc": ["body", "received_at"], "msg": detail}]
        r = client.get(acme.url("/tickets"), headers=auth(acme.tokens["supervisor"]))
        assert r.json()["items"] == []
