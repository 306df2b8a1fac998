"""The ``tierflow`` command line as a newcomer meets it: help on every option, formats that
follow the file name, a check that never invents a database, tokens from the command line, and
file-writing commands that answer ``--help`` without writing."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main as cli
from api.cli import parser
from api.tokens import TokenStore
from diagrams.cli import output_format
from workflow import Tierflow

ROOT = Path(__file__).resolve().parent.parent


def walk(p: argparse.ArgumentParser, path: str = "tierflow") -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                found.append(
                    (f"{path} {name}", argparse.Action([name], name, help=helped.get(name)))
                )
                found += walk(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_every_command_option_and_argument_has_one_line_of_help() -> None:
    actions = walk(parser())
    assert len(actions) > 20
    missing = [f"{where}: {a.option_strings or a.dest}" for where, a in actions if not a.help]
    multi = [f"{where}: {a.dest}" for where, a in actions if a.help and "\n" in a.help]
    assert (missing, multi) == ([], [])
    names = {(w, a.dest) for w, a in actions}
    assert {("tierflow serve", "host"), ("tierflow render", "ticket")} <= names


@pytest.mark.parametrize(
    ("requested", "output", "expected"),
    [
        (None, "x.png", "png"),
        (None, "x.PNG", "png"),
        (None, "x.svg", "svg"),
        (None, "x.gv", "dot"),
        (None, "x.mmd", "mmd"),
        (None, None, "svg"),
        (None, "diagram", "svg"),
        ("svg", "x.png", "svg"),
    ],
)
def test_the_format_follows_the_extension_unless_given(
    requested: str | None, output: str | None, expected: str
) -> None:
    assert output_format(requested, output) == expected


def test_an_unknown_extension_without_format_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jpg"
    assert cli(["render", "-o", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"tierflow render: cannot tell the format from {str(out)!r}: give --format "
        "(svg, png, dot, mmd)\n"
    )
    assert not out.exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_render_to_a_png_file_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    assert cli(["render", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    forced = tmp_path / "y.png"
    assert cli(["render", "--format", "svg", "-o", str(forced)]) == 0
    assert forced.read_bytes().lstrip().startswith(b"<?xml")


def test_check_on_a_missing_database_fails_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "nothing.db"
    url = f"sqlite:///{db}"
    assert cli(["--database-url", url, "check"]) == 1
    assert capsys.readouterr().err == (
        f"tierflow check: no database at {db} ({url}): give --database-url or set "
        "TIERFLOW_DATABASE_URL\n"
    )
    assert not db.exists()


def test_check_names_the_database_and_counts_its_tickets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Tierflow(url).db.dispose()
    assert cli(["--database-url", url, "check"]) == 0
    assert capsys.readouterr().out == (
        f"check: {url}: 0 ticket(s); every history replays to its stored state\n"
    )


def test_tokens_create_prints_a_working_token_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    tf = Tierflow(url)
    tf.create_account(slug="demo", name="Demo")
    args = ["--database-url", url, "tokens", "create", "--account", "demo", "--role", "l1_agent"]
    assert cli([*args, "--name", "Ana"]) == 0
    head, token, end = capsys.readouterr().out.split("\n")
    assert (head, end) == ("token 1 for demo as l1_agent (Ana); shown once:", "")
    principal = TokenStore(tf, None).resolve(token)
    assert principal is not None
    assert (principal.account, principal.role, principal.name) == ("demo", "l1_agent", "Ana")
    assert cli([*args[:-1], "wizard"]) == 1
    assert "unknown role 'wizard'" in capsys.readouterr().err


def test_reset_admin_replaces_the_token_and_the_old_one_stops_working(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIERFLOW_ADMIN_TOKEN", raising=False)
    url = f"sqlite:///{tmp_path / 't.db'}"
    tf = Tierflow(url)
    store = TokenStore(tf, None)  # as a running server holds it
    old = store.ensure_admin()
    assert old is not None
    assert store.resolve(old) is not None
    assert cli(["--database-url", url, "tokens", "reset-admin"]) == 0
    head, new, _ = capsys.readouterr().out.split("\n")
    assert head == "admin token replaced; the previous one no longer works. Shown once:"
    assert store.resolve(old) is None
    resolved = store.resolve(new)
    assert resolved is not None and resolved.is_admin


def test_reset_admin_refuses_when_the_admin_token_is_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERFLOW_ADMIN_TOKEN", "configured")
    db = tmp_path / "t.db"
    assert cli(["--database-url", f"sqlite:///{db}", "tokens", "reset-admin"]) == 1
    assert capsys.readouterr().err == (
        "tierflow tokens: TIERFLOW_ADMIN_TOKEN is set: that is the admin token; "
        "change the variable instead\n"
    )
    assert not db.exists()


def test_readme_help_answers_and_leaves_the_readme_untouched() -> None:
    before = (ROOT / "README.md").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "diagrams.readme", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m diagrams.readme")
    assert "rewrote" not in done.stdout
    assert (ROOT / "README.md").read_bytes() == before


def test_tokens_list_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    tf = Tierflow(url)
    tf.create_account(slug="demo", name="Demo")
    store = TokenStore(tf, None)
    _, ana_token, ana = store.issue(account="demo", role="l1_agent", name="Ana")
    widget_id, _, _ = store.issue(account="demo", role="integration", name="widget")
    assert ana is not None
    assert cli(["--database-url", url, "tokens", "list", "--account", "demo"]) == 0
    assert capsys.readouterr().out == (
        f"1\tl1_agent\tuser {ana.id} Ana\tactive\n"
        f"{widget_id}\tintegration\tintegration widget\tactive\n"
    )
    args = ["--database-url", url, "tokens", "revoke", "--account", "demo", "--id", "1"]
    assert cli(args) == 0
    assert "revoked" in capsys.readouterr().out
    assert TokenStore(tf, None).resolve(ana_token) is None
    assert cli([*args[:-1], "99"]) == 1
    assert capsys.readouterr().err == "tierflow: token 99 not found\n"
