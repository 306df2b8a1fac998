"""Alembic owns the schema: migrations build exactly the models; outdated schemas are refused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from api.cli import main as cli
from workflow import schema
from workflow.db import Database


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    db = Database(db_url)
    assert schema.is_empty(db)
    schema.upgrade(db)
    assert schema.status(db).up_to_date
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []
    schema.upgrade(db)  # idempotent
    db.dispose()


def test_db_commands(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    head = schema.head()
    assert cli(["--database-url", db_url, "db", "status"]) == 1
    assert capsys.readouterr().out.endswith(
        f"at empty, newest {head} (needs `tierflow db upgrade`)\n"
    )
    assert cli(["--database-url", db_url, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.endswith(f": empty -> {head}\n")
    assert cli(["--database-url", db_url, "db", "status"]) == 0
    assert capsys.readouterr().out.endswith(f"at {head}, newest {head} (up to date)\n")


def test_a_schema_without_migrations_is_refused(db_url: str) -> None:
    db = Database(db_url)
    SQLModel.metadata.create_all(db.engine)  # tables, but no recorded revision
    with pytest.raises(schema.SchemaOutdated) as info:
        schema.require_current(db)
    assert info.value.detail == (
        f"database schema is at no recorded revision, this tierflow needs {schema.head()}: "
        "run `tierflow db upgrade` (with the same TIERFLOW_DATABASE_URL) first"
    )
    db.dispose()


def test_an_older_revision_is_refused_until_upgraded(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(db_url)
    schema.upgrade(db, "0001")
    with pytest.raises(schema.SchemaOutdated) as info:
        schema.require_current(db)
    assert info.value.detail.startswith(
        f"database schema is at 0001, this tierflow needs "
        f"{schema.head()}: run `tierflow db upgrade`"
    )
    assert cli(["--database-url", db_url, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.endswith(f": 0001 -> {schema.head()}\n")
    schema.require_current(db)
    db.dispose()
