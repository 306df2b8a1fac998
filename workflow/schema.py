"""Schema versions: Alembic migrations own the schema (``workflow/migrations``).

``upgrade`` brings a database to the newest revision; ``status`` says where it is, and
``require_current`` refuses to run on an outdated schema, naming the command that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .db import Database
from .errors import TierflowError

__all__ = ["SchemaOutdated", "SchemaStatus", "is_empty", "require_current", "status", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutdated(TierflowError):
    pass


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    h = ScriptDirectory.from_config(_config()).get_current_head()
    assert h is not None
    return h


def status(db: Database) -> SchemaStatus:
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return SchemaStatus(current, head())


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def is_empty(db: Database) -> bool:
    """No tables at all: a brand-new database."""
    with db.engine.connect() as conn:
        return not sa.inspect(conn).get_table_names()


def require_current(db: Database) -> None:
    s = status(db)
    if not s.up_to_date:
        at = s.current or "no recorded revision"
        raise SchemaOutdated(
            f"database schema is at {at}, this tierflow needs {s.head}: "
            "run `tierflow db upgrade` (with the same TIERFLOW_DATABASE_URL) first"
        )
