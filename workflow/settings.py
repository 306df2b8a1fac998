"""Per-account settings: the account's name and its business calendar.

An account's calendar (IANA zone, weekly hours, holidays by date and/or by country and
subdivision through the `holidays` package) is validated and resolved once - the country's
holidays become stored dates - and kept on the account. A new ticket takes it pinned: its
definition version is the workflow version *with that calendar* (stored like any version,
named ``<version>+calendar.<hash>``, never the latest of its name), so its clocks never change
when the account's calendar does later, and replaying it never asks the `holidays` package.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic
import sqlalchemy as sa

from .calendar import CalendarSpec
from .errors import InputError
from .records import A

if TYPE_CHECKING:
    from .service import Tierflow

__all__ = ["UNCHANGED", "AccountSettings", "account_calendar", "settings", "update_account"]

UNCHANGED: Any = object()
"""``update_account``'s "leave it as it is"."""
REFRESH_SECONDS = 1.0
"""How long a process trusts an account's calendar it read (another process may change it)."""


@dataclass(frozen=True, slots=True)
class AccountSettings:
    slug: str
    name: str
    calendar: CalendarSpec | None
    """None: the workflow definition's calendar."""


def _spec(raw: Mapping[str, Any] | None) -> CalendarSpec | None:
    return None if raw is None else CalendarSpec.model_validate(dict(raw))


def settings(tf: Tierflow, *, account: str) -> AccountSettings:
    account_id = tf.account_id(account)
    with tf.db.read() as conn:
        row = conn.execute(sa.select(A.c.name, A.c.calendar).where(A.c.id == account_id)).one()
    return AccountSettings(account, row.name, _spec(row.calendar))


def update_account(
    tf: Tierflow, *, account: str, name: str | None = None, calendar: Any = UNCHANGED
) -> AccountSettings:
    """Rename the account and/or set its calendar (a mapping in the shape of the definition's
    ``calendar``; None: back to the definition's). Open tickets keep the calendar they have."""
    account_id = tf.account_id(account)
    values: dict[str, Any] = {}
    if name is not None:
        if not name.strip():
            raise InputError("name", "must not be empty")
        values["name"] = name.strip()
    if calendar is not UNCHANGED:
        if calendar is None:
            values["calendar"] = None
        else:
            if "country_holidays" in calendar:
                raise InputError(
                    "calendar.country_holidays", "resolved by the server: leave it out"
                )
            try:
                spec = CalendarSpec.model_validate(dict(calendar))
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(["calendar", *(str(p) for p in first["loc"])])
                raise InputError(where, first["msg"]) from None
            except ValueError as exc:
                raise InputError("calendar", str(exc)) from None
            values["calendar"] = spec.model_dump(mode="json")
    if not values:
        raise InputError("body", "nothing to change: give name or calendar")
    with tf.db.write() as conn:
        conn.execute(sa.update(A).where(A.c.id == account_id).values(**values))
    tf._calendars.pop(account_id, None)
    return settings(tf, account=account)


def account_calendar(tf: Tierflow, account_id: int) -> CalendarSpec | None:
    """The calendar of the account's new tickets (None: the definition's), as of at most
    :data:`REFRESH_SECONDS` ago."""
    now = time.monotonic()
    cached = tf._calendars.get(account_id)
    if cached is not None and now - cached[1] < REFRESH_SECONDS:
        known: CalendarSpec | None = cached[0]
        return known
    with tf.db.read() as conn:
        raw = conn.execute(sa.select(A.c.calendar).where(A.c.id == account_id)).scalar()
    spec = _spec(raw)
    tf._calendars[account_id] = (spec, now)
    return spec
