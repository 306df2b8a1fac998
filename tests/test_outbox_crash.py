"""``kill -9`` of a live server in the middle of a load: after the restart, every committed
change has exactly its outbox event (and no event exists without its change), the numbers run
1..N without a gap, and the stream replays them all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from workflow.records import E

from .live_server import (
    CRASH_AFTER,
    backend_params,
    crash_mid_load,
    database_for,
    live_server,
    seed,
)


@pytest.mark.parametrize("backend", backend_params())
def test_kill_9_leaves_no_committed_change_without_its_event(
    backend: tuple[str, int], tmp_path: Path
) -> None:
    name, workers = backend
    with (
        database_for(name, tmp_path) as db_url,
        live_server(db_url, tmp_path, workers=workers) as server,
    ):
        seeded = seed(server.base, tickets=3)
        crash_mid_load(server, seeded)

        engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            history = conn.execute(
                sa.select(E.c.ticket_id, E.c.seq, E.c.kind).order_by(E.c.ticket_id, E.c.seq)
            ).all()
            events = conn.execute(
                sa.text(
                    "SELECT sequence, ticket_id, unit_version AS version, kind FROM ticket_event"
                    " WHERE sequence IS NOT NULL"
                )
            ).all()
        engine.dispose()
        assert len(history) >= 3 * 2 + CRASH_AFTER
        # one event per history row, numbered 1..N without a gap
        assert sorted(e.sequence for e in events) == list(range(1, len(history) + 1))
        per_ticket: dict[int, list[int]] = {}
        for e in events:
            per_ticket.setdefault(e.ticket_id, []).append(e.version)
        assert {t: sorted(v) for t, v in per_ticket.items()} == {
            t: [h.seq for h in history if h.ticket_id == t] for t in per_ticket
        }
        assert set(per_ticket) == {h.ticket_id for h in history}

        # the restarted server streams them all, in order
        headers = {**seeded.as_("admin"), "Last-Event-ID": "0"}
        seen: list[int] = []
        with (
            httpx.Client(base_url=server.base, timeout=10) as c,
            c.stream("GET", "/v1/accounts/acme/stream", headers=headers) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("id: "):
                    seen.append(int(line[4:]))
                    if len(seen) == len(history):
                        break
        assert seen == list(range(1, len(history) + 1))
