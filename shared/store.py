"""Aggregates as a chain of immutable snapshot documents, one per version.

Why a chain and not one document updated in place: FerretDB v1 (our MongoDB-protocol
server here) applies an update by reading the document, changing it in Go and
writing it back, so two concurrent conditional updates can both "succeed" and one is
lost (measured: 785 reported wins for 200 real increments). The one write it makes
atomic is an insert with a unique `_id`, on FerretDB and on MongoDB alike. So:

- version v+1 of aggregate `key` is the document ``_id = "<key>:<v+1 zero-padded>"``
  holding the whole state, the ids of every message applied so far (`applied`) and
  the events this change caused (`outbox`, see shared.outbox): state change, outbox
  and idempotency record are ONE insert;
- two writers deciding on version v race to insert v+1; exactly one wins, the other
  gets a duplicate key, re-reads and decides again on the new state;
- a redelivered or republished message finds its id in the latest `applied` and
  changes nothing;
- a superseded version is reduced to a tombstone (`_id`, key, version) once its
  outbox is empty, and the tombstone is deleted after TOMBSTONE_HOURS. Deleting at
  once would free its `_id` for a writer that read the version before it (ABA): that
  writer would then "win" a version that is already superseded. A writer that took
  longer than MAX_DECISION_SECONDS between reading and inserting reads again, so
  such a writer would need its insert in flight for an hour;
- queries over current state use `find_current`, which skips superseded versions.
"""

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.contract.envelope import Envelope
from shared.contract.events import Event
from shared.mongo import IndexSpec
from shared.outbox import COUNT, OUTBOX, new_outbox, outbox_indexes, utc_now

S = TypeVar("S", bound=BaseModel)

KEY = "key"
VERSION = "version"
STATE = "state"
APPLIED = "applied"
# Ids of applied messages kept per aggregate: redeliveries come within minutes or
# hours, never after a thousand later changes to the same aggregate.
MAX_APPLIED = 1000
MAX_DECISION_SECONDS = 60.0
TOMBSTONE_HOURS = 1.0
SUPERSEDED = "superseded"


def version_id(key: str, version: int) -> str:
    return f"{key}:{version:010d}"


@dataclass(frozen=True)
class Change(Generic[S]):
    """What `decide` wants: the new state and the events the change causes."""

    state: S
    events: Sequence[Event] = field(default_factory=tuple)


class Result(StrEnum):
    APPLIED = "applied"  # the change and its events were stored
    UNCHANGED = "unchanged"  # decide wanted no change
    DUPLICATE = "duplicate"  # this message was applied before: nothing done


@dataclass(frozen=True)
class Mutation(Generic[S]):
    result: Result
    state: S | None
    version: int = 0
    events: Sequence[Envelope[Any]] = ()


class ConcurrencyConflict(Exception):
    """Too many concurrent writers on one aggregate; the message will be retried."""


class AggregateStore(Generic[S]):
    MAX_ATTEMPTS = 50

    def __init__(
        self,
        collection: AsyncCollection,
        state_type: type[S],
        *,
        source: str,
        on_events: Callable[[], None] = lambda: None,
        clock: Callable[[], Any] = utc_now,
    ) -> None:
        self.collection = collection
        self.state_type = state_type
        self.source = source
        self.on_events = on_events
        self.clock = clock

    @staticmethod
    def indexes(collection: str) -> list[IndexSpec]:
        return [IndexSpec(collection, [(KEY, 1), (VERSION, -1)]), *outbox_indexes(collection)]

    async def latest(self, key: str) -> dict[str, Any] | None:
        return await self.collection.find_one({KEY: key}, sort=[(VERSION, DESCENDING)])

    async def get(self, key: str) -> S | None:
        document = await self.latest(key)
        return None if document is None else self._state(document)

    async def find_current(self, state_filter: Mapping[str, Any]) -> AsyncIterator[tuple[str, S]]:
        """(key, state) of every aggregate whose CURRENT version matches `state_filter`
        (a query on `state.<field>` paths). Superseded versions that still match are
        skipped: each candidate is checked against its aggregate's latest version."""
        async for candidate in self.collection.find(dict(state_filter), {KEY: 1, VERSION: 1}):
            latest = await self.latest(candidate[KEY])
            if latest is not None and latest[VERSION] == candidate[VERSION]:
                yield candidate[KEY], self._state(latest)

    async def mutate(
        self,
        key: str,
        decide: Callable[[S | None], Change[S] | None],
        *,
        cause: Envelope[Any] | None = None,
        dedup_id: str | None = None,
    ) -> Mutation[S]:
        """Apply `decide` to aggregate `key`, once per `dedup_id` (default: cause.id).

        `decide` must be pure: it runs again on the new state when writers race.
        Returning None means no change (the message is still recorded as applied).
        """
        dedup_id = dedup_id or (cause.id if cause else None)
        for _ in range(self.MAX_ATTEMPTS):
            read_at = time.monotonic()
            document = await self.latest(key)
            version = document[VERSION] if document else 0
            applied: list[str] = list(document[APPLIED]) if document else []
            current = self._state(document) if document else None
            if dedup_id is not None and dedup_id in applied:
                return Mutation(Result.DUPLICATE, current, version)
            change = decide(current)
            if change is None and (document is None or dedup_id is None):
                return Mutation(Result.UNCHANGED, current, version)
            envelopes = [
                Envelope.wrap(event, source=self.source, cause=cause, time=self.clock())
                for event in (change.events if change else ())
            ]
            new_state = change.state if change else current
            assert new_state is not None
            if dedup_id is not None:
                applied = [*applied, dedup_id][-MAX_APPLIED:]
            if time.monotonic() - read_at > MAX_DECISION_SECONDS:
                continue  # what we read may be long superseded: read again
            try:
                await self.collection.insert_one(
                    {
                        "_id": version_id(key, version + 1),
                        KEY: key,
                        VERSION: version + 1,
                        STATE: new_state.model_dump(mode="json"),
                        APPLIED: applied,
                        "committed_at": self.clock(),
                        **new_outbox(envelopes),
                    }
                )
            except DuplicateKeyError:  # another writer took version + 1: decide again
                continue
            if envelopes:
                self.on_events()
            await self.prune(key, version + 1)
            result = Result.APPLIED if change is not None else Result.UNCHANGED
            return Mutation(result, new_state, version + 1, envelopes)
        raise ConcurrencyConflict(f"aggregate {key} changed {self.MAX_ATTEMPTS} times while deciding")

    async def prune(self, key: str, below_version: int) -> None:
        """Tombstone superseded versions whose events are all published; delete old tombstones."""
        now = self.clock()
        await self.collection.update_many(
            {KEY: key, VERSION: {"$lt": below_version}, COUNT: 0, SUPERSEDED: {"$exists": False}},
            {"$unset": {STATE: "", APPLIED: "", OUTBOX: ""}, "$set": {SUPERSEDED: now}},
        )
        expired = now - timedelta(hours=TOMBSTONE_HOURS)
        await self.collection.delete_many({KEY: key, SUPERSEDED: {"$lt": expired}})

    async def settle(self, collection: AsyncCollection, document: Mapping[str, Any]) -> None:
        """After the relay published a version's events: tombstone it if superseded."""
        newer = await collection.find_one({KEY: document[KEY], VERSION: {"$gt": document[VERSION]}}, {"_id": 1})
        if newer is not None:
            await self.prune(document[KEY], document[VERSION] + 1)

    def _state(self, document: Mapping[str, Any]) -> S:
        return self.state_type.model_validate(document[STATE])
