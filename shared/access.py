"""Ownership: the one place a route checks that the caller may read or change an aggregate.

Every call is noted for the audit log (shared.audit): the request that made it leaves one
entry, allowed or refused, without any code in the route.

Each service states its rule as `may(caller, state) -> bool` (a coordinator: own cases only;
a family: its own case; …), wrapped in `Ownership` with the same rule in words, which the
routes' OpenAPI shows (`authorised(..., owned=rule)`). The check of a change runs inside the
store's decision, on the state the change is decided on, so an aggregate that changes hands
meanwhile is refused.
"""

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from pydantic import BaseModel

from shared.audit import note_access
from shared.auth import Principal, Role
from shared.domain import Change
from shared.errors import Forbidden, NotFound
from shared.store import AggregateStore

S = TypeVar("S", bound=BaseModel)
Rule = Callable[[Principal, S], bool]

NOT_YOURS = "this case is not yours"


class Scope:
    """A limit a route puts on a role after admitting it, in words per role (`says`); the
    route names it in `authorised(..., owned=…)` and its OpenAPI shows it."""

    def __init__(self, says: Mapping[Role, str]) -> None:
        self.says = dict(says)


class Ownership(Scope, Generic[S]):
    """A service's ownership rule `may(caller, state)` with what it means per role in words
    (`says`). Routes pass the same object to `read_owned`/`change_owned` (the check) and to
    `authorised(..., owned=…)` (the route's OpenAPI: description and `x-kring-ownership`).
    A role the rule does not mention is not limited by it."""

    def __init__(self, may: Callable[[Principal, S], bool], says: Mapping[Role, str]) -> None:
        super().__init__(says)
        self.may = may
        self.__doc__ = may.__doc__

    def __call__(self, caller: Principal, state: S) -> bool:
        return self.may(caller, state)


def ownership(says: Mapping[Role, str]) -> Callable[[Callable[[Principal, S], bool]], Ownership[S]]:
    """Decorator: `@ownership({Role.COORDINATOR: OWN_CASES})` over a `may(caller, state)` rule."""
    return lambda may: Ownership(may, says)


# The words the rules use, so that every service says the same thing the same way.
OWN_CASES = "own cases only (assigned to them)"
OWN_CASE = "its own case only (the token's case)"
ANY_CASE = "any case"


def _checked(state: S | None, caller: Principal, may: Rule[S], refusal: str) -> S:
    if state is None:
        raise NotFound("no such case")
    if not may(caller, state):
        raise Forbidden(refusal)
    return state


# What `funder_slice` does, for `authorised(..., owned=FUNDER_SLICE)` on the routes using it.
FUNDER_SLICE = Scope({Role.FUNDER: "its own figures only (the token's org), whatever funder_id it asks for; another funder's id: 403"})


def funder_slice(caller: Principal, funder_id: str | None) -> str | None:
    """Whose figures an aggregate route counts: a funder's own only, whatever it asks for
    (another funder's is refused, a funder naming no organisation too); for anyone else
    the funder asked for (None: all)."""
    if caller.role is not Role.FUNDER:
        return funder_id
    if not caller.organisation_id:
        raise Forbidden("a funder token must name its organisation")
    if funder_id not in (None, caller.organisation_id):
        raise Forbidden("only your own figures")
    return caller.organisation_id


async def read_owned(store: AggregateStore[S], key: str, caller: Principal, may: Rule[S], *, refusal: str = NOT_YOURS) -> S:
    note_access(key)  # audited, allowed or refused (shared.audit)
    return _checked(await store.get(key), caller, may, refusal)


async def change_owned(
    store: AggregateStore[S],
    key: str,
    caller: Principal,
    may: Rule[S],
    decide: Callable[[S], Change[S] | None],
    *,
    refusal: str = NOT_YOURS,
) -> S:
    """Apply `decide` to an aggregate the caller may change; its state afterwards."""
    note_access(key)
    mutation = await store.mutate(key, lambda state: decide(_checked(state, caller, may, refusal)))
    assert mutation.state is not None  # _checked refused a missing aggregate
    return mutation.state
