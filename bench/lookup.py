"""Benchmark 6, lookups: does finding one document cost the same however many are stored?

    python -m bench.lookup [--sizes 5000,50000] [--lookups 50]

For each size, in a fresh collection of that many case-sized documents, times lookups
  - by `_id`, of present and of missing documents;
  - by a field with a unique index (`reference`);
  - by a field with a non-unique index (`stage`, the shape of a list over current state);
  - by the version compare-and-set filter `{_id, version}`, without and with a unique
    `(_id, version)` index.
Ratios largest/smallest size: about 1 where the server answers from an index (MongoDB for
all of them), about the size ratio where it scans. mongo-java-server, the local server here,
uses an index only for a filter whose fields are exactly the index's, and ignores non-unique
indexes (../shared/MONGODB_SERVER.md): this shows which of Kring's queries that costs.
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from bench.report import print_result
from bench.servers import server_urls

BATCH = 1000
STAGES = ("preparing", "scheduled", "held", "closed")


def case_document(number: int) -> dict[str, Any]:
    key = f"case-{number:08d}"
    return {
        "_id": key,
        "version": 3,
        "reference": f"ref-{number:08d}",
        "stage": "waiting" if number % 500 == 0 else STAGES[number % len(STAGES)],
        "state": {"case_id": key, "notes": "x" * 600},
        "applied": [],
    }


async def per_call_ms(lookups: list[Any], call: Callable[[Any], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    for lookup in lookups:
        await call(lookup)
    return (time.perf_counter() - started) * 1000 / len(lookups)


async def measure(client: AsyncMongoClient, size: int, lookups: int) -> dict[str, float]:
    database = client[f"bench_lookup_{uuid.uuid4().hex[:8]}"]
    documents: AsyncCollection = database.cases
    try:
        await documents.create_index([("reference", 1)], unique=True)
        await documents.create_index([("stage", 1)])
        for start in range(0, size, BATCH):
            await documents.insert_many([case_document(n) for n in range(start, min(size, start + BATCH))])
        numbers = [(n * 7919) % size for n in range(lookups)]
        few = numbers[: max(1, lookups // 5)]  # the scanning lookups are slow: fewer of them
        keys = [f"case-{n:08d}" for n in numbers]

        async def present(key: str) -> None:
            assert await documents.find_one({"_id": key}) is not None

        async def missing(key: str) -> None:
            assert await documents.find_one({"_id": key + "-x"}) is None

        async def unique_field(number: int) -> None:
            assert await documents.find_one({"reference": f"ref-{number:08d}"}) is not None

        async def waiting(_: int) -> None:
            assert len(await documents.find({"stage": "waiting"}).to_list()) == len(range(0, size, 500))

        async def compare_and_set(number: int) -> None:
            assert await documents.find_one({"_id": f"case-{number:08d}", "version": 3}) is not None

        figures = {
            "by _id, present": await per_call_ms(keys, present),
            "by _id, missing": await per_call_ms(keys, missing),
            "by a unique field": await per_call_ms(numbers, unique_field),
            "by a non-unique field (the waiting list)": await per_call_ms(few, waiting),
            "by {_id, version}, no index of both": await per_call_ms(few, compare_and_set),
        }
        await documents.create_index([("_id", 1), ("version", 1)], unique=True)
        figures["by {_id, version}, unique index of both"] = await per_call_ms(numbers, compare_and_set)
        return figures
    finally:
        await client.drop_database(database.name)


async def main(sizes: list[int], lookups: int) -> None:
    _, mongodb_url = server_urls()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url)
    try:
        results: dict[int, dict[str, float]] = {}
        for size in sizes:
            print(f"[lookup] {size:,} documents ...", flush=True)
            results[size] = await measure(client, size, lookups)
    finally:
        await client.close()
    smallest, largest = results[min(sizes)], results[max(sizes)]
    figures = [(f"{name}, {size:,} stored", f"{ms:.2f} ms") for size, measured in results.items() for name, ms in measured.items()]
    ratios = [
        (f"{name}: largest/smallest", largest[name] / smallest[name], f"size ratio {max(sizes) / min(sizes):.0f}; 1 means an index answers")
        for name in smallest
    ]
    print_result(f"Lookups, {lookups} per kind and size, sizes {', '.join(f'{size:,}' for size in sizes)}", figures, ratios)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,50000", help="comma-separated numbers of stored documents")
    parser.add_argument("--lookups", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(sorted(int(size) for size in arguments.sizes.split(",")), arguments.lookups))
