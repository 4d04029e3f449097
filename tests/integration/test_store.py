"""The MongoDB store keeps the store contract (tests/contract/store_contract.py) on the real
server; and what only the MongoDB store has."""

from typing import Any

import pytest

from shared.mongo import ensure_indexes
from shared.store import AggregateStore, MongoStore
from tests.contract.store_contract import StoreContract, add_one
from tests.support.harness import Harness
from tests.support.samples import Tally, case_id

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class TestMongoStore(StoreContract):
    @pytest.fixture
    def make_store(self, kring: Harness) -> Any:
        async def make(name: str, state_type: type, **options: Any) -> AggregateStore[Any]:
            service = kring.service("scheduling")  # a replica: a client of its own
            store = MongoStore(service.db[name], state_type, source=service.source, **options)
            await ensure_indexes(service.db, store.indexes())
            return store

        return make


async def test_database_time_is_counted_per_command_and_collection_without_values(kring: Harness) -> None:
    service = kring.service("scheduling", database_time_seconds=60)
    store = service.aggregate_store("tallies", Tally)
    key = case_id()
    for n in range(3):
        await store.mutate(key, add_one, dedup_id=f"event-{n}")
    assert [k for k, _ in await store.find({"effects": 3})] == [key]
    taken = service.database_time.take()
    assert taken["insert tallies"].startswith("1 calls, ") and taken["update tallies"].startswith("2 calls, ")
    assert {"find tallies", "insert tallies", "update tallies"} <= set(taken)
    assert not any(key in name or key in figures for name, figures in taken.items()), "only names and durations"
    assert service.database_time.take() == {}, "each take starts again"
    quiet = kring.service("scheduling")
    await quiet.aggregate_store("tallies", Tally).get(key)
    assert quiet.database_time.take() == {}, "not listening unless asked"
