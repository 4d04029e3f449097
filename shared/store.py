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
- versions are never deleted: the chain is the aggregate's history, and deleting a
  version would free its `_id` for a writer that read the version before it (ABA),
  which would then "win" a version that is already superseded;
- the hot path only inserts: FerretDB v1.24 on SQLite keeps inserts fast at any size (0.4 ms
  at 10,000 documents) but scans the collection for every read, update and delete, even
  by `_id` (its `_id` index is on sjson->"_id", its queries ask for sjson->'$._id'; a
  find for a missing `_id` took 86 ms at 10,000 documents). So snapshots are never
  updated (see shared.outbox), and a writer does not read before it writes when it can
  guess: it decides on the version it last wrote or read of that aggregate (kept for the
  most recent `CACHED_AGGREGATES`), or, for a key it has never seen, on "no aggregate
  yet", and inserts. A stale guess hits the duplicate key; then it reads and decides again;
- reading the latest version probes `key:<v>` from the highest version this process has
  seen (versions only grow), else doubles then bisects;
- queries over current state use `find_current`, which skips superseded versions
  (a scan: for lists and sweeps, not for the hot path).
"""

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.contract.envelope import Envelope
from shared.contract.events import Event
from shared.mongo import IndexSpec
from shared.outbox import new_outbox, outbox_indexes, record_intent, utc_now

S = TypeVar("S", bound=BaseModel)

KEY = "key"
VERSION = "version"
STATE = "state"
APPLIED = "applied"
# Ids of applied messages kept per aggregate: redeliveries come within minutes or
# hours, never after a thousand later changes to the same aggregate.
MAX_APPLIED = 1000
MAX_DECISION_SECONDS = 60.0
CACHED_AGGREGATES = 20_000


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
        on_events: Callable[[AsyncCollection, dict[str, Any]], None] = lambda collection, document: None,
        clock: Callable[[], Any] = utc_now,
    ) -> None:
        self.collection = collection
        self.state_type = state_type
        self.source = source
        self.on_events = on_events
        self.clock = clock
        self._seen: dict[str, int] = {}  # key -> a version known to exist (a lower bound of the latest)
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()  # key -> newest version known here (may be stale)

    @staticmethod
    def indexes(collection: str) -> list[IndexSpec]:
        return [IndexSpec(collection, [(KEY, 1), (VERSION, -1)]), *outbox_indexes(collection)]

    async def latest(self, key: str) -> dict[str, Any] | None:
        known = self._seen.get(key, 0) or await self._highest_by_search(key)
        if known == 0:
            return None
        cached = self._last.get(key)
        # versions are never rewritten: one this store wrote or read is still that version,
        # and on FerretDB v1 every read by _id scans the collection
        document = cached if cached is not None and cached[VERSION] == known else await self._version(key, known)
        assert document is not None, "versions are never deleted"
        while (newer := await self._version(key, known + 1)) is not None:
            document, known = newer, known + 1
        self._keep(key, document)
        return document

    async def _version(self, key: str, version: int) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": version_id(key, version)})

    async def _highest_by_search(self, key: str) -> int:
        """The highest existing version with O(log n) `_id` probes (versions are 1..n)."""
        if await self._version(key, 1) is None:
            return 0
        low, high = 1, 2
        while await self._version(key, high) is not None:
            low, high = high, high * 2
        while high - low > 1:  # low exists, high does not
            middle = (low + high) // 2
            if await self._version(key, middle) is not None:
                low = middle
            else:
                high = middle
        return low

    def _keep(self, key: str, document: dict[str, Any]) -> None:
        self._last[key] = document
        self._last.move_to_end(key)
        if len(self._last) > CACHED_AGGREGATES:
            self._last.popitem(last=False)
        self._remember(key, document[VERSION])

    async def _basis(self, key: str, attempt: int) -> tuple[dict[str, Any] | None, bool]:
        """The version to decide on, and whether it is a guess (the insert will tell)."""
        if attempt == 0 and key in self._last:
            return self._last[key], True
        if attempt == 0 and key not in self._seen:
            return None, True
        return await self.latest(key), False

    def _remember(self, key: str, version: int) -> None:
        if len(self._seen) > 100_000:
            self._seen.clear()
        if version > self._seen.get(key, 0):
            self._seen[key] = version

    async def get(self, key: str) -> S | None:
        document = await self.latest(key)
        return None if document is None else self._state(document)

    async def find_current(self, state_filter: Mapping[str, Any]) -> AsyncIterator[tuple[str, S]]:
        """(key, state) of every aggregate whose CURRENT version matches `state_filter`
        (a query on `state.<field>` paths). Superseded versions that still match are skipped.
        A writer can supersede the newest matching version the first query saw: then the
        newer version is matched against the filter, so the aggregate is not lost.

        Three queries however many aggregates match (the key index answers the second on
        MongoDB): on FerretDB v1 every query scans the collection, so reading each match's
        latest version one by one cost two scans per aggregate, and a listing of a few
        hundred waiting cases held a handler for minutes under load."""
        newest_matching = await self._newest_versions(dict(state_filter))
        if not newest_matching:
            return
        newest = await self._newest_versions({KEY: {"$in": sorted(newest_matching)}})
        still_current = [version_id(key, seen) for key, seen in newest_matching.items() if newest[key] == seen]
        superseded = [version_id(key, newest[key]) for key, seen in newest_matching.items() if newest[key] != seen]
        wanted = {"$or": [{"_id": {"$in": still_current}}, {**state_filter, "_id": {"$in": superseded}}]}
        async for document in self.collection.find(wanted):
            self._keep(document[KEY], document)
            yield document[KEY], self._state(document)

    async def _newest_versions(self, query: Mapping[str, Any]) -> dict[str, int]:
        """The highest version number per key among the versions `query` matches."""
        newest: dict[str, int] = {}
        async for version in self.collection.find(query, {KEY: 1, VERSION: 1}):
            newest[version[KEY]] = max(version[VERSION], newest.get(version[KEY], 0))
        return newest

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
        for attempt in range(self.MAX_ATTEMPTS):
            read_at = time.monotonic()
            document, guessed = await self._basis(key, attempt)
            version = document[VERSION] if document else 0
            applied: list[str] = list(document[APPLIED]) if document else []
            current = self._state(document) if document else None
            if dedup_id is not None and dedup_id in applied:
                return Mutation(Result.DUPLICATE, current, version)
            try:
                change = decide(current)
            except Exception:
                if guessed:
                    continue  # a rule refused the guessed state: decide on the real latest version
                raise
            if change is None and guessed:
                continue  # "no change" must be decided on the real latest version
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
            document = {
                "_id": version_id(key, version + 1),
                KEY: key,
                VERSION: version + 1,
                STATE: new_state.model_dump(mode="json"),
                APPLIED: applied,
                "committed_at": self.clock(),
                **new_outbox(envelopes),
            }
            if envelopes:
                await record_intent(self.collection, document["_id"], document["committed_at"])
            try:
                await self.collection.insert_one(document)
            except DuplicateKeyError:  # another writer took version + 1 (or the guess was stale): decide again
                self._last.pop(key, None)
                continue
            self._keep(key, document)
            if envelopes:
                self.on_events(self.collection, document)
            result = Result.APPLIED if change is not None else Result.UNCHANGED
            return Mutation(result, new_state, version + 1, envelopes)
        raise ConcurrencyConflict(f"aggregate {key} changed {self.MAX_ATTEMPTS} times while deciding")

    def _state(self, document: Mapping[str, Any]) -> S:
        return self.state_type.model_validate(document[STATE])
