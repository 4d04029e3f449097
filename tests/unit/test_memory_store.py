"""The in-memory store keeps the store contract (tests/contract/store_contract.py)."""

from typing import Any

import pytest

from shared.memory import MemoryStorage
from shared.store import AggregateStore
from tests.contract.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> Any:
        storage = MemoryStorage()

        async def make(name: str, state_type: type, **options: Any) -> AggregateStore[Any]:
            return storage.store(name, state_type, source="kring/test", **options)

        return make
