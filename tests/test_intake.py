"""Every intake the create route accepts has a way to a resolution: a table over kind x channel
driven through the engine, and the validator's verdict on a definition with a dead-end intake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios import ACCOUNT
from workflow import DefinitionError, GuardFailed, Tierflow, builtin_definitions, load_definition
from workflow.definition import intake_dead_ends
from workflow.guards import REGISTRY

SUPPORT = next(d for d in builtin_definitions() if d.name == "support")
CHANNELS = SUPPORT.spec.channels

# (kind, channel at intake, the channel the ticket is resolved on)
TABLE = [
    ("technical", "chat", "chat"),
    ("technical", "help_center", "help_center"),
    ("technical", "phone", "chat"),
    ("technical", "video", "chat"),
    ("technical", "email", "help_center"),
    *[("administrative", c, "email") for c in CHANNELS],
]


def test_the_table_covers_every_accepted_kind_and_channel() -> None:
    assert {(k, c) for k, c, _ in TABLE} == {(k, c) for k in SUPPORT.spec.kinds for c in CHANNELS}


@pytest.mark.parametrize(("kind", "channel", "resolved_on"), TABLE)
def test_every_intake_reaches_resolved(
    tf: Tierflow, kind: str, channel: str, resolved_on: str
) -> None:
    category = "login_password" if kind == "technical" else "payments"
    t = tf.create_ticket(
        account=ACCOUNT, kind=kind, category=category, subject="s", channel=channel
    )
    at = {"account": ACCOUNT, "ticket_id": t.id}
    if kind == "technical":
        move = None if channel in ("chat", "help_center") else {"channel": resolved_on}
        t = tf.fire(**at, trigger="triage", role="l1_agent", data=move)
        assert (t.state, t.channel) == ("l1_triage", resolved_on)
        tf.update_fields(**at, role="l1_agent", complexity="low", urgency="low")
        tf.fire(**at, trigger="start_solving", role="l1_agent")
        t = tf.fire(**at, trigger="resolve", role="l1_agent", note="password reset")
    else:  # class B: the executive refers it to the supervisor, by email
        tf.fire(**at, trigger="take", role="executive")
        tf.fire(**at, trigger="refer_to_supervisor", role="executive")
        t = tf.fire(**at, trigger="resolve", role="supervisor", note="refund issued")
    assert (t.state, t.channel) == ("resolved", resolved_on)
    assert tf.check() == []  # the recorded moves replay exactly


def test_triage_records_the_channel_move_as_an_event(tf: Tierflow) -> None:
    t = tf.create_ticket(
        account=ACCOUNT, kind="technical", category="other", subject="s", channel="phone"
    )
    tf.fire(
        account=ACCOUNT, ticket_id=t.id, trigger="triage", role="l1_agent", data={"channel": "chat"}
    )
    triage = tf.events(account=ACCOUNT, ticket_id=t.id)[-1]
    assert (triage.trigger, dict(triage.data), dict(triage.changes)) == (
        "triage",
        {"channel": "chat"},
        {"channel": "chat"},
    )


def test_triage_on_a_phone_ticket_without_a_channel_names_the_way_forward(tf: Tierflow) -> None:
    t = tf.create_ticket(
        account=ACCOUNT, kind="technical", category="other", subject="s", channel="phone"
    )
    at = {"account": ACCOUNT, "ticket_id": t.id}
    with pytest.raises(GuardFailed) as refused:
        tf.fire(**at, trigger="triage", role="l1_agent")
    assert [(r.guard, r.message) for r in refused.value.reasons] == [
        (
            "channel_moved_to",
            "channel 'phone' is not served at level1: give data.channel to move the "
            "conversation to a level1 channel (chat, help_center)",
        )
    ]
    with pytest.raises(GuardFailed) as refused:
        tf.fire(**at, trigger="triage", role="l1_agent", data={"channel": "video"})
    assert refused.value.reasons[0].message == (
        "data.channel 'video' is not a level1 channel (allowed: chat, help_center)"
    )
    assert tf.get_ticket(**at).version == t.version  # refused: nothing written


def test_the_builtin_definition_has_no_dead_end_intake() -> None:
    assert intake_dead_ends(SUPPORT.spec, REGISTRY) == []


def test_a_dead_end_intake_is_a_validation_error_naming_it(tmp_path: Path) -> None:
    text = SUPPORT.source_text
    assert text is not None
    old = (
        "      - {name: channel_moved_to, args: {level: level1}}\n"
        "    set: {channel: $data.channel}\n"
    )
    assert old in text
    dead = tmp_path / "dead.yaml"
    dead.write_text(text.replace(old, "      - {name: channel_allowed, args: {level: level1}}\n"))
    with pytest.raises(DefinitionError) as invalid:
        load_definition(dead)
    cats = ", ".join(SUPPORT.spec.kinds["technical"].categories)
    assert [p for p in invalid.value.problems if p.startswith("intake")] == [
        f"intake kind=technical channel={c}: accepted by the create route, but no transition "
        f"path from 'new' reaches a resolution (resolved) for categories {cats}"
        for c in ("phone", "video", "email")
    ]
