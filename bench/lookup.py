"""Benchmark 6, lookups: does reading one document by `_id` cost the same however many are stored?

    python -m bench.lookup [--sizes 5000,50000] [--lookups 50]

Every aggregate read of shared.store is a `find_one({"_id": ...})` of a version, and
`latest()` always ends with a probe for the next version, which is not there. For each size,
in a fresh collection of that many version documents (about the size of a case), times
lookups of present and of missing `_id`s and one query on another field, and prints the
server's plan. Ratios largest/smallest size: about 1 on a server that uses its `_id` index
(MongoDB), about the size ratio on one that scans the table for every read (FerretDB v1).

On a local FerretDB with the SQLite backend each size is measured twice in the same run: as
FerretDB comes, then with the `_id` lookup index the fault runs add
(tests.support.faults.FerretDB.index_ids); the last ratio compares the two.
"""

import argparse
import asyncio
import json
import time
import uuid

from pymongo import AsyncMongoClient

from bench.report import print_result
from bench.servers import server_urls
from tests.support.faults import FerretDB

BATCH = 1000


def version_document(number: int) -> dict:
    key = f"case-{number:08d}"
    return {"_id": f"{key}:1", "key": key, "version": 1, "state": {"case_id": key, "stage": "preparing", "notes": "x" * 600}, "applied": []}


async def measure(client: AsyncMongoClient, size: int, lookups: int, ferretdb: FerretDB | None) -> dict[str, float | str]:
    """Timings as the server comes, or, given a local FerretDB, with its `_id` lookup index."""
    database = client[f"bench_lookup_{uuid.uuid4().hex[:8]}"]
    documents = database.versions
    try:
        for start in range(0, size, BATCH):
            await documents.insert_many([version_document(n) for n in range(start, min(size, start + BATCH))])
        if ferretdb is not None:
            assert ferretdb.index_ids(database.name), "nothing indexed"
            await documents.find_one({"_id": "warm-up"})  # the connection reads the new schema
        present = [f"case-{(n * 7919) % size:08d}:1" for n in range(lookups)]
        started = time.perf_counter()
        for document_id in present:
            assert await documents.find_one({"_id": document_id}) is not None
        present_ms = (time.perf_counter() - started) * 1000 / lookups
        started = time.perf_counter()
        for document_id in present:
            assert await documents.find_one({"_id": document_id.replace(":1", ":2")}) is None
        missing_ms = (time.perf_counter() - started) * 1000 / lookups
        started = time.perf_counter()
        for document_id in present[: max(1, lookups // 5)]:
            await documents.find_one({"key": document_id.removesuffix(":1"), "version": 2})
        other_ms = (time.perf_counter() - started) * 1000 / max(1, lookups // 5)
        explained = await database.command("explain", {"find": "versions", "filter": {"_id": present[0]}})
        plan = json.dumps(explained.get("queryPlanner", {}), default=str)
        return {"present": present_ms, "missing": missing_ms, "other": other_ms, "plan": plan[:160]}
    finally:
        await client.drop_database(database.name)


async def main(sizes: list[int], lookups: int) -> None:
    _, mongodb_url = server_urls()
    ferretdb = FerretDB.find(mongodb_url)
    variants = {"as it comes": None}
    if ferretdb is not None and ferretdb.data_dir() is not None:
        variants["with the _id lookup index"] = ferretdb
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url)
    try:
        results: dict[tuple[str, int], dict[str, float | str]] = {}
        for variant, indexing in variants.items():
            for size in sizes:
                print(f"[lookup] {size:,} documents, {variant} ...", flush=True)
                results[variant, size] = await measure(client, size, lookups, indexing)
    finally:
        await client.close()
    figures = []
    for (variant, size), result in results.items():
        figures.append((f"{size:,} stored, {variant}: by _id present / missing / other field", f"{result['present']:.2f} / {result['missing']:.2f} / {result['other']:.2f} ms"))
        figures.append((f"{size:,} stored, {variant}: plan of a lookup by _id", str(result["plan"])))
    ratios = []
    for variant in variants:
        smallest, largest = results[variant, min(sizes)], results[variant, max(sizes)]
        ratios.append((f"{variant}: missing _id, largest/smallest", float(largest["missing"]) / float(smallest["missing"]), f"size ratio {max(sizes) / min(sizes):.0f}; 1 means an index lookup"))
        ratios.append((f"{variant}: present _id, largest/smallest", float(largest["present"]) / float(smallest["present"]), ""))
    if len(variants) == 2:
        plain, indexed = (results[variant, max(sizes)] for variant in variants)
        ratios.append((f"missing _id at {max(sizes):,}, as it comes / with the lookup index", float(plain["missing"]) / float(indexed["missing"]), "how much the index saves"))
    print_result(f"Lookups by _id, {lookups} per size, sizes {', '.join(f'{size:,}' for size in sizes)}", figures, ratios)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,50000", help="comma-separated numbers of stored documents")
    parser.add_argument("--lookups", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(sorted(int(size) for size in arguments.sizes.split(",")), arguments.lookups))
