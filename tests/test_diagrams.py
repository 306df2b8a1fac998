"""Tests of diagrams/ (extract -> model -> DOT / Mermaid / SVG / PNG, the cache, the CLI) and of
workflow.stats. Tickets are real: a Tierflow on a SQLite file with an injected clock."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest

import diagrams
from api.cli import main as tierflow_main
from diagrams import output as output
from diagrams import theme
from diagrams.crossings import count_crossings, crossings_of_layout
from diagrams.dot import edge_id
from diagrams.extract import human_duration
from diagrams.model import START, Diagram
from diagrams.readme import README, readme_block, snippet
from workflow import Definition, NotFound, Tierflow, builtin_definitions
from workflow.stats import StateStat, state_stats

T0 = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # a Tuesday, 10:00 at the calendar's UTC-4
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")

GROUP_STATES = {
    "intake": ("Intake", {"new"}),
    "level1": ("Level 1", {"l1_triage", "l1_solving"}),
    "level2": ("Level 2", {"l2_solving"}),
    "level3": ("Level 3", {"l3_assessment", "l3_solution"}),
    "administrative": ("Administrative", {"admin_executive", "admin_supervisor"}),
    "waiting": ("Waiting", {"waiting_on_customer"}),
    "done": ("Done", {"resolved", "closed"}),
}


COVERS = {
    "any_intake_to_waiting": ("Intake … Waiting", None),
    "any_level1_to_administrative": ("Level 1 … Administrative", "any_intake_to_waiting"),
}
"""The clusters drawn around several groups: title, enclosing cluster."""
WORKING = ["l1_triage", "l1_solving", "l2_solving", "l3_assessment", "l3_solution"]
WORKING += ["admin_executive", "admin_supervisor"]
OPEN = ["new", *WORKING, "waiting_on_customer"]


@pytest.fixture(scope="module")
def support() -> Definition:
    return next(d for d in builtin_definitions() if d.name == "support")


def edge_keys(d: Definition) -> list[tuple[str, str, str]]:
    return [(t.trigger, t.source, dest) for t, dest in d.edges()]


# --- a small DOT reader, enough for what to_dot writes ----------------------------------------
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<arrow>->)|(?P<punct>[{}\[\]=;,])|(?P<html><)|'
    r"(?P<id>[A-Za-z0-9_.\-]+))",
    re.S,
)


def _tokens(src: str) -> Iterator[str]:
    """Bare ids, unquoted strings, ``HTML:``-prefixed HTML-like labels, ``->`` and punctuation."""
    i = 0
    while src[i:].strip():
        m = _TOKEN.match(src, i)
        assert m, f"cannot read DOT at {src[i : i + 40]!r}"
        if m.group("html"):
            j, depth = m.start("html"), 0
            while True:
                depth += {"<": 1, ">": -1}.get(src[j], 0)
                j += 1
                if depth == 0:
                    break
            yield "HTML:" + src[m.start("html") + 1 : j - 1]
            i = j
            continue
        tok = m.group(m.lastgroup or "")
        yield tok[1:-1].replace('\\"', '"') if m.lastgroup == "str" else tok
        i = m.end()


@dataclass
class Dot:
    graph: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    node_cluster: dict[str, str | None] = field(default_factory=dict)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(tail, head, attrs) in the drawn direction: ``dir=back`` already undone."""

    def edge(self, eid: str) -> tuple[str, str, dict[str, str]]:
        found = [e for e in self.edges if e[2].get("id") == eid]
        assert len(found) == 1, f"{eid}: {len(found)} edges"
        return found[0]


def read_dot(src: str) -> Dot:
    toks = list(_tokens(src))
    dot = Dot()
    assert toks[0] == "digraph"
    i = toks.index("{") + 1
    stack: list[str | None] = [None]

    def attrs(j: int) -> tuple[dict[str, str], int]:
        out: dict[str, str] = {}
        if j < len(toks) and toks[j] == "[":
            j += 1
            while toks[j] != "]":
                if toks[j] in (",", ";"):
                    j += 1
                    continue
                out[toks[j]] = toks[j + 2]
                j += 3
            j += 1
        return out, j

    while i < len(toks):
        tok = toks[i]
        if tok == "}":
            stack.pop()
            i += 1
        elif tok == "subgraph":
            name = toks[i + 1]
            dot.clusters[name] = {}
            stack.append(name)
            i += 3
        elif tok in ("graph", "node", "edge") and toks[i + 1] == "[":
            a, i = attrs(i + 1)
            if tok == "graph":
                (dot.clusters[stack[-1]] if stack[-1] else dot.graph).update(a)
        elif i + 1 < len(toks) and toks[i + 1] == "=":
            (dot.clusters[stack[-1]] if stack[-1] else dot.graph)[tok] = toks[i + 2]
            i += 3
        elif i + 1 < len(toks) and toks[i + 1] == "->":
            a, j = attrs(i + 3)
            tail, head = (toks[i + 2], tok) if a.get("dir") == "back" else (tok, toks[i + 2])
            dot.edges.append((tail, head, a))
            i = j
        elif tok == ";":
            i += 1
        else:
            a, i = attrs(i + 1)
            assert tok not in dot.nodes, f"node {tok} declared twice"
            dot.nodes[tok] = a
            dot.node_cluster[tok] = stack[-1]
    return dot


def text_of(html_label: str) -> list[str]:
    """An HTML-like label as its plain text lines."""
    assert html_label.startswith("HTML:"), html_label
    lines = re.split(r"<BR/>", html_label[5:])
    return [unescape(re.sub(r"<[^>]+>", "", line)) for line in lines]


# --- the whole workflow -------------------------------------------------------------------------
def test_dot_has_every_state_once_in_its_groups_cluster(support: Definition) -> None:
    dot = read_dot(diagrams.to_dot(diagrams.workflow_diagram(support)))
    states = {n: a for n, a in dot.nodes.items() if a.get("id", "").startswith("state.")}
    assert sorted(states) == sorted(support.spec.states)
    assert {a["id"] for a in states.values()} == {f"state.{s}" for s in support.spec.states}
    for group, (title, members) in GROUP_STATES.items():
        cluster = dot.clusters[f"cluster_{group}"]
        assert text_of(cluster["label"]) == [title]
        assert {n for n in states if dot.node_cluster[n] == f"cluster_{group}"} == members
    covers = {f"cluster_{c}" for c in COVERS}
    assert set(dot.clusters) == {f"cluster_{g}" for g in GROUP_STATES} | covers
    for cover, (title, _) in COVERS.items():
        assert text_of(dot.clusters[f"cluster_{cover}"]["label"]) == [title]
    assert dot.graph["rankdir"] == "LR"
    assert dot.graph["compound"] == "true"


def test_dot_has_every_transition_exactly_once_labelled_with_its_trigger(
    support: Definition,
) -> None:
    """Each (trigger, source, dest) is drawn by exactly one edge: its own, a bundle member, or
    the one edge of a cluster that stands for it (``covers``)."""
    model = diagrams.workflow_diagram(support)
    drawn: list[tuple[str, str, str]] = []
    for e in model.edges:
        if e.trigger is None:
            continue
        if e.tail_cluster:
            drawn += [(e.trigger, s, e.dest) for s in e.covers]
        elif e.head_cluster:
            drawn += [(e.trigger, e.source, d) for d in e.covers]
        else:
            drawn.append(e.key)  # type: ignore[arg-type]
    assert len(edge_keys(support)) == 46
    assert sorted(drawn) == sorted(edge_keys(support))
    dot = read_dot(diagrams.to_dot(model))
    for e in model.edges:
        if e.trigger is None:
            continue
        tail, head, a = dot.edge(edge_id(e))
        if e.tail_cluster or e.head_cluster or (tail, head) == (e.source, e.dest):
            assert text_of(a["label"]) == [e.trigger]
        else:  # drawn through a junction: the bundle's shared segment carries the trigger
            junction = head if tail == e.source else tail
            assert dot.nodes[junction]["class"] == "junction"
            shared = [
                x for x in dot.edges if x[2]["id"].startswith("bundle.") and junction in x[:2]
            ]
            assert len(shared) == 1
            assert text_of(shared[0][2]["label"]) == [e.trigger]


@pytest.mark.parametrize(
    ("edge", "ends", "compound", "covers"),
    [
        (
            "edge.cancel.group-any_intake_to_waiting.closed",
            ("l3_assessment", "closed"),
            {"ltail": "cluster_any_intake_to_waiting"},
            OPEN,
        ),
        (
            "edge.request_info.group-any_level1_to_administrative.waiting_on_customer",
            ("l3_assessment", "waiting_on_customer"),
            {"ltail": "cluster_any_level1_to_administrative"},
            WORKING,
        ),
        (
            "edge.customer_replied.waiting_on_customer.group-any_level1_to_administrative",
            ("waiting_on_customer", "l3_assessment"),
            {"lhead": "cluster_any_level1_to_administrative"},
            WORKING,
        ),
        (
            "edge.reopen.resolved.group-any_level1_to_administrative",
            ("resolved", "l3_assessment"),
            {"lhead": "cluster_any_level1_to_administrative"},
            ["l3_assessment", "l1_solving", "l2_solving", "l3_solution", *WORKING[-2:]],
        ),
        (
            "edge.return_to_l2.group-level3.l2_solving",
            ("l3_assessment", "l2_solving"),
            {"ltail": "cluster_level3"},
            ["l3_assessment", "l3_solution"],
        ),
    ],
)
def test_a_trigger_leaving_every_state_of_a_cluster_is_one_compound_edge(
    support: Definition,
    edge: str,
    ends: tuple[str, str],
    compound: dict[str, str],
    covers: list[str],
) -> None:
    model = diagrams.workflow_diagram(support)
    (e,) = [x for x in model.edges if edge_id(x) == edge]
    assert list(e.covers) == covers
    assert all(c in e.tooltip for c in covers)
    assert "group" in e.classes
    tail, head, a = read_dot(diagrams.to_dot(model)).edge(edge)
    assert (tail, head) == ends
    # ltail/lhead name the ends as written; an edge written reversed (dir=back) swaps them
    written = {k: a[k] for k in ("ltail", "lhead") if k in a}
    if a.get("dir") == "back":
        written = {{"ltail": "lhead", "lhead": "ltail"}[k]: v for k, v in written.items()}
    assert written == compound


def test_grouping_needs_the_same_guards_and_whole_groups(support: Definition) -> None:
    """escalate leaves both Level 1 states, but under different guards: two edges; resolve
    enters from five states that make no whole group: a junction bundle, not a cluster edge."""
    model = diagrams.workflow_diagram(support)
    escalate = [e.key for e in model.edges if e.trigger == "escalate"]
    assert sorted(escalate) == sorted(
        [
            ("escalate", "l1_triage", "l2_solving"),
            ("escalate", "l1_solving", "l2_solving"),
            ("escalate", "l2_solving", "l3_assessment"),
        ]
    )
    assert len([e for e in model.edges if e.trigger == "resolve"]) == 5
    dot = read_dot(diagrams.to_dot(model))
    shared = [(t, h) for t, h, a in dot.edges if a["id"].startswith("bundle.")]
    assert shared == [("junction.resolve.to.resolved", "resolved")]


def test_ungrouped_view_keeps_one_edge_per_transition(support: Definition) -> None:
    model = diagrams.workflow_diagram(support, grouped=False)
    keys = [e.key for e in model.edges if e.trigger is not None]
    assert sorted(keys) == sorted(edge_keys(support))
    assert {c.id for c in model.clusters} == set(GROUP_STATES)


@needs_dot
@pytest.mark.parametrize("show", ["", "guards,roles"])
def test_the_overview_has_at_most_12_crossing_pairs(support: Definition, show: str) -> None:
    """Counted on the layout Graphviz returns (``dot -Tjson``); the ungrouped drawing of the
    same definition has far more (the counter is not blind)."""
    grouped = count_crossings(diagrams.to_dot(diagrams.workflow_diagram(support, show)))
    assert grouped <= 12
    flat = diagrams.workflow_diagram(support, show, grouped=False)
    assert count_crossings(diagrams.to_dot(flat)) > 50


def test_crossing_counter_on_a_known_layout() -> None:
    """Two straight diagonals of a square cross once; two edges meeting at a node do not."""

    def line(*pts: tuple[float, float]) -> dict[str, Any]:
        p0, p1 = pts
        ctrl = [p0, p0, p1, p1]
        return {"_draw_": [{"op": "b", "points": [list(p) for p in ctrl]}]}

    x = {"edges": [line((0, 0), (100, 100)), line((0, 100), (100, 0))]}
    assert crossings_of_layout(x) == 1
    v = {"edges": [line((0, 0), (50, 50)), line((100, 0), (50, 50))]}
    assert crossings_of_layout(v) == 0
    apart = {"edges": [line((0, 0), (100, 0)), line((0, 10), (100, 10))]}
    assert crossings_of_layout(apart) == 0


def test_start_marker_and_final_states(support: Definition) -> None:
    dot = read_dot(diagrams.to_dot(diagrams.workflow_diagram(support)))
    assert dot.nodes[START]["shape"] == "point"
    assert dot.edge("edge.start")[:2] == (START, "new")
    finals = {n for n, a in dot.nodes.items() if a.get("peripheries") == "2"}
    assert finals == {"closed"}
    assert "final" in dot.nodes["closed"]["class"].split()


def test_back_edges_keep_the_reading_order(support: Definition) -> None:
    """return_to_l2 points from L3 to L2, but is written reversed so ranks follow the process."""
    src = diagrams.to_dot(diagrams.workflow_diagram(support))
    dot = read_dot(src)
    tail, head, a = dot.edge("edge.return_to_l2.group-level3.l2_solving")
    assert (tail, head, a["dir"], a["lhead"]) == (
        "l3_assessment",
        "l2_solving",
        "back",
        "cluster_level3",
    )
    assert re.search(r"\bl2_solving -> l3_assessment \[[^\]]*return_to_l2", src)
    assert "dir" not in dot.edge("edge.escalate.l2_solving.l3_assessment")[2]


@pytest.mark.parametrize(
    ("show", "guards", "roles"),
    [
        ("", False, False),
        ("guards", True, False),
        ("roles", False, True),
        ("guards,roles", True, True),
        (" roles , guards ", True, True),
    ],
)
def test_show_adds_guards_and_roles_to_labels(
    support: Definition, show: str, guards: bool, roles: bool
) -> None:
    d = diagrams.workflow_diagram(support, diagrams.parse_show(show))
    dot = read_dot(diagrams.to_dot(d))
    label = text_of(dot.edge("edge.triage.new.l1_triage")[2]["label"])
    expected = ["triage"]
    if guards:
        triage = next(t for t in support.spec.transitions if t.trigger == "triage")
        assert triage.guards[0].name == "kind_is"
        expected += [f"if {g.name}({', '.join(map(str, g.args.values()))})" for g in triage.guards]
        assert expected[1] == "if kind_is(technical)"
    if roles:
        expected += ["by l1_agent"]
    assert label == expected
    # one edge for request_info from every working state: its guard once, its roles merged
    group = dot.edge("edge.request_info.group-any_level1_to_administrative.waiting_on_customer")
    expected = ["request_info"]
    if guards:
        expected += ["if note_given"]
    if roles:
        expected += ["by l1_agent, l2_specialist, l3_engineer, executive, supervisor"]
    assert text_of(group[2]["label"]) == expected


def test_unknown_show_option_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown show option.*colours.*known: guards, roles"):
        diagrams.parse_show("guards,colours")


# --- Mermaid ------------------------------------------------------------------------------------
_ARROW = re.compile(r"^    (\S+) --> (\S+)(?: : (.*))?$")
_STATE = re.compile(r'^    state "([^"]*)" as (\w+)$')


def test_mermaid_structure(support: Definition) -> None:
    text = diagrams.to_mermaid(diagrams.workflow_diagram(support))
    lines = text.splitlines()
    assert lines[1:3] == ["stateDiagram-v2", "    direction LR"]
    states = [m.groups() for m in map(_STATE.match, lines) if m]
    plain = [s for _, s in states if not s.startswith("any_")]
    assert sorted(plain) == sorted(support.spec.states)
    assert ("L1: triage", "l1_triage") in states
    arrows = [m.groups() for m in map(_ARROW.match, lines) if m]
    stand_ins = {
        "any_level1": None,
        "any_level3": None,
        "any_level1_to_administrative": "Level 1 … Administrative",
        "any_intake_to_waiting": "Intake … Waiting",
    }
    model = diagrams.workflow_diagram(support)
    expected = []
    for e in model.edges:
        if e.trigger is None:
            continue
        tail = f"any_{e.tail_cluster}".replace("any_any_", "any_") if e.tail_cluster else e.source
        head = f"any_{e.head_cluster}".replace("any_any_", "any_") if e.head_cluster else e.dest
        expected.append((tail, head, e.trigger))
    assert ("any_intake_to_waiting", "closed", "cancel") in expected
    assert ("resolved", "any_level1_to_administrative", "reopen") in expected
    assert sorted(a for a in arrows if "[*]" not in a) == sorted(expected)
    assert ("any state of: Intake … Waiting", "any_intake_to_waiting") in states
    assert ("any state of: Level 3", "any_level3") in states
    del stand_ins["any_level1"]  # escalate's two Level 1 edges differ by guards: not grouped
    assert [a for a in arrows if "[*]" in a] == [("[*]", "new", None), ("closed", "[*]", None)]
    classes = [line.split()[1:] for line in lines if line.startswith("    class ")]
    assigned = [s for names, _ in classes for s in names.split(",")]
    covers = {"any_level3", "any_level1_to_administrative", "any_intake_to_waiting"}
    assert sorted(assigned) == sorted([*support.spec.states, *covers])  # one class each
    assert dict((c, set(n.split(","))) for n, c in classes) == {
        **{g: members for g, (_, members) in GROUP_STATES.items()},
        "cover": covers,
    }
    every_line_known = re.compile(
        r"^(%% .*|stateDiagram-v2|    (direction|classDef|class|state) .*)$"
    )
    assert all(every_line_known.match(x) or _ARROW.match(x) for x in lines)


def test_readme_snippet_is_up_to_date(support: Definition) -> None:
    assert readme_block(README.read_text(encoding="utf-8")) == snippet(support), (
        "README.md's diagram is stale: run `python -m diagrams.readme`"
    )


# --- SVG / PNG and Graphviz missing -------------------------------------------------------------
@needs_dot
def test_svg_is_well_formed_and_has_every_state(support: Definition) -> None:
    svg = diagrams.render(diagrams.workflow_diagram(support, {"guards", "roles"}), "svg")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    groups = {g.get("id"): g for g in root.iter("{http://www.w3.org/2000/svg}g")}
    for name, st in support.spec.states.items():
        texts = [t.text for t in groups[f"state.{name}"].iter("{http://www.w3.org/2000/svg}text")]
        assert st.title in texts
    for e in diagrams.workflow_diagram(support, {"guards", "roles"}).edges:
        assert edge_id(e) in groups


@needs_dot
def test_png_is_a_png(support: Definition) -> None:
    png = diagrams.workflow_image(support, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_dot_svg_and_png_raise_but_dot_and_mermaid_work(
    support: Definition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing in here
    d = diagrams.workflow_diagram(support)
    for fmt in ("svg", "png"):
        with pytest.raises(diagrams.GraphvizMissing, match="install Graphviz") as exc:
            diagrams.render(d, fmt)
        assert exc.value.format == fmt
    assert diagrams.render(d, "dot").startswith(b"digraph support {")
    assert diagrams.render(d, "mmd").splitlines()[1] == b"stateDiagram-v2"


def test_unknown_format_is_refused(support: Definition) -> None:
    with pytest.raises(ValueError, match="unknown format 'gif'"):
        diagrams.render(diagrams.workflow_diagram(support), "gif")


def test_media_types_cover_every_format() -> None:
    assert set(diagrams.MEDIA_TYPES) == set(diagrams.FORMATS) == {"svg", "png", "dot", "mmd"}


def test_workflow_image_runs_dot_once_per_definition_format_and_show(
    support: Definition, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake_dot(source: str, fmt: str) -> bytes:
        calls.append(fmt)
        return f"<{fmt} {len(source)}>".encode()

    monkeypatch.setattr(output, "render_dot", fake_dot)
    other = Definition(support.spec.model_copy(update={"version": "9.9.9"}))
    asks = [
        (support, "svg", ""),
        (support, "svg", ""),
        (support, "svg", "guards"),
        (support, "svg", {"guards"}),
        (support, "png", ""),
        (support, "png", None),
        (other, "svg", ""),
    ]
    output.clear_cache()
    try:
        first = [diagrams.workflow_image(d, fmt, show) for d, fmt, show in asks]
        assert calls == ["svg", "svg", "png", "svg"]
        assert [diagrams.workflow_image(d, fmt, show) for d, fmt, show in asks] == first
        assert len(calls) == 4
    finally:
        output.clear_cache()


def test_importing_workflow_never_imports_graphviz_or_diagrams() -> None:
    code = (
        "import sys, workflow, workflow.stats; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('graphviz', 'diagrams', 'fastapi')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# --- one ticket ---------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tf(tmp_path: Path, clock: Clock) -> Tierflow:
    tf = Tierflow(f"sqlite:///{tmp_path}/t.db", clock=clock)
    tf.create_account(slug="acme", name="Acme")
    return tf


def new_ticket(tf: Tierflow, account: str = "acme", **kw: Any) -> int:
    kw = {"kind": "technical", "category": "login_password", "channel": "chat", **kw}
    return tf.create_ticket(account=account, subject="cannot log in", **kw).id


def story(tf: Tierflow, clock: Clock) -> int:
    """new -20m-> l1_triage -10m-> l1_solving -1h-> waiting (5h) -> l1_solving -50m-> l2."""
    a = {"account": "acme"}
    tid = new_ticket(tf)
    clock.advance(minutes=20)
    tf.fire(**a, ticket_id=tid, trigger="triage", role="l1_agent")
    tf.update_fields(**a, ticket_id=tid, role="l1_agent", complexity="low", urgency="high")
    clock.advance(minutes=10)
    tf.fire(**a, ticket_id=tid, trigger="start_solving", role="l1_agent")
    clock.advance(hours=1)
    tf.fire(**a, ticket_id=tid, trigger="request_info", role="l1_agent", note="a screenshot")
    clock.advance(hours=5)
    tf.fire(**a, ticket_id=tid, trigger="customer_replied", role="customer")
    for step in ("verify_account", "check_lockout", "send_reset", "clear_session"):
        clock.advance(minutes=10)
        tf.record_playbook_step(**a, ticket_id=tid, step=step, outcome="failed", role="l1_agent")
    clock.advance(minutes=10)
    tf.fire(**a, ticket_id=tid, trigger="escalate", role="l1_agent", data={"channel": "phone"})
    clock.advance(hours=2, minutes=5)
    return tid


def ticket_dia(tf: Tierflow, tid: int, role: str = "admin") -> Diagram:
    view = tf.get_ticket(account="acme", ticket_id=tid)
    d = tf.definition(view.workflow, view.definition_hash)
    events = tf.events(account="acme", ticket_id=tid)
    options = tf.explain(account="acme", ticket_id=tid, role=role)
    return diagrams.ticket_diagram(d, view, list(reversed(events)), options, tf.clock())


def test_ticket_highlights_exactly_the_current_state(tf: Tierflow, clock: Clock) -> None:
    dot = read_dot(diagrams.to_dot(ticket_dia(tf, story(tf, clock))))
    current = [n for n, a in dot.nodes.items() if "current" in a.get("class", "").split()]
    assert current == ["l2_solving"]
    looks = [
        n
        for n, a in dot.nodes.items()
        if a.get("fillcolor") == theme.S_CURRENT.fill and a.get("penwidth") == "3"
    ]
    assert looks == ["l2_solving"]
    visited = {n for n, a in dot.nodes.items() if "visited" in a.get("class", "").split()}
    assert visited == {"new", "l1_triage", "l1_solving", "waiting_on_customer", "l2_solving"}


def test_ticket_path_edges_are_numbered_in_order(tf: Tierflow, clock: Clock) -> None:
    d = ticket_dia(tf, story(tf, clock))
    path = sorted((n, e.trigger, e.source, e.dest) for e in d.edges for n in e.steps)
    assert path == [
        (1, "triage", "new", "l1_triage"),
        (2, "start_solving", "l1_triage", "l1_solving"),
        (3, "request_info", "l1_solving", "waiting_on_customer"),
        (4, "customer_replied", "waiting_on_customer", "l1_solving"),
        (5, "escalate", "l1_solving", "l2_solving"),
    ]
    dot = read_dot(diagrams.to_dot(d))
    labels = {
        "edge.triage.new.l1_triage": ["#1 triage"],
        "edge.start_solving.l1_triage.l1_solving": ["#2 start_solving"],
        "edge.request_info.l1_solving.waiting_on_customer": ["#3"],  # bundle member
        "edge.customer_replied.waiting_on_customer.l1_solving": ["#4"],  # bundle member
        "edge.escalate.l1_solving.l2_solving": ["#5 escalate"],
    }
    for eid, label in labels.items():
        a = dot.edge(eid)[2]
        assert text_of(a["label"]) == label
        assert "path" in a["class"].split()
        assert a["color"] in (theme.S_PATH.color, theme.S_ALLOWED.color, theme.S_BLOCKED.color)
    taken = {a["id"] for _, _, a in dot.edges if "path" in a["class"].split()}
    assert {i for i in taken if i.startswith("edge.")} == set(labels)


def test_ticket_time_spent_per_state(tf: Tierflow, clock: Clock) -> None:
    d = ticket_dia(tf, story(tf, clock))
    details = {n.id: n.detail for n in d.nodes if n.kind == "state"}
    assert details == {
        "new": ("20m",),
        "l1_triage": ("10m",),
        "l1_solving": ("2 visits, 1h 50m",),  # 1h, then 4 steps x 10m + 10m
        "waiting_on_customer": ("5h 00m",),
        "l2_solving": ("2h 05m so far",),
        **{
            s: ()
            for s in (
                "l3_assessment",
                "l3_solution",
                "admin_executive",
                "admin_supervisor",
                "resolved",
                "closed",
            )
        },
    }


def test_ticket_options_solid_when_allowed_dashed_with_reasons_when_blocked(
    tf: Tierflow, clock: Clock
) -> None:
    tid = story(tf, clock)
    dot = read_dot(diagrams.to_dot(ticket_dia(tf, tid, role="supervisor")))
    expected = {  # from l2_solving, as a supervisor sees it
        "edge.cancel.l2_solving.closed": ("allowed", None),
        "edge.escalate.l2_solving.l3_assessment": ("blocked", "role 'supervisor' may not fire"),
        "edge.resolve.l2_solving.resolved": ("blocked", "a note is required"),
        "edge.request_info.l2_solving.waiting_on_customer": ("blocked", "a note is required"),
    }
    for eid, (verdict, reason) in expected.items():
        a = dot.edge(eid)[2]
        assert verdict in a["class"].split()
        if verdict == "allowed":
            assert a.get("style", "solid") == "solid"
            assert a["color"] == theme.S_ALLOWED.color
        else:
            assert a["style"] == "dashed"
            assert reason in a["tooltip"]
    judged = {
        a["id"]
        for _, _, a in dot.edges
        if a["id"].startswith("edge.") and {"allowed", "blocked"} & set(a["class"].split())
    }
    assert judged == set(expected)


def test_ticket_waiting_can_only_return_where_it_came_from(tf: Tierflow, clock: Clock) -> None:
    tid = new_ticket(tf)
    tf.fire(account="acme", ticket_id=tid, trigger="triage", role="l1_agent")
    tf.fire(account="acme", ticket_id=tid, trigger="request_info", role="l1_agent", note="x")
    d = ticket_dia(tf, tid)
    verdicts = {
        e.dest: next(c for c in ("allowed", "blocked", "unavailable") if c in e.classes)
        for e in d.edges
        if e.source == "waiting_on_customer"
    }
    assert verdicts == {
        "l1_triage": "allowed",
        "closed": "allowed",
        **{
            s: "unavailable"
            for s in (
                "l1_solving",
                "l2_solving",
                "l3_assessment",
                "l3_solution",
                "admin_executive",
                "admin_supervisor",
            )
        },
    }
    dot = read_dot(diagrams.to_dot(d))
    assert dot.edge("edge.customer_replied.waiting_on_customer.l2_solving")[2]["style"] == "dotted"


@needs_dot
def test_ticket_svg_is_well_formed(tf: Tierflow, clock: Clock) -> None:
    svg = diagrams.render(ticket_dia(tf, story(tf, clock)), "svg")
    root = ET.fromstring(svg)
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"state.{s}" for s in tf.definition("support").spec.states} <= ids


def test_ticket_mermaid_marks_current_and_path(tf: Tierflow, clock: Clock) -> None:
    text = diagrams.to_mermaid(ticket_dia(tf, story(tf, clock)))
    assert "    class l2_solving current" in text.splitlines()
    assert "    l1_triage --> l1_solving : #2 start_solving" in text.splitlines()
    assert '    state "L2: advanced support<br/>2h 05m so far" as l2_solving' in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h 00m"),
        (3660, "1h 01m"),
        (86399, "23h 59m"),
        (86400, "1d 0h"),
        (3 * 86400 + 5 * 3600 + 59, "3d 5h"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# --- live view: workflow.stats and the diagram --------------------------------------------------
def live_setup(tf: Tierflow, clock: Clock) -> None:
    """acme: t1 (new 10m, then l1_triage, answered), t2 (new 30m, then l1_triage), t3 (new).
    Two days later every unanswered first-response clock is past due."""
    tf.create_account(slug="other", name="Other")
    new_ticket(tf, account="other")
    t1, t2, _t3 = new_ticket(tf), new_ticket(tf), new_ticket(tf)
    clock.advance(minutes=10)
    tf.fire(account="acme", ticket_id=t1, trigger="triage", role="l1_agent")
    tf.respond(account="acme", ticket_id=t1, body="on it", role="l1_agent")
    clock.advance(minutes=20)
    tf.fire(account="acme", ticket_id=t2, trigger="triage", role="l1_agent")
    clock.advance(days=2)


def test_state_stats(tf: Tierflow, clock: Clock) -> None:
    live_setup(tf, clock)
    stats = state_stats(tf, account="acme", workflow="support")
    assert set(stats) == set(tf.definition("support").spec.states)
    assert {s: v for s, v in stats.items() if v != StateStat(0, 0, None, 0)} == {
        "new": StateStat(count=1, breached=1, median_seconds=1200.0, samples=2),
        "l1_triage": StateStat(count=2, breached=1, median_seconds=None, samples=0),
    }
    other = state_stats(tf, account="other", workflow="support")
    assert other["new"] == StateStat(1, 1, None, 0)


@pytest.mark.parametrize(
    ("window", "new_median", "samples"),
    [(2, None, 0), (3, None, 0), (4, 1800.0, 1), (5, 1200.0, 2), (100, 1200.0, 2)],
)
def test_state_stats_medians_look_at_the_most_recent_events_only(
    tf: Tierflow, clock: Clock, window: int, new_median: float | None, samples: int
) -> None:
    live_setup(
        tf, clock
    )  # acme's entering events, oldest first: t1, t2, t3 created, t1, t2 triaged
    s = state_stats(tf, account="acme", workflow="support", window=window)["new"]
    assert (s.median_seconds, s.samples) == (new_median, samples)


def test_state_stats_unknown_account_or_workflow(tf: Tierflow) -> None:
    with pytest.raises(NotFound, match="account 'nobody'"):
        state_stats(tf, account="nobody", workflow="support")
    with pytest.raises(NotFound, match="workflow 'nope'"):
        state_stats(tf, account="acme", workflow="nope")


def test_live_diagram_counts_breaches_medians_and_load_colour(tf: Tierflow, clock: Clock) -> None:
    live_setup(tf, clock)
    d = tf.definition("support")
    dia = diagrams.live_diagram(
        d, state_stats(tf, account="acme", workflow="support"), account="acme"
    )
    nodes = {n.id: n for n in dia.nodes}
    assert nodes["new"].detail == ("1 now · 1 breached", "median 20m")
    assert nodes["l1_triage"].detail == ("2 now · 1 breached",)
    assert nodes["l2_solving"].detail == ("0 now",)
    assert nodes["l1_triage"].style.fill == theme.LOAD_PALETTE[5]  # the busiest
    assert nodes["new"].style.fill == theme.LOAD_PALETTE[3]  # 1 of 2 -> level ceil(2.5)
    assert nodes["l2_solving"].style.fill == theme.LOAD_PALETTE[0]
    assert {n.id for n in dia.nodes if "breached" in n.classes} == {"new", "l1_triage"}
    assert nodes["new"].style.color == theme.S_BREACHED.color
    dot = read_dot(diagrams.to_dot(dia))
    assert sorted(
        n for n in dot.nodes if dot.nodes[n].get("id", "").startswith("state.")
    ) == sorted(d.spec.states)
    assert "account acme" in text_of(dot.graph["label"])[0]


# --- the CLI ------------------------------------------------------------------------------------
def cli(*argv: str) -> int:
    return tierflow_main(list(argv))


def test_cli_workflow_to_stdout_without_a_database(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("render", "--format", "mmd") == 0
    out = capsysbinary.readouterr().out.decode()
    assert out.splitlines()[1] == "stateDiagram-v2"
    assert list(tmp_path.iterdir()) == []  # no tierflow.db created


def test_cli_workflow_from_a_yaml_file(tmp_path: Path, support: Definition) -> None:
    assert support.source_text is not None
    draft = tmp_path / "draft.yaml"
    draft.write_text(support.source_text.replace('version: "1.0.0"', 'version: "2.0.0-draft"'))
    out = tmp_path / "draft.dot"
    assert (
        cli(
            "render", "--workflow", str(draft), "--format", "dot", "--show", "roles", "-o", str(out)
        )
        == 0
    )
    assert "support 2.0.0-draft" in text_of(read_dot(out.read_text()).graph["label"])[0]


def test_cli_ticket_and_live(tf: Tierflow, clock: Clock, tmp_path: Path) -> None:
    tid = story(tf, clock)
    url = tf.db.url
    out = tmp_path / "t.dot"
    assert (
        cli(
            "--database-url",
            url,
            "render",
            "--account",
            "acme",
            "--ticket",
            str(tid),
            "--format",
            "dot",
            "-o",
            str(out),
        )
        == 0
    )
    dot = read_dot(out.read_text())
    assert [n for n, a in dot.nodes.items() if "current" in a.get("class", "")] == ["l2_solving"]
    assert (
        cli("--database-url", url, "render", "--account", "acme", "--format", "mmd", "-o", str(out))
        == 0
    )
    assert (
        '    state "L2: advanced support<br/>1 now" as l2_solving' in out.read_text().splitlines()
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "--ticket", "1"], "--ticket needs --account"),
        (["render", "--workflow", "nope"], "unknown workflow 'nope' (built in: support"),
        (["render", "--show", "colours"], "unknown show option(s) colours"),
        (["render", "--account", "acme", "--ticket", "99"], "ticket 99 not found"),
        (["render", "--account", "nobody"], "account 'nobody' not found"),
        (["render", "--account", "acme", "--workflow", "nope"], "workflow 'nope' not found"),
        (["render", "--account", "acme", "--show", "roles"], "--show applies to the workflow"),
        (["render", "--workflow", "missing.yaml"], "cannot read file"),
    ],
)
def test_cli_errors_exit_1_with_a_message(
    tf: Tierflow, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("--database-url", tf.db.url, *argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") >= 1


def test_cli_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/none.db"
    assert cli("--database-url", url, "render", "--account", "acme") == 1
    assert f"no database at {tmp_path}/none.db" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_cli_graphviz_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output.clear_cache()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli("render", "--format", "svg", "-o", str(tmp_path / "x.svg")) == 1
    assert "needs Graphviz's `dot` program" in capsys.readouterr().err
    assert not (tmp_path / "x.svg").exists()
