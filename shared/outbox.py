"""The transactional outbox, without multi-document transactions.

Events caused by a state change are written in the SAME insert as the change (see
shared.store): `outbox.<event id>` holds each pending event (`publisher.stored_form`)
and `outbox_count` counts them (indexed, so pending work is found without a scan).
`OutboxRelay` publishes them with confirms, then clears them. A crash between publish
and clearing republishes later; consumers are idempotent, so that has no second effect.

Right after a write the writer's own relay publishes that document, found by `_id` (the
only lookup FerretDB answers from an index), without a lease: nobody else publishes a
document that young. Every `sweep_seconds` the relay also scans for documents with
pending events older than `sweep_seconds` (crash recovery, broker outages, replicas that
died), under a lease. Versions of one aggregate are published in version order.

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
from pymongo.errors import DuplicateKeyError

from shared.contract.envelope import Envelope
from shared.logging import get_logger
from shared.messaging.publisher import EventPublisher, PublishFailed, stored_form
from shared.mongo import IndexSpec

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
    return [IndexSpec(collection, [(COUNT, 1)])]


def leases_of(collection: AsyncCollection) -> AsyncCollection:
    return collection.database[f"{collection.name}.leases"]


class OutboxRelay:
    """Publishes pending outbox events of the watched collections.

    Woken right after a write (`notify`) and sweeping every `sweep_seconds` for work
    left by a crash, by a broker outage or by another replica.
    """

    BATCH = 100

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
        self._hot: dict[str, set[str]] = {}  # collection full name -> document ids just written
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def watch(self, collection: AsyncCollection, settle: Settle | None = None) -> None:
        """Publish `collection`'s outboxes; `settle(collection, document)` runs after a
        document's events are published and cleared (e.g. to delete it if superseded)."""
        self.collections[collection.full_name] = (collection, settle)

    def notify(self, collection: AsyncCollection | None = None, document_id: str | None = None) -> None:
        """A document with pending events was just written: publish it now. Without
        arguments: sweep now."""
        if collection is not None and document_id is not None:
            self._hot.setdefault(collection.full_name, set()).add(document_id)
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
        """Publish the documents `notify` named, by `_id`, aggregates side by side and each
        aggregate's versions in order."""
        published = 0
        while self._hot:
            hot, self._hot = self._hot, {}
            for full_name, document_ids in hot.items():
                collection, settle = self.collections[full_name]
                by_key: dict[str, list[str]] = {}
                for document_id in sorted(document_ids):  # key:<zero-padded version> sorts by version
                    by_key.setdefault(document_id.rpartition(":")[0], []).append(document_id)
                results = await asyncio.gather(
                    *(self._publish_in_order(collection, settle, ids) for ids in by_key.values())
                )
                published += sum(results)
        self.published += published
        return published

    async def _publish_in_order(self, collection: AsyncCollection, settle: Settle | None, document_ids: list[str]) -> int:
        published = 0
        for document_id in document_ids:
            document = await collection.find_one({"_id": document_id})
            if document is None or not document.get(COUNT):
                continue
            try:
                published += await self._publish_document(collection, document, settle, leased=False)
            except PublishFailed as error:  # the sweep retries it
                log.error("outbox event refused by the broker, holding it", error=str(error))
        return published

    async def _publish_leased(self, collection: AsyncCollection, settle: Settle | None, document_id: Any) -> int:
        """Publish one document's pending events under a lease; 0 if another relay holds it
        or nothing is pending. A broker refusal holds the lease until the next sweep."""
        if not await self._take_lease(collection, document_id):
            return 0
        # Read under the lease: another relay may have published it meanwhile.
        document = await collection.find_one({"_id": document_id})
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
        holds; returns the number of events published. A document whose events the broker refuses (e.g.
        unroutable) is held back until the next sweep and the others go on; any other
        failure (broker or database down) stops the drain and is raised."""
        published = 0
        for collection, settle in list(self.collections.values()):
            while True:
                candidates = [
                    document
                    async for document in collection.find(
                        {COUNT: {"$gt": 0}}, {"_id": 1, "key": 1, "version": 1, "committed_at": 1}
                    ).limit(self.BATCH)
                    if document.get("committed_at") is None or document["committed_at"] <= self.clock() - min_age
                ]
                # Older versions of an aggregate first: its events go out in order.
                candidates.sort(key=lambda d: (str(d.get("key", "")), d.get("version", 0), str(d["_id"])))
                progress = 0
                for candidate in candidates:
                    progress += await self._publish_leased(collection, settle, candidate["_id"])
                published += progress
                if not progress:
                    break
        self.published += published
        return published

    async def pending(self) -> int:
        """Events waiting in the watched outboxes (for ops and tests)."""
        total = 0
        for collection, _ in self.collections.values():
            async for document in collection.find({COUNT: {"$gt": 0}}, {COUNT: 1}):
                total += document[COUNT]
        return total

    async def _publish_document(
        self, collection: AsyncCollection, document: dict[str, Any], settle: Settle | None, *, leased: bool = True
    ) -> int:
        entries = sorted(
            (document.get(OUTBOX) or {}).items(),
            key=lambda item: (item[1]["envelope"]["time"], item[1].get("order", 0)),
        )
        for _, entry in entries:
            await self.publisher.publish_stored(entry)
        await self._clear(collection, document["_id"], [event_id for event_id, _ in entries])
        if leased:
            await leases_of(collection).delete_one({"_id": document["_id"], "owner": self.owner})
        if settle is not None:
            await settle(collection, document)
        return len(entries)

    async def _clear(self, collection: AsyncCollection, key: Any, event_ids: list[str]) -> None:
        update: dict[str, Any] = {"$set": {COUNT: 0}}
        if event_ids:
            update["$unset"] = {f"{OUTBOX}.{event_id}": "" for event_id in event_ids}
        await collection.update_one({"_id": key}, update)

    async def _take_lease(self, collection: AsyncCollection, key: Any) -> bool:
        leases = leases_of(collection)
        now = self.clock()
        for _ in range(2):
            try:
                await leases.insert_one({"_id": key, "owner": self.owner, "until": now + self.lease})
                return True
            except DuplicateKeyError:
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
