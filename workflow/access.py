"""What a caller may see: the one place that filters tickets, events and notes per caller.

A :class:`Viewer` travels with every read and every unit of work (the API builds it once per
request from the token, and binds it to every engine call, see ``api.deps``):

- a requester (a customer who is not ``org_wide``) sees and acts on only the tickets they
  requested; another requester's ticket is *not found* - exactly as a ticket of another
  account, never "forbidden";
- a caller without ``internal`` (any customer) never gets an internal note: an internal
  comment or reply is left out of the history and the stream, and an internal note on any other
  event is blanked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .errors import InputError
from .records import EventView, T

__all__ = [
    "EVERYTHING",
    "INTERNAL",
    "PUBLIC",
    "VISIBILITIES",
    "Viewer",
    "check_visibility",
    "default_visibility",
    "hides",
    "sees_event",
    "sees_ticket",
    "shown_events",
    "ticket_clauses",
]

PUBLIC = "public"
INTERNAL = "internal"
VISIBILITIES = (PUBLIC, INTERNAL)
NOTE_ONLY = ("comment", "response")
"""Event kinds that are nothing but their note: hidden whole when the note is."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads or acts, as far as visibility goes."""

    user_id: int | None = None
    own_only: bool = False
    """Only tickets whose requester is ``user_id`` exist for this caller."""
    internal: bool = True
    """Sees internal notes (staff, integrations, the admin)."""

    @classmethod
    def requester(cls, user_id: int | None, *, org_wide: bool = False) -> Viewer:
        """A customer: their own tickets (all of the account's with ``org_wide``), public
        notes only."""
        return cls(user_id=user_id, own_only=not org_wide, internal=False)


EVERYTHING = Viewer()
"""Staff, integrations, the admin, and the engine's own jobs."""


def ticket_clauses(viewer: Viewer) -> list[Any]:
    """WHERE clauses on ``ticket`` that keep only what ``viewer`` may see."""
    if viewer.own_only:
        if viewer.user_id is None:
            return [T.c.id.is_(None)]  # nobody's requester: sees no ticket at all
        return [T.c.requester_id == viewer.user_id]
    return []


def sees_ticket(viewer: Viewer, requester_id: int | None) -> bool:
    return not viewer.own_only or (viewer.user_id is not None and requester_id == viewer.user_id)


def hides(viewer: Viewer, kind: str, visibility: str | None) -> bool:
    """Whether an event of ``kind`` whose note is ``visibility`` is left out entirely."""
    return not viewer.internal and visibility == INTERNAL and kind in NOTE_ONLY


def sees_event(viewer: Viewer, kind: str, visibility: str | None, requester_id: int | None) -> bool:
    """Whether an outgoing event (the stream, webhooks) reaches ``viewer``."""
    return sees_ticket(viewer, requester_id) and not hides(viewer, kind, visibility)


def shown_events(viewer: Viewer, events: Iterable[EventView]) -> list[EventView]:
    """A ticket's history as ``viewer`` may read it."""
    if viewer.internal:
        return list(events)
    out = []
    for e in events:
        if hides(viewer, e.kind, e.visibility):
            continue
        out.append(replace(e, note=None) if e.visibility == INTERNAL else e)
    return out


def default_visibility(viewer: Viewer, kind: str) -> str:
    """A note's visibility when the caller does not say: a customer's notes are public (they
    are written to the team, and the customer sees them); a reply is public; any other staff
    note is internal."""
    if not viewer.internal or kind == "response":
        return PUBLIC
    return INTERNAL


def check_visibility(viewer: Viewer, kind: str, visibility: str | None) -> str:
    """The visibility of a note ``viewer`` writes on an event of ``kind``: as asked, or the
    default; a customer asking for internal is refused (naming ``visibility``)."""
    if visibility is None:
        return default_visibility(viewer, kind)
    if visibility not in VISIBILITIES:
        raise InputError("visibility", f"must be public or internal (got {visibility!r})")
    if visibility == INTERNAL and not viewer.internal:
        raise InputError("visibility", "a customer's notes are public: internal is for staff")
    return visibility
