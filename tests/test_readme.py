"""README's Python example runs, and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    expected = [
        m.group(1).strip()
        for line in code.splitlines()
        if line.lstrip().startswith("print(") and (m := re.search(r"#\s*(.*)$", line))
    ]
    lines = out.stdout.splitlines()
    assert len(lines) == len(expected) == 4
    for got, want in zip(lines, expected, strict=True):
        head = want.split("...")[0].split(" -- ")[0].strip()
        assert got.startswith(head), (got, want)
