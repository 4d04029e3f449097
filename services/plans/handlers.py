"""What the plans service keeps from other services' events."""

from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    CoordinatorAssigned,
    PersonalDataErased,
    ReferralReceived,
)
from shared.domain import Change
from shared.errors import TransientFault
from shared.runtime import KringService
from shared.store import AggregateStore

from . import domain
from .domain import CasePlan


def register(service: KringService, plans: AggregateStore[CasePlan]) -> None:

    async def meeting_known(case_id: str, conference_number: int, meeting_number: int) -> None:
        """ConferenceScheduled travels on another queue: after a restart the move of a
        meeting can come first. Retried until the meeting is known, so the new date wins."""
        plan = await plans.get(case_id)
        if plan is None or plan.meeting(conference_number, meeting_number) is None:
            raise TransientFault(f"meeting {meeting_number} of conference {conference_number} of case {case_id} not known yet")

    @service.on(ReferralReceived)
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        data = envelope.data
        await plans.mutate(
            data.case_id,
            lambda p: domain.referral_received(
                p, data.case_id, data.statutory_context, received_at=data.received_at,
                professional_id=data.responsible_professional_id, requirements=data.bottom_line_requirements,
            ),  # fmt: skip
            cause=envelope,
        )

    @service.on(CoordinatorAssigned)
    async def on_coordinator_assigned(envelope: Envelope[CoordinatorAssigned]) -> None:
        data = envelope.data
        await plans.mutate(data.case_id, lambda p: domain.coordinator_assigned(p, data.case_id, data.coordinator_id), cause=envelope)

    @service.on(ConferenceScheduled)
    async def on_conference_scheduled(envelope: Envelope[ConferenceScheduled]) -> None:
        data = envelope.data
        await plans.mutate(
            data.case_id, lambda p: domain.conference_scheduled(p, data.case_id, data.meeting_number, data.conference_date, data.conference_number),
            cause=envelope,
        )

    @service.on(ConferenceRescheduled)
    async def on_conference_rescheduled(envelope: Envelope[ConferenceRescheduled]) -> None:
        data = envelope.data
        await meeting_known(data.case_id, data.conference_number, data.meeting_number)
        await plans.mutate(
            data.case_id, lambda p: domain.conference_moved(p, data.meeting_number, data.conference_date, data.conference_number), cause=envelope
        )

    @service.on(ConferenceHeld)
    async def on_conference_held(envelope: Envelope[ConferenceHeld]) -> None:
        data = envelope.data
        await plans.mutate(
            data.case_id, lambda p: domain.conference_held(p, data.case_id, data.meeting_number, data.held_on, data.conference_number), cause=envelope
        )

    @service.on(ConferenceCancelled)
    async def on_conference_cancelled(envelope: Envelope[ConferenceCancelled]) -> None:
        data = envelope.data
        await plans.mutate(
            data.case_id, lambda p: domain.conference_cancelled(p, data.case_id, data.meeting_number, data.conference_number), cause=envelope
        )

    @service.on(PersonalDataErased)
    async def on_personal_data_erased(envelope: Envelope[PersonalDataErased]) -> None:
        data = envelope.data

        def erase(plan: CasePlan | None) -> Change[CasePlan] | None:
            if plan is None and data.announced:  # ReferralReceived, on another queue, is still to come
                raise TransientFault(f"case {data.case_id} not known yet")
            return domain.personal_data_erased(plan, data.erased_at)

        await plans.mutate(data.case_id, erase, cause=envelope)
