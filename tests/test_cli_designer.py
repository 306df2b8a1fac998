"""`tierflow workflows diff`, `tierflow what-if` and `tierflow migrate` on a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.cli import main as cli
from tests.conftest import FakeClock
from tests.variants import (
    ADD_REVIEW,
    CANCEL_REVIEW,
    PLAN_GUARD,
    REVIEW_TRANSITIONS,
    SANTIAGO,
    edited,
    variant,
)
from workflow import Tierflow


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A database with one answered ticket received on Chile's holiday and version 1.1.0."""
    url = f"sqlite:///{tmp_path}/cli.db"
    clock = FakeClock(datetime(2026, 12, 8, 13, tzinfo=UTC))
    tf = Tierflow(url, clock=clock)
    tf.create_account(slug="acme", name="Acme")
    t = tf.create_ticket(
        account="acme", kind="technical", category="login_password", subject="x", channel="chat"
    )
    clock.set(datetime(2026, 12, 9, 15, tzinfo=UTC))
    tf.respond(account="acme", ticket_id=t.id, body="on it", role="l1_agent")
    tf.fire(account="acme", ticket_id=t.id, trigger="triage", role="l1_agent")
    clock.advance(minutes=1)
    tf.register(variant("1.1.0", ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW, PLAN_GUARD))
    tf.db.dispose()
    return url


def test_workflows_diff(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--database-url", db, "workflows", "diff", "--from", "1.0.0", "--to", "1.1.0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "+ state l2_review",
        "+ transition ask_review@l2_solving",
        "+ transition approve@l2_review",
        "+ transition cancel@l2_review",
        "~ guard plan_solution@l3_assessment data_one_of: "
        "{'args': {'field': 'approach', 'values': ['best', 'custom']}} -> "
        "{'args': {'field': 'approach', 'values': ['best']}}",
    ]
    argv = ["--database-url", db, "workflows", "diff", "--from", "1.0.0", "--to", "1.1.0", "--json"]
    assert cli(argv) == 0
    assert json.loads(capsys.readouterr().out)["states"]["added"][0]["key"] == "l2_review"


def test_what_if_from_a_file(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "santiago.yaml"
    candidate.write_text(edited("1.2.0", SANTIAGO), encoding="utf-8")
    window = ["--from", "2026-12-01T00:00:00+00:00", "--to", "2027-01-01T00:00:00+00:00"]
    argv = ["--database-url", db, "what-if", "--account", "acme", "--file", str(candidate)]
    assert cli([*argv, *window]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "tickets                      1                      1"
    assert out[3] == "first response met           0 / 1 (0.0 %)          1 / 1 (100.0 %)"
    assert out[7] == "median to first response     11.00 business h       3.00 business h"
    assert out[-1] == "events the candidate would have refused: 0"
    assert cli([*argv, *window, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["candidate"]["first_response"]["share_met"] == 1.0


def test_migrate_dry_run_then_apply(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--database-url", db, "migrate", "--account", "acme", "--from", "1.0.0"]
    argv += ["--to", "1.1.0", "--map", "l1_triage=l1_nowhere"]
    assert cli(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "ticket 1: l1_triage -> l1_nowhere: cannot move: the state map sends 'l1_triage' to "
        "'l1_nowhere', which version 1.1.0 does not have"
    )
    assert out[-1] == (
        "migrate support 1.0.0 -> 1.1.0: would move 0, 1 cannot move (dry run: --apply to move "
        "them)"
    )
    assert cli([*argv[:-2], "--apply"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ticket 1: l1_triage -> l1_triage (moved)",
        "migrate support 1.0.0 -> 1.1.0: moved 1, 0 cannot move",
    ]
    assert cli(["--database-url", db, "check"]) == 0


def test_unknown_version_is_one_line(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--database-url", db, "what-if", "--account", "acme", "--version", "7"]
    assert cli(argv) == 1
    assert capsys.readouterr().err == (
        "tierflow: --version: support has no version '7' (published: 1.1.0, 1.0.0)\n"
    )
