"""The outbox relay: publishes the events each change left in its aggregate's document.

A change and the events it causes are one write (shared.store): the events wait in the
document's `outbox`. The relay publishes them with confirms and then pulls them out
(`settle`). A crash in between publishes them again later; consumers record the ids of the
messages they applied, so that has no second effect.

- Right after a write the store hands the relay the new events (`notify`): they are
  published from memory, without reading anything, and settled in one command per store
  for every document published in that round.
- Every `sweep_seconds` (or ten times as long as the last sweep took, if that is more) the
  relay asks each store for events older than that (left by a crash, a broker outage, or a
  replica that died) and publishes them under a lease on the document, so that of several
  replicas sweeping one store only one publishes a document. A lease past its time (its
  relay died) is taken over.
- An aggregate's events go out in the order they were written; a broker refusal (say,
  unroutable) holds that aggregate's events back until the next sweep, the others go on.
"""

import asyncio
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from shared.logging import get_logger
from shared.messaging.publisher import EventPublisher, PublishFailed
from shared.store import AggregateStore, Clock, utc_now

log = get_logger("kring.outbox")

Entries = list[dict[str, Any]]
SWEEP_SHARE = 10  # a sweep waits at least ten times as long as the last one took


class OutboxRelay:
    def __init__(
        self,
        publisher: EventPublisher,
        stores: Iterable[AggregateStore[Any]] = (),
        *,
        sweep_seconds: float = 5.0,
        lease_seconds: float = 30.0,
        clock: Clock = utc_now,
    ) -> None:
        self.publisher = publisher
        self.stores: dict[str, AggregateStore[Any]] = {}
        for store in stores:
            self.watch(store)
        self.sweep_seconds = sweep_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._hot: dict[str, dict[str, Entries]] = {}  # store name -> key -> events just written
        self._sweep_due = True
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.swept = asyncio.Event()  # set once a sweep has run (for operations and benchmarks)

    def watch(self, store: AggregateStore[Any]) -> None:
        self.stores[store.name] = store

    def notify(self, store: AggregateStore[Any], key: str, entries: Entries) -> None:
        """These events were just written to `store`'s aggregate `key`: publish them now."""
        self._hot.setdefault(store.name, {}).setdefault(key, []).extend(entries)
        self._wake.set()

    def sweep_soon(self) -> None:
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

    async def _run(self) -> None:
        backoff = 0.0
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, next_sweep - loop.time()))
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.publish_hot()
                if self._sweep_due or loop.time() >= next_sweep:
                    self._sweep_due = False
                    started = loop.time()
                    await self.drain(min_age=timedelta(seconds=self.sweep_seconds))
                    # A sweep takes a tenth of the relay's time at most. MongoDB answers it from
                    # an index in milliseconds; the local mongo-java-server scans the collection
                    # for it (about 6 µs a stored document: 6 s at 1,000,000), so there sweeps
                    # come less often as the collection grows, instead of holding it locked.
                    next_sweep = loop.time() + max(self.sweep_seconds, SWEEP_SHARE * (loop.time() - started))
                    self.swept.set()
                backoff = 0.0
            except Exception as error:  # broker or database down: the events stay, retry
                backoff = min(max(backoff * 2, 0.5), self.sweep_seconds)
                log.warning("outbox relay failed, will retry", error=type(error).__name__, detail=str(error)[:200], retry_in=backoff)
                self.sweep_soon()

    async def publish_hot(self) -> int:
        """Publish what `notify` handed over: aggregates side by side, each one's events in
        order. What fails stays in the outbox for the sweep."""
        published = 0
        while self._hot:
            hot, self._hot = self._hot, {}
            try:
                for name, by_key in hot.items():
                    store = self.stores[name]
                    sent = await asyncio.gather(*(self._publish(key, entries) for key, entries in by_key.items()))
                    done = {key: ids for key, ids in zip(by_key, sent, strict=True) if ids}
                    await store.settle(done)
                    published += sum(len(ids) for ids in done.values())
            except BaseException:
                self._keep_hot(hot)  # broker or database away: tried again first, before the sweep
                raise
        self.published += published
        return published

    def _keep_hot(self, hot: dict[str, dict[str, Entries]]) -> None:
        """Put a round back in front of what came since (what it published already goes out
        again: consumers take it once)."""
        for name, by_key in hot.items():
            for key, entries in by_key.items():
                later = self._hot.setdefault(name, {}).get(key, [])
                self._hot[name][key] = [*entries, *later]

    async def _publish(self, key: str, entries: Entries) -> list[str]:
        """Publish in order until one is refused; the ids of those published."""
        sent = []
        for entry in entries:
            try:
                await self.publisher.publish_stored(entry)
            except PublishFailed as error:
                log.error("outbox event refused by the broker, holding it", error=str(error))
                break
            sent.append(entry["id"])
        return sent

    async def drain(self, min_age: timedelta = timedelta(0)) -> int:
        """Publish every event written at least `min_age` ago that no other live relay
        holds; returns how many. Raises what is not a broker refusal (broker or database
        down): the events stay."""
        published = 0
        for store in list(self.stores.values()):
            for key in await store.outbox_due(self.clock() - min_age):
                now = self.clock()
                entries = await store.lease_outbox(key, self.owner, now=now, until=now + self.lease)
                if entries is None:
                    continue  # another relay holds it
                ids = await self._publish(key, entries)
                if len(ids) < len(entries):  # refused: hold the lease until the next sweep
                    await store.settle({key: ids})
                    await store.lease_outbox(key, self.owner, now=now, until=now + timedelta(seconds=self.sweep_seconds))
                else:
                    await store.settle({key: ids}, owner=self.owner)
                published += len(ids)
        self.published += published
        return published

    async def pending(self) -> int:
        """Events waiting in the watched outboxes (for operations and tests)."""
        return sum([await store.outbox_size() for store in self.stores.values()])
