"""The relay's own rules, on the in-memory store (no server)."""

import asyncio
from datetime import datetime
from typing import Any

import pytest

from shared.memory import MemoryStore
from shared.outbox import SWEEP_SHARE, OutboxRelay
from tests.support.samples import Tally

pytestmark = pytest.mark.anyio


class SlowToSweep(MemoryStore[Tally]):
    """A store on which looking for leftover events takes a while, as a scan of a large
    collection does on the local mongo-java-server."""

    sweeps = 0

    async def outbox_due(self, before: datetime) -> list[str]:
        self.sweeps += 1
        await asyncio.sleep(0.05)
        return await super().outbox_due(before)


async def test_a_slow_sweep_makes_the_next_one_wait_ten_times_as_long() -> None:
    store = SlowToSweep("tallies", Tally, source="kring/test")
    relay = OutboxRelay(publisher=None, stores=[store], sweep_seconds=0.01)  # type: ignore[arg-type]
    relay.start()
    await asyncio.sleep(1.0)
    await relay.stop()
    # each sweep takes 0.05 s and waits at least SWEEP_SHARE times that: at most ~2 a second
    assert 1 <= store.sweeps <= 1 + 1.0 / (SWEEP_SHARE * 0.05), store.sweeps


async def test_a_fast_sweep_comes_every_sweep_seconds() -> None:
    store: Any = MemoryStore("tallies", Tally, source="kring/test")
    calls = []
    original = store.outbox_due

    async def counted(before: datetime) -> list[str]:
        calls.append(before)
        return await original(before)

    store.outbox_due = counted
    relay = OutboxRelay(publisher=None, stores=[store], sweep_seconds=0.1)  # type: ignore[arg-type]
    relay.start()
    await asyncio.sleep(0.55)
    await relay.stop()
    assert 4 <= len(calls) <= 7, len(calls)
