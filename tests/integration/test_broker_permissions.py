"""The broker's permission model (deploy/rabbitmq/definitions.py) on the real RabbitMQ:
users are created with rabbitmqctl in a vhost of the test's own, then each party tries
what it must and must not be able to do."""

import importlib.util
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import pytest
from aiormq.exceptions import AMQPError

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.py"
spec = importlib.util.spec_from_file_location("definitions", DEFINITIONS)
assert spec and spec.loader
definitions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(definitions)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Broker:
    def __init__(self, url: str, vhost: str, prefix: str) -> None:
        self.parts = urlsplit(url)
        self.vhost = vhost
        self.prefix = prefix

    def url(self, user: str, password: str) -> str:
        host = f"{self.parts.hostname}:{self.parts.port or 5672}"
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}/{quote(self.vhost, safe='')}"

    def user(self, party: str) -> str:
        return f"{self.prefix}-{party}"

    async def connect(self, party: str) -> aio_pika.abc.AbstractConnection:
        return await aio_pika.connect(self.url(self.user(party), f"{party}-pw"))

    async def allowed(self, party: str, action: Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]) -> bool:
        connection = await self.connect(party)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await action(channel)
            return True
        except AMQPError as error:
            assert "ACCESS_REFUSED" in str(error) or "access to" in str(error), error
            return False
        finally:
            await connection.close()


@pytest.fixture
async def broker(rabbitmq_url: str) -> AsyncIterator[Broker]:
    host = urlsplit(rabbitmq_url).hostname
    if shutil.which("rabbitmqctl") is None or host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs rabbitmqctl for the broker at RABBITMQ_URL (a local RabbitMQ)")
    prefix = f"perm{uuid.uuid4().hex[:8]}"
    vhost = f"{prefix}-vhost"
    rabbitmqctl("add_vhost", vhost)
    admin_user = urlsplit(rabbitmq_url).username or "guest"
    rabbitmqctl("set_permissions", "-p", vhost, admin_user, ".*", ".*", ".*")
    users = definitions.permissions(prefix)
    created = []
    for party, rules in users.items():
        name = f"{prefix}-{party}"
        rabbitmqctl("add_user", name, f"{party}-pw")
        created.append(name)
        rabbitmqctl("set_permissions", "-p", vhost, name, rules["configure"], rules["write"], rules["read"])
        for exchange, (write, read) in rules["topic"].items():
            rabbitmqctl("set_topic_permissions", "-p", vhost, name, exchange, write, read)
    broker = Broker(rabbitmq_url, vhost, prefix)
    admin = await aio_pika.connect(broker.url(admin_user, urlsplit(rabbitmq_url).password or "guest"))
    channel = await admin.channel()
    exchanges = {}
    for name in ("events", "partner", "replies", "intake"):
        exchanges[name] = await channel.declare_exchange(f"{prefix}.{name}", aio_pika.ExchangeType.TOPIC, durable=True)
    quorum = {"x-queue-type": "quorum"}
    queues = {
        "scheduling": (f"{prefix}.scheduling.referral.received", "events", "referral.received"),
        "referral": (f"{prefix}.referral.referral.submit", "intake", "referral.submit"),
        "funder": (f"{prefix}.partner.prov-utrecht", "partner", "outcome.recorded.prov-utrecht.#"),
        "other-funder": (f"{prefix}.partner.gm-elsewhere", "partner", "outcome.recorded.gm-elsewhere.#"),
        "replies": (f"{prefix}.replies.bjz-utrecht", "replies", "referral.*.bjz-utrecht"),
    }
    for name, exchange, key in queues.values():
        queue = await channel.declare_queue(name, durable=True, arguments=quorum)
        await queue.bind(exchanges[exchange], key)
    await admin.close()
    try:
        yield broker
    finally:
        rabbitmqctl("delete_vhost", vhost)
        for name in created:
            rabbitmqctl("delete_user", name)


def consume(queue: str) -> Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]:
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        declared = await channel.get_queue(queue, ensure=False)
        await declared.get(fail=False)

    return action


def publish(exchange: str, routing_key: str) -> Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]:
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(b"{}", content_type="application/json"), routing_key)

    return action


def declare_queue_bound_to(exchange: str, queue: str) -> Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]:
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        declared = await channel.declare_queue(queue, arguments={"x-queue-type": "quorum"}, durable=True)
        await declared.bind(exchange, "#")

    return action


async def test_a_funder_reads_its_own_partner_queue_and_nothing_else(broker: Broker) -> None:
    p = broker.prefix
    funder = "funder-prov-utrecht"
    assert await broker.allowed(funder, consume(f"{p}.partner.prov-utrecht"))
    assert not await broker.allowed(funder, consume(f"{p}.partner.gm-elsewhere"))
    assert not await broker.allowed(funder, consume(f"{p}.scheduling.referral.received")), "internal events"
    assert not await broker.allowed(funder, declare_queue_bound_to(f"{p}.events", f"{p}.partner.prov-utrecht.spy"))
    for exchange in ("events", "partner", "intake", "replies"):
        assert not await broker.allowed(funder, publish(f"{p}.{exchange}", "outcome.recorded.x")), exchange


async def test_a_bureau_publishes_referral_commands_only_and_cannot_consume(broker: Broker) -> None:
    p = broker.prefix
    bureau = "bureau-bjz-utrecht"
    assert await broker.allowed(bureau, publish(f"{p}.intake", "referral.submit"))
    assert not await broker.allowed(bureau, publish(f"{p}.intake", "plans.accept")), "only referral.submit"
    assert not await broker.allowed(bureau, publish(f"{p}.events", "referral.received"))
    for queue in ("replies.bjz-utrecht", "referral.referral.submit", "scheduling.referral.received", "partner.prov-utrecht"):
        assert not await broker.allowed(bureau, consume(f"{p}.{queue}")), queue
    replies_reader = "bureau-bjz-utrecht-replies"
    assert await broker.allowed(replies_reader, consume(f"{p}.replies.bjz-utrecht"))
    assert not await broker.allowed(replies_reader, consume(f"{p}.scheduling.referral.received"))
    assert not await broker.allowed(replies_reader, publish(f"{p}.intake", "referral.submit"))


async def test_a_service_uses_its_own_queues_only(broker: Broker) -> None:
    p = broker.prefix
    assert await broker.allowed("kring-scheduling", consume(f"{p}.scheduling.referral.received"))
    assert not await broker.allowed("kring-scheduling", consume(f"{p}.referral.referral.submit"))
    assert not await broker.allowed("kring-scheduling", publish(f"{p}.partner", "outcome.recorded.x.UT.none"))
    assert await broker.allowed("kring-followup", publish(f"{p}.partner", "outcome.recorded.x.UT.none"))
    assert not await broker.allowed("kring-plans", publish(f"{p}.replies", "referral.accepted.bjz-utrecht"))
