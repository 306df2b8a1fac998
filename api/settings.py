"""Service settings, from the environment (``TIERFLOW_*``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from workflow.db import DEFAULT_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERFLOW_", extra="ignore")

    database_url: str = DEFAULT_URL
    """SQLAlchemy URL; default a SQLite file ``tierflow.db`` in the working directory."""
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
    """Outbox events older than this are pruned; a stream resuming before them must resync."""
    stream_heartbeat_seconds: float = 15.0
    """An idle event stream sends a comment line this often (keeps proxies from closing it)."""
    stream_poll_seconds: float = 0.5
    """How often an event stream looks for new events in the outbox."""
