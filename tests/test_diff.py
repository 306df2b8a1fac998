"""Diff of two definition versions: exactly what changed, section by section, and the diagram
that marks it."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

import diagrams
from tests.variants import (
    ADD_REVIEW,
    CANCEL_REVIEW,
    PLAN_GUARD,
    REVIEW_TRANSITIONS,
    SANTIAGO,
    variant,
)
from workflow import builtin_definitions
from workflow.diff import diff

V1 = builtin_definitions()[0]
SVG = "{http://www.w3.org/2000/svg}"
EMPTY = {"added": [], "removed": [], "changed": []}


def test_one_state_added_and_one_guard_changed_are_exactly_what_it_names() -> None:
    new = variant("1.1.0", ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW, PLAN_GUARD)
    d = diff(V1, new).to_dict()
    assert d["from"] == {"version": "1.0.0", "hash": V1.hash}
    assert d["to"] == {"version": "1.1.0", "hash": new.hash}
    assert d["states"] == {
        "added": [
            {
                "key": "l2_review",
                "after": {
                    "group": "level2",
                    "level": "level2",
                    "title": "L2: peer review",
                    "final": False,
                },
            }
        ],
        "removed": [],
        "changed": [],
    }
    assert d["guards"] == {
        "added": [],
        "removed": [],
        "changed": [
            {
                "key": "plan_solution@l3_assessment data_one_of",
                "before": {"args": {"field": "approach", "values": ["best", "custom"]}},
                "after": {"args": {"field": "approach", "values": ["best"]}},
            }
        ],
    }
    # the transitions that make the new state reachable and left, with their guards and roles
    assert [(e["key"], e["after"]["dest"]) for e in d["transitions"]["added"]] == [
        ("ask_review@l2_solving", "l2_review"),
        ("approve@l2_review", "resolved"),
        ("cancel@l2_review", "closed"),
    ]
    approve = d["transitions"]["added"][1]["after"]
    assert approve["roles"] == ["l2_specialist"]
    assert approve["guards"] == [
        {"name": "note_given", "args": {"purpose": "the resolution given to the customer"}}
    ]
    assert d["transitions"]["removed"] == d["transitions"]["changed"] == []
    for section in ("roles", "sla", "calendar"):
        assert d[section] == EMPTY
    assert d["other"] == []


def test_the_same_version_has_no_differences() -> None:
    d = diff(V1, V1)
    assert d.empty
    assert all(d.to_dict()[s] == EMPTY for s in ("states", "transitions", "guards", "roles"))


# (edits, section, expected entries of that section as (kind, key, before, after))
CASES = [
    (
        (("    target_hours: {all: 9}", "    target_hours: {all: 9, P1: 4}"),),
        "sla",
        [
            (
                "changed",
                "first_response",
                {"target_hours": {"all": 9.0}},
                {"target_hours": {"all": 9.0, "P1": 4.0}},
            )
        ],
    ),
    (
        (("    pause_in: [waiting_on_customer]", "    pause_in: []"),),
        "sla",
        [("changed", "resolution", {"pause_in": ["waiting_on_customer"]}, {"pause_in": []})],
    ),
    (
        (
            (
                '    fri: ["09:00-18:00"]\n  holidays: []',
                '    fri: ["09:00-17:00"]\n  holidays: [2026-12-24]',
            ),
        ),
        "calendar",
        [
            ("added", "holiday 2026-12-24", None, "2026-12-24"),
            ("changed", "hours.fri", ["09:00-18:00"], ["09:00-17:00"]),
        ],
    ),
    (
        (
            (
                "    roles: [executive]\n    set: {channel: email}",
                "    roles: [executive, supervisor]\n    set: {channel: email}",
            ),
        ),
        "roles",
        [
            (
                "changed",
                "who fires refer_to_supervisor@admin_executive",
                ["executive"],
                ["executive", "supervisor"],
            )
        ],
    ),
    (
        (
            (
                'title: "L3: building the solution"}',
                'title: "L3: building it"}',
            ),
        ),
        "states",
        [
            (
                "changed",
                "l3_solution",
                {"title": "L3: building the solution"},
                {"title": "L3: building it"},
            )
        ],
    ),
    (
        (("    set: {channel: email}", "    set: {channel: phone}"),),
        "transitions",
        [
            (
                "changed",
                "refer_to_supervisor@admin_executive",
                {"set": {"channel": "email"}},
                {"set": {"channel": "phone"}},
            )
        ],
    ),
]


@pytest.mark.parametrize(("edits", "section", "expected"), CASES)
def test_each_section_names_its_change(
    edits: tuple[tuple[str, str], ...], section: str, expected: list[tuple[object, ...]]
) -> None:
    d = diff(V1, variant("1.0.1", *edits)).to_dict()
    got = [
        (kind, e["key"], e.get("before"), e.get("after"))
        for kind in ("added", "removed", "changed")
        for e in d[section][kind]
    ]
    assert got == expected
    others = {"states", "transitions", "guards", "roles", "sla", "calendar"} - {section}
    assert all(d[s] == EMPTY for s in others), {s: d[s] for s in others if d[s] != EMPTY}


def test_calendar_change_to_santiago_with_chiles_holidays() -> None:
    d = diff(V1, variant("1.2.0", SANTIAGO)).to_dict()
    (tz, country, dates) = d["calendar"]["changed"]
    assert tz == {"key": "timezone", "before": "Etc/GMT+4", "after": "America/Santiago"}
    assert country == {"key": "holiday_country", "before": None, "after": "CL"}
    assert (dates["key"], dates["before"], dates["removed"]) == ("country_holidays", 0, 0)
    assert dates["added"] == dates["after"] > 1000  # 1970-2100, pinned in the version


def test_diff_diagram_marks_additions_removals_changes_with_a_legend() -> None:
    no_referral = (
        "  - trigger: refer_to_supervisor\n    source: [admin_executive]\n"
        "    dest: admin_supervisor\n    roles: [executive]\n    set: {channel: email}\n",
        "",
    )
    new = variant("1.1.0", ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW, PLAN_GUARD, no_referral)
    dg = diagrams.diff_diagram(V1, new)
    marked = {
        cls: sorted(n.id for n in dg.nodes if cls in n.classes)
        for cls in ("added", "removed", "changed")
    }
    assert marked == {"added": ["l2_review"], "removed": [], "changed": []}
    edges = {
        cls: sorted(f"{e.trigger}:{e.source}>{e.dest}" for e in dg.edges if cls in e.classes)
        for cls in ("added", "removed", "changed")
    }
    assert edges == {
        "added": [
            "approve:l2_review>resolved",
            "ask_review:l2_solving>l2_review",
            "cancel:l2_review>closed",
            "reopen:resolved>l2_review",  # approve enters resolved: reopen can return there
        ],
        "removed": ["refer_to_supervisor:admin_executive>admin_supervisor"],
        "changed": ["plan_solution:l3_assessment>l3_solution"],
    }
    assert [i.label for i in dg.legend][:3] == ["added", "removed", "changed"]
    mmd = diagrams.render(diagrams.diff_diagram(V1, new, legend_nodes=True), "mmd").decode()
    assert "l2_solving --> l2_review : ask_review · + added" in mmd
    assert "admin_executive --> admin_supervisor : refer_to_supervisor · - removed" in mmd
    assert "l3_assessment --> l3_solution : plan_solution · ~ guards" in mmd
    assert 'state "added" as legend_added' in mmd
    assert "class l2_review,legend_added added" in mmd


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")
def test_diff_svg_has_the_marked_elements() -> None:
    new = variant("1.1.0", ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW, PLAN_GUARD)
    root = ET.fromstring(diagrams.render(diagrams.diff_diagram(V1, new), "svg"))
    classes = {g.get("id"): g.get("class", "") for g in root.iter(f"{SVG}g")}
    assert "added" in classes["state.l2_review"]
    assert "changed" in classes["edge.plan_solution.l3_assessment.l3_solution"]
    assert "same" in classes["state.l1_triage"]
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "support 1.0.0 → 1.1.0" in text
    assert "removed transition" in text  # the legend
