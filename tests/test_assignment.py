"""Assignment: a ticket goes to one person who holds a role acting at its state; take assigns
oneself; escalation, referral and return hand it back to the pool; every change is an event;
"my queue" and the pool as filters of the queue and the list."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_client import Api, auth
from workflow import DefinitionError, Tierflow, parse_text
from workflow.assignment import acting_roles, hands_back

LOGIN_STEPS = ["verify_account", "check_lockout", "send_reset", "clear_session"]


def _person(acme: Api, name: str, roles: list[str], role: str) -> dict[str, Any]:
    c = acme.client
    r = c.post(
        acme.url("/users"), json={"name": name, "roles": roles}, headers=acme.as_("supervisor")
    )
    assert r.status_code == 201, r.text
    user = r.json()
    r = c.post(
        acme.url("/tokens"),
        json={"role": role, "name": "laptop", "user_id": user["id"]},
        headers=acme.as_("supervisor"),
    )
    assert r.status_code == 201, r.text
    return {"id": user["id"], "headers": auth(r.json()["token"])}


def _put(acme: Api, tid: int, assignee: int | None, headers: dict[str, str]) -> Any:
    return acme.client.put(
        acme.url(f"/tickets/{tid}/assignee"), json={"assignee_id": assignee}, headers=headers
    )


def test_assign_take_and_hand_back_on_escalation(acme: Api) -> None:
    c = acme.client
    camila = _person(acme, "Camila", ["l1_agent"], "l1_agent")
    diego = _person(acme, "Diego", ["l2_specialist"], "l2_specialist")
    t = acme.create()
    tid = t["id"]
    assert t["assignee_id"] is None
    acme.fire(tid, "triage", "l1_agent")
    # Diego holds no role that acts in l1_triage: refused, naming the field
    r = _put(acme, tid, diego["id"], acme.as_("supervisor"))
    assert r.status_code == 422
    assert r.json()["detail"] == (
        f"assignee_id: user {diego['id']} (Diego) holds l2_specialist; a ticket in l1_triage "
        "goes to one of: l1_agent, supervisor"
    )
    assert _put(acme, tid, 99999, acme.as_("supervisor")).json()["detail"] == (
        "assignee_id: no user 99999 in account 'acme'"
    )
    r = _put(acme, tid, camila["id"], acme.as_("customer"))
    assert r.status_code == 403  # customers do not assign
    r = c.post(acme.url(f"/tickets/{tid}/take"), headers=camila["headers"])
    assert r.status_code == 200 and r.json()["assignee_id"] == camila["id"]
    mine = c.get(acme.url("/queue?assignee=me"), headers=camila["headers"]).json()
    assert [x["id"] for x in mine] == [tid]
    assert c.get(acme.url("/queue?assignee=none"), headers=camila["headers"]).json() == []
    acme.patch(tid, complexity="low", urgency="high")
    t = acme.fire(tid, "start_solving", "l1_agent")
    assert t["assignee_id"] == camila["id"]  # same level: kept
    for step in LOGIN_STEPS:
        acme.step(tid, step, "failed")
    t = acme.fire(tid, "escalate", "l1_agent", data={"channel": "phone"})
    assert (t["state"], t["assignee_id"]) == ("l2_solving", None)  # back to the pool
    pool = c.get(acme.url("/queue?assignee=none&level=level2"), headers=diego["headers"]).json()
    assert [x["id"] for x in pool] == [tid]
    assert c.post(acme.url(f"/tickets/{tid}/take"), headers=diego["headers"]).status_code == 200
    listed = c.get(acme.url(f"/tickets?assignee={diego['id']}"), headers=acme.as_("l1_agent"))
    assert [x["id"] for x in listed.json()["items"]] == [tid]
    # request_info keeps the assignee; an integration's token is nobody: it cannot take
    t = acme.fire(tid, "request_info", "l2_specialist", note="Which browser?")
    assert t["assignee_id"] == diego["id"]
    r = c.post(acme.url(f"/tickets/{tid}/take"), headers=acme.as_("integration"))
    assert r.status_code == 422
    r = c.get(acme.url("/queue?assignee=me"), headers=acme.as_("integration"))
    assert r.status_code == 422 and "nobody" in r.json()["detail"]
    assert _put(acme, tid, None, acme.as_("supervisor")).json()["assignee_id"] is None
    events = c.get(acme.url(f"/tickets/{tid}/events"), headers=acme.as_("supervisor")).json()
    assigned = [
        (e["kind"], e["actor"], e["changes"].get("assignee_id"), e["data"].get("assignee"))
        for e in events
        if e["kind"] == "assigned" or "assignee_id" in e["changes"]
    ]
    assert assigned == [
        ("assigned", "Camila", camila["id"], "Camila"),
        ("transition", "l1_agent of acme", None, None),  # the escalation handed it back
        ("assigned", "Diego", diego["id"], "Diego"),
        ("assigned", "supervisor of acme", None, None),
    ]


def test_the_pool_rule_of_the_shipped_workflow(tf: Tierflow) -> None:
    (d,) = tf.definitions()
    assert acting_roles(d, "l1_triage") == {"l1_agent", "supervisor"}
    assert acting_roles(d, "closed") == frozenset()
    moves = {
        ("l1_solving", "l2_solving"): True,  # escalate
        ("l2_solving", "l3_assessment"): True,  # escalate
        ("l3_solution", "l2_solving"): True,  # return_to_l2
        ("admin_executive", "admin_supervisor"): True,  # refer_to_supervisor
        ("l1_triage", "l1_solving"): False,  # start_solving
        ("l2_solving", "waiting_on_customer"): False,  # request_info
        ("l2_solving", "resolved"): False,  # resolve
        ("l3_assessment", "l3_solution"): False,  # plan_solution
    }
    assert {m: hands_back(d, *m) for m in moves} == moves


def test_a_definition_can_say_keep(tf: Tierflow) -> None:
    (d,) = tf.definitions()
    text = d.source_text
    marker = "    roles: [executive]\n    set: {channel: email}\n"  # refer_to_supervisor's
    assert text is not None and text.count(marker) == 1
    kept = text.replace(
        marker, "    roles: [executive]\n    set: {channel: email, assignee: keep}\n"
    )
    kept = kept.replace('version: "1.0.0"', 'version: "1.0.1-keep"')
    with pytest.raises(DefinitionError) as info:
        parse_text(kept.replace("assignee: keep", "assignee: somebody"), source="x.yaml")
    assert "must be keep or pool (got 'somebody')" in str(info.value)
    tf.register(parse_text(kept, source="kept.yaml"))
    tomas = tf.create_user(account="acme", name="Tomás", roles=["executive"])
    t = tf.create_ticket(
        account="acme", kind="administrative", category="payments", subject="x", channel="chat"
    )
    at = {"account": "acme", "ticket_id": t.id}
    tf.fire(**at, trigger="take", role="executive")
    tf.assign(**at, assignee_id=tomas.id, role="executive", actor="Tomás")
    t = tf.fire(**at, trigger="refer_to_supervisor", role="executive")
    assert (t.state, t.assignee_id, t.workflow_version) == (
        "admin_supervisor",
        tomas.id,
        "1.0.1-keep",
    )
    assert tf.check() == []
