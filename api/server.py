"""`tierflow serve`: bootstrap (admin token, demo data), then uvicorn."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from types import FrameType

import uvicorn
from pydantic import ValidationError

from workflow import DefinitionError, Tierflow, schema
from workflow.db import Database

from . import webhooks_process
from .demo import load_demo
from .settings import Settings
from .tokens import TokenStore
from .wire import OneWriteProtocol


def serve(*, host: str, port: int, workers: int, demo: bool, database_url: str | None) -> int:
    if database_url:
        os.environ["TIERFLOW_DATABASE_URL"] = database_url
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "TIERFLOW_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"tierflow: {name}: {error['msg']}", file=sys.stderr)
        print("tierflow: not started: a setting is invalid", file=sys.stderr)
        return 1
    db = Database(settings.database_url)
    if schema.is_empty(db):  # first start: create the schema
        schema.upgrade(db)
    schema.require_current(db)  # an outdated one is migrated on purpose, not by serve
    try:  # the definitions folder is published here once, before any worker starts
        engine = Tierflow(db, definitions_dir=settings.definitions_dir, create_schema=False)
    except DefinitionError as exc:
        from .cli import compiler_lines

        print("\n".join(compiler_lines(exc.source, exc)), file=sys.stderr)
        print("tierflow: not started: a definition to publish at start is invalid", file=sys.stderr)
        return 1
    for warning in engine.start_warnings:
        print(f"tierflow: {warning}", file=sys.stderr)
    tokens = TokenStore(engine, settings.admin_token)
    admin = tokens.ensure_admin()
    if admin is not None:
        print("tierflow: created the platform admin token (shown once, only its hash is kept):")
        print(f"  {admin}")
    if demo:
        demo_tokens = load_demo(engine, tokens)
        if demo_tokens:
            print("tierflow: demo account 'demo' loaded; tokens (shown once):")
            for role, token in demo_tokens.items():
                print(f"  {role:<14} {token}")
        else:
            print("tierflow: demo account 'demo' already present")
    engine.db.dispose()
    dispatching = settings.webhooks_dispatch  # in a process of its own (api/webhooks_process.py)
    metrics_dir = None
    if (workers > 1 or dispatching) and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # every worker (and the dispatcher) writes its metrics here; /metrics sums them
        metrics_dir = tempfile.mkdtemp(prefix="tierflow-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    dispatcher = None
    if dispatching:
        dispatcher = webhooks_process.start(poll=settings.webhooks_poll_seconds)
    os.environ["TIERFLOW_WEBHOOKS_DISPATCH"] = "false"  # the workers leave it to that process
    print(
        f"tierflow: serving {settings.database_url} on http://{host}:{port} (docs: /docs)",
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler
    # it found: this one, so the cleanup below runs (the default handler would end the process
    # first, leaving the metrics directory behind)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_level="info",
            http=OneWriteProtocol,  # a response's head and body in one write (api/wire.py)
        )
    except _Terminated:
        pass  # a clean stop: exit status 0, as after Ctrl-C
    finally:
        if dispatcher is not None:
            webhooks_process.stop(dispatcher, timeout=settings.webhooks_timeout_seconds + 5)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


class _Terminated(Exception):
    """SIGTERM arrived (and uvicorn has already shut down gracefully)."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated
