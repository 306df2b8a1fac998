"""An account's people: requesters and staff, each holding some of the workflow's roles.

Functions over a :class:`workflow.Tierflow` (its methods of the same names call these). Tokens
(the API's business) point at these users; the history names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .errors import AlreadyExists, InputError, NotFound
from .models import AccountUser
from .records import take_number

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["U", "User", "create_user", "get_user", "requester_for", "users"]

U = AccountUser.__table__  # type: ignore[attr-defined]
MAX_EMAIL = 320


@dataclass(frozen=True, slots=True)
class User:
    id: int
    """The user's number within the account (1, 2, 3, ...)."""
    account: str
    name: str
    email: str | None
    roles: tuple[str, ...]
    org_wide: bool
    created_at: datetime


def _user(account: str, r: Any) -> User:
    return User(
        id=int(r.number),
        account=account,
        name=r.name,
        email=r.email,
        roles=tuple(r.roles or ()),
        org_wide=bool(r.org_wide),
        created_at=r.created_at,
    )


def create_user(
    tf: Tierflow,
    *,
    account: str,
    name: str,
    roles: list[str],
    email: str | None = None,
    org_wide: bool = False,
) -> User:
    """A new person of ``account`` holding ``roles`` (each a role of a loaded workflow)."""
    if not name.strip():
        raise InputError("name", "must not be empty")
    known = sorted({r for d in tf.definitions() for r in d.spec.roles})
    if not roles:
        raise InputError("roles", f"give at least one role (known: {', '.join(known)})")
    for role in roles:
        if role not in known:
            raise InputError("roles", f"unknown role {role!r} (known: {', '.join(known)})")
    if email is not None:
        email = email.strip().lower()
        if "@" not in email or len(email) > MAX_EMAIL:
            raise InputError("email", f"{email!r} is not an e-mail address")
    account_id = tf.account_id(account)
    now = tf.clock()
    with tf.db.write() as conn:
        # the number first: it locks the account's row until this transaction ends, so a
        # concurrent create of the same e-mail has committed before the check below reads
        # (a rolled-back create gives its number back)
        number = take_number(conn, account_id, "last_user_number")
        if (
            email is not None
            and conn.execute(
                sa.select(U.c.id).where(U.c.account_id == account_id, U.c.email == email)
            ).first()
        ):
            raise AlreadyExists("email", f"a user of {account!r} already has e-mail {email!r}")
        row = {
            "account_id": account_id,
            "number": number,
            "name": name.strip(),
            "email": email,
            "roles": list(dict.fromkeys(roles)),
            "org_wide": org_wide,
            "created_at": now,
        }
        conn.execute(sa.insert(U), row)
    return User(
        id=number,
        account=account,
        name=name.strip(),
        email=email,
        roles=tuple(dict.fromkeys(roles)),
        org_wide=org_wide,
        created_at=now,
    )


def get_user(tf: Tierflow, *, account: str, user_id: int) -> User:
    """The user number ``user_id`` of ``account``; another account's user is not found."""
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        row = conn.execute(
            sa.select(U).where(U.c.account_id == account_id, U.c.number == user_id)
        ).first()
    if row is None:
        raise NotFound("user", user_id)
    return _user(account, row)


def users(tf: Tierflow, *, account: str) -> list[User]:
    """Every user of ``account``, oldest first."""
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        rows = conn.execute(sa.select(U).where(U.c.account_id == account_id).order_by(U.c.number))
        return [_user(account, r) for r in rows]


def requester_for(tf: Tierflow, *, account: str, name: str, email: str) -> int:
    """The user of ``account`` with ``email`` (a ticket's customer), made a ``customer`` user
    when there is none: the ticket's requester, who then sees it with a token of their own."""
    email = email.strip().lower()
    account_id = tf.account_id(account)
    for _attempt in range(2):  # a concurrent request may create the same person first
        with tf.db.read() as conn:
            found = conn.execute(
                sa.select(U.c.number).where(U.c.account_id == account_id, U.c.email == email)
            ).first()
        if found is not None:
            return int(found.number)
        try:
            return create_user(tf, account=account, name=name, roles=["customer"], email=email).id
        except AlreadyExists:
            continue
    raise AlreadyExists("email", f"a user of {account!r} already has e-mail {email!r}")
