"""What the plans service keeps from other services' events."""

from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    CoordinatorAssigned,
    ReferralReceived,
)
from shared.messaging.consumer import subscribe
from shared.runtime import KringService
from shared.store import AggregateStore

from . import domain
from .domain import CasePlan


def register(service: KringService, plans: AggregateStore[CasePlan]) -> None:
    def on(event: type) -> object:
        return subscribe(service.broker, service.topology, service.name, event)

    @on(ReferralReceived)  # type: ignore[operator]
    async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
        data = envelope.data
        await plans.mutate(data.case_id, lambda p: domain.referral_received(p, data.case_id, data.statutory_context), cause=envelope)

    @on(CoordinatorAssigned)  # type: ignore[operator]
    async def on_coordinator_assigned(envelope: Envelope[CoordinatorAssigned]) -> None:
        data = envelope.data
        await plans.mutate(data.case_id, lambda p: domain.coordinator_assigned(p, data.case_id, data.coordinator_id), cause=envelope)

    @on(ConferenceScheduled)  # type: ignore[operator]
    async def on_conference_scheduled(envelope: Envelope[ConferenceScheduled]) -> None:
        data = envelope.data
        await plans.mutate(
            data.case_id, lambda p: domain.conference_scheduled(p, data.case_id, data.meeting_number, data.conference_date), cause=envelope
        )

    @on(ConferenceRescheduled)  # type: ignore[operator]
    async def on_conference_rescheduled(envelope: Envelope[ConferenceRescheduled]) -> None:
        data = envelope.data
        await plans.mutate(data.case_id, lambda p: domain.conference_moved(p, data.meeting_number, data.conference_date), cause=envelope)

    @on(ConferenceHeld)  # type: ignore[operator]
    async def on_conference_held(envelope: Envelope[ConferenceHeld]) -> None:
        data = envelope.data
        await plans.mutate(data.case_id, lambda p: domain.conference_held(p, data.case_id, data.meeting_number, data.held_on), cause=envelope)

    @on(ConferenceCancelled)  # type: ignore[operator]
    async def on_conference_cancelled(envelope: Envelope[ConferenceCancelled]) -> None:
        data = envelope.data
        await plans.mutate(data.case_id, lambda p: domain.conference_cancelled(p, data.meeting_number), cause=envelope)
