"""The referral service's consumers: bureaus' intake commands, the coordinator
assignment it must know to let that coordinator read the family's contact details, and
the end of a case (no plan reached, the follow-up done), from which the retention period
of the family's personal data runs (services/referral/retention.py)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pydantic

from shared.contract.envelope import Envelope, InvalidMessage
from shared.contract.events import CoordinatorAssigned, FollowUpCompleted, NoPlanReached, ReferralRejected, RejectedField
from shared.logging import get_logger
from shared.messaging.consumer import current_message, sender_organisation, subscribe_command
from shared.runtime import KringService
from shared.store import AggregateStore

from . import domain
from .domain import Referral
from .storage import open_referral

log = get_logger("kring.referral")

SUBMIT = "referral.submit"


class _Reference(pydantic.BaseModel):
    """Enough of a command to answer it (the sender is known from its user_id)."""

    external_reference: str = pydantic.Field(min_length=1, max_length=100)


def impersonation(body: dict[str, Any], organisation: str) -> list[RejectedField]:
    """A command naming another organisation than the bureau that sent it."""
    named = body.get("source_organisation_id")
    if named is None or named == organisation:
        return []
    return [RejectedField(field="source_organisation_id", problem="is not the organisation of the sending bureau's broker user")]


def rejected_fields(error: pydantic.ValidationError) -> list[RejectedField]:
    return [
        RejectedField(field=".".join(str(part) for part in item["loc"]) or "(command)", problem=item["msg"])
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    ]


def register(service: KringService, referrals: AggregateStore[Referral], clock: Callable[[], datetime]) -> None:
    service.documents_command(SUBMIT, domain.SubmitReferral)

    @subscribe_command(
        service.broker,
        service.topology,
        service.name,
        SUBMIT,
        description="A bureau submits a referral (JSON body: /asyncapi/schemas/referral.submit.json), "
        "published as its own broker user bureau-<organisation> with that AMQP user_id: the sender's "
        "organisation is taken from it, and a body naming another source_organisation_id is rejected. "
        "Answered on the replies exchange with referral.accepted.<organisation> or "
        "referral.rejected.<organisation>; the answer's subject and correlation id are "
        "<organisation>:<external reference>.",
    )
    async def on_submit_referral(body: dict[str, Any]) -> None:
        organisation = sender_organisation(current_message().raw_message)
        if errors := impersonation(body, organisation):
            await reject(body, organisation, errors)
            return
        try:
            command = domain.SubmitReferral.model_validate(body)
        except pydantic.ValidationError as error:
            await reject(body, organisation, rejected_fields(error))
            return
        now = clock()
        request = domain.ReferralRequest.model_validate(command.model_dump(include=set(domain.ReferralRequest.model_fields)))

        def submit(case_id: str, existing: Referral | None) -> Any:
            new = domain.received(
                case_id, request, now=now, channel="amqp", recorded_by_role="bureau",
                source_organisation_id=organisation, external_reference=command.external_reference,
            )  # fmt: skip
            return domain.submit(existing, new, now=now)

        reference = f"{organisation}:{command.external_reference}"
        mutation = await open_referral(referrals, reference, submit, dedup_id=current_message().message_id)
        log.info("referral command handled", case_id=mutation.state.case_id if mutation.state else None, result=mutation.result)

    async def reject(body: dict[str, Any], organisation: str, errors: list[RejectedField]) -> None:
        try:
            sender = _Reference.model_validate(body, strict=False)
        except pydantic.ValidationError:
            # Nothing to answer to: the DLQ keeps it, with the reasons, for operations.
            problems = "; ".join(f"{e.field}: {e.problem}" for e in errors)
            raise InvalidMessage(f"cannot answer: external_reference missing or invalid ({problems})"[:900]) from None
        # The answer goes to the sender, whatever organisation the body named.
        rejection = ReferralRejected(
            source_organisation_id=organisation,
            external_reference=sender.external_reference,
            rejected_at=clock(),
            errors=errors,
        )
        # Nothing is stored for a rejected command: answer directly (confirmed; a failure
        # requeues the command, so the answer is sent at least once).
        await service.publisher.publish(Envelope.wrap(rejection, source=service.source))
        log.info("referral command rejected", fields=[e.field for e in rejection.errors])

    @service.on(CoordinatorAssigned)
    async def on_coordinator_assigned(envelope: Envelope[CoordinatorAssigned]) -> None:
        await referrals.mutate(envelope.subject, lambda referral: domain.assign_coordinator(referral, envelope.data.coordinator_id), cause=envelope)

    @service.on(NoPlanReached)
    async def on_no_plan_reached(envelope: Envelope[NoPlanReached]) -> None:
        at = envelope.data.recorded_at
        await referrals.mutate(envelope.subject, lambda referral: domain.case_ended(referral, at), cause=envelope)

    @service.on(FollowUpCompleted)
    async def on_follow_up_completed(envelope: Envelope[FollowUpCompleted]) -> None:
        at = envelope.data.completed_at
        await referrals.mutate(envelope.subject, lambda referral: domain.case_ended(referral, at), cause=envelope)
