"""Benchmark 4, the driver: the same store operations with PyMongo's AsyncMongoClient and
with motor, side by side in one run, against the same server.

    python -m bench.driver [--operations 2000] [--concurrency 16]

Per driver: insert one snapshot-sized document, read it by _id, probe the next _id (absent)
— the three operations of AggregateStore.mutate's hot path — with `concurrency` writers.
Prints operations/s for both and the ratio pymongo/motor.
"""

import argparse
import asyncio
import time
import uuid
from typing import Any

import motor.motor_asyncio
from pymongo import AsyncMongoClient

from bench.report import print_result
from bench.servers import server_urls

DOCUMENT = {"state": {"referral": "x" * 1500, "consent": ["given"]}, "applied": [str(uuid.uuid4()) for _ in range(5)], "outbox_count": 0}


async def exercise(collection: Any, operations: int, concurrency: int) -> float:
    per_worker = operations // concurrency

    async def worker(worker_id: int) -> None:
        for n in range(per_worker):
            key = f"{worker_id}-{n}:{1:010d}"
            await collection.insert_one({"_id": key, **DOCUMENT})
            await collection.find_one({"_id": key})
            await collection.find_one({"_id": f"{worker_id}-{n}:{2:010d}"})

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return per_worker * concurrency * 3 / (time.perf_counter() - started)


async def run(operations: int, concurrency: int) -> dict[str, float]:
    _, url = server_urls()
    database = f"bench_driver_{uuid.uuid4().hex[:8]}"
    results = {}
    pymongo_client = AsyncMongoClient(url, tz_aware=True)
    motor_client = motor.motor_asyncio.AsyncIOMotorClient(url, tz_aware=True)
    try:
        for name, client in (("pymongo AsyncMongoClient", pymongo_client), ("motor", motor_client)):
            collection = client[database][name.split()[0]]
            await collection.insert_one({"_id": "warm-up"})
            results[name] = await exercise(collection, operations, concurrency)
            print(f"{name}: {results[name]:,.0f} operations/s", flush=True)
    finally:
        await pymongo_client.drop_database(database)
        await pymongo_client.close()
        motor_client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results = asyncio.run(run(args.operations, args.concurrency))
    pymongo_rate, motor_rate = results["pymongo AsyncMongoClient"], results["motor"]
    print_result(
        f"driver, {args.operations} operations x3 kinds, concurrency {args.concurrency}",
        [("pymongo AsyncMongoClient", f"{pymongo_rate:10,.0f} ops/s"), ("motor", f"{motor_rate:10,.0f} ops/s")],
        [("pymongo/motor", pymongo_rate / motor_rate, "")],
    )

if __name__ == "__main__":
    main()
