"""What the follow-up service does with other services' (and its own) events: each one
changes the case's follow-up, and what it counts for the funder report, in one write."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConferenceHeld,
    CoordinatorAssigned,
    FirstContactMade,
    NoPlanReached,
    OutcomeRecorded,
    PersonalDataErased,
    PlanAccepted,
    ReferralReceived,
    ReferralWithdrawn,
)
from shared.domain import Change
from shared.errors import TransientFault
from shared.runtime import KringService
from shared.store import AggregateStore

from . import domain, partner
from .domain import Facts, FollowUp


def known(followup: FollowUp | None) -> FollowUp:
    """ReferralReceived travels on another queue: after a restart a later event about the
    case can come first. Retried until the case is known, so it is never dropped."""
    if followup is None:
        raise TransientFault("the case's referral has not arrived yet")
    return followup


def register(
    service: KringService,
    followups: AggregateStore[FollowUp],
    interval_for: Callable[[Facts], Awaitable[timedelta]],
    partner_log: AggregateStore[partner.SentOutcome],
) -> None:
    def on_case(envelope: Envelope[Any], decide: Callable[[FollowUp], Change[FollowUp] | None]) -> Awaitable[object]:
        return followups.mutate(envelope.subject, lambda followup: decide(known(followup)), cause=envelope)

    @service.on(ReferralReceived)
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        await followups.mutate(envelope.subject, lambda f: domain.referral_received(f, envelope.data, envelope.id), cause=envelope)

    @service.on(CoordinatorAssigned)
    async def on_coordinator_assigned(envelope: Envelope[CoordinatorAssigned]) -> None:
        await on_case(envelope, lambda f: domain.coordinator_assigned(f, envelope.data.coordinator_id))

    @service.on(ConferenceHeld)
    async def on_conference_held(envelope: Envelope[ConferenceHeld]) -> None:
        data = envelope.data
        await on_case(
            envelope,
            lambda f: domain.conference_held(
                f, data.meeting_number, data.days_since_referral, data.attended_by_role.total, envelope.id, data.conference_number
            ),
        )

    @service.on(FirstContactMade)
    async def on_first_contact_made(envelope: Envelope[FirstContactMade]) -> None:
        await on_case(envelope, lambda f: domain.first_contact(f, envelope.data, envelope.id))

    @service.on(PlanAccepted)
    async def on_plan_accepted(envelope: Envelope[PlanAccepted]) -> None:
        data = envelope.data
        followup = known(await followups.get(envelope.subject))
        interval = await interval_for(followup.facts)
        await on_case(envelope, lambda f: domain.plan_accepted(f, data.accepted_at, data.meeting_number, interval, envelope.id, data.conference_number))

    @service.on(NoPlanReached)
    async def on_no_plan_reached(envelope: Envelope[NoPlanReached]) -> None:
        await on_case(envelope, lambda f: domain.no_plan_reached(f, envelope.id, envelope.data.conference_number))

    @service.on(ReferralWithdrawn)
    async def on_referral_withdrawn(envelope: Envelope[ReferralWithdrawn]) -> None:
        await on_case(envelope, domain.closed)  # known: else the case, arriving later, would stay open

    @service.on(PersonalDataErased)
    async def on_personal_data_erased(envelope: Envelope[PersonalDataErased]) -> None:
        data = envelope.data
        await followups.mutate(envelope.subject, lambda f: domain.personal_data_erased(known(f) if data.announced else f, data.erased_at), cause=envelope)

    @service.on(OutcomeRecorded)
    async def on_outcome_recorded(envelope: Envelope[OutcomeRecorded]) -> None:
        """Our own event, as funders received it: kept for replays to a funder that comes late."""
        await partner_log.mutate(envelope.id, lambda existing: partner.kept(existing, envelope))
