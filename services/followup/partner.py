"""The partner exchange's history, kept so a funder that subscribes late can have it replayed."""

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.contract.envelope import Envelope
from shared.contract.events import OutcomeRecorded
from shared.messaging.publisher import EventPublisher, stored_form
from shared.mongo import insert_once

PARTNER_LOG = "partner_log"


async def keep(log: AsyncCollection, envelope: Envelope[OutcomeRecorded]) -> None:
    await insert_once(log, {"_id": envelope.id, "funder_id": envelope.data.funder_id, "entry": stored_form(envelope)})  # False: a redelivery


async def replay(log: AsyncCollection, publisher: EventPublisher, funder_id: str, queue: str) -> int:
    """Publish every outcome of `funder_id` again, into `queue` only, with the original
    event ids (the funder deduplicates by them), oldest first."""
    entries: list[dict[str, Any]] = [document["entry"] async for document in log.find({"funder_id": funder_id})]
    entries.sort(key=lambda entry: entry["envelope"]["time"])
    for entry in entries:
        await publisher.publish_stored(entry, to_queue=queue)
    return len(entries)
