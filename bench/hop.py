"""Benchmark 1, the hop: how close one Kring service comes to the broker's limit.

    python -m bench.hop [--messages 5000] [--prefetch 32]

Both sides do the same hop, in this process, on the same broker, with the same number of
messages, quorum queues, persistent messages and publisher confirms:
- raw: an aio-pika consumer takes a message from a queue, publishes one output message
  (confirmed) and acks; no storage;
- kring: the referral service takes a bureau's referral.submit command, stores the case
  (reference claim, snapshot insert with outbox and idempotency record), its relay publishes
  ReferralReceived (and the bureau's answer) with confirms.
Throughput is counted from the first publish to the last output message arriving.
Prints msg/s of both and the ratio kring/raw (goal: >= 0.6).
"""

import argparse
import asyncio
import json
import os
import time
import uuid

import aio_pika

from services.referral.app import create_app
from tests.support.harness import Harness
from tests.support.referrals import submit_referral


async def wait_for(harness: Harness, queue: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while (depth := await harness.depth(queue)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue}: {depth} of {count} after {timeout}s")
        if time.monotonic() - last_report > 5:
            print(f"  … {depth}/{count}", flush=True)
            last_report = time.monotonic()
        await asyncio.sleep(0.05)


async def publish_all(channel: aio_pika.abc.AbstractChannel, exchange: aio_pika.abc.AbstractExchange, routing_key: str, bodies: list[bytes]) -> None:
    window = 200  # confirmed publishes in flight
    for start in range(0, len(bodies), window):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(uuid.uuid4())),
                    routing_key,
                )
                for body in bodies[start : start + window]
            )
        )


async def raw_hop(harness: Harness, bodies: list[bytes], prefetch: int) -> float:
    assert harness.connection is not None
    consumer_connection = await aio_pika.connect_robust(harness.rabbitmq_url)
    channel = await consumer_connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=prefetch)
    quorum = {"x-queue-type": "quorum"}
    source = await channel.declare_queue(f"{harness.namespace}.raw.in", durable=True, arguments=quorum)
    sink = await channel.declare_queue(f"{harness.namespace}.raw.out", durable=True, arguments=quorum)
    harness.extra_queues |= {source.name, sink.name}

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        command = json.loads(message.body)
        out = json.dumps({"case_id": command["external_reference"], "consent": "given"}).encode()
        await channel.default_exchange.publish(
            aio_pika.Message(out, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            sink.name,
        )
        await message.ack()

    await source.consume(on_message)
    publisher = await harness.connection.channel(publisher_confirms=True)
    started = time.monotonic()
    await publish_all(publisher, publisher.default_exchange, source.name, bodies)
    await wait_for(harness, sink.name, len(bodies), timeout=600)
    elapsed = time.monotonic() - started
    await consumer_connection.close()
    return len(bodies) / elapsed


async def kring_hop(harness: Harness, bodies: list[bytes], prefetch: int) -> float:
    assert harness.connection is not None
    app = harness.app(create_app, "referral", prefetch=prefetch, relay_sweep_seconds=1.0)
    await harness.start(app.state.kring)
    sink = await harness.probe(harness.topology.events.name, "referral.received")
    await harness.probe(harness.topology.replies.name, "referral.#")  # the bureau's answers go somewhere
    publisher = await harness.connection.channel(publisher_confirms=True)
    intake = await publisher.get_exchange(harness.topology.intake.name, ensure=False)
    started = time.monotonic()
    await publish_all(publisher, intake, "referral.submit", bodies)
    await wait_for(harness, sink.name, len(bodies), timeout=1800)
    return len(bodies) / (time.monotonic() - started)


async def run(messages: int, prefetch: int) -> dict[str, float]:
    rabbitmq_url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    bodies = [json.dumps(submit_referral("bjz-bench")).encode() for _ in range(messages)]
    results = {}
    for name, hop in (("raw aio-pika", raw_hop), ("kring referral", kring_hop)):
        harness = Harness(rabbitmq_url, mongodb_url)
        await harness.open()
        try:
            print(f"{name}: {messages} messages …", flush=True)
            results[name] = await hop(harness, bodies, prefetch)
            print(f"{name}: {results[name]:,.0f} msg/s", flush=True)
        finally:
            await harness.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--prefetch", type=int, default=32)
    args = parser.parse_args()
    results = asyncio.run(run(args.messages, args.prefetch))
    raw, kring = results["raw aio-pika"], results["kring referral"]
    print(f"\nhop, {args.messages} messages, quorum queues, persistent, confirms, prefetch {args.prefetch}")
    print(f"  raw aio-pika     {raw:10,.0f} msg/s")
    print(f"  kring referral   {kring:10,.0f} msg/s")
    print(f"  ratio kring/raw  {kring / raw:10.2f}   (goal >= 0.6)")


if __name__ == "__main__":
    main()
