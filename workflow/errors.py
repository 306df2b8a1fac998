"""The one exception hierarchy of tierflow's domain.

Every refusal the engine makes is one of these; none of them knows about HTTP (the API maps
them to problem+json answers in one place). Each carries a ``detail`` a person can act on and,
where it helps, structured fields::

    TierflowError                 base class; ``detail`` (str)
    ├── DefinitionError           a workflow definition is invalid; ``problems`` (list[str]),
    │                             ``errors`` (list[Problem]: path, message, line, column)
    ├── NotFound                  unknown account / ticket / definition (or one of another account)
    ├── InputError                bad input to a unit of work; ``field`` names it
    │   └── AlreadyExists         a unique name (e.g. an account slug) is taken
    ├── UnknownTrigger            the trigger is not defined by the ticket's workflow
    ├── InvalidTransition         the trigger exists but not from the current state; ``possible``
    ├── Forbidden                 the caller's role may not do this; ``role``
    ├── GuardFailed               one or more guards refused; ``reasons`` (list[Reason])
    ├── VersionMismatch           an expected ticket version is stale; ``current``
    ├── IdempotencyMismatch       an idempotency key reused for a different request
    ├── Conflict                  a concurrent update kept winning the race
    └── VersionTaken              a definition version is published already with other content
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DefinitionError",
    "Forbidden",
    "GuardFailed",
    "IdempotencyMismatch",
    "InputError",
    "InvalidTransition",
    "NotFound",
    "Problem",
    "Reason",
    "TierflowError",
    "UnknownTrigger",
    "VersionMismatch",
    "VersionTaken",
]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a guard (or the role check, ``guard == "role"``) refuses a trigger."""

    guard: str
    message: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition: where (``path`` as a person reads it, and the
    ``line``/``column`` of the offending node in the submitted text, 1-based, when known) and
    what."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class TierflowError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class DefinitionError(TierflowError):
    def __init__(self, problems: list[str] | list[Problem], source: str = "definition") -> None:
        self.source = source
        self.errors = [p if isinstance(p, Problem) else Problem("", p) for p in problems]
        self.problems = [str(p) for p in self.errors]
        lines = "\n".join(
            f"  - line {p.line}, column {p.column}: {p}" if p.line is not None else f"  - {p}"
            for p in self.errors
        )
        super().__init__(f"{source} is invalid ({len(self.problems)} problem(s)):\n{lines}")


class NotFound(TierflowError):
    def __init__(self, what: str, key: object) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} not found")


class InputError(TierflowError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class AlreadyExists(InputError):
    """The input is well-formed but names something that exists already (HTTP 409)."""


class UnknownTrigger(TierflowError):
    def __init__(self, trigger: str, workflow: str, known: list[str]) -> None:
        self.trigger = trigger
        self.known = known
        super().__init__(
            f"workflow {workflow!r} has no trigger {trigger!r}; known: {', '.join(known)}"
        )


class InvalidTransition(TierflowError):
    def __init__(
        self, trigger: str, state: str, possible: list[str], why: str | None = None
    ) -> None:
        self.trigger = trigger
        self.state = state
        self.possible = possible
        now = ", ".join(possible) if possible else "none (final state)"
        what = why or f"trigger {trigger!r} is not possible from state {state!r}"
        super().__init__(f"{what}; possible now: {now}")


class Forbidden(TierflowError):
    def __init__(self, role: str, action: str, allowed: list[str]) -> None:
        self.role = role
        self.allowed = allowed
        who = ", ".join(allowed) if allowed else "nobody"
        super().__init__(f"role {role!r} may not {action} (allowed: {who})")


class GuardFailed(TierflowError):
    def __init__(self, trigger: str, reasons: list[Reason]) -> None:
        self.trigger = trigger
        self.reasons = list(reasons)
        joined = "; ".join(f"{r.guard}: {r.message}" for r in self.reasons)
        super().__init__(f"trigger {trigger!r} refused: {joined}")


class VersionMismatch(TierflowError):
    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(
            f"ticket is at version {current}, not {expected}: reload it and decide again"
        )


class Conflict(TierflowError):
    def __init__(self, ticket_id: int, attempts: int) -> None:
        self.ticket_id = ticket_id
        self.attempts = attempts
        super().__init__(
            f"ticket {ticket_id} kept changing under {attempts} concurrent attempts; retry"
        )


class IdempotencyMismatch(TierflowError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new request"
        )


class VersionTaken(TierflowError):
    """``name`` ``version`` is published already, with another content (``hash``)."""

    def __init__(self, name: str, version: str, hash: str) -> None:
        self.name = name
        self.version = version
        self.hash = hash
        super().__init__(
            f"{name} {version} is published already with other content (#{hash}); published "
            "versions never change: publish this content under a new version"
        )
