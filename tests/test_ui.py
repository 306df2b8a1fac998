"""The designer page in a real browser (Debian's Chromium driven by Playwright) against a real
`tierflow serve`: token, workflow and version, state details, live overlay, a ticket's story."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import ADMIN, live_server

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow

if not os.path.exists(CHROMIUM) or shutil.which("dot") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser test: install chromium and graphviz")
    pytest.skip(
        "needs Debian's chromium and Graphviz (./test.sh installs them)", allow_module_level=True
    )

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, int]]:
    with live_server(f"sqlite:///{tmp_path}/ui.db", tmp_path) as server:
        h = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=server.base, headers=h, timeout=10) as c:
            c.post("/v1/accounts", json={"slug": "acme", "name": "Acme"}).raise_for_status()
            for subject in ("Cannot log in", "Agenda empty"):
                c.post(
                    "/v1/accounts/acme/tickets",
                    json={
                        "kind": "technical",
                        "category": "login_password",
                        "subject": subject,
                        "channel": "chat",
                    },
                ).raise_for_status()
            c.post("/v1/accounts/acme/tickets/1/triggers/triage").raise_for_status()
            c.post(
                "/v1/accounts/acme/tickets/1/triggers/request_info",
                json={"note": "Which browser?"},
            ).raise_for_status()
        yield server.base, 1


NEIGHBOURHOOD = 9
"""States drawn by ``?focus=waiting_on_customer``: it, the seven working states (their
``request_info`` leads in, ``customer_replied`` returns to them) and ``closed`` (``cancel``)."""

SHOTS = os.environ.get("TIERFLOW_UI_SCREENSHOTS")
"""A directory for the README's screenshots (``docs``); by default they go to tmp_path."""

WIDER_THAN_PANEL = """(what) => {
    const out = [];
    const panel = document.querySelector('#panel');
    const pad = parseFloat(getComputedStyle(panel).paddingRight);
    const right = panel.getBoundingClientRect().right - pad;
    if (panel.scrollWidth > panel.clientWidth) out.push(what + ': the panel scrolls');
    for (const e of panel.querySelectorAll('#state-details *, #ticket-details *')) {
        const r = e.getBoundingClientRect();
        if (r.width && (r.right > right + 0.5 || e.scrollWidth > e.clientWidth + 1))
            out.push(what + ': ' + e.tagName + ' ' + e.textContent.slice(0, 40));
    }
    return out;
}"""
"""What in the side panel is wider than the panel's content box (nothing should be)."""

PANEL_OVERFLOW = f"""() => {{
    const wider = {WIDER_THAN_PANEL};
    const out = [];
    for (const g of document.querySelectorAll('#diagram g[id^="state."]')) {{
        g.dispatchEvent(new MouseEvent('click', {{bubbles: true}}));
        out.push(...wider(g.id));
    }}
    return out;
}}"""
"""Every state opened in turn: what in the state panel is wider than the panel (none)."""

STATE_IDS = """() => [...document.querySelectorAll('#diagram g[id^="state."]')]
    .map((g) => g.id).sort()"""

TITLE_HEIGHTS = """() => [...document.querySelectorAll(
    '#diagram g[id^="state."] text[font-weight="bold"]')]
    .map((t) => t.getBoundingClientRect().height)
"""


@contextlib.contextmanager
def chromium_page() -> Iterator[Page]:
    """A 1400x1000 page of a headless Debian Chromium, closed on the way out."""
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def fire(base: str, ticket: int, trigger: str, body: dict[str, Any] | None = None) -> None:
    httpx.post(
        f"{base}/v1/accounts/acme/tickets/{ticket}/triggers/{trigger}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json=body,
        timeout=10,
    ).raise_for_status()


def test_designer_page(live: tuple[str, int], tmp_path: Path) -> None:
    base, ticket_id = live
    shots = Path(SHOTS) if SHOTS else tmp_path
    with chromium_page() as page:
        page.goto(f"{base}/ui/#token={ADMIN}")
        expect(page.locator("#diagram svg")).to_be_visible()
        # the token left the address bar, is in sessionStorage only
        assert page.url == f"{base}/ui/"
        assert page.evaluate("() => localStorage.getItem('tierflow.token')") is None
        assert page.evaluate("() => sessionStorage.getItem('tierflow.token')") == ADMIN
        expect(page.locator("#version option")).to_contain_text(["1.0.0"])

        # every state title at least 11 px tall, fitted at 1400x1000
        heights = page.evaluate(TITLE_HEIGHTS)
        assert len(heights) == 11
        assert min(heights) >= 11, heights

        # zoom buttons change the view; fit brings it back
        box = page.locator("#diagram svg")
        fitted = box.get_attribute("viewBox")
        page.click("#zoom-in")
        assert box.get_attribute("viewBox") != fitted
        page.click("#zoom-fit")
        assert box.get_attribute("viewBox") == fitted

        # a state, from the keyboard
        page.locator('[id="state.l2_solving"]').focus()
        page.keyboard.press("Enter")
        expect(page.locator("#state-title")).to_have_text("L2: advanced support (l2_solving)")
        table = page.locator("#transitions")
        expect(table).to_contain_text("escalate")
        expect(table).to_contain_text("l2_specialist")
        # guards as the API words them (the refusal says the same words)
        expect(table.locator(".guard")).to_have_text(
            [
                "a note is required: the diagnosis for Level 3",
                "a note is required: what the customer must provide",
                "a note is required: the resolution given to the customer",
            ]
        )
        page.screenshot(path=str(shots / "designer.png"))
        # nothing in the panel is cut off or scrolls sideways, whichever state is open
        assert page.evaluate(PANEL_OVERFLOW) == []
        page.locator('[id="state.waiting_on_customer"]').focus()
        page.keyboard.press("Enter")
        expect(page.locator("#state-pauses")).to_have_text("SLA clocks paused here: resolution")
        # its neighbourhood alone (?focus=), then the whole workflow again
        states = page.locator('#diagram g[id^="state."]')
        page.click("#focus-state")
        expect(states).to_have_count(NEIGHBOURHOOD)
        expect(page.locator("#state-title")).to_contain_text("(waiting_on_customer)")
        page.click("#ticket-close")
        expect(states).to_have_count(11)

        # find a ticket by its subject, open it: SLA clock, an allowed trigger, its history
        page.fill("#account", "acme")
        page.fill("#q", "AGENDA")
        page.press("#q", "Enter")
        expect(page.locator("#ticket-list li")).to_have_count(1)
        page.locator("#ticket-list button.ticket").click()
        expect(page.locator("#ticket-title")).to_have_text("Ticket 2: Agenda empty")
        expect(page.locator("#sla-clocks")).to_contain_text("first response")
        expect(page.locator("#sla-clocks")).to_contain_text("running")
        expect(page.locator("#allowed")).to_contain_text("triage")
        expect(page.locator("#timeline li")).to_have_count(1)
        page.fill("#q", "")
        page.press("#q", "Enter")
        expect(page.locator("#ticket-list li")).to_have_count(2)
        page.locator(f'#ticket-list button[data-id="{ticket_id}"]').click()
        expect(page.locator("#ticket-state")).to_have_text("waiting_on_customer")
        expect(page.locator("#timeline")).to_contain_text("note: Which browser?")
        expect(page.locator("#sla-clocks")).to_contain_text("met")  # it asked the customer
        assert page.evaluate(WIDER_THAN_PANEL, "ticket 1") == []
        page.screenshot(path=str(shots / "designer-ticket.png"))
        page.check("#path-only")  # its story alone: the states it visited
        expect(states).to_have_count(3)
        assert page.evaluate(STATE_IDS) == [
            "state.l1_triage",
            "state.new",
            "state.waiting_on_customer",
        ]

        # the live load refreshes by itself when a ticket moves
        page.click("#ticket-close")
        page.check("#live")
        triage = page.locator('#diagram [id="state.l1_triage"]')
        expect(page.locator('#diagram [id="state.new"]')).to_contain_text("1 now")
        expect(triage).to_contain_text("0 now")
        # following the account's event stream, not polling
        expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")
        fire(base, 2, "triage")
        expect(triage).to_contain_text("1 now", timeout=2_000)
        expect(page.locator('#diagram [id="state.new"]')).to_contain_text("0 now")
        assert min(page.evaluate(TITLE_HEIGHTS)) >= 11
        expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")
        page.screenshot(path=str(shots / "designer-live.png"))
    for name in ("designer.png", "designer-ticket.png", "designer-live.png"):
        assert (shots / name).stat().st_size > 10_000


def test_live_load_polls_while_the_stream_fails_and_resumes_it(
    live: tuple[str, int], tmp_path: Path
) -> None:
    """No stream (the request fails): conditional polling keeps the counts live; the stream
    back: the page follows it again after its backoff; the stream dropped: the page reconnects
    with Last-Event-ID, the id of the last event it read."""
    base, _ = live
    stream = "**/v1/accounts/acme/stream"
    with chromium_page() as page:
        page.route(stream, lambda route: route.abort())
        page.goto(f"{base}/ui/#token={ADMIN}")
        expect(page.locator("#diagram svg")).to_be_visible()
        page.fill("#account", "acme")
        with page.expect_request(stream):
            page.check("#live")
        mode = page.locator("#live-status")
        expect(mode).to_have_attribute("data-mode", "polling")
        triage = page.locator('#diagram [id="state.l1_triage"]')
        waiting = page.locator('#diagram [id="state.waiting_on_customer"]')
        expect(triage).to_contain_text("0 now")
        fire(base, 2, "triage")
        expect(triage).to_contain_text("1 now", timeout=2_000)
        expect(mode).to_have_attribute("data-mode", "polling")

        page.unroute(stream)
        expect(mode).to_have_attribute("data-mode", "stream", timeout=15_000)
        fire(base, 2, "request_info", {"note": "Which agenda?"})
        expect(waiting).to_contain_text("2 now", timeout=2_000)
        with contextlib.closing(sqlite3.connect(tmp_path / "ui.db")) as db:
            (newest,) = db.execute("select max(sequence) from ticket_event").fetchone()
        page.wait_for_function(f"() => live.lastId === '{newest}'", timeout=2_000)

        with page.expect_request(stream) as again:
            page.evaluate("() => live.abort.abort()")  # the connection drops
        assert again.value.headers.get("last-event-id") == str(newest)
        expect(mode).to_have_attribute("data-mode", "stream", timeout=5_000)
        fire(base, 1, "customer_replied")
        expect(waiting).to_contain_text("1 now", timeout=2_000)


def test_versions_diff_and_what_if(live: tuple[str, int]) -> None:
    """A second version published: the page compares it with the first (the diff drawn, the
    added state marked) and shows what it would have done to the account's tickets."""
    from tests.variants import ADD_REVIEW, CANCEL_REVIEW, REVIEW_TRANSITIONS, edited

    base, _ = live
    httpx.post(
        f"{base}/v1/workflows/support/versions",
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/yaml"},
        content=edited("1.1.0", ADD_REVIEW, REVIEW_TRANSITIONS, CANCEL_REVIEW),
        timeout=10,
    ).raise_for_status()
    with chromium_page() as page:
        page.goto(f"{base}/ui/#token={ADMIN}")
        expect(page.locator("#version option")).to_contain_text(["1.1.0", "1.0.0"])
        expect(page.locator('#diagram [id="state.l2_review"]')).to_be_visible()
        page.select_option("#compare", label=page.locator("#compare option").nth(2).inner_text())
        added = page.locator('#diagram [id="state.l2_review"]')
        expect(added).to_have_attribute("class", re.compile(r"\badded\b"))
        expect(page.locator('#diagram [id="state.l1_triage"]')).to_have_attribute(
            "class", re.compile(r"\bsame\b")
        )
        page.fill("#account", "acme")
        page.click("#what-if")
        table = page.locator("#whatif-table")
        expect(table.locator("tr").nth(0)).to_contain_text("candidate 1.1.0")
        expect(table.locator("tr").nth(1)).to_have_text(re.compile(r"tickets\s*2\s*2"))
        expect(page.locator("#whatif-details h3")).to_have_text("Events it would have refused: 0")
