"""tierflow's domain: workflow definitions, the state machine, SLA clocks and persistence.

Nothing here knows about HTTP or Graphviz. The small public surface::

    from workflow import Tierflow
    tf = Tierflow("sqlite:///tierflow.db")
"""

from .definition import Definition, builtin_definitions, load_definition, parse_text
from .errors import (
    AlreadyExists,
    Conflict,
    DefinitionError,
    Forbidden,
    GuardFailed,
    IdempotencyMismatch,
    InputError,
    InvalidTransition,
    NotFound,
    Problem,
    Reason,
    TierflowError,
    UnknownTrigger,
    VersionMismatch,
    VersionTaken,
)
from .history import EventRecord, TicketState, replay
from .machine import Option, machine_for
from .people import User
from .records import EventView, Idempotency, TicketView, utcnow
from .service import Tierflow

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Definition",
    "DefinitionError",
    "EventRecord",
    "EventView",
    "Forbidden",
    "GuardFailed",
    "Idempotency",
    "IdempotencyMismatch",
    "InputError",
    "InvalidTransition",
    "NotFound",
    "Option",
    "Problem",
    "Reason",
    "TicketState",
    "TicketView",
    "Tierflow",
    "TierflowError",
    "UnknownTrigger",
    "User",
    "VersionMismatch",
    "VersionTaken",
    "builtin_definitions",
    "load_definition",
    "machine_for",
    "parse_text",
    "replay",
    "utcnow",
]
