"""What scheduling does with other services' events."""

from collections.abc import Callable
from datetime import datetime

from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConsentRecorded,
    NoPlanReached,
    PlanAccepted,
    ReferralReceived,
    ReferralWithdrawn,
    SecondMeetingNeeded,
)
from shared.messaging.consumer import TransientFault
from shared.runtime import KringService

from . import domain
from .assignment import Assignments


def register(service: KringService, assignments: Assignments, clock: Callable[[], datetime]) -> None:
    cases = assignments.cases


    @service.on(ReferralReceived)
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        await cases.mutate(envelope.subject, lambda c: domain.referral_received(c, envelope.data), cause=envelope)
        await assignments.try_assign(envelope.subject, envelope)

    @service.on(ConsentRecorded)
    async def on_consent_recorded(envelope: Envelope[ConsentRecorded]) -> None:
        if await cases.get(envelope.subject) is None:  # ReferralReceived travels on another queue
            raise TransientFault(f"case {envelope.subject} not known yet")
        await cases.mutate(envelope.subject, lambda c: domain.consent_recorded(c, envelope.data.consent), cause=envelope)
        await assignments.try_assign(envelope.subject, envelope)

    @service.on(ReferralWithdrawn)
    async def on_referral_withdrawn(envelope: Envelope[ReferralWithdrawn]) -> None:
        now = clock()
        await cases.mutate(envelope.subject, lambda c: domain.withdrawn(c, now), cause=envelope)
        await assignments.release(envelope.subject)
        await assignments.assign_waiting()  # a place may have come free

    @service.on(SecondMeetingNeeded)
    async def on_second_meeting_needed(envelope: Envelope[SecondMeetingNeeded]) -> None:
        meeting = envelope.data.meeting_number
        await cases.mutate(envelope.subject, lambda c: domain.second_meeting(c, meeting), cause=envelope)
        await assignments.try_assign(envelope.subject, envelope)

    async def coordinator_done(case_id: str) -> None:
        """The plan is settled: the coordinator's place in the caseload frees."""
        await assignments.release(case_id)
        await assignments.assign_waiting()

    @service.on(PlanAccepted)
    async def on_plan_accepted(envelope: Envelope[PlanAccepted]) -> None:
        await coordinator_done(envelope.subject)

    @service.on(NoPlanReached)
    async def on_no_plan_reached(envelope: Envelope[NoPlanReached]) -> None:
        await coordinator_done(envelope.subject)
