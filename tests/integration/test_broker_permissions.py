"""The broker's permission model as it is loaded into the local broker: the users and
permissions of deploy/rabbitmq/definitions.development.json (scripts/infra.sh imports it),
checked to be what the broker holds, then every party tries what it must and must not be
able to do (publish, consume, declare) in a namespace of the test's own. Topic permissions
name exact exchanges, so the harness applies the loaded rules to this namespace's exchanges
(Harness.enforce_topic_permissions)."""

import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from aiormq.exceptions import AMQPError

from shared.contract.events import CATALOGUE, Channel
from tests.support.harness import Harness, load_definitions, rabbitmqctl

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DEVELOPMENT = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.development.json"
SERVICES = ("referral", "scheduling", "plans", "followup")
Action = Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]


class Parties:
    def __init__(self, kring: Harness) -> None:
        self.kring = kring
        self.p = kring.namespace

    async def allowed(self, party: str, action: Action) -> bool:
        connection = await aio_pika.connect(self.kring.broker_url(party))
        try:
            channel = await connection.channel(publisher_confirms=True)
            await action(channel)
            return True
        except AMQPError as error:
            refused = ("ACCESS_REFUSED", "access to", "user_id property set to")  # the last: not the connection's user
            assert any(reason in str(error) for reason in refused), error
            return False
        finally:
            await connection.close()


@pytest.fixture
async def parties(kring: Harness) -> AsyncIterator[Parties]:
    host = urlsplit(kring.rabbitmq_url).hostname
    if shutil.which("rabbitmqctl") is None or host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs rabbitmqctl for the broker at RABBITMQ_URL (a local RabbitMQ)")
    await kring.enforce_topic_permissions()
    assert kring.channel is not None
    p = kring.namespace
    for exchange in kring.topology.exchanges():
        await kring.channel.declare_exchange(exchange.name, exchange.type.value, durable=True)
    queues = {
        f"{p}.scheduling.referral.received": ("events", "referral.received"),
        f"{p}.referral.referral.submit": ("intake", "referral.submit"),
        f"{p}.partner.prov-utrecht": ("partner", "outcome.recorded.prov-utrecht.#"),
        f"{p}.partner.gm-a": ("partner", "outcome.recorded.gm-a.#"),
        f"{p}.replies.bjz-utrecht": ("replies", "referral.*.bjz-utrecht"),
    }
    for name, (exchange, key) in queues.items():
        kring.extra_queues.add(name)
        queue = await kring.channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(f"{p}.{exchange}", key)
    yield Parties(kring)


def consume(queue: str) -> Action:
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        declared = await channel.get_queue(queue, ensure=False)
        await declared.get(fail=False)

    return action


def publish(exchange: str, routing_key: str, *, user_id: str | None = None) -> Action:
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(b"{}", content_type="application/json", user_id=user_id), routing_key)

    return action


def declare_queue_bound_to(exchange: str, queue: str) -> Action:
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        declared = await channel.declare_queue(queue, arguments={"x-queue-type": "quorum"}, durable=True)
        await declared.bind(exchange, "#")

    return action


def _json(*args: str) -> list[dict[str, Any]]:
    return json.loads(rabbitmqctl(*args, "--formatter", "json").stdout)


async def test_the_broker_holds_the_development_definitions() -> None:
    """What this file tests is what is loaded: every party's user, tags and permissions, and
    the topic permissions on the `kring` namespace's exchanges."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl")
    wanted = json.loads(DEVELOPMENT.read_text())
    assert wanted == load_definitions().definitions("/", "kring", development=True) | {"users": wanted["users"]}, (
        "run: python deploy/rabbitmq/definitions.py --development > deploy/rabbitmq/definitions.development.json"
    )
    users = {u["user"]: sorted(u["tags"]) for u in _json("list_users")}
    for user in wanted["users"]:
        assert users.get(user["name"]) == sorted(user["tags"]), f"{user['name']}: scripts/infra.sh imports the definitions"
    held = {p["user"]: p for p in _json("list_permissions", "-p", "/")}
    for rule in wanted["permissions"]:
        assert {k: held[rule["user"]][k] for k in ("configure", "write", "read")} == {k: rule[k] for k in ("configure", "write", "read")}
    topics = {(t["user"], t["exchange"]): (t["write"], t["read"]) for t in _json("list_topic_permissions", "-p", "/")}
    for rule in wanted["topic_permissions"]:
        assert topics[(rule["user"], rule["exchange"])] == (rule["write"], rule["read"])
    assert users["guest"] == ["administrator"], "guest stays, for the harness's own administration"


async def test_a_funder_reads_its_own_partner_queue_and_nothing_else(parties: Parties) -> None:
    p, funder = parties.p, "funder-prov-utrecht"
    assert await parties.allowed(funder, consume(f"{p}.partner.prov-utrecht"))
    assert not await parties.allowed(funder, consume(f"{p}.partner.gm-a")), "another funder's"
    assert not await parties.allowed(funder, consume(f"{p}.scheduling.referral.received")), "internal events"
    assert not await parties.allowed(funder, declare_queue_bound_to(f"{p}.events", f"{p}.partner.prov-utrecht.spy"))
    assert not await parties.allowed(funder, declare_queue_bound_to(f"{p}.partner", f"{p}.partner.prov-utrecht.all"))
    for exchange in ("events", "partner", "intake", "replies"):
        assert not await parties.allowed(funder, publish(f"{p}.{exchange}", "outcome.recorded.x")), exchange


async def test_a_bureau_publishes_referral_commands_only_and_cannot_consume(parties: Parties) -> None:
    p = parties.p
    for bureau in ("bureau-bjz-utrecht", "bureau-bjz-bench"):
        assert await parties.allowed(bureau, publish(f"{p}.intake", "referral.submit", user_id=bureau))
        assert not await parties.allowed(bureau, publish(f"{p}.intake", "plans.accept")), "only referral.submit"
        assert not await parties.allowed(bureau, publish(f"{p}.events", "referral.received"))
        assert not await parties.allowed(bureau, publish(f"{p}.replies", "referral.accepted.bjz-utrecht"))
        assert not await parties.allowed(bureau, declare_queue_bound_to(f"{p}.replies", f"{p}.replies.spy"))
        for queue in ("replies.bjz-utrecht", "referral.referral.submit", "scheduling.referral.received", "partner.prov-utrecht"):
            assert not await parties.allowed(bureau, consume(f"{p}.{queue}")), queue
    # in another's name: the broker checks the user_id
    assert not await parties.allowed("bureau-bjz-bench", publish(f"{p}.intake", "referral.submit", user_id="bureau-bjz-utrecht"))
    reader = "bureau-bjz-utrecht-replies"
    assert await parties.allowed(reader, consume(f"{p}.replies.bjz-utrecht"))
    assert not await parties.allowed(reader, consume(f"{p}.scheduling.referral.received"))
    assert not await parties.allowed(reader, publish(f"{p}.intake", "referral.submit"))


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_publishes_its_own_events_and_uses_its_own_queues_only(parties: Parties, service: str) -> None:
    p = parties.p
    for event in CATALOGUE:
        if event.channel is not Channel.EVENTS:
            continue
        mine = event.producer() == service
        assert await parties.allowed(service, publish(f"{p}.events", event.binding_key(), user_id=f"kring-{service}")) == mine, (
            event.name
        )
    assert not await parties.allowed(service, publish(f"{p}.events", "referral.received", user_id="kring-referral" if service != "referral" else "kring-plans"))
    assert await parties.allowed(service, publish(f"{p}.partner", "outcome.recorded.x.UT.none")) == (service == "followup")
    assert await parties.allowed(service, publish(f"{p}.replies", "referral.accepted.bjz-utrecht")) == (service == "referral")
    assert not await parties.allowed(service, publish(f"{p}.intake", "referral.submit")), "commands come from bureaus"
    own = f"{p}.{service}.probe-{uuid.uuid4().hex[:6]}"
    parties.kring.extra_queues.add(own)
    assert await parties.allowed(service, declare_queue_bound_to(f"{p}.events", own))
    assert await parties.allowed(service, consume(own))
    other = "plans" if service != "plans" else "scheduling"
    assert not await parties.allowed(service, declare_queue_bound_to(f"{p}.events", f"{p}.{other}.spy"))
    assert await parties.allowed(service, consume(f"{p}.scheduling.referral.received")) == (service == "scheduling")
    assert await parties.allowed(service, consume(f"{p}.referral.referral.submit")) == (service == "referral")
    assert not await parties.allowed(service, consume(f"{p}.partner.prov-utrecht"))


async def test_ops_may_redrive_in_the_original_senders_name(parties: Parties) -> None:
    p = parties.p
    assert await parties.allowed("ops", publish(f"{p}.events", "scheduling.coordinator-assigned", user_id="kring-scheduling"))
    assert await parties.allowed("ops", publish(f"{p}.intake", "referral.submit", user_id="bureau-bjz-utrecht"))
    assert await parties.allowed("ops", consume(f"{p}.referral.referral.submit"))
