"""What scheduling does with other services' events and with the steps of its own
assignment process (services/scheduling/assignment.py): each handler writes one aggregate."""

from collections.abc import Callable
from datetime import datetime

from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConsentRecorded,
    CoordinatorWanted,
    FollowUpCompleted,
    FollowUpDue,
    NoPlanReached,
    PersonalDataErased,
    PlaceFreed,
    PlaceReleaseRequested,
    PlaceReserved,
    PlanAccepted,
    ReferralReceived,
    ReferralWithdrawn,
    SecondMeetingNeeded,
)
from shared.domain import Change
from shared.errors import TransientFault
from shared.runtime import KringService

from . import domain
from .assignment import Assignments
from .domain import Case


def known(case: Case | None) -> Case:
    """ReferralReceived travels on another queue: after a restart a later event about the case
    can come first. Retried until the case is known, so it is never dropped (a withdrawal
    dropped so would let the case, arriving later, be assigned)."""
    if case is None:
        raise TransientFault("the case's referral has not arrived yet")
    return case


def register(service: KringService, assignments: Assignments, clock: Callable[[], datetime]) -> None:
    cases, coordinators = assignments.cases, assignments.coordinators

    @service.on(ReferralReceived)
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        await cases.mutate(envelope.subject, lambda c: domain.referral_received(c, envelope.data), cause=envelope)

    @service.on(ConsentRecorded)
    async def on_consent_recorded(envelope: Envelope[ConsentRecorded]) -> None:
        await cases.mutate(envelope.subject, lambda c: domain.consent_recorded(known(c), envelope.data.consent), cause=envelope)

    @service.on(ReferralWithdrawn)
    async def on_referral_withdrawn(envelope: Envelope[ReferralWithdrawn]) -> None:
        now = clock()
        await cases.mutate(envelope.subject, lambda c: domain.withdrawn(known(c), now), cause=envelope)

    @service.on(PersonalDataErased)
    async def on_personal_data_erased(envelope: Envelope[PersonalDataErased]) -> None:
        data = envelope.data
        await cases.mutate(envelope.subject, lambda c: domain.personal_data_erased(known(c) if data.announced else c, data.erased_at), cause=envelope)

    @service.on(SecondMeetingNeeded)
    async def on_second_meeting_needed(envelope: Envelope[SecondMeetingNeeded]) -> None:
        data = envelope.data
        await cases.mutate(
            envelope.subject, lambda c: domain.second_meeting(known(c), data.meeting_number, data.conference_number), cause=envelope
        )

    @service.on(PlanAccepted)
    async def on_plan_accepted(envelope: Envelope[PlanAccepted]) -> None:
        """The plan is settled: the case closes and the coordinator's place is given back."""
        data = envelope.data
        await cases.mutate(envelope.subject, lambda c: domain.plan_settled(c, data.meeting_number, data.conference_number), cause=envelope)

    @service.on(NoPlanReached)
    async def on_no_plan_reached(envelope: Envelope[NoPlanReached]) -> None:
        data = envelope.data
        await cases.mutate(envelope.subject, lambda c: domain.plan_settled(c, data.meeting_number, data.conference_number), cause=envelope)

    @service.on(FollowUpDue)
    async def on_followup_due(envelope: Envelope[FollowUpDue]) -> None:
        """The check's deadline goes on the coordinator's list of standards to meet."""
        data = envelope.data
        await cases.mutate(envelope.subject, lambda c: domain.followup_due(c, data.conference_number, data.due_at), cause=envelope)

    @service.on(FollowUpCompleted)
    async def on_followup_completed(envelope: Envelope[FollowUpCompleted]) -> None:
        """The check is done; if it asks for a new conference, the follow-up conference opens."""
        data, now = envelope.data, clock()

        def decide(case: Case | None) -> Change[Case] | None:
            case = known(case)
            checked = domain.followup_checked(case, data.conference_number)
            if not data.new_conference_requested:
                return checked
            opened = domain.followup_conference(checked.state if checked else case, data.conference_number, now)
            return opened or checked

        await cases.mutate(envelope.subject, decide, cause=envelope)

    @service.on(CoordinatorWanted)
    async def on_coordinator_wanted(envelope: Envelope[CoordinatorWanted]) -> None:
        await assignments.try_assign(envelope.subject, envelope)

    @service.on(PlaceReserved)
    async def on_place_reserved(envelope: Envelope[PlaceReserved]) -> None:
        data, now = envelope.data, clock()
        await cases.mutate(envelope.subject, lambda c: domain.place_reserved(c, data.coordinator_id, now, manual=data.manual), cause=envelope)

    @service.on(PlaceReleaseRequested)
    async def on_place_release_requested(envelope: Envelope[PlaceReleaseRequested]) -> None:
        await coordinators.mutate(envelope.data.coordinator_id, lambda c: domain.release(c, envelope.subject), cause=envelope)

    @service.on(PlaceFreed)
    async def on_place_freed(envelope: Envelope[PlaceFreed]) -> None:
        await assignments.offer_place(envelope.data.coordinator_id, envelope)
