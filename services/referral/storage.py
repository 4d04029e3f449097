"""Where referrals live: one aggregate per case, plus the bureaus' references.

A bureau's (organisation, external reference) is claimed by inserting a document with
that unique `_id` holding the case id; the insert is atomic on FerretDB and MongoDB, so a
resubmission racing the original still gets the one case id.
"""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.contract.envelope import Envelope
from shared.mongo import insert_once
from shared.store import AggregateStore, Change, Mutation

from .domain import Referral

REFERRALS = "referrals"
REFERENCES = "bureau_references"


def new_case_id() -> str:
    """Pseudonymous: random, reveals nothing about the family or the referrer."""
    return f"case-{uuid.uuid4().hex[:20]}"


class Referrals:
    def __init__(self, store: AggregateStore[Referral], references: AsyncCollection, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.references = references
        self.clock = clock

    async def case_for_reference(self, organisation_id: str, external_reference: str) -> str:
        """The case id of this bureau reference, claimed now if it is new."""
        key = f"{organisation_id}:{external_reference}"
        claim = {"_id": key, "case_id": new_case_id(), "claimed_at": self.clock()}
        if await insert_once(self.references, claim):
            return claim["case_id"]
        document = await self.references.find_one({"_id": key})
        assert document is not None
        return str(document["case_id"])

    async def get(self, case_id: str) -> Referral | None:
        return await self.store.get(case_id)

    async def change(
        self,
        case_id: str,
        decide: Callable[[Referral | None], Change[Referral] | None],
        *,
        cause: Envelope[Any] | None = None,
        dedup_id: str | None = None,
    ) -> Mutation[Referral]:
        return await self.store.mutate(case_id, decide, cause=cause, dedup_id=dedup_id)
