"""`python -m bench --quick` runs end to end and writes every section - a smoke check of the
benchmarks, never of their timings (the figures are not asserted on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["## Engine", "## API", "## Scale", "## Memory", "## Diagrams", "## Webhooks"]


@pytest.mark.slow
def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    for heading in SECTIONS:
        assert heading in text, f"{heading!r} missing from {out}:\n{text[:2000]}"
    assert "| figure |" in text
    assert "crashed" not in text
