"""The aggregate store on the real MongoDB-protocol server: concurrent writers."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from shared.store import AggregateStore, Change, Result
from tests.support.harness import Harness
from tests.support.samples import Tally, case_id

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def add_one(tally: Tally | None) -> Change[Tally]:
    return Change(Tally(effects=(tally.effects if tally else 0) + 1))


async def test_concurrent_writers_on_one_aggregate_lose_no_change(kring: Harness) -> None:
    # Two replicas of one service: separate clients, as two processes would have.
    stores = [kring.service("scheduling").aggregate_store("tallies", Tally) for _ in range(2)]
    key = case_id()

    async def writer(store: AggregateStore[Tally], n: int) -> list[Result]:
        return [(await store.mutate(key, add_one, dedup_id=f"w{n}-{i}")).result for i in range(40)]

    results = await asyncio.gather(*(writer(store, n) for n, store in enumerate(stores)))
    assert all(result is Result.APPLIED for batch in results for result in batch)
    assert (await stores[0].get(key)).effects == 80
    assert (await stores[1].latest(key))["version"] == 80


async def test_duplicates_are_recognised_across_writers(kring: Harness) -> None:
    service = kring.service("scheduling")
    store = service.aggregate_store("tallies", Tally)
    key = case_id()
    results = await asyncio.gather(*(store.mutate(key, add_one, dedup_id="the-same-event") for _ in range(5)))
    assert sorted(r.result for r in results) == [Result.APPLIED] + [Result.DUPLICATE] * 4
    assert (await store.get(key)).effects == 1


async def test_find_current_ignores_superseded_versions_and_history_is_kept(kring: Harness) -> None:
    service = kring.service("scheduling")
    store = service.aggregate_store("tallies", Tally)
    key = case_id()
    await store.mutate(key, add_one)
    await store.mutate(key, add_one)
    assert [(k, t.effects) async for k, t in store.find_current({"state.effects": {"$lte": 2}})] == [(key, 2)]
    assert [k async for k, _ in store.find_current({"state.effects": 1})] == [], "version 1 is superseded"
    history = [d["state"]["effects"] async for d in store.collection.find({"key": key}).sort("version", 1)]
    assert history == [1, 2]


async def test_a_fresh_process_finds_the_latest_of_many_versions(kring: Harness) -> None:
    writer = kring.service("scheduling").aggregate_store("tallies", Tally)
    key = case_id()
    for _ in range(37):
        await writer.mutate(key, add_one)
    reader = kring.service("scheduling").aggregate_store("tallies", Tally)  # knows no version yet
    latest = await reader.latest(key)
    assert latest is not None and latest["version"] == 37 and latest["state"]["effects"] == 37
    assert await reader.latest(case_id()) is None



async def test_find_current_lists_an_aggregate_that_is_written_while_the_listing_runs(kring: Harness) -> None:
    """A version the first query matched can be superseded before the listing reads on: the
    aggregate must still be listed, with its newer state if that matches, and not if it does
    not (it vanished, and a coordinator kept a closed case's place: a fault run)."""
    writer, reader = (kring.service("scheduling").aggregate_store("tallies", Tally) for _ in range(2))
    keys = [case_id() for _ in range(6)]
    for key in keys:
        await writer.mutate(key, add_one)

    async def write_every_aggregate() -> None:
        for key in keys:
            await writer.mutate(key, add_one)

    reader.collection = WritesAfterFirstQuery(reader.collection, write_every_aggregate)  # type: ignore[assignment]
    listed = {key: tally.effects async for key, tally in reader.find_current({"key": {"$in": keys}})}
    assert listed == {key: 2 for key in keys}, "each listed, with its state after the write"

    reader.collection = WritesAfterFirstQuery(reader.collection.collection, write_every_aggregate)  # type: ignore[attr-defined]
    assert [k async for k, _ in reader.find_current({"key": {"$in": keys}, "state.effects": 2})] == [], "each superseded by 3"


class WritesAfterFirstQuery:
    """A collection whose first `find` runs `write` once its results are read: a writer that
    comes between the queries of one listing."""

    def __init__(self, collection: Any, write: Callable[[], Awaitable[None]]) -> None:
        self.collection = collection
        self.write = write
        self.queries = 0

    def find(self, *arguments: Any, **options: Any) -> Any:
        self.queries += 1
        cursor = self.collection.find(*arguments, **options)
        if self.queries > 1:
            return cursor

        async def then_write() -> AsyncIterator[Any]:
            async for document in cursor:
                yield document
            await self.write()

        return then_write()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


async def test_a_rule_that_refuses_a_guessed_state_is_decided_again_on_the_real_one(kring: Harness) -> None:
    """A store that has not seen an aggregate guesses it is new (an insert of version 1 would
    tell). A rule that refuses "no such aggregate" must then be asked again with the real
    state, not fail the caller (a coordinator listed by another query was 'no such
    coordinator' to the replica that then reserved a place)."""
    writer, fresh = (kring.service("scheduling").aggregate_store("tallies", Tally) for _ in range(2))
    key = case_id()
    await writer.mutate(key, add_one)

    def add_one_to_existing(tally: Tally | None) -> Change[Tally]:
        if tally is None:
            raise LookupError("no such tally")
        return Change(Tally(effects=tally.effects + 1))

    mutation = await fresh.mutate(key, add_one_to_existing)
    assert (mutation.result, mutation.state) == (Result.APPLIED, Tally(effects=2))


async def test_reading_an_aggregate_this_store_knows_costs_one_probe_for_a_newer_version(kring: Harness) -> None:
    """Every read by _id is a table scan on FerretDB v1: a read of an aggregate whose version
    this store holds probes only for a newer one, and still sees a newer one."""
    writer, reader = (kring.service("scheduling").aggregate_store("tallies", Tally) for _ in range(2))
    key = case_id()
    await reader.mutate(key, add_one)
    counted = CountedQueries(reader.collection)
    reader.collection = counted  # type: ignore[assignment]
    assert await reader.get(key) == Tally(effects=1)
    assert counted.queries == 1, "only the probe for version 2"
    await writer.mutate(key, add_one)
    assert await reader.get(key) == Tally(effects=2)


class CountedQueries:
    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.queries = 0

    async def find_one(self, *arguments: Any, **options: Any) -> Any:
        self.queries += 1
        return await self.collection.find_one(*arguments, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


async def test_database_time_is_counted_per_command_and_collection_without_values(kring: Harness) -> None:
    service = kring.service("scheduling", database_time_seconds=60)
    store = service.aggregate_store("tallies", Tally)
    key = case_id()
    for n in range(3):
        await store.mutate(key, add_one, dedup_id=f"event-{n}")
    assert [k async for k, _ in store.find_current({"state.effects": 3})] == [key]
    taken = service.database_time.take()
    assert taken["insert tallies"].startswith("3 calls, ")
    assert {"find tallies", "insert tallies"} <= set(taken)
    assert not any(key in name or key in figures for name, figures in taken.items()), "only names and durations"
    assert service.database_time.take() == {}, "each take starts again"
    quiet = kring.service("scheduling")
    await quiet.aggregate_store("tallies", Tally).get(key)
    assert quiet.database_time.take() == {}, "not listening unless asked"
