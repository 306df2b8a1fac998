"""Every problem of a definition at once, each at its line and column in the submitted text:
schema, names, graph and duplicate keys together — from the engine, over HTTP (both backends)
and from ``tierflow validate`` as a compiler prints them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.cli import main as cli
from tests.api_client import Api
from workflow import DefinitionError, Tierflow, parse_text

TINY = """\
name: tiny
version: "1"
initial: new
roles: [agent, customer]
states:
  new: {group: intake}
  working: {group: level1, level: level1}
  resolved: {group: done}
  closed: {group: done, final: true}
channels: [chat]
complexity: [low]
urgency: [low]
priorities: [P1]
priority_matrix:
  low: {low: P1}
kinds:
  technical:
    categories:
      login: {level: level1}
transitions:
  - trigger: take
    source: new
    dest: working
    roles: [agent]
  - trigger: resolve
    source: working
    dest: resolved
    roles: [agent]
  - trigger: close
    source: resolved
    dest: closed
    roles: [customer]
"""

FIVE = """\
name: tiny
version: "1"
initial: new
roles: [agent, customer]
reopen_window_days: -1
states:
  new: {group: intake}
  working: {group: level1, level: level1}
  limbo: {group: waiting}
  resolved: {group: done}
  closed: {group: done, final: true}
  new: {group: level2}
channels: [chat]
complexity: [low]
urgency: [low]
priorities: [P1]
priority_matrix:
  low: {low: P1}
kinds:
  technical:
    categories:
      login: {level: level1}
transitions:
  - trigger: take
    source: new
    dest: working
    roles: [agent, janitor]
  - trigger: resolve
    source: working
    dest: resolved
    roles: [agent]
    guards:
      - name: is_vip
  - trigger: close
    source: [resolved, limbo]
    dest: closed
    roles: [customer]
"""
GUARDS = (
    "admin_class, category_beyond, category_level, channel_allowed, channel_moved_to, "
    "data_channel, data_one_of, data_positive, data_true, kind_is, note_given, "
    "playbook_exhausted, priority_known, within_reopen_window"
)
FIVE_ERRORS = [
    # a schema error (a value the schema refuses)
    (5, 21, "reopen_window_days", "Input should be greater than 0"),
    # a graph error, found although names are wrong elsewhere
    (9, 3, "states.limbo", "unreachable from the initial state 'new'"),
    # a duplicate key: the second `new:` is an error, not a replacement of the first
    (
        12,
        3,
        "states.new",
        "duplicate key 'new' (first at line 7); a key is written once per mapping",
    ),
    # name errors: a role and a guard no one defined
    (
        27,
        20,
        "transitions[0] (take).roles",
        "unknown role 'janitor' (known: admin, agent, customer)",
    ),
    (
        33,
        15,
        "transitions[1] (resolve).guards[0].name",
        f"unknown guard 'is_vip' (known: {GUARDS})",
    ),
]


def as_tuples(errors: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["line"], e["column"], e["path"], e["message"]) for e in errors]


def test_the_tiny_definition_is_valid() -> None:
    assert parse_text(TINY).name == "tiny"


def test_five_problems_five_errors_each_at_its_line() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_text(FIVE, source="five.yaml")
    got = [(p.line, p.column, p.path, p.message) for p in info.value.errors]
    assert got == FIVE_ERRORS
    assert info.value.detail.splitlines()[:2] == [
        "five.yaml is invalid (5 problem(s)):",
        "  - line 5, column 21: reopen_window_days: Input should be greater than 0",
    ]


def edit(old: str, new: str) -> str:
    assert TINY.count(old) == 1, old
    return TINY.replace(old, new)


LINES = [
    # (what, text, [(line, column, path, message start)])
    (
        "an unknown state as a destination: at the value; the graph checks go on without it",
        edit("    dest: resolved\n", "    dest: resolvd\n"),
        [
            (6, 3, "states.new", "no final state (closed) can be reached from it"),
            (7, 3, "states.working", "not final, but no transition leaves it"),
            (8, 3, "states.resolved", "unreachable from the initial state 'new'"),
            (9, 3, "states.closed", "unreachable from the initial state 'new'"),
            (
                17,
                3,
                "intake kind=technical channel=chat",
                "accepted by the create route, but no transition path from 'new' reaches a "
                "resolution (resolved) for categories login",
            ),
            (27, 11, "transitions[1] (resolve).dest", "unknown state 'resolvd' (known: closed, "),
        ],
    ),
    (
        "a missing required field: at the mapping that lacks it",
        edit("  working: {group: level1, level: level1}\n", "  working: {level: level1}\n"),
        [(7, 3, "states.working.group", "Field required")],
    ),
    (
        "a required value outside its fixed set: marked, and the names are still checked",
        edit(
            "  working: {group: level1, level: level1}\n",
            "  working: {group: levell, level: level1}\n",
        ).replace("    dest: working\n    roles: [agent]\n", "    dest: working\n    roles: [x]\n"),
        [
            (7, 20, "states.working.group", "Input should be 'intake', 'level1', 'level2'"),
            (24, 13, "transitions[0] (take).roles", "unknown role 'x' (known: admin, agent, "),
        ],
    ),
    (
        "an unknown key: at the key",
        edit("  resolved: {group: done}\n", "  resolved: {group: done, colour: red}\n"),
        [(8, 27, "states.resolved.colour", "Extra inputs are not permitted")],
    ),
    (
        "a state nothing leaves: at its key",
        edit("  - trigger: close\n    source: resolved\n", "  - trigger: close\n    source: new\n"),
        [
            (7, 3, "states.working", "no final state (closed) can be reached from it"),
            (8, 3, "states.resolved", "not final, but no transition leaves it"),
        ],
    ),
    (
        "a duplicated key inside a transition",
        edit("    dest: working\n", "    dest: working\n    dest: closed\n"),
        [(24, 5, "transitions[0].dest", "duplicate key 'dest' (first at line 23)")],
    ),
    (
        "a matrix row for an urgency that does not exist: at its key",
        edit("  low: {low: P1}\n", "  low: {low: P1}\n  high: {low: P1}\n"),
        [(16, 3, "priority_matrix", "unknown urgency 'high'")],
    ),
    (
        "text that is not YAML: where parsing failed",
        edit("roles: [agent, customer]\n", "roles: [agent, customer\n"),
        [(5, 7, "", "not valid YAML: ")],
    ),
]


@pytest.mark.parametrize(("what", "text", "expected"), LINES, ids=[w for w, _t, _e in LINES])
def test_each_problem_is_marked_where_a_person_looks(
    what: str, text: str, expected: list[tuple[int, int, str, str]]
) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_text(text)
    got = [(p.line, p.column, p.path, p.message) for p in info.value.errors]
    assert [g[:3] for g in got] == [e[:3] for e in expected], got
    for g, e in zip(got, expected, strict=True):
        assert g[3].startswith(e[3]), g[3]


def test_aliases_that_multiply_are_refused_before_they_grow() -> None:
    """A few lines of aliases of aliases expand to 10**9 nodes; the walk stops at MAX_NODES."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    with pytest.raises(DefinitionError) as info:
        parse_text("\n".join(lines))
    assert [(p.line, p.column, p.message) for p in info.value.errors] == [
        (1, 1, "too large: more than 100000 nodes (aliases counted each time) or nested too deeply")
    ]


def test_duplicate_keys_use_the_first_value() -> None:
    """The data and the marks agree: what is checked is the first of two keys."""
    text = edit("initial: new\n", "initial: new\ninitial: nowhere\n")
    with pytest.raises(DefinitionError) as info:
        parse_text(text)
    assert [p.path for p in info.value.errors] == ["initial"]
    assert info.value.errors[0].message.startswith("duplicate key 'initial'")


# --- over HTTP, on each backend ------------------------------------------------------------


@pytest.mark.parametrize("route", ["/v1/workflows/validate", "/v1/workflows/tiny/versions"])
def test_http_answers_the_five_errors_and_stores_nothing(
    acme: Api, engine: Tierflow, route: str
) -> None:
    r = acme.client.post(
        route, content=FIVE, headers={**acme.as_("admin"), "Content-Type": "application/yaml"}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["type"], body["title"]) == (
        "/problems/invalid-definition",
        "Invalid workflow definition",
    )
    assert as_tuples(body["errors"]) == FIVE_ERRORS
    assert [v.name for v in engine.published()] == ["support"]


# --- the command line ----------------------------------------------------------------------
def test_validate_prints_file_line_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    five = tmp_path / "five.yaml"
    five.write_text(FIVE)
    assert cli(["validate", str(five)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{five}:{line}:{column}: {path}: {message}" for line, column, path, message in FIVE_ERRORS
    ]


def test_workflows_validate_prints_file_line_column(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Tierflow(db_url).db.dispose()
    five = tmp_path / "five.yaml"
    five.write_text(FIVE)
    for command in ("validate", "publish"):
        assert cli(["--database-url", db_url, "workflows", command, str(five)]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"{five}:{line}:{column}: {path}: {message}"
            for line, column, path, message in FIVE_ERRORS
        ]
