"""Other versions of the shipped workflow, made by editing its text: what a designer publishes
next (a state added, a guard changed, another calendar...)."""

from __future__ import annotations

from importlib import resources

from workflow import Definition, parse_text


def support_text() -> str:
    return resources.files("workflow.definitions").joinpath("support.yaml").read_text("utf-8")


def edited(version: str, *edits: tuple[str, str]) -> str:
    """The shipped YAML as ``version`` with each (old, new) text replaced exactly once."""
    text = support_text().replace('version: "1.0.0"', f'version: "{version}"', 1)
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def variant(version: str, *edits: tuple[str, str]) -> Definition:
    return parse_text(edited(version, *edits), source=f"support {version}")


# a Level 2 review step: one state added (reached from l2_solving, leading to resolved)
ADD_REVIEW = (
    """  l3_assessment:       {group: level3,""",
    '  l2_review:           {group: level2, level: level2, title: "L2: peer review"}\n'
    "  l3_assessment:       {group: level3,",
)
REVIEW_TRANSITIONS = (
    """  - trigger: plan_solution""",
    """  - trigger: ask_review
    source: [l2_solving]
    dest: l2_review
    roles: [l2_specialist]

  - trigger: approve
    source: [l2_review]
    dest: resolved
    roles: [l2_specialist]
    guards: [{name: note_given, args: {purpose: the resolution given to the customer}}]
    set: {outcome: solved}
    response: true

  - trigger: plan_solution""",
)
CANCEL_REVIEW = (
    "    source: [new, l1_triage, l1_solving, l2_solving, l3_assessment,",
    "    source: [new, l1_triage, l1_solving, l2_solving, l2_review, l3_assessment,",
)
# one guard changed: a Level 3 plan must take the best-known approach (no custom builds)
PLAN_GUARD = (
    "      - {name: data_one_of, args: {field: approach, values: [best, custom]}}",
    "      - {name: data_one_of, args: {field: approach, values: [best]}}",
)
SANTIAGO = (
    "  timezone: Etc/GMT+4       # the policy's GMT-4 (IANA inverts the sign)",
    "  timezone: America/Santiago\n  holiday_country: CL",
)
