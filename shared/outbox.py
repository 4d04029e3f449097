"""The transactional outbox, without multi-document transactions, updates or big scans.

Events caused by a state change are written in the SAME insert as the change (see
shared.store): `outbox.<event id>` holds each event (`publisher.stored_form`) and
`outbox_count` counts them. Snapshot documents are never changed afterwards: their outbox
stays as the record of what each version caused.

What is still to publish is listed in a small collection, `<collection>.pending`: just
before inserting a snapshot with events, the writer inserts `{_id: <snapshot id>}` there
(the intent). The relay publishes the snapshot's events with confirms, then deletes the
intent. So `pending` holds only work in flight, and finding leftover work never scans the
growing snapshot collection: on FerretDB v1 on SQLite every read and every delete scans its
collection (see shared.store), which is cheap for `pending` and ruinous for history.

- A crash between intent and snapshot leaves an intent without a snapshot: removed once it
  is older than `ORPHAN_AFTER` (a writer's insert can be that late, not later).
- A crash between publishing and deleting the intent republishes later; consumers are
  idempotent, so that has no second effect.
- Two writers racing for one version may both write the intent (the second insert is a
  duplicate and ignored); the winner's snapshot is what gets published.

Right after a write the writer's own relay publishes that snapshot from memory, without a
lease: nobody else publishes a document that young. Every `sweep_seconds` the relay also
reads `pending` for intents older than `sweep_seconds` (crash recovery, broker outages,
replicas that died) and publishes them under a lease. Versions of one aggregate are
published in version order.

Several relays (one per replica) may run over the same collections. Before publishing
a document's events a relay takes a lease on it: a document in `<collection>.leases`
whose `_id` is the document's; inserting a unique `_id` is atomic on MongoDB and on
FerretDB alike, so one relay holds a document at a time. A lease past its expiry (its
relay crashed) is removed by the next relay that wants the document.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.contract.envelope import Envelope
from shared.logging import get_logger
from shared.messaging.publisher import EventPublisher, PublishFailed, stored_form
from shared.mongo import IndexSpec, insert_once

log = get_logger("kring.outbox")

OUTBOX = "outbox"
COUNT = "outbox_count"

Clock = Callable[[], datetime]
Settle = Callable[[AsyncCollection, dict[str, Any]], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_outbox(envelopes: Sequence[Envelope[Any]]) -> dict[str, Any]:
    """The outbox fields of a document written together with these events."""
    return {
        OUTBOX: {envelope.id: {**stored_form(envelope), "order": order} for order, envelope in enumerate(envelopes)},
        COUNT: len(envelopes),
    }


def outbox_indexes(collection: str) -> list[IndexSpec]:
    return [IndexSpec(f"{collection}.pending", [("at", 1)])]


def leases_of(collection: AsyncCollection) -> AsyncCollection:
    return collection.database[f"{collection.name}.leases"]


def pending_of(collection: AsyncCollection) -> AsyncCollection:
    return collection.database[f"{collection.name}.pending"]


async def record_intent(collection: AsyncCollection, document_id: str, at: datetime) -> None:
    """Before inserting snapshot `document_id` with events: list it as to be published."""
    await insert_once(pending_of(collection), {"_id": document_id, "at": at})  # False: a racing writer listed it


async def pending_events(collection: AsyncCollection) -> int:
    """Events of `collection` waiting to be published (for ops and tests)."""
    total = 0
    async for intent in pending_of(collection).find({}):
        document = await collection.find_one({"_id": intent["_id"]}, {COUNT: 1})
        total += document[COUNT] if document else 0
    return total


class OutboxRelay:
    """Publishes pending outbox events of the watched collections.

    Woken right after a write (`notify`) and sweeping every `sweep_seconds` for work
    left by a crash, by a broker outage or by another replica.
    """

    # An intent whose snapshot has not appeared after this long belongs to a writer that
    # crashed or lost a race: its insert can be that late (store.MAX_DECISION_SECONDS), not later.
    ORPHAN_AFTER = timedelta(minutes=5)

    def __init__(
        self,
        publisher: EventPublisher,
        collections: Iterable[AsyncCollection] = (),
        *,
        sweep_seconds: float = 5.0,
        lease_seconds: float = 30.0,
        clock: Clock = utc_now,
    ) -> None:
        self.publisher = publisher
        self.collections: dict[str, tuple[AsyncCollection, Settle | None]] = {}
        for collection in collections:
            self.watch(collection)
        self.sweep_seconds = sweep_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._hot: dict[str, dict[str, dict[str, Any]]] = {}  # collection full name -> documents just written, by _id
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def watch(self, collection: AsyncCollection, settle: Settle | None = None) -> None:
        """Publish `collection`'s outboxes; `settle(collection, document)` runs after a
        document's events are published and its intent deleted."""
        self.collections[collection.full_name] = (collection, settle)

    def notify(self, collection: AsyncCollection | None = None, document: dict[str, Any] | None = None) -> None:
        """This document with events was just written: publish it now. Without arguments:
        sweep now."""
        if collection is not None and document is not None:
            self._hot.setdefault(collection.full_name, {})[document["_id"]] = document
        else:
            self._sweep_due = True
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    _sweep_due = True

    async def _run(self) -> None:
        backoff = 0.0
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.sweep_seconds)
            except TimeoutError:
                self._sweep_due = True
            self._wake.clear()
            try:
                await self.publish_hot()
                if self._sweep_due or loop.time() - last_sweep >= self.sweep_seconds:
                    self._sweep_due = False
                    last_sweep = loop.time()
                    await self.drain(min_age=timedelta(seconds=self.sweep_seconds))
                backoff = 0.0
            except Exception as error:  # broker or database down: the events stay, retry
                backoff = min(max(backoff * 2, 0.5), self.sweep_seconds)
                log.warning(
                    "outbox relay failed, will retry",
                    error=type(error).__name__,
                    detail=str(error)[:200],
                    retry_in=backoff,
                )
                self._sweep_due = True
                self._wake.set()

    async def publish_hot(self) -> int:
        """Publish the documents `notify` handed over, aggregates side by side and each
        aggregate's versions in order. A document that fails stays for the sweep."""
        published = 0
        while self._hot:
            hot, self._hot = self._hot, {}
            for full_name, documents in hot.items():
                collection, settle = self.collections[full_name]
                by_key: dict[str, list[dict[str, Any]]] = {}
                for document_id in sorted(documents):  # key:<zero-padded version> sorts by version
                    by_key.setdefault(document_id.rpartition(":")[0], []).append(documents[document_id])
                results = await asyncio.gather(
                    *(self._publish_in_order(collection, settle, in_order) for in_order in by_key.values())
                )
                published += sum(results)
        self.published += published
        return published

    async def _publish_in_order(self, collection: AsyncCollection, settle: Settle | None, documents: list[dict[str, Any]]) -> int:
        published = 0
        for document in documents:
            try:
                published += await self._publish_document(collection, document, settle, leased=False)
            except PublishFailed as error:  # the sweep retries it
                log.error("outbox event refused by the broker, holding it", error=str(error))
                break  # later versions wait too: an aggregate's events go out in order
        return published

    async def _publish_leased(self, collection: AsyncCollection, settle: Settle | None, document_id: Any) -> int:
        """Publish one document's pending events under a lease; 0 if another relay holds it
        or nothing is pending. A broker refusal holds the lease until the next sweep."""
        if not await self._take_lease(collection, document_id):
            return 0
        # Read under the lease: another relay may have published it meanwhile.
        intent = await pending_of(collection).find_one({"_id": document_id})
        document = None if intent is None else await collection.find_one({"_id": document_id})
        if intent is not None and document is None and intent["at"] <= self.clock() - self.ORPHAN_AFTER:
            await pending_of(collection).delete_one({"_id": document_id})  # its snapshot never came
        if document is not None and not document.get(COUNT):
            # listed by a writer that decided on a stale version and lost this one to a
            # writer whose change caused no events: nothing will ever be published from it
            await self._forget_intent(collection, document_id)
        if document is None or not document.get(COUNT):
            await self._release_quietly(collection, document_id)
            return 0
        try:
            return await self._publish_document(collection, document, settle)
        except PublishFailed as error:
            log.error("outbox event refused by the broker, holding it", error=str(error))
            await self._hold_lease(collection, document_id)
            return 0
        except Exception:
            await self._release_quietly(collection, document_id)
            raise

    async def drain(self, min_age: timedelta = timedelta(0)) -> int:
        """Publish everything pending for at least `min_age` that no other live relay
        holds; returns the number of events published. A document whose events the broker
        refuses (e.g. unroutable) is held back until the next sweep and the others go on;
        any other failure (broker or database down) stops the drain and is raised."""
        published = 0
        for collection, settle in list(self.collections.values()):
            due = self.clock() - min_age
            # key:<zero-padded version> sorts an aggregate's versions in order
            intents = sorted([intent["_id"] async for intent in pending_of(collection).find({"at": {"$lte": due}}, {"_id": 1})])
            for document_id in intents:
                published += await self._publish_leased(collection, settle, document_id)
        self.published += published
        return published

    async def pending(self) -> int:
        """Events waiting in the watched outboxes (for ops and tests)."""
        return sum([await pending_events(collection) for collection, _ in self.collections.values()])

    async def _publish_document(
        self, collection: AsyncCollection, document: dict[str, Any], settle: Settle | None, *, leased: bool = True
    ) -> int:
        entries = sorted(
            (document.get(OUTBOX) or {}).items(),
            key=lambda item: (item[1]["envelope"]["time"], item[1].get("order", 0)),
        )
        for _, entry in entries:
            await self.publisher.publish_stored(entry)
        await self._forget_intent(collection, document["_id"])
        if leased:
            await leases_of(collection).delete_one({"_id": document["_id"], "owner": self.owner})
        if settle is not None:
            await settle(collection, document)
        return len(entries)

    async def _forget_intent(self, collection: AsyncCollection, key: Any) -> None:
        await pending_of(collection).delete_one({"_id": key})

    async def _take_lease(self, collection: AsyncCollection, key: Any) -> bool:
        leases = leases_of(collection)
        now = self.clock()
        for _ in range(2):
            if await insert_once(leases, {"_id": key, "owner": self.owner, "until": now + self.lease}):
                return True
            expired = await leases.delete_one({"_id": key, "until": {"$lt": now}})
            if expired.deleted_count == 0:
                return False
        return False

    async def _hold_lease(self, collection: AsyncCollection, key: Any) -> None:
        """Keep the document leased until the next sweep: then it is retried."""
        until = self.clock() + timedelta(seconds=self.sweep_seconds)
        await leases_of(collection).update_one({"_id": key, "owner": self.owner}, {"$set": {"until": until}})

    async def _release_quietly(self, collection: AsyncCollection, key: Any) -> None:
        try:
            await leases_of(collection).delete_one({"_id": key, "owner": self.owner})
        except Exception:  # database down too: the lease expires by itself
            pass
