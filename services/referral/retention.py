"""Retention: the family's personal data is kept for the deployment's retention period
(KRING_RETENTION_DAYS) after its case ended, then erased.

Referral owns the personal data and decides: a sweep (every KRING_RETENTION_SWEEP_SECONDS,
and at start, whichever replica) finds the ended cases past the period and erases each in
one write of its aggregate, which also holds the PersonalDataErased event that every other
service consumes to erase its own part. The write is a compare-and-set on the state, so
two replicas sweeping at once erase a case once; a crash between the write and the
publishing leaves the event in the outbox, published on restart.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.contract.vocabulary import ErasureReason, WithdrawalReason
from shared.logging import get_logger
from shared.store import AggregateStore, Result

from . import domain
from .domain import Lifecycle, Referral

log = get_logger("kring.referral")

# What the sweep queries (state paths): indexed on MongoDB.
QUERIED = (("lifecycle",), ("withdrawal_reason",))


class Retention:
    def __init__(self, referrals: AggregateStore[Referral], clock: Callable[[], datetime], period: timedelta) -> None:
        self.referrals = referrals
        self.clock = clock
        self.period = period

    async def sweep(self) -> int:
        """Erase every ended case past the retention period; how many were erased."""
        now = self.clock()
        erased = 0
        ended = dict(await self.referrals.find({"lifecycle": Lifecycle.ENDED.value}))
        # withdrawn before cases had a lifecycle (the state says so once read: domain.Referral)
        ended |= dict(await self.referrals.find({"withdrawal_reason": {"$in": [reason.value for reason in WithdrawalReason]}}))
        for case_id, referral in sorted(ended.items()):
            if not domain.past_retention(referral, now, self.period):
                continue
            mutation = await self.referrals.mutate(
                case_id, lambda r: domain.erase(r, now=now, reason=ErasureReason.RETENTION, role="retention")
            )
            erased += mutation.result is Result.APPLIED
        if erased:
            log.info("personal data erased after the retention period", cases=erased)
        return erased
