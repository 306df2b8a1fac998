"""The repository explains itself: nothing tracked points outside it, and every relative link of
README.md names a file in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("../shared", "/work/shared")


def tracked() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [p for p in out.split("\0") if p]


def test_no_tracked_file_points_at_the_shared_folder() -> None:
    offenders = []
    for rel in tracked():
        if rel.startswith(("tests/", ".ci/")) or not (ROOT / rel).is_file():
            continue
        text = (ROOT / rel).read_bytes().decode("utf-8", "replace")
        offenders += [f"{rel}: {needle}" for needle in OUTSIDE if needle in text]
    assert offenders == []


def relative_links(markdown: str) -> list[str]:
    """Targets of ``[text](target)`` and ``![alt](target)`` that are not URLs or anchors."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", markdown)
    return [
        unquote(t.split("#", 1)[0])
        for t in targets
        if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")
    ]


def test_relative_links_are_found() -> None:
    assert relative_links("[a](docs/A.md) ![b](x.svg) [c](https://e.org/y) [d](#top)") == [
        "docs/A.md",
        "x.svg",
    ]


def test_every_relative_link_of_the_readme_resolves_to_a_tracked_file() -> None:
    links = relative_links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/DESIGN.md" in links and "docs/POLICY.md" in links
    files = set(tracked())
    assert [link for link in links if link not in files] == []
