"""Bearer tokens: one account and one role each (or the platform admin's); stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from workflow import InputError, Tierflow
from workflow.models import ApiToken

TOK = ApiToken.__table__  # type: ignore[attr-defined]
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an account's role, or the platform admin (``account`` None)."""

    token_id: int | None
    account: str | None
    role: str
    name: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN and self.account is None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Issues and resolves tokens. Resolved tokens are cached: they never change once issued."""

    def __init__(self, tf: Tierflow, admin_token: str | None) -> None:
        self.tf = tf
        self._admin_digest = digest(admin_token) if admin_token else None
        self._cache: dict[str, Principal] = {}  # by digest
        self._by_token: dict[str, Principal] = {}  # tokens seen: no hashing on the hot path

    def ensure_admin(self) -> str | None:
        """With no admin token configured, create one on first start; return it (once)."""
        if self._admin_digest is not None:
            return None
        with self.tf.db.read() as conn:
            exists = conn.execute(
                sa.select(TOK.c.id).where(TOK.c.account_id.is_(None), TOK.c.role == ADMIN)
            ).first()
        if exists is not None:
            return None
        token = "tfa_" + secrets.token_urlsafe(32)
        self._insert(None, ADMIN, "platform admin", token)
        return token

    def reset_admin(self) -> str:
        """Replace the generated admin token (delete every stored one, create a new one) and
        return it, once. The old token stops working at once: admin tokens are never cached."""
        token = "tfa_" + secrets.token_urlsafe(32)
        with self.tf.db.write() as conn:
            conn.execute(sa.delete(TOK).where(TOK.c.account_id.is_(None), TOK.c.role == ADMIN))
        self._insert(None, ADMIN, "platform admin", token)
        return token

    def issue(self, *, account: str, role: str, name: str) -> tuple[int, str]:
        roles = {r for d in self.tf.definitions() for r in d.spec.roles}
        if role not in roles:
            raise InputError("role", f"unknown role {role!r} (known: {', '.join(sorted(roles))})")
        if not name.strip():
            raise InputError("name", "must not be empty")
        token = "tft_" + secrets.token_urlsafe(32)
        token_id = self._insert(self.tf.account_id(account), role, name.strip(), token)
        return token_id, token

    def _insert(self, account_id: int | None, role: str, name: str, token: str) -> int:
        with self.tf.db.write() as conn:
            res = conn.execute(
                sa.insert(TOK).returning(TOK.c.id),
                {
                    "account_id": account_id,
                    "role": role,
                    "name": name,
                    "token_hash": digest(token),
                    "created_at": self.tf.clock(),
                },
            )
            return int(res.scalar_one())

    def resolve(self, token: str) -> Principal | None:
        known = self._by_token.get(token)
        if known is not None:
            return known
        principal = self._resolve(token)
        if principal is not None and not principal.is_admin and len(self._by_token) < 10_000:
            self._by_token[token] = principal  # the admin token is always compared in full
        return principal

    def _resolve(self, token: str) -> Principal | None:
        d = digest(token)
        if self._admin_digest is not None and hmac.compare_digest(d, self._admin_digest):
            return Principal(None, None, ADMIN, "platform admin")
        cached = self._cache.get(d)
        if cached is not None:
            return cached
        with self.tf.db.read() as conn:
            row = conn.execute(
                sa.select(TOK.c.id, TOK.c.account_id, TOK.c.role, TOK.c.name).where(
                    TOK.c.token_hash == d
                )
            ).first()
        if row is None or (row.account_id is None and self._admin_digest is not None):
            return None  # a configured admin token replaces any generated one
        account = None if row.account_id is None else self.tf.account_slug(row.account_id)
        principal = Principal(row.id, account, row.role, row.name)
        if not principal.is_admin:  # a reset admin token must stop working at once
            self._cache[d] = principal
        return principal
