"""Hypothesis throws malformed and hostile messages at every event queue of every service:
each one is dead-lettered with a reason, the consumers stay alive, and good traffic after
the flood is handled as usual. (The bureaus' intake, which answers bad commands with a
rejection, has its own test: test_referral_hostile_intake.)

KRING_HOSTILE_PER_QUEUE sets the number per queue (default 8; the full fault run uses 500,
over 10,000 messages in all)."""

import importlib
import json
import os
import uuid

import aio_pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.asyncapi import SERVICES
from shared.auth import Role
from shared.contract.envelope import Envelope, amqp_body, amqp_headers
from shared.contract.events import ReferralReceived
from shared.messaging.publisher import REASON_HEADER
from tests.support.harness import Harness
from tests.support.samples import referral_received
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
PER_QUEUE = int(os.environ.get("KRING_HOSTILE_PER_QUEUE", "8"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
# A header that contradicts the message or the contract (any other id is just another id).
FORGED = {
    "cloudEvents_id": ["", "x" * 500],
    "cloudEvents_specversion": ["0.3", "", "2.0"],
    "cloudEvents_time": ["yesterday", "", "2026-13-45T99:00:00Z"],
    "cloudEvents_subject": ["", "case-someone-else"],
}
KINDS = ["not-json", "not-object", "content-type", "no-headers", "unknown-version", "other-type", "retyped", "missing", "huge", "forged-headers"]


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str], str]:
    """(kind, body, headers, content type) of a message no consumer may apply."""
    envelope = Envelope.wrap(referral_received(), source="kring/fuzz").model_dump(mode="json")
    kind = draw(st.sampled_from(KINDS))
    headers = amqp_headers(envelope)
    body, content_type = amqp_body(envelope), "application/json"
    if kind == "not-json":
        body = draw(st.binary(min_size=1, max_size=300)).replace(b"{", b"[")
    elif kind == "not-object":
        body = json.dumps(draw(st.lists(json_values, max_size=3))).encode()
    elif kind == "content-type":
        content_type = draw(st.sampled_from(["text/plain", "application/xml", "application/octet-stream"]))
    elif kind == "no-headers":
        headers = {}
    elif kind == "unknown-version":
        headers["cloudEvents_type"] = headers["cloudEvents_type"].rsplit(".", 1)[0] + f".v{draw(st.integers(2, 99))}"
    elif kind == "other-type":
        headers["cloudEvents_type"] = draw(st.sampled_from(["nl.kring.plans.plan-accepted.v1", "nl.kring.nobody.knows.v1", "x"]))
    elif kind in ("retyped", "missing"):
        data = json.loads(body)
        if kind == "retyped":
            data[draw(st.sampled_from(sorted(data)))] = draw(json_values.filter(lambda v: not isinstance(v, str)))
        else:
            for name in draw(st.lists(st.sampled_from(sorted(data)), min_size=1, max_size=3, unique=True)):
                data.pop(name)
        if _valid(data):  # the draw hit an optional field or a value that fits: make it wrong
            data["case_id"] = ["not", "an", "id"]
        body = json.dumps(data).encode()
    elif kind == "huge":
        data = json.loads(body)
        data["language"] = "x" * draw(st.integers(100_000, 2_000_000))
        body = json.dumps(data).encode()
    elif kind == "forged-headers":
        forged, values = draw(st.sampled_from(list(FORGED.items())))
        headers[forged] = draw(st.sampled_from(values))
    headers["x-fuzz-id"] = uuid.uuid4().hex
    return kind, body, headers, content_type


def _valid(data: dict) -> bool:  # type: ignore[type-arg]
    try:
        ReferralReceived.model_validate(data)
    except ValueError:
        return False
    return True


def drawn(count: int) -> list[tuple[str, bytes, dict[str, str], str]]:
    messages: list[tuple[str, bytes, dict[str, str], str]] = []

    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hostile())
    def collect(message: tuple[str, bytes, dict[str, str], str]) -> None:
        messages.append(message)

    collect()
    return messages[:count]


async def test_hostile_messages_at_every_event_queue_are_dead_lettered_and_good_traffic_goes_on(kring: Harness) -> None:
    apps = {name: kring.app(importlib.import_module(f"services.{name}.app").create_app, name) for name in SERVICES}
    for app in apps.values():
        await kring.start(app.state.kring)
    queues = sorted(
        subscriber.queue.name
        for app in apps.values()
        for subscriber in app.state.kring.broker.subscribers
        if not subscriber.queue.name.endswith("referral.submit")
    )
    assert len(queues) >= 10, queues
    assert kring.connection is not None
    channel = await kring.connection.channel(publisher_confirms=True)
    sent: dict[str, set[str]] = {}
    what: dict[str, str] = {}
    kinds: set[str] = set()
    for queue in queues:
        messages = drawn(PER_QUEUE)
        sent[queue] = {headers["x-fuzz-id"] for _, _, headers, _ in messages}
        for kind, body, headers, content_type in messages:
            kinds.add(kind)
            what[headers["x-fuzz-id"]] = f"{kind} {dict((k, v[:40]) for k, v in headers.items() if k != 'x-fuzz-id')} {body[:300]!r}"
            await channel.default_exchange.publish(
                aio_pika.Message(body, headers=headers, content_type=content_type, message_id=str(uuid.uuid4()), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )
    total = sum(len(ids) for ids in sent.values())
    print(f"\n{total} hostile messages at {len(queues)} queues, kinds: {sorted(kinds)}")

    async def all_dead_lettered() -> bool:
        return all([await kring.depth(f"{queue}.dlq") >= len(sent[queue]) for queue in queues])

    try:
        await eventually(all_dead_lettered, timeout=60 + total / 20, what=f"{total} dead letters")
    except AssertionError:
        applied = []
        for queue in queues:
            dead = {message.headers["x-fuzz-id"] for message in await kring.drain(f"{queue}.dlq", settle=0.1)}
            applied += [f"{queue}: {what[fuzz_id]}" for fuzz_id in sent[queue] - dead]
        raise AssertionError("not dead-lettered:\n" + "\n".join(applied)) from None
    for queue in queues:
        dead = await kring.drain(f"{queue}.dlq", settle=0.1)
        assert {message.headers["x-fuzz-id"] for message in dead} == sent[queue], queue
        assert all(str(message.headers.get(REASON_HEADER, "")).strip() for message in dead), queue
        assert await kring.depth(queue) == 0
        underlay = await kring.channel.get_underlay_channel()  # type: ignore[union-attr]
        assert (await underlay.queue_declare(queue, passive=True)).consumer_count >= 1, f"{queue} lost its consumer"

    good = Envelope.wrap(referral_received(), source="kring/test")
    await apps["referral"].state.kring.publisher.publish(good)
    async with kring.http(apps["scheduling"], kring.token(Role.OPS, "ops-fuzz")) as http:

        async def handled() -> bool:
            return (await http.get(f"/cases/{good.subject}")).status_code == 200

        await eventually(handled, what="the good event after the flood")
