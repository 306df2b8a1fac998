"""The live event stream: ``GET /v1/accounts/{acct}/stream`` (server-sent events).

Each event's ``id:`` is its outbox sequence; a client reconnecting with ``Last-Event-ID: n``
gets n+1, n+2, ... from the outbox, with no gap and no duplicate (sequences are in commit
order per account, see ``workflow.outbox``). A resume point the retention has pruned gets one
``resync`` event, and the stream then continues from the oldest event kept. Idle streams get a
``: heartbeat`` comment. New events are found by polling the outbox (a primary-key range read)
in a worker thread, so the event loop never blocks.

Starlette's ``StreamingResponse`` carries it: the framing is three ``field: value`` lines, and
it needs no dependency beyond the one the API is built on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from workflow import InputError, outbox
from workflow.access import sees_event
from workflow.outbox import StoredEvent

from ..deps import Scope, ScopeDep
from ..observability import STREAM_CLIENTS, STREAM_EVENTS

router = APIRouter(prefix="/v1/accounts/{acct}", tags=["events"])


def visible(scope: Scope, event: StoredEvent) -> bool:
    """Whether the caller may see ``event`` (:mod:`workflow.access` decides): a customer gets
    only their own tickets' events, and never an internal comment or reply."""
    return sees_event(scope.viewer, event.kind, event.visibility, event.requester_id)


def frame(event: StoredEvent) -> str:
    return f"id: {event.sequence}\nevent: {event.type}\ndata: {event.payload()}\n\n"


def resync_frame(asked: int, oldest: int) -> str:
    data = json.dumps(
        {
            "last_event_id": asked,
            "oldest_available": oldest,
            "detail": "events after this id were pruned (retention): reload the tickets, "
            "then follow the stream from here",
        }
    )
    return f"event: resync\ndata: {data}\n\n"


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    scope: ScopeDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events of the account, from after ``Last-Event-ID`` (default: from now)."""
    settings = request.app.state.settings
    engine = scope.engine
    if last_event_id is not None and not last_event_id.strip().isdigit():
        raise InputError("Last-Event-ID", f"{last_event_id!r} is not an id this stream sent")
    low, high = await asyncio.to_thread(outbox.bounds, engine, scope.account)
    prelude = ""
    if last_event_id is None:
        after = high  # a new client: what happens from now on
    else:
        after = int(last_event_id)
        if after > high or (low and after < low - 1):  # pruned, or not this outbox's number
            prelude = resync_frame(after, low)
            after = max(low - 1, 0) if after < low else high

    async def events() -> AsyncIterator[str]:
        nonlocal after
        STREAM_CLIENTS.inc()
        try:
            yield prelude + "retry: 2000\n\n"
            quiet_since = time.monotonic()
            while not await request.is_disconnected():
                batch = await asyncio.to_thread(outbox.read_after, engine, scope.account, after)
                for e in batch:
                    after = e.sequence
                    if visible(scope, e):
                        STREAM_EVENTS.labels(e.type).inc()
                        yield frame(e)
                if batch:
                    quiet_since = time.monotonic()
                    continue
                if time.monotonic() - quiet_since >= settings.stream_heartbeat_seconds:
                    yield ": heartbeat\n\n"
                    quiet_since = time.monotonic()
                await asyncio.sleep(settings.stream_poll_seconds)
        finally:
            STREAM_CLIENTS.dec()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
