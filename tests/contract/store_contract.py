"""The promises every AggregateStore keeps, in one suite run against each implementation
(the pyeventsourcing way): MemoryStore in tests/unit/test_memory_store.py, MongoStore on the
real server in tests/integration/test_store.py. A subclass provides the `make_store` fixture:
`await make_store(name, state_type, **options)` returns a store whose indexes exist; stores
made with one name are replicas over the same aggregates."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from shared.contract.envelope import Envelope
from shared.domain import Change
from shared.store import AggregateStore, AlternateKeyTaken, Result
from tests.support.samples import Tally, case_id, referral_received

MakeStore = Callable[..., Awaitable[AggregateStore[Any]]]


class Card(BaseModel):
    """A small aggregate with a nested field, a list and an alternate key."""

    owner: str
    stage: str = "open"
    labels: list[str] = []
    reference: str | None = None
    detail: dict[str, str] = {}


def add_one(tally: Tally | None) -> Change[Tally]:
    return Change(Tally(effects=(tally.effects if tally else 0) + 1))


def announcing(tally: Tally | None) -> Change[Tally]:
    event = referral_received()
    return Change(Tally(effects=(tally.effects if tally else 0) + 1), [event])


class StoreContract:
    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def make_store(self) -> MakeStore:
        raise NotImplementedError

    async def test_a_missing_aggregate_is_none_and_a_change_creates_it(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        assert await store.get(key) is None
        created = await store.mutate(key, add_one)
        assert (created.result, created.state, created.version) == (Result.APPLIED, Tally(effects=1), 1)
        assert (await store.mutate(key, add_one)).version == 2
        assert await store.get(key) == Tally(effects=2)

    async def test_concurrent_writers_on_one_aggregate_lose_no_change(self, make_store: MakeStore) -> None:
        stores = [await make_store("tallies", Tally) for _ in range(2)]  # two replicas
        key = case_id()
        results = await asyncio.gather(*(stores[n % 2].mutate(key, add_one, dedup_id=f"m{n}") for n in range(40)))
        assert {result.result for result in results} == {Result.APPLIED}
        assert sorted(result.version for result in results) == list(range(1, 41)), "each decided on the version before"
        assert await stores[0].get(key) == Tally(effects=40)

    async def test_a_message_is_applied_once_however_often_it_comes(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        await store.mutate(key, add_one)
        results = await asyncio.gather(*(store.mutate(key, add_one, dedup_id="the-same-event") for _ in range(5)))
        assert sorted(r.result for r in results) == [Result.APPLIED] + [Result.DUPLICATE] * 4
        assert await store.get(key) == Tally(effects=2)
        assert await store.applied(key) == ["the-same-event"]

    async def test_the_cause_is_the_dedup_id_and_its_correlation_carries_on(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        cause = Envelope.wrap(referral_received(), source="kring/test")
        key = case_id()
        first = await store.mutate(key, announcing, cause=cause)
        assert [(e.causation_id, e.correlation_id) for e in first.events] == [(cause.id, cause.correlation_id)]
        assert (await store.mutate(key, announcing, cause=cause)).result is Result.DUPLICATE

    async def test_no_change_stores_nothing_new_but_remembers_the_message(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        assert (await store.mutate(key, lambda _: None, dedup_id="m1")).result is Result.UNCHANGED
        assert await store.get(key) is None, "no aggregate made for nothing"
        await store.mutate(key, add_one)
        unchanged = await store.mutate(key, lambda _: None, dedup_id="m2")
        assert (unchanged.result, unchanged.state) == (Result.UNCHANGED, Tally(effects=1))
        assert (await store.mutate(key, add_one, dedup_id="m2")).result is Result.DUPLICATE

    async def test_a_refusing_rule_changes_nothing(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        await store.mutate(key, add_one)

        def refuse(_: Tally | None) -> Change[Tally]:
            raise LookupError("refused")

        with pytest.raises(LookupError):
            await store.mutate(key, refuse, dedup_id="m1")
        assert await store.get(key) == Tally(effects=1)
        assert await store.applied(key) == []

    async def test_find_matches_current_state_by_equality_nested_paths_lists_and_in(self, make_store: MakeStore) -> None:
        store = await make_store("cards", Card)
        keys = sorted(case_id() for _ in range(3))
        await store.mutate(keys[0], lambda _: Change(Card(owner="a", labels=["x", "y"], detail={"region": "UT"})))
        await store.mutate(keys[1], lambda _: Change(Card(owner="b", stage="done", detail={"region": "NH"})))
        await store.mutate(keys[2], lambda _: Change(Card(owner="a", detail={"region": "NH"})))
        await store.mutate(keys[0], lambda card: Change(card.model_copy(update={"stage": "done"})))  # type: ignore[union-attr]

        def found(where: dict[str, Any] | None = None) -> Any:
            return store.find(where)

        assert [key for key, _ in await found()] == keys, "everything, by key"
        assert [key for key, _ in await found({"owner": "a", "stage": "done"})] == [keys[0]], "current state only"
        assert [key for key, _ in await found({"detail.region": "NH"})] == keys[1:]
        assert [key for key, _ in await found({"labels": "y"})] == [keys[0]], "a list matches by its elements"
        assert [key for key, _ in await found({"owner": {"$in": ["b", "c"]}})] == [keys[1]]
        assert await found({"owner": "nobody"}) == []

    async def test_an_alternate_key_is_unique_and_finds_its_aggregate(self, make_store: MakeStore) -> None:
        store = await make_store("cards", Card, alternate_key=lambda card: card.reference)
        first, second, third = case_id(), case_id(), case_id()
        await store.mutate(first, lambda _: Change(Card(owner="a", reference="bjz:1")))
        await store.mutate(second, lambda _: Change(Card(owner="b")))  # none: no constraint
        await store.mutate(third, lambda _: Change(Card(owner="c")))
        with pytest.raises(AlternateKeyTaken):
            await store.mutate(case_id(), lambda _: Change(Card(owner="d", reference="bjz:1")))
        found = await store.get_by_alternate_key("bjz:1")
        assert found is not None and found[0] == first and found[1].owner == "a"
        assert await store.get_by_alternate_key("bjz:2") is None

    async def test_an_alternate_key_the_state_no_longer_has_is_released(self, make_store: MakeStore) -> None:
        """An erased referral forgets the bureau's reference: the document keeps none either."""
        store = await make_store("cards", Card, alternate_key=lambda card: card.reference)
        key = case_id()
        await store.mutate(key, lambda _: Change(Card(owner="a", reference="bjz:erased")))
        await store.mutate(key, lambda card: Change(card.model_copy(update={"reference": None})))
        assert await store.get_by_alternate_key("bjz:erased") is None
        await store.mutate(case_id(), lambda _: Change(Card(owner="b", reference="bjz:erased")))  # free again

    async def test_racing_creators_of_one_alternate_key_open_one_aggregate(self, make_store: MakeStore) -> None:
        store = await make_store("cards", Card, alternate_key=lambda card: card.reference)

        async def create(owner: str) -> str:
            try:
                await store.mutate(case_id(), lambda _: Change(Card(owner=owner, reference="bjz:race")))
            except AlternateKeyTaken:
                return "taken"
            return "created"

        assert sorted(await asyncio.gather(*(create(f"o{n}") for n in range(8)))) == ["created"] + ["taken"] * 7

    async def test_the_events_of_a_change_wait_in_its_outbox_until_settled(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        first = await store.mutate(key, announcing)
        second = await store.mutate(key, announcing)
        assert await store.outbox_size() == 2
        assert await store.outbox_due(store.clock() - timedelta(minutes=1)) == [], "too young"
        assert await store.outbox_due(store.clock()) == [key]
        leased = await store.lease_outbox(key, "relay-1", now=store.clock(), until=store.clock() + timedelta(seconds=30))
        assert [entry["id"] for entry in leased or []] == [first.events[0].id, second.events[0].id], "oldest first"
        assert leased is not None and leased[0]["envelope"]["id"] == first.events[0].id
        assert await store.lease_outbox(key, "relay-2", now=store.clock(), until=store.clock() + timedelta(seconds=30)) is None, "held by relay-1"
        await store.settle({key: [first.events[0].id]}, owner="relay-1")
        assert await store.outbox_size() == 1
        retaken = await store.lease_outbox(key, "relay-2", now=store.clock(), until=store.clock() + timedelta(seconds=30))
        assert [entry["id"] for entry in retaken or []] == [second.events[0].id], "the lease ended with the settle"
        await store.settle({key: [second.events[0].id]})
        assert (await store.outbox_size(), await store.outbox_due(store.clock())) == (0, [])
        assert await store.get(key) == Tally(effects=2), "settling changes no state"

    async def test_the_oldest_waiting_event_is_known_until_it_is_settled(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        assert await store.outbox_oldest() is None
        first_key, second_key = case_id(), case_id()
        first = await store.mutate(first_key, announcing)
        await asyncio.sleep(0.01)
        await store.mutate(second_key, announcing)
        await store.mutate(first_key, announcing)
        oldest = await store.outbox_oldest()
        assert oldest is not None and abs((oldest - first.events[0].time).total_seconds()) < 0.002
        await store.settle({first_key: [first.events[0].id]})
        later = await store.outbox_oldest()
        assert later is not None and later > oldest
        await store.settle({first_key: [e["id"] for e in await store.lease_outbox(first_key, "r", now=store.clock(), until=store.clock()) or []]})
        await store.settle({second_key: [e["id"] for e in await store.lease_outbox(second_key, "r", now=store.clock(), until=store.clock()) or []]})
        assert await store.outbox_oldest() is None

    async def test_an_expired_lease_is_taken_over(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        await store.mutate(key, announcing)
        assert await store.lease_outbox(key, "relay-dead", now=store.clock(), until=store.clock() - timedelta(seconds=1)) is not None
        assert await store.lease_outbox(key, "relay-2", now=store.clock(), until=store.clock() + timedelta(seconds=30)) is not None

    async def test_settling_does_not_disturb_a_writer(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        written = await store.mutate(key, announcing)
        await store.lease_outbox(key, "relay-1", now=store.clock(), until=store.clock() + timedelta(seconds=30))
        await asyncio.gather(store.settle({key: [written.events[0].id]}, owner="relay-1"), store.mutate(key, announcing))
        assert await store.get(key) == Tally(effects=2)
        assert await store.outbox_size() == 1, "the second change's event waits"

    async def test_only_the_newest_applied_ids_are_kept(self, make_store: MakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
        store = await make_store("tallies", Tally)
        monkeypatch.setattr(store, "MAX_APPLIED", 3)
        key = case_id()
        for n in range(5):
            await store.mutate(key, add_one, dedup_id=f"m{n}")
        assert await store.applied(key) == ["m2", "m3", "m4"]

    async def test_a_key_said_to_be_new_that_exists_is_decided_on_its_state(self, make_store: MakeStore) -> None:
        store = await make_store("tallies", Tally)
        key = case_id()
        await store.mutate(key, add_one)
        again = await store.mutate(key, add_one, new_key=True)
        assert (again.result, again.state, again.version) == (Result.APPLIED, Tally(effects=2), 2)
