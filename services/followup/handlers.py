"""What the follow-up service does with other services' (and its own) events."""

from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConferenceHeld,
    CoordinatorAssigned,
    FollowUpCompleted,
    NoPlanReached,
    PlanAccepted,
    ReferralReceived,
    ReferralWithdrawn,
)
from shared.runtime import KringService

from . import domain
from .tracking import Tracking


def register(service: KringService, tracking: Tracking) -> None:
    followups = tracking.followups
    # Each handler counts the event in the funder report (Tracking.count) and changes the case.

    @service.on(ReferralReceived)
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        facts = domain.facts_of(envelope.data)
        await tracking.count(envelope, domain.count_referral(facts))
        await followups.mutate(envelope.subject, lambda f: domain.referral_received(f, envelope.data), cause=envelope)

    @service.on(CoordinatorAssigned)
    async def on_coordinator_assigned(envelope: Envelope[CoordinatorAssigned]) -> None:
        await tracking.facts(envelope.subject)  # the case must be known (events travel on separate queues)
        await followups.mutate(envelope.subject, lambda f: domain.coordinator_assigned(f, envelope.data.coordinator_id), cause=envelope)

    @service.on(ConferenceHeld)
    async def on_conference_held(envelope: Envelope[ConferenceHeld]) -> None:
        data = envelope.data
        facts = await tracking.facts(envelope.subject)
        participants = data.attended_by_role.total
        await tracking.count(envelope, domain.count_conference(facts, data.meeting_number, data.days_since_referral, participants))
        await followups.mutate(envelope.subject, lambda f: domain.conference_held(f, data.meeting_number), cause=envelope)

    @service.on(PlanAccepted)
    async def on_plan_accepted(envelope: Envelope[PlanAccepted]) -> None:
        data = envelope.data
        facts = await tracking.facts(envelope.subject)
        interval = await tracking.interval_for(facts)
        await tracking.count(envelope, domain.count_plan(facts, data.meeting_number))
        await tracking.schedule(envelope.subject, lambda f: domain.plan_accepted(f, data.accepted_at, data.meeting_number, interval), envelope)

    @service.on(NoPlanReached)
    async def on_no_plan_reached(envelope: Envelope[NoPlanReached]) -> None:
        facts = await tracking.facts(envelope.subject)
        await tracking.count(envelope, domain.count_no_plan(facts))
        await followups.mutate(envelope.subject, domain.closed, cause=envelope)

    @service.on(ReferralWithdrawn)
    async def on_referral_withdrawn(envelope: Envelope[ReferralWithdrawn]) -> None:
        await tracking.facts(envelope.subject)  # else the case, arriving later, would stay open
        await followups.mutate(envelope.subject, domain.closed, cause=envelope)

    @service.on(FollowUpCompleted)
    async def on_followup_completed(envelope: Envelope[FollowUpCompleted]) -> None:
        """Our own event: the check counts in the funder's report once it is on the bus."""
        facts = await tracking.facts(envelope.subject)
        await tracking.count(envelope, domain.count_followup(facts, envelope.data))
