"""What every service's pure domain rules are built from."""

from pydantic import BaseModel, ConfigDict


class RuleViolation(Exception):
    """Well-formed, but not allowed in the aggregate's current state. HTTP answers 409 with
    the message (shared.http), so it must say which rule, never a personal value."""


class Strict(BaseModel):
    """A value object: unknown fields are refused, and it never changes once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)
