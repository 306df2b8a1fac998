"""A small HTTP-side helper for the API tests: tokens per role, tickets by path."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

ADMIN_TOKEN = "test-admin-token"
ROLES = [
    "customer",
    "l1_agent",
    "l2_specialist",
    "l3_engineer",
    "executive",
    "supervisor",
    "integration",
]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """One account's view of the API, with a token per role."""

    def __init__(self, client: TestClient, account: str) -> None:
        self.client = client
        self.account = account
        r = client.post(
            "/v1/accounts",
            json={"slug": account, "name": account.title()},
            headers=auth(ADMIN_TOKEN),
        )
        assert r.status_code == 201, r.text
        self.tokens = {
            role: client.post(
                f"/v1/accounts/{account}/tokens",
                json={"role": role, "name": f"{role} of {account}"},
                headers=auth(ADMIN_TOKEN),
            ).json()["token"]
            for role in ROLES
        }
        self.tokens["admin"] = ADMIN_TOKEN

    def url(self, path: str = "") -> str:
        return f"/v1/accounts/{self.account}{path}"

    def as_(self, role: str) -> dict[str, str]:
        return auth(self.tokens[role])

    def create(self, role: str = "customer", **fields: Any) -> dict[str, Any]:
        body = {
            "kind": "technical",
            "category": "login_password",
            "subject": "Cannot log in",
            "channel": "chat",
            **fields,
        }
        r = self.client.post(self.url("/tickets"), json=body, headers=self.as_(role))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def fire(
        self,
        ticket_id: int,
        trigger: str,
        role: str,
        expect: int = 200,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> dict[str, Any]:
        r = self.client.post(
            self.url(f"/tickets/{ticket_id}/triggers/{trigger}"),
            json=body,
            headers={**self.as_(role), **(headers or {})},
        )
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]

    def patch(self, ticket_id: int, role: str = "l1_agent", **body: Any) -> dict[str, Any]:
        r = self.client.patch(self.url(f"/tickets/{ticket_id}"), json=body, headers=self.as_(role))
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def step(self, ticket_id: int, step: str, outcome: str, expect: int = 200) -> dict[str, Any]:
        r = self.client.post(
            self.url(f"/tickets/{ticket_id}/playbook/{step}"),
            json={"outcome": outcome},
            headers=self.as_("l1_agent"),
        )
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]
