"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from workflow import Tierflow, outbox, schema
from workflow import webhooks as webhooks_log
from workflow.db import Database
from workflow.queries import FILTERS, known_values
from workflow.webhooks import Webhooks, load_key
from workflow.webhooks_dispatch import Dispatcher

from . import observability, problems
from .edge import Edge
from .routes import (
    account_workflow,
    accounts,
    designer,
    diagrams,
    events,
    health,
    platform,
    tickets,
    webhooks,
    workflows,
)
from .settings import Settings
from .tokens import TokenStore
from .webhooks_http import HttpSender

log = logging.getLogger("tierflow")
UI = Path(__file__).parent / "ui"

DESCRIPTION = """
tierflow runs a tiered-support policy (Levels 1-3, administrative A/B) as a state machine.

* Authenticate with `Authorization: Bearer <token>` (every route except `/healthz`).
* Errors are `application/problem+json` (RFC 9457) with a stable `type`.
* Fire triggers with `If-Match` (optimistic concurrency) and `Idempotency-Key` (safe retries).
"""


def create_app(
    settings: Settings | None = None,
    *,
    engine: Tierflow | None = None,
    background: bool = True,
) -> FastAPI:
    settings = settings or Settings()
    if engine is None:
        db = Database(settings.database_url, unit_threads=settings.unit_threads)
        schema.require_current(db)  # migrations are run on purpose: `tierflow db upgrade`
        engine = Tierflow(
            db,
            definitions_dir=settings.definitions_dir,
            create_schema=False,
            max_received_age=timedelta(days=settings.max_received_age_days),
        )

    hooks = Webhooks(
        engine,
        load_key(engine.db.url, key=settings.webhooks_key, key_file=settings.webhooks_key_file),
        allow_private=settings.webhooks_allow_private,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dispatching = contextlib.ExitStack()
        if background and settings.webhooks_dispatch:
            dispatching.enter_context(_dispatching(hooks, settings))
        task = None
        if background and settings.sla_scan_seconds > 0:
            task = asyncio.create_task(_scan_forever(engine, settings.sla_scan_seconds))
        pruner = None
        if background:
            pruner = asyncio.create_task(_prune_forever(engine, settings))
        try:
            with dispatching:
                yield
        finally:
            if pruner is not None:
                pruner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pruner
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            observability.flush()  # the figures and lines of the last requests, before the exit

    # /docs and /redoc load Swagger UI and ReDoc from the installed fastapi-offline package
    # (under /static-offline-docs), never from a CDN: they work without internet
    app = FastAPIOffline(
        title="tierflow",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={s: {"description": d} for s, d in problems.ERROR_STATUSES.items()},
        telemetry=observability.fastapi_telemetry(),
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.tokens = TokenStore(engine, settings.admin_token)
    app.state.webhooks = hooks
    problems.install(app)
    problems.document(app, lambda: vocabulary(engine))
    app.add_middleware(
        Edge, max_body_bytes=settings.max_body_bytes, max_header_bytes=settings.max_header_bytes
    )
    # outside Edge: its answers carry X-Request-ID too
    observability.install(app, access_log=settings.access_log)
    observability.observe_engine(engine)
    # tickets first: routes are matched in order, and the trigger route is the busiest
    for module in (
        tickets,
        health,
        accounts,
        account_workflow,
        platform,
        workflows,
        diagrams,
        designer,
        events,
        webhooks,
    ):
        app.include_router(module.router)
    app.mount("/ui", StaticFiles(directory=UI, html=True), name="ui")
    return app


def vocabulary(engine: Tierflow) -> dict[str, list[str]]:
    """The values the server accepts for the open-ended names of its inputs, derived from the
    definitions loaded (so the OpenAPI document is as strict as the server)."""
    specs = [d.spec for d in engine.definitions()]

    def union(values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))

    filters = {f"?{name}": known_values(engine, name) for name in FILTERS}
    return {
        **filters,
        "TicketCreate.kind": union([k for s in specs for k in s.kinds]),
        "TicketCreate.category": known_values(engine, "category"),
        "TicketUpdate.category": known_values(engine, "category"),
        "TicketCreate.channel": union([c for s in specs for c in s.channels]),
        "TokenCreate.role": union([r for s in specs for r in s.roles]),
    }


def app_from_env() -> FastAPI:
    """Entry point for uvicorn workers (``--factory``): settings from the environment.

    A worker serves this one app for its whole life, so everything built so far (schemas,
    routes, machines, metadata) is moved out of the garbage collector's sight: a full
    collection no longer walks it (measured: 25 ms pauses every few thousand requests, which
    every request in flight waited for). Only here: an app built in-process by ``create_app``
    (tests, embedding) stays collectable."""
    observability.configure_logging()
    app = create_app()
    gc.collect()
    gc.freeze()
    return app


async def _scan_forever(engine: Tierflow, every: float) -> None:
    """Background jobs: record SLA breaches, close tickets past their auto-close delay.
    Several servers may run this at once: each job takes a database-wide lock first."""
    while True:
        await asyncio.sleep(every)
        try:
            breached = await asyncio.to_thread(engine.scan_sla)
            closed = await asyncio.to_thread(engine.close_expired)
            if breached or closed:
                log.info("background: breaches on %d ticket(s), %d auto-closed", breached, closed)
        except Exception:  # the jobs must outlive a database hiccup
            log.exception("background jobs failed; retrying in %.0f s", every)


async def _prune_forever(engine: Tierflow, settings: Settings) -> None:
    """Move each account's outbox floor past the events older than the retention (the events
    stay, as history; the stream resumes only above the floor), and drop old deliveries from
    the webhook log, hourly (and once at start)."""
    while True:
        try:
            now = engine.clock()
            before = now - timedelta(days=settings.events_retention_days)
            pruned = await asyncio.to_thread(outbox.prune, engine, before=before)
            if pruned:
                log.info("background: %d outbox event(s) passed the retention floor", pruned)
            before = now - timedelta(days=settings.webhooks_log_retention_days)
            pruned = await asyncio.to_thread(webhooks_log.prune, engine, before=before)
            if pruned:
                log.info("background: %d old webhook deliveries pruned", pruned)
        except Exception:
            log.exception("pruning the outbox failed; retrying in an hour")
        await asyncio.sleep(3600)


@contextlib.contextmanager
def _dispatching(hooks: Webhooks, settings: Settings) -> Iterator[Dispatcher]:
    """The webhook dispatcher in a thread of this process, woken by this process's commits
    (and every ``webhooks_poll_seconds`` for the others'). On SQLite the dispatchers of
    several workers take turns through a file lock; on PostgreSQL they share the work."""
    engine = hooks.tf
    sender = HttpSender(settings.webhooks_timeout_seconds)
    dispatcher = Dispatcher(hooks, send=sender, observer=observability.observe_webhook)
    stop, wake = threading.Event(), threading.Event()

    def on_commit(*_: object) -> None:
        wake.set()

    engine.observers.append(on_commit)
    thread = threading.Thread(
        target=dispatcher.run_forever,
        args=(stop,),
        kwargs={"poll": settings.webhooks_poll_seconds, "wake": wake},
        name="tierflow-webhooks",
        daemon=True,
    )
    thread.start()
    try:
        yield dispatcher
    finally:
        engine.observers.remove(on_commit)
        stop.set()
        wake.set()
        thread.join(timeout=settings.webhooks_timeout_seconds + 5)
        dispatcher.close()
        sender.close()
