"""The partner exchange's history, kept so a funder that subscribes late can have it replayed:
each OutcomeRecorded as it went out, one aggregate per event id."""

from typing import Any

from pydantic import BaseModel

from shared.contract.envelope import Envelope
from shared.contract.events import OutcomeRecorded
from shared.domain import Change
from shared.messaging.publisher import EventPublisher, stored_form
from shared.store import AggregateStore

PARTNER_LOG = "partner_log"


class SentOutcome(BaseModel):
    funder_id: str
    entry: dict[str, Any]  # the event as published (shared.messaging.publisher.stored_form)


def kept(existing: SentOutcome | None, envelope: Envelope[OutcomeRecorded]) -> Change[SentOutcome] | None:
    return None if existing else Change(SentOutcome(funder_id=envelope.data.funder_id, entry=stored_form(envelope)))


async def replay(log: AggregateStore[SentOutcome], publisher: EventPublisher, funder_id: str) -> int:
    """Publish every outcome of `funder_id` again, into that funder's own queue only
    (`<prefix>.partner.<funder>`: no other funder's), with the original event ids (the
    funder deduplicates by them), oldest first. Raises Unroutable if the queue is missing."""
    queue = publisher.topology.partner_queue_name(funder_id)
    entries = sorted((sent.entry for _, sent in await log.find({"funder_id": funder_id})), key=lambda entry: entry["envelope"]["time"])
    for entry in entries:
        await publisher.publish_stored(entry, to_queue=queue)
    return len(entries)
