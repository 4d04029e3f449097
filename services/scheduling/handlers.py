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

    async def known(case_id: str) -> None:
        """ReferralReceived travels on another queue: after a restart a later event about the
        case can come first. Retried until the case is known, so it is never dropped."""
        if await cases.get(case_id) is None:
            raise TransientFault(f"case {case_id} not known yet")

    @service.on(ReferralReceived)
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        await cases.mutate(envelope.subject, lambda c: domain.referral_received(c, envelope.data), cause=envelope)
        await assignments.try_assign(envelope.subject, envelope)

    @service.on(ConsentRecorded)
    async def on_consent_recorded(envelope: Envelope[ConsentRecorded]) -> None:
        await known(envelope.subject)
        await cases.mutate(envelope.subject, lambda c: domain.consent_recorded(c, envelope.data.consent), cause=envelope)
        await assignments.try_assign(envelope.subject, envelope)

    @service.on(ReferralWithdrawn)
    async def on_referral_withdrawn(envelope: Envelope[ReferralWithdrawn]) -> None:
        await known(envelope.subject)  # else the case, arriving later, would be assigned
        now = clock()
        await cases.mutate(envelope.subject, lambda c: domain.withdrawn(c, now), cause=envelope)
        await assignments.release(envelope.subject)
        await assignments.assign_waiting()  # a place may have come free

    @service.on(SecondMeetingNeeded)
    async def on_second_meeting_needed(envelope: Envelope[SecondMeetingNeeded]) -> None:
        meeting = envelope.data.meeting_number
        await cases.mutate(envelope.subject, lambda c: domain.second_meeting(c, meeting), cause=envelope)
        await assignments.try_assign(envelope.subject, envelope)

    async def coordinator_done(envelope: Envelope[PlanAccepted] | Envelope[NoPlanReached]) -> None:
        """The plan is settled: the case closes and the coordinator's place in the caseload frees."""
        meeting = envelope.data.meeting_number
        settled = await cases.mutate(envelope.subject, lambda c: domain.plan_settled(c, meeting), cause=envelope)
        holder = settled.state.coordinator_id if settled.state else None
        await assignments.release(envelope.subject, holder)  # a place held elsewhere is left to the sweep
        await assignments.assign_waiting()

    @service.on(PlanAccepted)
    async def on_plan_accepted(envelope: Envelope[PlanAccepted]) -> None:
        await coordinator_done(envelope)

    @service.on(NoPlanReached)
    async def on_no_plan_reached(envelope: Envelope[NoPlanReached]) -> None:
        await coordinator_done(envelope)
