"""schemathesis (all checks, every phase, the stateful one included) against a real
``tierflow serve`` on 127.0.0.1, on each backend: the OpenAPI document and the server agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live_server import ADMIN, live_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 25
"""Examples per operation and phase: enough to walk every operation, bounded for CI."""


def test_schemathesis_finds_nothing(db_url: str, tmp_path: Path) -> None:
    with live_server(db_url, tmp_path) as live:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        r = httpx.post(
            f"{live.base}/v1/accounts", json={"slug": "acme", "name": "Acme"}, headers=headers
        )
        assert r.status_code == 201, r.text
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(CONFIG),
                "run",
                f"{live.base}/openapi.json",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                "11",
                "--request-timeout",
                "20",
                "-H",
                f"Authorization: Bearer {ADMIN}",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )
        log = live.log_path.read_text(errors="replace")
        assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:] + log[-8_000:]


def test_live_server_refuses_oversized_headers(db_url: str, tmp_path: Path) -> None:
    with live_server(db_url, tmp_path) as live:
        r = httpx.get(f"{live.base}/healthz", headers={"X-Padding": "p" * (64 << 10)})
        assert r.status_code == 431
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"].endswith("the limit is 16384")
