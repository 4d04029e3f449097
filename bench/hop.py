"""Benchmark 1, the hop: how close one Kring service comes to the broker's limit.

    python -m bench.hop [--messages 5000] [--prefetch 32]

Every variant does the same hop, in this process, on the same broker, with the same number
of messages, quorum queues, persistent messages and publisher confirms:
- raw: an aio-pika consumer takes a message from a queue, publishes one output message
  (confirmed) and acks; no storage;
- raw + 1 insert: the same, plus one `insert_one` per message into the MongoDB-protocol
  server: the least any service that stores what it does must pay;
- kring: the referral service takes a bureau's referral.submit command, stores the case
  (reference claim, snapshot insert with outbox and idempotency record), its relay publishes
  ReferralReceived and the bureau's answer with confirms, then records the publication.
Throughput is counted from the first publish to the last output message arriving; latency
is from publishing a command to its answer arriving, over the whole burst (so it includes
waiting in the queue). Prints msg/s and latency of each and the ratios to kring.
"""

import argparse
import asyncio
import os
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika
from pymongo import AsyncMongoClient

from bench.report import percentiles, print_result
from bench.servers import server_urls
from services.referral.app import create_app
from shared.logging import configure_logging
from shared.messaging.parties import bureau_user
from tests.support.harness import Harness
from tests.support.referrals import submit_referral

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
QUORUM = {"x-queue-type": "quorum"}


@dataclass
class Run:
    """Publish times by reference, answer times by reference."""

    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    started: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.answered) / (max(self.answered.values()) - self.started)

    def latencies_ms(self) -> dict[str, float]:
        return percentiles([(self.answered[r] - self.sent[r]) * 1000 for r in self.answered])

    def figure(self) -> str:
        """Throughput and answer latency, as every hop benchmark prints them."""
        latency = self.latencies_ms()
        return f"{self.rate:8,.1f} msg/s   latency p50 {latency['p50']:7,.0f} ms  p99 {latency['p99']:7,.0f} ms"


BUREAU = "bjz-bench"


def commands(messages: int) -> list[dict]:
    return [submit_referral(BUREAU) for _ in range(messages)]


async def publish_all(
    exchange: aio_pika.abc.AbstractExchange, routing_key: str, bodies: list[dict], run: Run, *, user_id: str | None = None
) -> None:
    """`user_id`: the broker user of the channel's connection (a bureau's, for commands)."""
    window = 200  # confirmed publishes in flight
    run.started = time.monotonic()
    for start in range(0, len(bodies), window):
        batch = bodies[start : start + window]
        for body in batch:
            run.sent[body["external_reference"]] = time.monotonic()
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(json.dumps(body).encode(), content_type="application/json", delivery_mode=PERSISTENT, message_id=str(uuid.uuid4()), user_id=user_id),
                    routing_key,
                )
                for body in batch
            )
        )


async def collect(queue: aio_pika.abc.AbstractQueue, run: Run, count: int, timeout: float) -> None:
    """Record when each answer arrives, until `count` have; shows progress on long runs."""
    done = asyncio.Event()

    async def on_answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            run.answered[json.loads(message.body)["external_reference"]] = time.monotonic()
            if len(run.answered) >= count:
                done.set()

    tag = await queue.consume(on_answer)
    deadline = time.monotonic() + timeout
    while not done.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(run.answered)} of {count} answers after {timeout}s")
        try:
            await asyncio.wait_for(done.wait(), timeout=5)
        except TimeoutError:
            print(f"  … {len(run.answered)}/{count}", flush=True)
    await queue.cancel(tag)


async def raw_hop(harness: Harness, bodies: list[dict], prefetch: int, *, store: bool = False) -> Run:
    assert harness.connection is not None
    consumer_connection = await aio_pika.connect_robust(harness.rabbitmq_url)
    mongo = AsyncMongoClient(harness.mongodb_url)
    collection = mongo[f"{harness.namespace}_raw"]["hops"]
    channel = await consumer_connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=prefetch)
    source = await channel.declare_queue(f"{harness.namespace}.raw.in", durable=True, arguments=QUORUM)
    sink = await channel.declare_queue(f"{harness.namespace}.raw.out", durable=True, arguments=QUORUM)
    harness.extra_queues |= {source.name, sink.name}

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        command = json.loads(message.body)
        if store:
            await collection.insert_one({"_id": message.message_id, "reference": command["external_reference"]})
        out = json.dumps({"external_reference": command["external_reference"], "accepted": True}).encode()
        await channel.default_exchange.publish(
            aio_pika.Message(out, content_type="application/json", delivery_mode=PERSISTENT), sink.name
        )
        await message.ack()

    await source.consume(on_message)
    publisher = await harness.connection.channel(publisher_confirms=True)
    run = Run()
    try:
        answers = asyncio.create_task(collect(sink, run, len(bodies), timeout=600))
        await publish_all(publisher.default_exchange, source.name, bodies, run)
        await answers
    finally:
        await consumer_connection.close()
        await mongo.drop_database(collection.database.name)
        await mongo.close()
    return run


async def kring_hop(harness: Harness, bodies: list[dict], prefetch: int, *, replicas: int = 1) -> Run:
    assert harness.connection is not None
    for _ in range(replicas):
        # the deployed defaults, not the tests' quick timeouts
        app = harness.app(create_app, "referral", prefetch=prefetch, relay_sweep_seconds=5.0, mongodb_timeout_ms=5000)
        await harness.start(app.state.kring)
        # a service sweeps its outboxes once when it starts (what a crash left): not part of the hop
        await app.state.kring.relay.swept.wait()
    answers_queue = await harness.probe(harness.topology.replies.name, "referral.#")
    bureau = await aio_pika.connect_robust(harness.broker_url(bureau_user(BUREAU)))  # commands come from a bureau
    try:
        publisher = await bureau.channel(publisher_confirms=True)
        intake = await publisher.get_exchange(harness.topology.intake.name, ensure=False)
        run = Run()
        answers = asyncio.create_task(collect(answers_queue, run, len(bodies), timeout=3600))
        await publish_all(intake, "referral.submit", bodies, run, user_id=bureau_user(BUREAU))
        await answers
    finally:
        await bureau.close()
    return run


Hop = Callable[[Harness, list[dict], int], Awaitable[Run]]


async def run_variants(variants: list[tuple[str, Hop]], messages: int, prefetch: int) -> dict[str, Run]:
    """Each variant in a fresh namespace on the same servers, one after the other."""
    rabbitmq_url, mongodb_url = server_urls()
    results = {}
    for name, hop in variants:
        harness = Harness(rabbitmq_url, mongodb_url)
        await harness.open()
        try:
            print(f"{name}: {messages} messages …", flush=True)
            results[name] = await hop(harness, commands(messages), prefetch)
            print(f"{name}: {results[name].rate:,.0f} msg/s", flush=True)
        finally:
            await harness.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--prefetch", type=int, default=32)
    args = parser.parse_args()
    # The service in this process logs as a deployed one does (the cost counts), but not
    # onto the terminal, where its lines would bury the figures.
    configure_logging("referral", "INFO", stream=open(os.devnull, "w"))  # noqa: SIM115
    variants: list[tuple[str, Hop]] = [
        ("raw aio-pika", raw_hop),
        ("raw + 1 insert", lambda h, b, p: raw_hop(h, b, p, store=True)),
        ("kring referral", kring_hop),
    ]
    results = asyncio.run(run_variants(variants, args.messages, args.prefetch))
    raw, floor, kring = (results[name].rate for name, _ in variants)
    print_result(
        f"hop, {args.messages} messages, quorum queues, persistent, confirms, prefetch {args.prefetch}",
        [(name, run.figure()) for name, run in results.items()],
        [("kring/raw", kring / raw, "(goal >= 0.6)"), ("kring/raw + 1 insert", kring / floor, "(what storage leaves)")],
    )


if __name__ == "__main__":
    main()
