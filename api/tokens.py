"""Bearer tokens: a person's (acting in one of their roles) or an integration's, of one
account, or the platform admin's; stored hashed, optionally expiring, revocable.

A resolved token is remembered for at most :data:`CACHE_SECONDS` per process: a revoked or
expired token is refused within that time on every worker and host (each re-reads the row),
and the admin token is never remembered at all. A token in use is re-read by one background
read once its entry is :data:`REFRESH_AFTER` old (:meth:`TokenStore.refresh_due`,
:meth:`TokenStore.refresh`), so a busy token's entry is renewed before it expires and its
requests never all miss at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from workflow import InputError, NotFound, Tierflow, User
from workflow.access import EVERYTHING, Viewer
from workflow.models import AccountUser, ApiToken
from workflow.records import take_number

log = logging.getLogger("tierflow.tokens")
TOK = ApiToken.__table__  # type: ignore[attr-defined]
USR = AccountUser.__table__  # type: ignore[attr-defined]
ADMIN = "admin"
INTEGRATION = "integration"
_GENERATED_ADMIN = sa.and_(
    TOK.c.account_id.is_(None), TOK.c.role == ADMIN, TOK.c.revoked_at.is_(None)
)
"""The generated admin token in use (revoked ones are kept, like every revoked token)."""
CACHE_SECONDS = 0.5
"""How long a process trusts a token it resolved before reading its row again."""
REFRESH_AFTER = CACHE_SECONDS / 2
"""A request that finds its token's entry this old has the row re-read in the background (one
read per token at a time), while it and the others go on with the entry they have."""
LAST_USED_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token (a write per request would cost)."""
DESIGNER = "designer"
PLATFORM_ROLES = (DESIGNER,)
"""Roles a token may hold without an account (besides the admin): a designer writes,
validates and publishes workflow definitions and chooses the version accounts run."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a person or an integration of an account in one role, or the platform
    admin (``account`` None)."""

    token_id: int | None
    account: str | None
    role: str
    name: str
    """The person's name, or the integration's: what the history records as the actor."""
    user_id: int | None = None
    """The person's user id (their number within the account)."""
    org_wide: bool = False
    expires_at: datetime | None = None
    viewer: Viewer = EVERYTHING
    """What the caller may see (workflow.access): a requester, their own tickets."""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN and self.account is None

    @property
    def is_designer(self) -> bool:
        return self.role == DESIGNER and self.account is None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as a supervisor may see it: never the secret."""

    id: int
    role: str
    name: str
    user: User | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Issues, lists, revokes and resolves tokens."""

    def __init__(
        self,
        tf: Tierflow,
        admin_token: str | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tf = tf
        self._monotonic = monotonic
        self._admin_digest = digest(admin_token) if admin_token else None
        self._by_token: dict[str, tuple[Principal, float]] = {}  # token -> (who, read at)
        self._refreshing: set[str] = set()  # tokens whose row a background read is re-reading

    def ensure_admin(self) -> str | None:
        """With no admin token configured, create one on first start; return it (once)."""
        if self._admin_digest is not None:
            return None
        with self.tf.db.read() as conn:
            exists = conn.execute(sa.select(TOK.c.id).where(_GENERATED_ADMIN)).first()
        if exists is not None:
            return None
        token = "tfa_" + secrets.token_urlsafe(32)
        self._insert(None, None, ADMIN, "platform admin", token, None)
        return token

    def reset_admin(self) -> str:
        """Rotate the generated admin token in one transaction: revoke the one in use, create
        a new one and return it, once. The old token stops working at once (admin tokens are
        never cached); if the rotation fails, the old one still works. The old row is kept,
        revoked, like any revoked token's, so no token number is ever issued twice."""
        token = "tfa_" + secrets.token_urlsafe(32)
        with self.tf.db.write() as conn:
            conn.execute(sa.update(TOK).where(_GENERATED_ADMIN).values(revoked_at=self.tf.clock()))
            self._insert(None, None, ADMIN, "platform admin", token, None, conn)
        return token

    def issue(
        self,
        *,
        account: str,
        role: str,
        name: str,
        user_id: int | None = None,
        email: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[int, str, User | None]:
        """A new token of ``account`` acting as ``role``; returns (its id - its number in the
        account -, the token, its user).

        - ``user_id``: a token for that person (who must hold ``role``), labelled ``name``;
        - else ``role`` integration: an integration's token, the integration named ``name``;
        - else a new person named ``name`` (with ``email``) holding ``role``, and their token.
        """
        roles = {r for d in self.tf.definitions() for r in d.spec.roles}
        if role not in roles:
            raise InputError("role", f"unknown role {role!r} (known: {', '.join(sorted(roles))})")
        if not name.strip():
            raise InputError("name", "must not be empty")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InputError("expires_at", "must carry a UTC offset (ISO 8601 with offset)")
            if expires_at <= self.tf.clock():
                raise InputError("expires_at", f"{expires_at.isoformat()} is not in the future")
        user: User | None = None
        if user_id is not None:
            try:
                user = self.tf.get_user(account=account, user_id=user_id)
            except NotFound:
                raise InputError("user_id", f"no user {user_id} in account {account!r}") from None
            if role not in user.roles:
                raise InputError(
                    "role",
                    f"user {user_id} ({user.name}) does not hold role {role!r} "
                    f"(holds: {', '.join(user.roles)})",
                )
        elif role != INTEGRATION:
            user = self.tf.create_user(account=account, name=name, roles=[role], email=email)
        token = "tft_" + secrets.token_urlsafe(32)
        token_id = self._insert(
            self.tf.account_id(account),
            None if user is None else user.id,
            role,
            name.strip(),
            token,
            expires_at,
        )
        return token_id, token, user

    def tokens(self, *, account: str | None) -> list[TokenInfo]:
        """Every token of ``account`` (None: the platform's designer tokens; revoked ones too,
        with when), oldest first."""
        users = {} if account is None else {u.id: u for u in self.tf.users(account=account)}
        with self.tf.db.read() as conn:
            rows = conn.execute(
                sa.select(TOK, USR.c.number.label("user_number"))
                .select_from(TOK.outerjoin(USR, USR.c.id == TOK.c.user_id))
                .where(self._owned_by(account))
                .order_by(TOK.c.id)
            ).all()
        return [
            TokenInfo(
                id=r.number,
                role=r.role,
                name=r.name,
                user=None if r.user_number is None else users.get(r.user_number),
                created_at=r.created_at,
                last_used_at=r.last_used_at,
                expires_at=r.expires_at,
                revoked_at=r.revoked_at,
            )
            for r in rows
        ]

    def revoke(self, *, account: str | None, token_id: int) -> None:
        """Revoke token number ``token_id`` of ``account`` (None: a platform designer token;
        again: nothing changes). Every process refuses it within :data:`CACHE_SECONDS`."""
        owned = self._owned_by(account)
        with self.tf.db.write() as conn:
            row = conn.execute(
                sa.select(TOK.c.id, TOK.c.revoked_at).where(TOK.c.number == token_id, owned)
            ).first()
            if row is None:
                raise NotFound("token", token_id)
            if row.revoked_at is None:
                conn.execute(
                    sa.update(TOK).where(TOK.c.id == row.id).values(revoked_at=self.tf.clock())
                )
        self._by_token = {t: p for t, p in self._by_token.items() if p[0].token_id != row.id}

    def _owned_by(self, account: str | None) -> sa.ColumnElement[bool]:
        """The tokens of ``account``, or (None) the platform's own roles' (never the admin's)."""
        if account is None:
            return sa.and_(TOK.c.account_id.is_(None), TOK.c.role.in_(PLATFORM_ROLES))
        owned: sa.ColumnElement[bool] = TOK.c.account_id == self.tf.account_id(account)
        return owned

    def issue_platform(self, *, role: str, name: str) -> tuple[int, str]:
        """A token of a platform role (no account): ``designer``."""
        if role not in PLATFORM_ROLES:
            raise InputError(
                "role", f"unknown platform role {role!r} (known: {', '.join(PLATFORM_ROLES)})"
            )
        if not name.strip():
            raise InputError("name", "must not be empty")
        token = "tfp_" + secrets.token_urlsafe(32)
        return self._insert(None, None, role, name.strip(), token, None), token

    def _insert(
        self,
        account_id: int | None,
        user_id: int | None,
        role: str,
        name: str,
        token: str,
        expires_at: datetime | None,
        conn: sa.Connection | None = None,
    ) -> int:
        """A token row; ``user_id``: the number of a user of the account. Returns the token's
        number: the account's next, or (no account) the platform's next. Written in ``conn``'s
        transaction, or in a write of its own."""
        if conn is None:
            with self.tf.db.write() as own:
                return self._insert(account_id, user_id, role, name, token, expires_at, own)
        if account_id is not None:
            number = take_number(conn, account_id, "last_token_number")
        else:  # the platform's tokens: few, issued by hand
            self.tf.db.lock_in_transaction(conn, "tokens:platform")
            top = conn.execute(
                sa.select(sa.func.max(TOK.c.number)).where(TOK.c.account_id.is_(None))
            ).scalar()
            number = int(top or 0) + 1
        key = None
        if user_id is not None:  # the user's primary key, which the token points at
            key = conn.execute(
                sa.select(USR.c.id).where(USR.c.account_id == account_id, USR.c.number == user_id)
            ).scalar_one()
        conn.execute(
            sa.insert(TOK),
            {
                "account_id": account_id,
                "number": number,
                "user_id": key,
                "role": role,
                "name": name,
                "token_hash": digest(token),
                "created_at": self.tf.clock(),
                "expires_at": expires_at,
            },
        )
        return number

    def cached(self, token: str) -> Principal | None:
        """The caller :meth:`resolve` would answer from its cache (no database), if fresh and
        not expired; None means: ask :meth:`resolve`."""
        known = self._by_token.get(token)
        if known is None or self._monotonic() - known[1] >= CACHE_SECONDS:
            return None
        principal = known[0]
        if principal.expires_at is not None and principal.expires_at <= self.tf.clock():
            return None
        return principal

    def refresh_due(self, token: str) -> bool:
        """Whether the caller is to re-read ``token`` in the background (:meth:`refresh`): its
        entry is at least :data:`REFRESH_AFTER` old and no re-read of it is under way. True
        once per re-read; called on one thread (the event loop)."""
        known = self._by_token.get(token)
        if known is None or token in self._refreshing:
            return False
        if self._monotonic() - known[1] < REFRESH_AFTER:
            return False
        self._refreshing.add(token)
        return True

    def refresh(self, token: str) -> None:
        """Read ``token``'s row again into the cache (a revoked, expired or deleted token leaves
        it); the end of the re-read :meth:`refresh_due` announced."""
        try:
            read_at = self._monotonic()
            self._remember(token, self._resolve(token), read_at)
        except Exception:  # the entry stays until it is CACHE_SECONDS old; a request re-reads
            log.exception("re-reading a token's row failed")
        finally:
            self._refreshing.discard(token)

    def resolve(self, token: str) -> Principal | None:
        known = self._by_token.get(token)
        if known is not None and self._monotonic() - known[1] < CACHE_SECONDS:
            principal: Principal | None = known[0]
        else:
            read_at = self._monotonic()
            principal = self._resolve(token)
            self._remember(token, principal, read_at)
        if principal is None:
            return None
        if principal.expires_at is not None and principal.expires_at <= self.tf.clock():
            return None
        return principal

    def _remember(self, token: str, principal: Principal | None, read_at: float) -> None:
        """Cache what the row said at ``read_at``: never a miss, never the admin."""
        if principal is None or principal.is_admin:
            self._by_token.pop(token, None)
            return
        if len(self._by_token) >= 10_000:
            self._by_token.clear()
        self._by_token[token] = (principal, read_at)

    def _resolve(self, token: str) -> Principal | None:
        d = digest(token)
        if self._admin_digest is not None and hmac.compare_digest(d, self._admin_digest):
            return Principal(None, None, ADMIN, "platform admin")
        with self.tf.db.read() as conn:
            row = conn.execute(
                sa.select(
                    TOK.c.id,
                    TOK.c.account_id,
                    TOK.c.role,
                    TOK.c.name,
                    USR.c.number.label("user_number"),
                    TOK.c.expires_at,
                    TOK.c.revoked_at,
                    TOK.c.last_used_at,
                    USR.c.name.label("user_name"),
                    USR.c.org_wide,
                )
                .select_from(TOK.outerjoin(USR, USR.c.id == TOK.c.user_id))
                .where(TOK.c.token_hash == d)
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        if row.account_id is None and row.role == ADMIN and self._admin_digest is not None:
            return None  # a configured admin token replaces any generated one
        now = self.tf.clock()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            with self.tf.db.write() as conn:
                conn.execute(sa.update(TOK).where(TOK.c.id == row.id).values(last_used_at=now))
        account = None if row.account_id is None else self.tf.account_slug(row.account_id)
        return Principal(
            row.id,
            account,
            row.role,
            row.name if row.user_name is None else row.user_name,
            user_id=row.user_number,
            org_wide=bool(row.org_wide),
            expires_at=row.expires_at,
            viewer=self.viewer_of(row.role, row.user_number, bool(row.org_wide)),
        )

    def viewer_of(self, role: str, user_id: int | None, org_wide: bool) -> Viewer:
        """Staff, integrations and the admin see everything; anyone else (a customer) is a
        requester: their own tickets (or the account's, ``org_wide``), public notes only."""
        if role in (ADMIN, INTEGRATION, *PLATFORM_ROLES):  # platform roles: no account's data
            return EVERYTHING
        if any(role in d.staff_roles for d in self.tf.definitions()):
            return EVERYTHING
        return Viewer.requester(user_id, org_wide=org_wide)
