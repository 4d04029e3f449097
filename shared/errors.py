"""Kring's one error hierarchy.

Domain rules, stores, handlers and routes raise these; `shared.http` maps them to HTTP once
and `shared.messaging.consumer` decides once what becomes of a message that raised one. A
message says which rule or field, never a value: values may be personal data.

| error            | HTTP | a message that raises it                                   |
| ---------------- | ---- | ---------------------------------------------------------- |
| NotFound         | 404  | requeued; dead-lettered after the delivery limit           |
| Forbidden        | 403  | requeued; dead-lettered after the delivery limit           |
| RuleViolation    | 409  | requeued; dead-lettered after the delivery limit           |
| InvalidInput     | 422  | dead-lettered at once with the reason: it will never fit   |
| TransientFault   | 503  | retried in-process with backoff: the fault will pass       |

Anything else is a bug: HTTP 500; a message is requeued and dead-lettered after the limit.
"""


class KringError(Exception):
    """Base of every refusal Kring raises on purpose."""


class NotFound(KringError):
    """No such case, plan, coordinator, …"""


class Forbidden(KringError):
    """The caller may not do this (to this case)."""


class RuleViolation(KringError):
    """Well-formed, but not allowed in the aggregate's current state."""


class InvalidInput(KringError):
    """A value that can never be taken, whatever the state; `field` names where (a dotted
    path), if one field is to blame."""

    def __init__(self, problem: str, field: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.field = field


class TransientFault(KringError):
    """A fault that will pass (the database away, an event that has not arrived yet): a
    message is retried, an HTTP request answered 503 with Retry-After."""


class ConcurrencyConflict(TransientFault):
    """Too many concurrent writers on one aggregate; try again a moment later."""


class InsecureConfiguration(KringError):
    """Production settings a service may not start with (no keys to verify tokens, a
    development setting, ...): the process refuses to start, exit status 2."""
