"""Where referrals live: one aggregate per case. A bureau's (organisation, reference) is the
aggregate's alternate key, unique in the store: of two submissions of one reference racing
to open a case, one opens it and the other is answered with that case."""

import uuid
from collections.abc import Callable
from typing import Any

from shared.contract.envelope import Envelope
from shared.domain import Change
from shared.errors import ConcurrencyConflict
from shared.store import AggregateStore, AlternateKeyTaken, Mutation

from .domain import Referral

REFERRALS = "referrals"


def new_case_id() -> str:
    """Pseudonymous: random, reveals nothing about the family or the referrer."""
    return f"case-{uuid.uuid4().hex[:20]}"


async def open_referral(
    referrals: AggregateStore[Referral],
    reference: str | None,
    decide: Callable[[str, Referral | None], Change[Referral] | None],
    *,
    cause: Envelope[Any] | None = None,
    dedup_id: str | None = None,
) -> Mutation[Referral]:
    """Decide on the case of this bureau reference: a new case id first (most references are
    new, so nothing is read before that insert), else, if the store says another case holds
    the reference, that case; `decide(case_id, existing)`."""
    found: tuple[str, Referral] | None = None
    for _ in range(3):
        case_id = found[0] if found else new_case_id()
        try:
            return await referrals.mutate(case_id, lambda existing: decide(case_id, existing), cause=cause, dedup_id=dedup_id, new_key=not found)
        except AlternateKeyTaken:
            assert reference is not None
            found = await referrals.get_by_alternate_key(reference)  # None: that case is gone again; a new id
    raise ConcurrencyConflict("the reference of a referral stayed contested")
