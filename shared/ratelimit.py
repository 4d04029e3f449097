"""Rate-limit counters that every replica of a service shares, in the service's database.

The `limits` library's own MongoDB storage needs motor (async) and updates with an
aggregation pipeline, which the project's local MongoDB-protocol server refuses; this
storage gives `limits`' fixed-window strategy the counters it needs with plain operations
on the service's own PyMongo async client (connecting on first use, like every store).
"""

from datetime import UTC, datetime, timedelta

from limits.aio.storage import Storage
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from .errors import ConcurrencyConflict


class MongoCounters(Storage):
    """One document per counter: {_id: key, count, expireAt}; a TTL index removes the old."""

    STORAGE_SCHEME = ["kring+mongodb"]

    def __init__(self, collection: AsyncCollection) -> None:
        super().__init__()
        self.collection = collection
        self._indexed = False

    @property
    def base_exceptions(self) -> type[Exception]:
        return PyMongoError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        if not self._indexed:
            await self.collection.create_index("expireAt", expireAfterSeconds=0)
            self._indexed = True
        for _ in range(5):
            now = datetime.now(UTC)
            # A running window: count on.
            counter = await self.collection.find_one_and_update(
                {"_id": key, "expireAt": {"$gt": now}}, {"$inc": {"count": amount}}, return_document=ReturnDocument.AFTER
            )
            if counter is not None:
                return int(counter["count"])
            fresh = {"count": amount, "expireAt": now + timedelta(seconds=expiry)}
            # A window that ran out (the TTL monitor only removes it later): start again.
            if await self.collection.find_one_and_update({"_id": key, "expireAt": {"$lte": now}}, {"$set": fresh}) is not None:
                return amount
            try:
                await self.collection.insert_one({"_id": key, **fresh})
                return amount
            except DuplicateKeyError:
                continue  # another replica started this window just now
        raise ConcurrencyConflict("a rate-limit counter stayed contested")

    async def get(self, key: str) -> int:
        counter = await self.collection.find_one({"_id": key, "expireAt": {"$gt": datetime.now(UTC)}})
        return int(counter["count"]) if counter else 0

    async def get_expiry(self, key: str) -> float:
        counter = await self.collection.find_one({"_id": key})
        expires = counter["expireAt"] if counter else datetime.now(UTC)
        return (expires if expires.tzinfo else expires.replace(tzinfo=UTC)).timestamp()

    async def check(self) -> bool:
        try:
            await self.collection.database.command("ping")
            return True
        except PyMongoError:
            return False

    async def reset(self) -> int | None:
        return (await self.collection.delete_many({})).deleted_count

    async def clear(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})
