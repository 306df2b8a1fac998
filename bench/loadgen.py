"""A small asyncio HTTP/1.1 load generator, the fallback when ``wrk`` is not installed (and the
driver of the memory run, which needs an exact number of fires).

    python -m bench.loadgen CONFIG.json    # prints one line: BENCH {...json...}

Same load as ``bench/fire.lua``: ``connections`` keep-alive connections share a queue of
tickets whose last request was answered, so a ticket is never in flight twice. It stops after
``warmup`` + ``duration`` seconds or ``max_requests`` answers, whichever comes first. Only
answers after the warm-up count (requests per second, latency from writing a request to
reading its whole answer); statuses and errors count over the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections import deque
from typing import Any

ID = re.compile(rb'"id":\s*(\d+)')
STATE = re.compile(rb'"state":\s*"([A-Za-z0-9_]+)"')


class Load:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.ready: deque[tuple[int, str]] = deque((int(i), s) for i, s in cfg["tickets"])
        self.latencies: list[float] = []
        self.socket_errors = 0
        self.answered = 0
        self.statuses: dict[int, int] = {}
        self.max_requests = int(cfg.get("max_requests") or 0)
        self.deadline = 0.0
        self.start_at = 0.0
        self.last_at = 0.0
        self.whole = 0
        self.sent = 0
        host = f"{cfg['host']}:{cfg['port']}".encode()
        self._head = b"Host: " + host + b"\r\nContent-Type: application/json\r\n"

    def _request(self, ticket: int, state: str) -> bytes:
        cfg = self.cfg
        if state == "l1_triage":
            trigger, token, body = "request_info", cfg["agent"], cfg["note"].encode()
        else:
            trigger, token, body = "customer_replied", cfg["customer"], b"{}"
        return (
            f"POST {cfg['prefix']}{ticket}/triggers/{trigger} HTTP/1.1\r\n".encode()
            + self._head
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def _more(self) -> bool:
        if self.max_requests and self.sent >= self.max_requests:
            return False
        return time.perf_counter() < self.deadline

    async def connection(self) -> None:
        reader, writer = await asyncio.open_connection(self.cfg["host"], self.cfg["port"])
        try:
            while self._more():
                if not self.ready:
                    await asyncio.sleep(0.001)
                    continue
                ticket, state = self.ready.popleft()
                self.sent += 1
                t0 = time.perf_counter()
                writer.write(self._request(ticket, state))
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    if m is None:
                        raise ValueError("answer without Content-Length")
                    body = await reader.readexactly(int(m.group(1)))
                except (OSError, ValueError, asyncio.IncompleteReadError):
                    self.socket_errors += 1
                    return
                at = time.perf_counter()
                self.whole += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if t0 >= self.start_at:
                    self.answered += 1
                    self.last_at = at
                    if 200 <= status < 300:
                        self.latencies.append(at - t0)
                if 200 <= status < 300:
                    i, s = ID.search(body), STATE.search(body)
                    if i and s:
                        self.ready.append((int(i.group(1)), s.group(1).decode()))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.start_at = start + float(self.cfg.get("warmup") or 0)
        self.deadline = self.start_at + float(self.cfg.get("duration") or 3600)
        await asyncio.gather(*(self.connection() for _ in range(int(self.cfg["connections"]))))
        elapsed = max(self.last_at - self.start_at, 1e-9)
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            if not lat:
                return float("nan")
            return lat[min(len(lat) - 1, max(0, round(q / 100 * len(lat) + 0.5) - 1))] * 1e3

        return {
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "requests": self.answered,
            "duration_s": elapsed,
            "status_errors": sum(n for c, n in self.statuses.items() if not 200 <= c < 300),
            "socket_errors": self.socket_errors,
            "timeouts": 0,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "max_ms": lat[-1] * 1e3 if lat else float("nan"),
            "mean_ms": sum(lat) / len(lat) * 1e3 if lat else float("nan"),
            "whole_requests": self.whole,
        }


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        cfg = json.load(f)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        runner = asyncio.run
    result = runner(Load(cfg).run())
    print("BENCH " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
