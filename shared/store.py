"""Aggregates: one document each, changed by a compare-and-set on its version, with the
events each change causes kept in the same document until they are published.

An aggregate `key` of a store is the document

    {_id: key, version: n, state: {...}, applied: [message ids], outbox: [events], updated_at}

A change (`mutate`) reads the document, lets a pure rule decide on its state, and writes the
new state, the id of the message that caused it and the events it causes in ONE write:

- a new aggregate is inserted: of two writers creating the same key, the unique `_id` lets
  one win; the other reads the winner's document and decides again;
- an existing one is updated with the filter `{_id: key, version: n}`, setting version n+1:
  of two writers that decided on version n, one update matches and the other reads and
  decides again (tests/integration/test_mongodb_promises.py states both promises);
- a message whose id is in `applied` was applied before: nothing is done (`DUPLICATE`), so a
  redelivered or republished message has one effect;
- `outbox` holds each caused event until the relay (shared.outbox) has published it and
  pulled it out; a crash in between publishes it again, which the consumers' `applied`
  makes harmless.

Two implementations keep the same promises, checked by one contract suite
(tests/contract/store_contract.py): `MongoStore` (MongoDB 7 in production, the local
mongo-java-server here) and `MemoryStore` (shared.memory, for unit tests of handlers).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.contract.envelope import Envelope
from shared.domain import Change
from shared.errors import ConcurrencyConflict, RuleViolation
from shared.messaging.publisher import stored_form
from shared.mongo import IndexSpec

S = TypeVar("S", bound=BaseModel)

Clock = Callable[[], datetime]
Decide = Callable[[S | None], Change[S] | None]
Filter = Mapping[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Result(StrEnum):
    APPLIED = "applied"  # the change and its events were stored
    UNCHANGED = "unchanged"  # the rule wanted no change
    DUPLICATE = "duplicate"  # this message was applied before: nothing done


@dataclass(frozen=True)
class Mutation(Generic[S]):
    result: Result
    state: S | None
    version: int = 0
    events: Sequence[Envelope[Any]] = ()


class AlternateKeyTaken(RuleViolation):
    """Another aggregate already holds this alternate key (e.g. a bureau's reference)."""


@dataclass(frozen=True)
class Write:
    """One write of an aggregate, as both implementations apply it."""

    key: str
    version: int  # the version written; version - 1 is the one it was decided on
    state: dict[str, Any]
    applied: str | None  # the message id to record
    outbox: list[dict[str, Any]]  # events to publish
    alternate_key: str | None
    at: datetime


class OnEvents(Protocol):
    def __call__(self, store: "AggregateStore[Any]", key: str, entries: list[dict[str, Any]]) -> None: ...


def outbox_entry(envelope: Envelope[Any], order: int, at: datetime) -> dict[str, Any]:
    return {"id": envelope.id, "at": at, "order": order, **stored_form(envelope)}


class AggregateStore(ABC, Generic[S]):
    """What handlers and routes use. `find` filters are equalities (or `{"$in": [...]}`) on
    dotted paths of the state as stored (JSON: enums as values, dates as ISO text)."""

    MAX_ATTEMPTS = 50
    # Ids of applied messages kept per aggregate: redeliveries come within minutes or hours,
    # never after a thousand later changes to the same aggregate.
    MAX_APPLIED = 1000

    def __init__(
        self,
        name: str,
        state_type: type[S],
        *,
        source: str,
        clock: Clock = utc_now,
        alternate_key: Callable[[S], str | None] | None = None,
        on_events: OnEvents | None = None,
    ) -> None:
        self.name = name
        self.state_type = state_type
        self.source = source
        self.clock = clock
        self.alternate_key = alternate_key
        self.on_events = on_events

    # --- reading ---------------------------------------------------------------------------

    async def get(self, key: str) -> S | None:
        document = await self._read(key)
        return None if document is None else self._state(document)

    async def get_by_alternate_key(self, value: str) -> tuple[str, S] | None:
        document = await self._read_by_alternate_key(value)
        return None if document is None else (document["_id"], self._state(document))

    async def find(self, where: Filter | None = None) -> list[tuple[str, S]]:
        """(key, state) of every aggregate whose state matches `where`, by key."""
        documents = await self._find({f"state.{path}": condition for path, condition in (where or {}).items()})
        return sorted(((document["_id"], self._state(document)) for document in documents), key=lambda found: found[0])

    async def applied(self, key: str) -> list[str]:
        """Ids of the messages applied to `key`, oldest first (for tests and operations)."""
        document = await self._read(key)
        return list(document["applied"]) if document else []

    # --- changing --------------------------------------------------------------------------

    async def mutate(
        self, key: str, decide: Decide[S], *, cause: Envelope[Any] | None = None, dedup_id: str | None = None, new_key: bool = False
    ) -> Mutation[S]:
        """Apply `decide` to aggregate `key`, once per `dedup_id` (default: the cause's id).

        `decide` must be pure: it runs again on the new state when writers race. None means
        no change; the message is still recorded as applied if the aggregate exists.
        `new_key`: the caller has just made the key up (a random case id), so there is
        nothing to read first; should it exist after all, the insert says so."""
        dedup_id = dedup_id or (cause.id if cause else None)
        for attempt in range(self.MAX_ATTEMPTS):
            document = None if new_key and attempt == 0 else await self._read(key)
            version = document["version"] if document else 0
            current = self._state(document) if document else None
            if dedup_id is not None and document is not None and dedup_id in document["applied"]:
                return Mutation(Result.DUPLICATE, current, version)
            change = decide(current)
            if change is None and (document is None or dedup_id is None):
                return Mutation(Result.UNCHANGED, current, version)
            new_state = change.state if change else current
            assert new_state is not None
            now = self.clock()
            envelopes = [Envelope.wrap(event, source=self.source, cause=cause, time=now) for event in (change.events if change else ())]
            entries = [outbox_entry(envelope, order, now) for order, envelope in enumerate(envelopes)]
            alternate = self.alternate_key(new_state) if self.alternate_key else None
            write = Write(key, version + 1, new_state.model_dump(mode="json"), dedup_id, entries, alternate, now)
            if not await (self._insert(write) if document is None else self._update(write)):
                continue  # another writer changed it first: decide again on its version
            if entries and self.on_events is not None:
                self.on_events(self, key, entries)
            return Mutation(Result.APPLIED if change else Result.UNCHANGED, new_state, version + 1, envelopes)
        raise ConcurrencyConflict(f"{self.name} {key} changed {self.MAX_ATTEMPTS} times while deciding")

    # --- the outbox, for the relay (shared.outbox) ------------------------------------------

    @abstractmethod
    async def outbox_due(self, before: datetime) -> list[str]:
        """Keys of the aggregates holding an event written at or before `before`."""

    @abstractmethod
    async def lease_outbox(self, key: str, owner: str, *, now: datetime, until: datetime) -> list[dict[str, Any]] | None:
        """Hold `key`'s outbox for `owner` until `until` (unless another owner's lease still
        runs at `now`: then None); returns the events in it, oldest first."""

    @abstractmethod
    async def settle(self, published: Mapping[str, Sequence[str]], owner: str | None = None) -> None:
        """Pull the published events out of the outboxes ({key: event ids}), and end
        `owner`'s leases on those keys."""

    @abstractmethod
    async def outbox_size(self) -> int:
        """Events waiting to be published (for operations and tests)."""

    @abstractmethod
    async def outbox_oldest(self) -> datetime | None:
        """When the oldest event waiting to be published was written (None: none waits)."""

    # --- what each implementation provides -------------------------------------------------

    @abstractmethod
    async def _read(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def _read_by_alternate_key(self, value: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def _find(self, query: Filter) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def _insert(self, write: Write) -> bool:
        """Create the aggregate; False if it exists already. AlternateKeyTaken if another
        aggregate holds the alternate key."""

    @abstractmethod
    async def _update(self, write: Write) -> bool:
        """Apply the write if the stored version is still `write.version - 1`."""

    def _state(self, document: Mapping[str, Any]) -> S:
        return self.state_type.model_validate(document["state"])


def new_document(write: Write) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_id": write.key,
        "version": write.version,
        "state": write.state,
        "applied": [write.applied] if write.applied else [],
        "outbox": write.outbox,
        "updated_at": write.at,
    }
    if write.alternate_key is not None:
        document["alternate_key"] = write.alternate_key
    return document


class MongoStore(AggregateStore[S]):
    """An AggregateStore in a MongoDB collection."""

    def __init__(self, collection: AsyncCollection, state_type: type[S], **options: Any) -> None:
        super().__init__(collection.name, state_type, **options)
        self.collection = collection

    def indexes(self, queried: Iterable[Sequence[str]] = ()) -> list[IndexSpec]:
        """The indexes this store's queries need: the compare-and-set,
        the alternate key, the relay's sweep, and one per list the service queries
        (`queried`: state paths). On the local mongo-java-server only unique indexes are
        used, and only by a filter of exactly their fields: without the unique `(_id,
        version)` index its compare-and-set scans the collection (19 ms instead of 1.5 ms at
        50,000 documents, bench.lookup), while MongoDB answers it from `_id` alone. Its
        lists and sweeps scan (about 6 µs a document); MongoDB uses the other indexes."""
        name = self.collection.name
        return [
            IndexSpec(name, [("_id", 1), ("version", 1)], unique=True),
            IndexSpec(name, [("alternate_key", 1)], unique=True, options={"sparse": True}),
            IndexSpec(name, [("outbox.at", 1)]),
            *(IndexSpec(name, [(f"state.{path}", 1) for path in paths]) for paths in queried),
        ]

    async def _read(self, key: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": key})

    async def _read_by_alternate_key(self, value: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"alternate_key": value})

    async def _find(self, query: Filter) -> list[dict[str, Any]]:
        return await self.collection.find(dict(query)).to_list()

    async def _insert(self, write: Write) -> bool:
        try:
            await self.collection.insert_one(new_document(write))
        except DuplicateKeyError:
            if await self._read(write.key) is not None:
                return False
            raise AlternateKeyTaken(f"{self.name}: the alternate key is taken") from None
        return True

    async def _update(self, write: Write) -> bool:
        update: dict[str, Any] = {"$set": {"version": write.version, "state": write.state, "updated_at": write.at}}
        if write.alternate_key is not None:
            update["$set"]["alternate_key"] = write.alternate_key
        elif self.alternate_key is not None:  # the state no longer has one (erased): neither has the document
            update["$unset"] = {"alternate_key": ""}
        pushed: dict[str, Any] = {}
        if write.applied:
            pushed["applied"] = {"$each": [write.applied], "$slice": -self.MAX_APPLIED}
        if write.outbox:
            pushed["outbox"] = {"$each": write.outbox}
        if pushed:
            update["$push"] = pushed
        result = await self.collection.update_one({"_id": write.key, "version": write.version - 1}, update)
        return result.matched_count == 1

    async def outbox_due(self, before: datetime) -> list[str]:
        return sorted([document["_id"] async for document in self.collection.find({"outbox.at": {"$lte": before}}, {"_id": 1})])

    async def lease_outbox(self, key: str, owner: str, *, now: datetime, until: datetime) -> list[dict[str, Any]] | None:
        free = {"$or": [{"lease.until": {"$lt": now}}, {"lease": None}, {"lease.owner": owner}]}
        document = await self.collection.find_one_and_update(
            {"_id": key, **free}, {"$set": {"lease": {"owner": owner, "until": until}}}, projection={"outbox": 1}
        )
        return None if document is None else sorted(document["outbox"], key=lambda entry: (entry["at"], entry["order"]))

    async def settle(self, published: Mapping[str, Sequence[str]], owner: str | None = None) -> None:
        operations = [UpdateOne({"_id": key}, {"$pull": {"outbox": {"id": {"$in": list(ids)}}}}) for key, ids in published.items() if ids]
        if owner is not None:
            operations += [UpdateOne({"_id": key, "lease.owner": owner}, {"$unset": {"lease": ""}}) for key in published]
        if operations:  # one command for all: the server commits them together
            await self.collection.bulk_write(operations, ordered=False)

    async def outbox_size(self) -> int:
        return sum([len(document["outbox"]) async for document in self.collection.find({"outbox.0": {"$exists": True}}, {"outbox.id": 1})])

    async def outbox_oldest(self) -> datetime | None:
        # The relay's sweep index: an array sorts by its smallest element.
        document = await self.collection.find_one({"outbox.at": {"$exists": True}}, {"outbox.at": 1}, sort=[("outbox.at", 1)])
        return min((entry["at"] for entry in document["outbox"]), default=None) if document else None
