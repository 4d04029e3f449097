"""The partner exchange's history, kept so a funder that subscribes late can have it replayed:
each OutcomeRecorded as it went out, one aggregate per event id.

A replay sends funders only what the partner exchange carries today: the funder's own
pseudonym of each case, never the case id. Entries kept before OutcomeRecorded v2 (v1 held the
case id) are sent as v2, under their original event id and time (`as_published_now`)."""

from typing import Any

from pydantic import BaseModel

from shared.contract.envelope import Envelope
from shared.contract.events import OutcomeRecorded
from shared.domain import Change
from shared.messaging.publisher import EventPublisher, stored_form
from shared.pseudonym import Pseudonyms
from shared.store import AggregateStore

PARTNER_LOG = "partner_log"
LEGACY_TYPE = "nl.kring.outcome.recorded.v1"  # carried the shared case id (retired, issue 23)


class SentOutcome(BaseModel):
    funder_id: str
    entry: dict[str, Any]  # the event as published (shared.messaging.publisher.stored_form)


def kept(existing: SentOutcome | None, envelope: Envelope[OutcomeRecorded]) -> Change[SentOutcome] | None:
    return None if existing else Change(SentOutcome(funder_id=envelope.data.funder_id, entry=stored_form(envelope)))


def as_published_now(entry: dict[str, Any], pseudonyms: Pseudonyms) -> dict[str, Any]:
    """`entry` as the partner exchange carries it now: a legacy v1 entry becomes v2 (the
    funder's pseudonym instead of the case id; subject and correlation the pseudonym, no
    cause), keeping its event id and time so that the funder's deduplication still holds."""
    envelope = entry["envelope"]
    if envelope["type"] != LEGACY_TYPE:
        return entry
    data = {name: value for name, value in envelope["data"].items() if name != "case_id"}
    outcome = OutcomeRecorded.model_validate({**data, "pseudonym": pseudonyms.of(envelope["data"]["case_id"], data["funder_id"])})
    return stored_form(
        Envelope[OutcomeRecorded](
            id=envelope["id"], source=envelope["source"], type=outcome.type_name(), time=envelope["time"],
            subject=outcome.cloudevents_subject(), correlation_id=outcome.cloudevents_subject(), causation_id=None, data=outcome,
        )  # fmt: skip
    )


async def replay(log: AggregateStore[SentOutcome], publisher: EventPublisher, funder_id: str, pseudonyms: Pseudonyms) -> int:
    """Publish every outcome of `funder_id` again, into that funder's own queue only
    (`<prefix>.partner.<funder>`: no other funder's), with the original event ids (the
    funder deduplicates by them), oldest first. Raises Unroutable if the queue is missing."""
    queue = publisher.topology.partner_queue_name(funder_id)
    entries = sorted((sent.entry for _, sent in await log.find({"funder_id": funder_id})), key=lambda entry: entry["envelope"]["time"])
    for entry in entries:
        await publisher.publish_stored(as_published_now(entry, pseudonyms), to_queue=queue)
    return len(entries)
