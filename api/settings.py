"""Service settings, from the environment (``TIERFLOW_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflow.db import DEFAULT_URL, UNIT_THREADS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERFLOW_", extra="ignore")

    database_url: str = DEFAULT_URL
    """SQLAlchemy URL; default a SQLite file ``tierflow.db`` in the working directory."""
    unit_threads: int = Field(UNIT_THREADS, ge=1)
    """Threads per process that run the trigger route's units of work on PostgreSQL (each its
    own transaction); more pay off when the database's round trip is slower than loopback's."""
    definitions_dir: Path | None = None
    """A folder whose ``*.yaml`` / ``*.yml`` definitions are published at start (besides the
    shipped ones); a file that does not validate stops the start, naming its lines."""
    admin_token: str | None = None
    """The platform admin's bearer token. Unset: the first start creates one and prints it."""
    sla_scan_seconds: float = 60.0
    """How often ``serve`` records SLA breaches in the background (0 disables)."""
    access_log: bool = True
    """One JSON log line per request (``false``: only 5xx and slow requests are logged)."""
    max_received_age_days: float = 400.0
    """A ticket's ``received_at`` more than this many days ago is refused (422)."""
    max_body_bytes: int = 1 << 20
    """A request body larger than this is refused (413)."""
    max_header_bytes: int = 16 << 10
    """Request headers larger than this (names and values together) are refused (431)."""
    events_retention_days: float = 7.0
    """Outbox events older than this are behind the floor: a stream resuming before them must
    resync (the events stay, as history)."""
    stream_heartbeat_seconds: float = 15.0
    """An idle event stream sends a comment line this often (keeps proxies from closing it)."""
    stream_poll_seconds: float = 0.5
    """How often an event stream looks for new events in the outbox."""
    webhooks_key: str | None = None
    """The key webhook signing secrets are derived from (at least 32 characters; the same on
    every host). Unset: a key file beside the SQLite database, created on first start."""
    webhooks_key_file: str | None = None
    """Where the generated webhooks key is kept (default: ``<database>.webhooks-key`` for
    SQLite, ``.tierflow/webhooks-key`` otherwise)."""
    webhooks_allow_private: bool = False
    """Deliver to loopback / private / link-local addresses too (tests, closed networks)."""
    webhooks_dispatch: bool = True
    """``serve`` sends webhooks (false: run ``tierflow webhooks dispatch`` elsewhere)."""
    webhooks_timeout_seconds: float = 5.0
    """A delivery attempt without an answer after this long has failed."""
    webhooks_poll_seconds: float = 1.0
    """How often an idle dispatcher looks for new events and due retries."""
    webhooks_log_retention_days: float = 30.0
    """Delivered and dead-lettered deliveries older than this leave the delivery log."""
