"""Ownership: the one place a route checks that the caller may read or change an aggregate.

Every call is noted for the audit log (shared.audit): the request that made it leaves one
entry, allowed or refused, without any code in the route.

Each service states its rule as `may(caller, state) -> bool` (a coordinator: own cases only;
a family: its own case; …). The check of a change runs inside the store's decision, on the
state the change is decided on, so an aggregate that changes hands meanwhile is refused.
"""

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from shared.audit import note_access
from shared.auth import Principal, Role
from shared.domain import Change
from shared.errors import Forbidden, NotFound
from shared.store import AggregateStore

S = TypeVar("S", bound=BaseModel)
Rule = Callable[[Principal, S], bool]

NOT_YOURS = "this case is not yours"


def _checked(state: S | None, caller: Principal, may: Rule[S], refusal: str) -> S:
    if state is None:
        raise NotFound("no such case")
    if not may(caller, state):
        raise Forbidden(refusal)
    return state


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
