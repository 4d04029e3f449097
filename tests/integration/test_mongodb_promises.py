"""The promises of MongoDB that Kring's store rests on, checked on whatever MONGODB_URL names
(the local mongo-java-server here, `mongo:7` through testcontainers where Docker runs).

These are the statements shared/store.py, shared/outbox.py and the services may rely on:
nothing else about the server. FerretDB v1.24.2 on SQLite, run once against this file, failed
the first two (68 of 800 updates kept; 148 "wins" for 24 increments), the `$slice` and the
partial `$pull`.

1. Acknowledged concurrent updates of one document are all kept.
2. A conditional update (`{_id, version: v}`) wins for exactly one of N racing writers, and
   the number of wins equals the number of increments.
3. Inserts racing on a unique `_id`, or on a unique secondary index, have exactly one winner.
4. `$push` (with `$each`/`$slice`), `$pull` with a partial sub-document condition, upsert and
   `find_one_and_update(return_document=AFTER)` give MongoDB's documented results.
5. Every acknowledged write is there after the server is killed with SIGKILL and restarted
   (only where the server is a local one the test may restart).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from tests.support.localmongo import LocalMongo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

WRITERS = 16


@pytest.fixture
async def collection(mongodb_url: str) -> AsyncIterator[AsyncCollection]:
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True)
    database = f"kring_promises_{uuid.uuid4().hex[:8]}"
    try:
        yield client[database]["documents"]
    finally:
        await client.drop_database(database)
        await client.close()


async def test_acknowledged_concurrent_updates_of_one_document_are_all_kept(collection: AsyncCollection) -> None:
    await collection.insert_one({"_id": "one", "count": 0, "seen": []})

    async def writer(number: int) -> None:
        for step in range(50):
            result = await collection.update_one({"_id": "one"}, {"$inc": {"count": 1}, "$push": {"seen": f"{number}:{step}"}})
            assert result.modified_count == 1

    await asyncio.gather(*(writer(number) for number in range(WRITERS)))
    document = await collection.find_one({"_id": "one"})
    assert document["count"] == WRITERS * 50
    assert len(set(document["seen"])) == WRITERS * 50


@pytest.mark.parametrize("how", ["update_one", "find_one_and_update"])
async def test_a_version_compare_and_set_has_exactly_one_winner_per_version(collection: AsyncCollection, how: str) -> None:
    # the store keeps a unique (_id, version) index: MongoDB answers the filter from _id alone,
    # mongo-java-server only with an index of exactly the filter's fields
    await collection.create_index([("_id", 1), ("version", 1)], unique=True)
    await collection.insert_one({"_id": "aggregate", "version": 0})
    wins = 0

    async def writer() -> None:
        nonlocal wins
        for _ in range(20):
            current = (await collection.find_one({"_id": "aggregate"}))["version"]
            change = {"$inc": {"version": 1}}
            if how == "update_one":
                won = (await collection.update_one({"_id": "aggregate", "version": current}, change)).modified_count == 1
            else:
                won = await collection.find_one_and_update({"_id": "aggregate", "version": current}, change) is not None
            wins += won

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    assert (await collection.find_one({"_id": "aggregate"}))["version"] == wins
    assert wins >= 20  # somebody won every round they all raced in


async def test_racing_inserts_on_a_unique_id_have_exactly_one_winner(collection: AsyncCollection) -> None:
    async def insert(number: int) -> bool:
        try:
            await collection.insert_one({"_id": "contested", "writer": number})
        except DuplicateKeyError:
            return False
        return True

    for _ in range(5):
        await collection.delete_many({})
        assert sum(await asyncio.gather(*(insert(number) for number in range(WRITERS)))) == 1


async def test_racing_inserts_on_a_unique_secondary_index_have_exactly_one_winner(collection: AsyncCollection) -> None:
    await collection.create_index([("reference", 1)], unique=True)

    async def insert(round_: int, number: int) -> bool:
        try:
            await collection.insert_one({"_id": f"{round_}:{number}", "reference": f"ref-{round_}"})
        except DuplicateKeyError:
            return False
        return True

    for round_ in range(5):
        assert sum(await asyncio.gather(*(insert(round_, number) for number in range(WRITERS)))) == 1
    assert await collection.count_documents({}) == 5


async def test_push_with_each_and_slice_keeps_the_newest(collection: AsyncCollection) -> None:
    await collection.insert_one({"_id": "list", "items": [1, 2, 3]})
    await collection.update_one({"_id": "list"}, {"$push": {"items": {"$each": [4, 5, 6], "$slice": -4}}})
    assert (await collection.find_one({"_id": "list"}))["items"] == [3, 4, 5, 6]


async def test_pull_with_a_partial_sub_document_condition(collection: AsyncCollection) -> None:
    outbox = [{"id": "e1", "kind": "a"}, {"id": "e2", "kind": "b"}, {"id": "e3", "kind": "a"}]
    await collection.insert_one({"_id": "doc", "outbox": outbox})
    await collection.update_one({"_id": "doc"}, {"$pull": {"outbox": {"id": {"$in": ["e1", "e2"]}}}})
    assert (await collection.find_one({"_id": "doc"}))["outbox"] == [{"id": "e3", "kind": "a"}]
    await collection.update_one({"_id": "doc"}, {"$pull": {"outbox": {"kind": "a"}}})
    assert (await collection.find_one({"_id": "doc"}))["outbox"] == []


async def test_upsert_inserts_once_then_updates(collection: AsyncCollection) -> None:
    first = await collection.update_one({"_id": "timer"}, {"$setOnInsert": {"due": 1}, "$inc": {"touched": 1}}, upsert=True)
    second = await collection.update_one({"_id": "timer"}, {"$setOnInsert": {"due": 2}, "$inc": {"touched": 1}}, upsert=True)
    assert (first.upserted_id, second.upserted_id, second.modified_count) == ("timer", None, 1)
    assert await collection.find_one({"_id": "timer"}) == {"_id": "timer", "due": 1, "touched": 2}


async def test_find_one_and_update_returns_the_document_after_the_change(collection: AsyncCollection) -> None:
    await collection.insert_one({"_id": "claim", "owner": None, "version": 3})
    after = await collection.find_one_and_update(
        {"_id": "claim", "owner": None}, {"$set": {"owner": "relay-1"}, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": "claim", "owner": "relay-1", "version": 4}
    assert await collection.find_one_and_update({"_id": "claim", "owner": None}, {"$set": {"owner": "relay-2"}}) is None


async def test_every_acknowledged_write_survives_a_kill_of_the_server(collection: AsyncCollection, mongodb_url: str) -> None:
    server = LocalMongo.find(mongodb_url)
    if server is None:
        pytest.skip(f"{mongodb_url} is not a local mongo-local process this test may kill and restart")
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def writer(number: int) -> None:
        step = 0
        while not stop.is_set():
            document_id = f"{number}:{step}"
            try:
                await collection.insert_one({"_id": document_id, "padding": "x" * 2000})
            except Exception:  # the server is gone: what was not acknowledged may be lost
                return
            acknowledged.append(document_id)
            step += 1

    writers = [asyncio.create_task(writer(number)) for number in range(WRITERS)]
    await asyncio.sleep(1.5)  # under the second that H2 keeps unwritten by itself
    await asyncio.to_thread(server.kill)
    stop.set()
    await asyncio.gather(*writers)
    await asyncio.to_thread(server.start)
    kept = {document["_id"] async for document in collection.find({}, {"_id": 1})}
    assert len(acknowledged) > 100, "the writers barely ran before the kill"
    assert sorted(set(acknowledged) - kept) == []
