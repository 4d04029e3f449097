"""The delivery core against the real RabbitMQ and the real MongoDB-protocol server."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika import DeliveryMode
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from shared.contract.envelope import Envelope, amqp_body, amqp_headers
from shared.contract.events import ConsentRecorded, ReferralReceived
from shared.contract.vocabulary import ConsentState
from shared.domain import Change
from shared.messaging.consumer import subscribe
from shared.messaging.publisher import (
    ORIGINAL_ROUTING_KEY_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    EventPublisher,
    PublishFailed,
    Unroutable,
)
from shared.messaging.topology import DELIVERY_LIMIT
from shared.mongo import database_unavailable
from shared.outbox import OutboxRelay
from shared.runtime import KringService
from shared.store import AggregateStore, Result
from tests.support.harness import Harness, with_host_port
from tests.support.localmongo import LocalMongo
from tests.support.samples import Intake, Tally, case_id, referral_received
from tests.support.system import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Consumer:
    """A subscriber to ReferralReceived that counts handler calls and applies each event once."""

    def __init__(self, service: KringService, *, fail_after_store: int = 0) -> None:
        self.service = service
        self.store = service.aggregate_store("tallies", Tally)
        self.deliveries: Counter[str] = Counter()
        self.results: list[Result] = []
        self.fail_after_store = fail_after_store

        @subscribe(service.broker, service.topology, service.name, ReferralReceived)
        async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None:
            self.deliveries[envelope.id] += 1
            mutation = await self.store.mutate(envelope.subject, self.count_effect(envelope.id), cause=envelope)
            self.results.append(mutation.result)
            if self.fail_after_store > 0:  # simulate dying after the write, before the ack
                self.fail_after_store -= 1
                raise RuntimeError("simulated crash after storing")

    @staticmethod
    def count_effect(event_id: str):
        def decide(tally: Tally | None) -> Change[Tally]:
            tally = tally or Tally()
            return Change(Tally(effects=tally.effects + 1, event_ids=[*tally.event_ids, event_id]))

        return decide

    @property
    def queue(self) -> str:
        return self.service.topology.queue_name(self.service.name, ReferralReceived.binding_key())

    async def effects(self) -> dict[str, int]:
        return {key: tally.effects for key, tally in await self.store.find()}


def producer_store(service: KringService) -> AggregateStore[Intake]:
    return service.aggregate_store("intakes", Intake)


async def producer_without_relay(kring: Harness, **overrides: Any) -> tuple[KringService, AggregateStore[Intake]]:
    """A referral service whose topology is declared but whose own relay is stopped: only
    the relays a test makes publish its outbox."""
    producer = kring.service("referral", **overrides)
    store = producer_store(producer)
    await producer.start()
    await producer.relay.stop()
    return producer, store


async def record_referral(store: AggregateStore[Intake]) -> Envelope[ReferralReceived]:
    event = referral_received()
    mutation = await store.mutate(event.case_id, lambda _: Change(Intake(case_id=event.case_id), [event]))
    assert mutation.result is Result.APPLIED
    return mutation.events[0]


class CrashAfterPublishing:
    """A store whose relay's process dies right after publishing, before the events are
    pulled out of the outbox."""

    def __init__(self, store: AggregateStore[Any]) -> None:
        self.store = store
        self.name = store.name

    async def settle(self, *arguments: Any, **options: Any) -> None:
        raise SystemExit("simulated kill between publish and settle")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_event_reaches_consumer_once_in_effect_despite_crash_before_outbox_removal(kring: Harness) -> None:
    consumer = Consumer(kring.service("scheduling"))
    await kring.start(consumer.service)
    producer, store = await producer_without_relay(kring, relay_lease_seconds=1.0)

    envelope = await record_referral(store)
    crashing = OutboxRelay(producer.publisher, [CrashAfterPublishing(store)], lease_seconds=1.0)  # type: ignore[list-item]
    with pytest.raises(SystemExit):
        await crashing.drain()
    await eventually(lambda: consumer.deliveries[envelope.id] == 1, what="first delivery")
    assert await store.outbox_size() == 1, "the entry survived the crash"

    restarted = OutboxRelay(producer.publisher, [store], lease_seconds=1.0)
    await eventually(restarted.drain, timeout=10, what="the crashed relay's lease to expire")
    await eventually(lambda: consumer.deliveries[envelope.id] == 2, what="republished delivery")

    assert await consumer.effects() == {envelope.subject: 1}
    assert consumer.results == [Result.APPLIED, Result.DUPLICATE]
    assert await store.outbox_size() == 0
    await producer.stop()


async def test_a_sweep_publishes_what_a_dead_writer_left_and_nothing_twice(kring: Harness) -> None:
    """A writer that died right after its write left its events in the outbox: the next
    sweep of any replica publishes them, and a second sweep finds nothing."""
    consumer = Consumer(kring.service("scheduling"))
    await kring.start(consumer.service)
    producer, store = await producer_without_relay(kring)

    envelopes = [await record_referral(store) for _ in range(3)]
    assert await store.outbox_size() == 3
    relay = OutboxRelay(producer.publisher, [store])
    assert await relay.drain() == 3
    await eventually(lambda: len(consumer.results) == 3, what="3 events handled")
    assert await store.outbox_size() == 0
    assert await relay.drain() == 0, "nothing is published twice by a second sweep"
    assert {e.id for e in envelopes} == set(consumer.deliveries)
    await producer.stop()


class Refusing:
    """Publishes like `publisher`, but the broker refuses (nacks) the events in `refused`."""

    def __init__(self, publisher: EventPublisher, refused: set[str]) -> None:
        self.publisher, self.refused = publisher, refused

    async def publish_stored(self, entry: dict[str, Any]) -> None:
        if entry["id"] in self.refused:
            raise PublishFailed("refused by the broker")
        await self.publisher.publish_stored(entry)


async def test_events_of_later_changes_wait_behind_a_refused_one_of_the_same_aggregate(kring: Harness) -> None:
    """A broker refusal holds that aggregate's events back until the next sweep, in order;
    other aggregates' events go on."""
    consumer = Consumer(kring.service("scheduling"))
    await kring.start(consumer.service)
    producer, store = await producer_without_relay(kring)
    first = await record_referral(store)
    again = referral_received().model_copy(update={"case_id": first.subject})
    later = await store.mutate(first.subject, lambda intake: Change(intake, [again]))  # type: ignore[arg-type]
    other = await record_referral(store)
    refusing = OutboxRelay(Refusing(producer.publisher, {first.id}), [store])  # type: ignore[arg-type]
    assert await refusing.drain() == 1, "only the other aggregate's event"
    await eventually(lambda: set(consumer.deliveries) == {other.id}, what="the other event")
    assert await store.outbox_size() == 2, "the refused event and the one after it wait"
    assert await OutboxRelay(producer.publisher, [store]).drain() == 0, "held by the refusing relay until its next sweep"
    assert await OutboxRelay(producer.publisher, [store], clock=lambda: datetime.now(UTC) + timedelta(minutes=1)).drain() == 2
    await eventually(lambda: set(consumer.deliveries) == {other.id, first.id, later.events[0].id}, what="the held events, later")
    await producer.stop()


async def test_broker_redelivery_after_stored_change_has_no_second_effect(kring: Harness) -> None:
    consumer = Consumer(kring.service("scheduling"), fail_after_store=1)
    await kring.start(consumer.service)
    producer = kring.service("referral")
    store = producer_store(producer)
    await kring.start(producer)

    envelope = await record_referral(store)
    await eventually(lambda: consumer.deliveries[envelope.id] == 2, what="the broker's redelivery")
    await eventually(lambda: len(consumer.results) == 2, what="second handling")
    assert consumer.results == [Result.APPLIED, Result.DUPLICATE]
    assert await consumer.effects() == {envelope.subject: 1}
    await asyncio.sleep(0.3)
    assert consumer.deliveries[envelope.id] == 2
    assert await kring.depth(consumer.queue) == 0
    assert await kring.depth(kring.topology.dead_letter_queue(consumer.queue).name) == 0


async def test_malformed_messages_go_to_the_dlq_with_a_reason_and_consuming_goes_on(kring: Harness) -> None:
    consumer = Consumer(kring.service("scheduling"))
    await kring.start(consumer.service)
    publisher = await kring.publisher_as("kring-referral")  # the producer's user: only the content is wrong
    good = Envelope.wrap(referral_received(), source="kring/test")
    exchange, key = kring.topology.events, ReferralReceived.binding_key()
    headers = dict(amqp_headers(good.model_dump(mode="json")))

    broken_json = dict(headers, **{"cloudEvents_id": "broken-json"})
    await publisher._send(exchange, key, b"{not json", headers=broken_json, content_type="application/json")
    await publisher._send(exchange, key, amqp_body(good.model_dump(mode="json")), headers={})  # no CloudEvents headers
    wrong_version = dict(headers, **{"cloudEvents_id": "v9", "cloudEvents_type": "nl.kring.referral.received.v9"})
    await publisher._send(exchange, key, amqp_body(good.model_dump(mode="json")), headers=wrong_version)
    personal = good.model_dump(mode="json")
    personal["data"] = {**personal["data"], "language": "Jansen, 06-12345678", "received_at": "yesterday"}
    await publisher._send(exchange, key, amqp_body(personal), headers=dict(headers, **{"cloudEvents_id": "bad-fields"}))
    await publisher._send(exchange, key, b"{}", headers=headers, content_type="text/plain")
    await publisher.publish(good)

    await eventually(lambda: consumer.deliveries[good.id] == 1, what="the good message after the bad ones")
    dead = await kring.drain(kring.topology.dead_letter_queue(consumer.queue).name)
    reasons = {message.headers.get("cloudEvents_id", "none"): message.headers[REASON_HEADER] for message in dead}
    assert len(dead) == 5, reasons
    assert "body is not valid JSON" in reasons["broken-json"]
    assert "missing CloudEvents header(s)" in reasons["none"]
    assert "nl.kring.referral.received.v9" in reasons["v9"]
    assert "data.language" in reasons["bad-fields"] and "data.received_at" in reasons["bad-fields"]
    assert "Jansen" not in reasons["bad-fields"] and "06-12345678" not in reasons["bad-fields"]
    assert any("content type 'text/plain'" in reason for reason in reasons.values())
    for message in dead:
        assert message.headers[QUEUE_HEADER] == consumer.queue
        assert message.headers[ORIGINAL_ROUTING_KEY_HEADER] == key
    assert await consumer.effects() == {good.subject: 1}
    assert await kring.depth(consumer.queue) == 0


async def test_handler_that_always_fails_is_dead_lettered_after_the_delivery_limit(kring: Harness) -> None:
    service = kring.service("scheduling")
    calls = Counter()

    @subscribe(service.broker, service.topology, service.name, ReferralReceived)
    async def always_fails(envelope: Envelope[ReferralReceived]) -> None:
        calls[envelope.id] += 1
        raise KeyError("a bug")

    await kring.start(service)
    envelope = Envelope.wrap(referral_received(), source="kring/test")
    await kring.publish(envelope)
    queue = service.topology.queue_name(service.name, ReferralReceived.binding_key())
    dlq = kring.topology.dead_letter_queue(queue).name
    await eventually(lambda: calls[envelope.id] == 1 + DELIVERY_LIMIT, what="all allowed deliveries")
    dead = await kring.drain(dlq)
    assert len(dead) == 1
    assert dead[0].headers[REASON_HEADER] == f"handler failed on {1 + DELIVERY_LIMIT} deliveries: KeyError"
    assert calls[envelope.id] == 1 + DELIVERY_LIMIT


async def test_a_good_message_held_through_many_lost_connections_is_handled_not_dead_lettered(kring: Harness) -> None:
    """The broker counts every return of a message to its queue, also when the consumer
    holding it loses its connection (a broker restart, a killed replica). Those are not
    failures: found by the 150-case fault run, where the broker dead-lettered good
    NoPlanReached events held through a few restarts and caseloads filled up for good."""
    first = kring.service("scheduling")
    consumer = Consumer(first)
    await kring.start(first)  # declares the queue
    await kring.stop(first)
    sender = await kring.start(kring.service("referral"))
    envelope = Envelope.wrap(referral_received(), source="kring/test")
    await sender.publisher.publish(envelope)
    returns = DELIVERY_LIMIT + 2
    for taken in range(returns):  # taken, then the connection is lost before the ack
        connection = await aio_pika.connect(kring.rabbitmq_url)
        channel = await connection.channel()
        queue = await channel.get_queue(consumer.queue, ensure=False)
        held = await queue.get(no_ack=False, fail=False, timeout=10)
        await connection.close()
        assert held is not None, f"the broker dead-lettered a good message after {taken} lost connections"
        assert int(held.headers.get("x-delivery-count") or 0) == taken
    second = kring.service("scheduling")
    consumer = Consumer(second)
    await kring.start(second)
    await eventually(lambda: consumer.effects(), what="the message handled")
    assert await consumer.effects() == {envelope.subject: 1}
    assert await kring.depth(kring.topology.dead_letter_queue(consumer.queue).name) == 0


async def test_with_the_database_unreachable_a_message_is_retried_and_applied_once_it_is_back(kring: Harness) -> None:
    parts = urlsplit(kring.mongodb_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 27017)
    await proxy.start()
    service = kring.service("scheduling", MONGODB_URL=with_host_port(kring.mongodb_url, "127.0.0.1", proxy.port))
    consumer = Consumer(service)
    await kring.start(service)
    try:
        await proxy.cut()
        envelope = Envelope.wrap(referral_received(), source="kring/test")
        await kring.publish(envelope)
        await eventually(lambda: consumer.deliveries[envelope.id] >= 1, what="delivery while the database is down")
        await asyncio.sleep(3 * 2.0)  # several failed attempts (server selection times out after 2 s)
        assert consumer.results == [], "nothing can be applied while the database is unreachable"
        assert consumer.deliveries[envelope.id] >= 2, "the handler is retried"
        assert await kring.depth(consumer.queue) == 0, "held unacked while retrying, not requeued"
        assert await kring.depth(kring.topology.dead_letter_queue(consumer.queue).name) == 0, "not dead-lettered"
        await proxy.restore()
        await eventually(lambda: consumer.results == [Result.APPLIED], timeout=30, what="apply after the database is back")
    finally:
        await proxy.restore()
    assert await consumer.effects() == {envelope.subject: 1}
    assert await kring.depth(consumer.queue) == 0
    assert await kring.depth(kring.topology.dead_letter_queue(consumer.queue).name) == 0


class Unhurried:
    """Publishes like `publisher` but yields a moment first, so that two relays draining at
    once surely overlap instead of the first finishing before the second starts."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher

    async def publish_stored(self, entry: dict[str, Any]) -> None:
        await asyncio.sleep(0.005)
        await self.publisher.publish_stored(entry)


async def test_two_relays_over_one_outbox_publish_each_event_once_in_effect(kring: Harness) -> None:
    consumer = Consumer(kring.service("scheduling"))
    await kring.start(consumer.service)
    producer, store = await producer_without_relay(kring)  # only the two relays below publish

    envelopes = [await record_referral(store) for _ in range(100)]
    relays = [OutboxRelay(Unhurried(producer.publisher), [store]) for _ in range(2)]  # type: ignore[arg-type]
    published = await asyncio.gather(*(relay.drain() for relay in relays))
    assert sum(published) == 100 and all(published), f"both relays worked: {published}"

    await eventually(lambda: len(consumer.results) == 100, what="100 events handled")
    assert await consumer.effects() == {e.subject: 1 for e in envelopes}
    assert set(consumer.deliveries) == {e.id for e in envelopes}
    assert await store.outbox_size() == 0
    await producer.stop()


async def test_every_message_is_persistent_and_an_unroutable_one_is_an_error(kring: Harness) -> None:
    consumer = Consumer(kring.service("scheduling"))
    await kring.start(consumer.service)
    producer = kring.service("referral")
    store = producer_store(producer)
    everything = await kring.probe(kring.topology.events.name, "#")
    await kring.start(producer)

    envelope = await record_referral(store)  # via the outbox relay
    await producer.publisher.publish(Envelope.wrap(referral_received(), source="kring/test"))  # directly
    await producer.publisher._send(kring.topology.events, ReferralReceived.binding_key(), b"{", headers={})  # to DLQ
    await eventually(lambda: len(consumer.deliveries) == 2, what="two good deliveries")
    dlq = kring.topology.dead_letter_queue(consumer.queue).name
    await eventually(lambda: kring.depth(dlq), what="the bad one dead-lettered")

    seen = await kring.drain(everything.name)
    seen += await kring.drain(dlq)
    assert len(seen) == 4
    assert all(message.delivery_mode == DeliveryMode.PERSISTENT for message in seen)
    assert envelope.id in {message.message_id for message in seen}



async def test_an_event_nobody_subscribes_to_is_parked_and_an_unroutable_command_is_an_error(kring: Harness) -> None:
    service = await kring.start(kring.service("referral"))
    nobody_listens = Envelope.wrap(
        ConsentRecorded(case_id=case_id(), consent=ConsentState.GIVEN, recorded_at=datetime.now(UTC)),
        source="kring/test",
    )
    await service.publisher.publish(nobody_listens)
    parked = await kring.drain(kring.topology.unrouted_queue.name)
    assert [message.message_id for message in parked] == [nobody_listens.id]
    assert parked[0].delivery_mode == DeliveryMode.PERSISTENT
    assert parked[0].routing_key == ConsentRecorded.binding_key()

    bureau = await kring.publisher_as("bureau-bjz-utrecht")
    with pytest.raises(Unroutable):
        await bureau.send_command("referral.submit", b"{}")  # no intake queue bound yet


async def test_what_the_database_answers_while_it_stops_counts_as_the_database_being_away(mongodb_url: str, tmp_path: Path) -> None:
    """A private local server on a spare port is stopped under slow queries: every error the
    clients see must count as the database being away (retry, 503), not as a bug (500, dead
    letter after five tries)."""
    running = LocalMongo.find(mongodb_url)
    if running is None:
        pytest.skip(f"{mongodb_url} is not a local mongo-local process to take the command from")
    private = running.private_copy(free_port(), tmp_path / "private.mv")
    await asyncio.to_thread(private.start)
    client: AsyncMongoClient = AsyncMongoClient(private.url, serverSelectionTimeoutMS=2000)
    errors: list[Exception] = []
    try:
        documents = client.kring_probe.documents
        await documents.insert_many([{"_id": f"d{n}", "k": n, "pad": "x" * 400} for n in range(40_000)])

        async def slow_queries() -> None:  # a filter no index serves: it reads every document
            while True:
                try:
                    await documents.find_one({"k": -1})
                except PyMongoError as error:
                    errors.append(error)
                    return

        queries = [asyncio.create_task(slow_queries()) for _ in range(8)]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(private.stop)
        await asyncio.wait_for(asyncio.gather(*queries), timeout=60)
    finally:
        await client.close()
        if Path(f"/proc/{private.pid}").exists():
            private.stop()
    assert len(errors) == 8
    assert [error for error in errors if not database_unavailable(error)] == []
