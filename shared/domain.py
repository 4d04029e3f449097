"""What every service's pure domain rules are built from. Imports nothing of storage or
messaging: a rule is a function from the current state (and what happened) to a Change."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from shared.contract.events import Event

S = TypeVar("S", bound=BaseModel)


class Strict(BaseModel):
    """A value object: unknown fields are refused, and it never changes once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Change(Generic[S]):
    """What a rule decides: the aggregate's new state and the events the change causes.
    A rule returns None for "nothing changes"."""

    state: S
    events: Sequence[Event] = field(default_factory=tuple)
