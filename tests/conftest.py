"""Shared fixtures: an injected clock, real databases, a ready engine.

Every database test runs on a SQLite file in its tmp dir; when ``TIERFLOW_TEST_POSTGRES_URL``
is set (``.ci/run`` sets it) it runs on PostgreSQL too, each test in a schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from workflow import Tierflow

PG_URL = os.environ.get("TIERFLOW_TEST_POSTGRES_URL")
# Tuesday 2026-11-24 14:00 UTC = 10:00 in the policy's GMT-4: inside business hours.
T0 = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tierflow.db"
        return
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def tf(db_url: str, clock: FakeClock) -> Iterator[Tierflow]:
    engine = Tierflow(db_url, clock=clock)
    engine.create_account(slug="acme", name="Acme Scheduling")
    yield engine
    engine.db.dispose()


# --- the HTTP API in-process (tests that define fixtures of these names use their own) ---
@pytest.fixture
def engine(db_url: str, clock: FakeClock) -> Iterator[Tierflow]:
    tf = Tierflow(db_url, clock=clock)
    yield tf
    tf.db.dispose()


@pytest.fixture
def client(engine: Tierflow) -> Iterator[Any]:
    """A TestClient of the app on ``engine``, admin token ``tests.api_client.ADMIN_TOKEN``
    (imported here, not at the top: ``workflow`` tests must not load FastAPI)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from tests.api_client import ADMIN_TOKEN

    app = create_app(Settings(admin_token=ADMIN_TOKEN), engine=engine, background=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def acme(client: Any) -> Any:
    """The account ``acme`` with a token per role (``tests.api_client.Api``)."""
    from tests.api_client import Api

    return Api(client, "acme")


@pytest.fixture
def send() -> Iterator[Any]:
    """The webhook dispatcher's HTTP transport (``api.webhooks_http.HttpSender``), closed after."""
    from api.webhooks_http import HttpSender

    sender = HttpSender(timeout=2)
    yield sender
    sender.close()
