"""Memory: the server's resident set before and after 100,000 fires over HTTP. It must stay
flat - one Machine per definition version, a light subject per call, nothing kept per ticket.

A ``tierflow serve`` (SQLite, 1 worker: the process itself serves) gets ``memory_tickets``
tickets over HTTP; a warm-up of fires, then the fires in equal chunks from the asyncio load
generator (exact counts), VmRSS read from /proc after each chunk.
"""

from __future__ import annotations

from typing import Any

from .api import load, read_states, setup_over_http, start_tierflow
from .common import Config, free_port, row, rss_kb, section


def run(cfg: Config) -> dict[str, Any]:
    url = f"sqlite:///{cfg.workdir}/memory.db"
    for f in cfg.workdir.glob("memory.db*"):
        f.unlink()
    with start_tierflow(cfg, url, 1, "memory", free_port()) as srv:
        started = rss_kb(srv.pid)
        tokens, ids = setup_over_http(srv.base, cfg.memory_tickets)
        after_setup = rss_kb(srv.pid)
        warm = max(300, min(5000, cfg.memory_fires // 10))

        def fire(n: int) -> dict[str, Any]:
            return load(
                cfg,
                srv.base,
                tokens,
                read_states(url, ids),
                seconds=3600,
                max_requests=n,
                kind="python",
            )

        errors = fire(warm)["errors"]
        before = rss_kb(srv.pid)
        series = [before]
        done = 0
        chunk = cfg.memory_fires // cfg.memory_samples
        for _ in range(cfg.memory_samples):
            got = fire(chunk)
            done += got["whole_requests"]
            errors += got["errors"]
            series.append(rss_kb(srv.pid))
        after = series[-1]
    growth_mb = (after - before) / 1024
    rows = [
        row("server RSS before (after warm-up)", before / 1024, "MiB"),
        row(
            f"server RSS after {done:,} fires",
            after / 1024,
            "MiB",
            note=f"{errors} errors",
        ),
        row(
            "RSS growth",
            growth_mb,
            "MiB",
            target="< 20 MB",
            met=growth_mb * 1.048576 < 20,
            note=f"{(after - before) * 1024 / max(done, 1):.1f} bytes per fire",
        ),
    ]
    notes = [
        f"`tierflow serve`, SQLite, 1 worker; {cfg.memory_tickets:,} tickets (set up over HTTP), "
        f"each cycling request_info ↔ customer_replied; {warm:,} warm-up fires, then "
        f"{done:,} fires in {cfg.memory_samples} chunks from `bench/loadgen.py` "
        f"({cfg.api_connections} connections).",
        "VmRSS (MiB): at start "
        f"{started / 1024:.1f}, after set-up {after_setup / 1024:.1f}, then per chunk "
        + " → ".join(f"{x / 1024:.1f}" for x in series)
        + ".",
    ]
    return section("Memory (server RSS)", rows, notes)
