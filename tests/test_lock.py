"""requirements.lock covers pyproject.toml: setup installs the lock and then the project without
re-resolving (``--no-deps``), so a dependency added to pyproject.toml but not locked would be
missing. Refresh with ``scripts/lock.sh``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_every_dependency_is_locked_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins = locked()
    problems = []
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        if name not in pins:
            problems.append(f"{spec.name}: not in requirements.lock (run scripts/lock.sh)")
        elif not spec.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{spec.name}: locked {pins[name]} is outside {spec.specifier}")
    assert problems == []
