"""The designer page in a real browser (Debian's Chromium driven by Playwright) against a real
`tierflow serve`: token, workflow and version, state details, live overlay, a ticket's story."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

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


def test_designer_page(live: tuple[str, int], tmp_path: Path) -> None:
    base, ticket_id = live
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
            page: Page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(15_000)
            page.goto(f"{base}/ui/")
            page.fill("#token", ADMIN)
            page.click("#token-form button")
            expect(page.locator("#diagram svg")).to_be_visible()
            expect(page.locator("#workflow option")).to_have_count(1)
            expect(page.locator("#version option")).to_contain_text(["1.0.0"])

            page.locator('[id="state.l2_solving"]').click()
            expect(page.locator("#state-title")).to_have_text("L2: advanced support (l2_solving)")
            table = page.locator("#transitions")
            expect(table).to_contain_text("escalate")
            expect(table).to_contain_text("l2_specialist")
            expect(table).to_contain_text("note_given")
            page.locator('[id="state.waiting_on_customer"]').click()
            expect(page.locator("#state-pauses")).to_have_text("SLA clocks paused here: resolution")

            page.check("#show-guards")
            expect(page.locator("#diagram svg")).to_contain_text("note_given")

            page.fill("#account", "acme")
            page.check("#live")
            expect(page.locator("#diagram svg")).to_contain_text("1 now")

            page.fill("#ticket", str(ticket_id))
            page.click("#ticket-form button[type=submit]")
            expect(page.locator("#ticket-state")).to_have_text("waiting_on_customer")
            expect(page.locator("#timeline li")).to_have_count(3)
            expect(page.locator("#timeline")).to_contain_text("request_info")
            expect(page.locator("#diagram svg")).to_be_visible()
            page.screenshot(path=str(tmp_path / "designer.png"), full_page=True)

            page.fill("#ticket", "999")
            page.click("#ticket-form button[type=submit]")
            expect(page.locator("#error")).to_contain_text("ticket 999 not found")
        finally:
            browser.close()
    assert (tmp_path / "designer.png").stat().st_size > 10_000
