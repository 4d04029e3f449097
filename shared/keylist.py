"""A short list of aggregate keys to look at, kept beside a store, read without a query.

On FerretDB v1 every query other than a lookup by `_id` reads the whole collection, and a
store's collection holds every version of every aggregate ever written. A sweep or a pass
that must find "the cases waiting" or "the checks scheduled" among them costs more with
every case handled. A KeyList is a collection of its own with one tiny document per key
(`_id` = the key): listing it reads only the few keys on it, and each aggregate is then
read from its store by `_id`.

A KeyList is a hint, never the truth: add a key before the change that makes it belong
(a crash in between leaves a key too many, which the reader checks and removes), remove
it after the change that ends it. What only a lost write could leave out (data from
before the list existed, say, or a reader that removed a key just as a writer made it
belong again) is put back by `complete`, from a query of the store; a service does that
every KRING_KEY_LIST_COMPLETION_SECONDS, the first time at a random point of the period
(`every(..., spread=True)`). A completion reads every version in the store: at 10,000
cases in the fault run that kept FerretDB on SQLite busy for minutes.
"""

from pymongo.asynchronous.collection import AsyncCollection

from shared.mongo import insert_once


class KeyList:
    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection

    async def add(self, key: str) -> bool:
        """Put `key` on the list; whether it was missing."""
        return await insert_once(self.collection, {"_id": key})

    async def remove(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})

    async def keys(self) -> list[str]:
        return sorted([entry["_id"] async for entry in self.collection.find({})])

    async def complete(self, keys: list[str]) -> int:
        """Add every one of `keys` (found by a query of the store); how many were missing."""
        return sum([await self.add(key) for key in keys])
