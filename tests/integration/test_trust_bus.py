"""Issue 21, findings 2 and 3: who published a message is known from its broker-validated
user_id, not from anything the sender wrote. A service cannot publish another's events (the
broker refuses), an event that still arrives from the wrong sender is dead-lettered (the
consumer refuses), and a bureau cannot submit in another bureau's name."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import AMQPError
from fastapi import FastAPI

from services.referral.app import create_app
from shared.auth import Role
from shared.contract.envelope import CONTENT_TYPE, Envelope, amqp_body, amqp_headers
from shared.contract.events import CoordinatorAssigned
from shared.contract.vocabulary import Region
from shared.messaging.publisher import ORIGINAL_USER_HEADER, REASON_HEADER
from tests.support.harness import Harness
from tests.support.referrals import submit_referral
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
BUREAU = "bjz-utrecht"
ATTACKER = "coord-attacker"


async def started(kring: Harness) -> FastAPI:
    app = kring.app(create_app, "referral")
    await kring.start(app.state.kring)
    return app


async def a_case(kring: Harness, app: FastAPI) -> str:
    replies = await kring.probe(kring.topology.replies.name, f"referral.accepted.{BUREAU}")
    await kring.send_command("referral.submit", submit_referral(BUREAU), bureau=BUREAU)
    [reply] = await kring.drain(replies.name, settle=1.5)
    return str(json.loads(reply.body)["case_id"])


def forged_assignment(case_id: str) -> tuple[bytes, dict[str, Any], str]:
    """A CoordinatorAssigned naming the attacker: body, headers, event id."""
    event = CoordinatorAssigned(case_id=case_id, coordinator_id=ATTACKER, assigned_at=datetime.now(UTC), region=Region(province="UT"))
    envelope = Envelope.wrap(event, source="kring/scheduling").model_dump(mode="json")
    return amqp_body(envelope), amqp_headers(envelope), envelope["id"]


async def publish_as(
    kring: Harness, party: str, exchange: str, routing_key: str, body: bytes, *, user_id: str | None, **properties: Any
) -> None:
    """Publish on a connection of `party`'s own broker user, confirmed; raises the broker's
    channel error if it refuses."""
    connection = await aio_pika.connect(kring.broker_url(party))
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=False)
        message = aio_pika.Message(body, user_id=user_id, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties)
        await target.publish(message, routing_key)
    finally:
        await connection.close()


async def contact_status(kring: Harness, app: FastAPI, case_id: str, coordinator: str) -> int:
    async with kring.http(app, kring.token(Role.COORDINATOR, subject=coordinator)) as http:
        return (await http.get(f"/cases/{case_id}/contact")).status_code


async def test_a_service_cannot_publish_another_services_event(kring: Harness) -> None:
    """The broker refuses: the topic permission (kring-referral may not publish
    scheduling.*), and a user_id other than the connection's own."""
    await kring.enforce_topic_permissions()
    app = await started(kring)
    case_id = await a_case(kring, app)
    body, headers, _ = forged_assignment(case_id)
    events = kring.topology.events.name
    key = CoordinatorAssigned.binding_key()

    for party in ("referral", "plans", "followup"):
        with pytest.raises(AMQPError, match="ACCESS_REFUSED"):
            await publish_as(kring, party, events, key, body, user_id=f"kring-{party}", headers=headers)
    with pytest.raises(AMQPError, match="PRECONDITION_FAILED"):  # user_id is validated
        await publish_as(kring, "referral", events, "referral.received", body, user_id="kring-scheduling", headers=headers)
    with pytest.raises(AMQPError, match="ACCESS_REFUSED"):  # a bureau may only send referral.submit
        await publish_as(kring, f"bureau-{BUREAU}", events, key, body, user_id=f"bureau-{BUREAU}", headers=headers)
    # scheduling itself may (the permission is not simply closed)
    await publish_as(kring, "scheduling", events, "scheduling.place-freed", b"{}", user_id="kring-scheduling")

    assert await contact_status(kring, app, case_id, ATTACKER) == 403


async def test_an_event_from_the_wrong_sender_is_dead_lettered_and_unlocks_nothing(kring: Harness) -> None:
    """Past the broker (an impersonating administrator, or a sender without user_id), the
    consumer still refuses: the user_id must be the event's producer, kring-scheduling."""
    app = await started(kring)
    case_id = await a_case(kring, app)
    queue = kring.topology.queue_name("referral", CoordinatorAssigned.binding_key())
    events, key = kring.topology.events.name, CoordinatorAssigned.binding_key()

    body, headers, impersonated = forged_assignment(case_id)
    await publish_as(kring, "ops", events, key, body, user_id="kring-plans", headers=headers, message_id=impersonated)
    body, headers, anonymous = forged_assignment(case_id)
    assert kring.channel is not None
    exchange = await kring.channel.get_exchange(events, ensure=False)
    await exchange.publish(aio_pika.Message(body, headers=headers, content_type=CONTENT_TYPE, message_id=anonymous), key)

    dlq = kring.topology.dead_letter_queue(queue).name
    await eventually(lambda: _at_least(kring, dlq, 2), what="both forged events dead-lettered")
    letters = {m.message_id: m for m in await kring.drain(dlq)}
    assert set(letters) == {impersonated, anonymous}
    reason = letters[impersonated].headers[REASON_HEADER]
    assert "'kring-plans' may not publish nl.kring.scheduling.coordinator-assigned.v1 (only kring-scheduling)" in reason
    assert letters[impersonated].headers[ORIGINAL_USER_HEADER] == "kring-plans", "kept for a redrive"
    assert "may not publish" in letters[anonymous].headers[REASON_HEADER]
    assert await contact_status(kring, app, case_id, ATTACKER) == 403

    # The real producer's assignment is taken.
    real = CoordinatorAssigned(case_id=case_id, coordinator_id="coord-7", assigned_at=datetime.now(UTC), region=Region(province="UT"))
    await kring.publish(Envelope.wrap(real, source="kring/scheduling"))

    async def assigned() -> bool:
        return await contact_status(kring, app, case_id, "coord-7") == 200

    await eventually(assigned, what="the assigned coordinator to read the contact person")
    assert await contact_status(kring, app, case_id, ATTACKER) == 403


async def _at_least(kring: Harness, queue: str, count: int) -> bool:
    return await kring.depth(queue) >= count


async def test_a_bureau_cannot_submit_in_another_bureaus_name(kring: Harness) -> None:
    app = await started(kring)
    replies = await kring.probe(kring.topology.replies.name, "referral.#")
    spoofed = submit_referral("bjz-b", reference="BJZB/2026/1")  # body names bjz-b ...
    await kring.send_command("referral.submit", spoofed, bureau="bjz-a")  # ... sent by bjz-a

    [answer] = await kring.drain(replies.name, settle=1.5)
    assert answer.routing_key == "referral.rejected.bjz-a", "answered to the sender, not the name in the body"
    rejection = json.loads(answer.body)
    assert rejection["source_organisation_id"] == "bjz-a"
    assert [e["field"] for e in rejection["errors"]] == ["source_organisation_id"]

    # Nothing was created or claimed for bjz-b: its own submission of that reference is new.
    await kring.send_command("referral.submit", spoofed, bureau="bjz-b")
    [accepted] = await kring.drain(replies.name, settle=1.5)
    assert accepted.routing_key == "referral.accepted.bjz-b"
    assert json.loads(accepted.body)["resubmission"] is False
    # And a command that leaves the organisation out is the sender's.
    omitted = {k: v for k, v in submit_referral("x").items() if k != "source_organisation_id"}
    await kring.send_command("referral.submit", omitted, bureau="bjz-a")
    [own] = await kring.drain(replies.name, settle=1.5)
    assert own.routing_key == "referral.accepted.bjz-a"
    case_id = json.loads(own.body)["case_id"]
    async with kring.http(app, kring.token(Role.BUREAU, organisation_id="bjz-a")) as http:
        assert (await http.get(f"/cases/{case_id}")).status_code == 200


async def test_a_command_from_anyone_but_a_bureau_is_dead_lettered(kring: Harness) -> None:
    await started(kring)
    replies = await kring.probe(kring.topology.replies.name, "referral.#")
    queue = kring.topology.queue_name("referral", "referral.submit")
    message_id = str(uuid.uuid4())
    body = json.dumps(submit_referral(BUREAU)).encode()
    await publish_as(kring, "ops", kring.topology.intake.name, "referral.submit", body, user_id="kring-ops", message_id=message_id)

    [letter] = await kring.drain(kring.topology.dead_letter_queue(queue).name, settle=1.5)
    assert letter.message_id == message_id
    assert "'kring-ops' is not a bureau's" in letter.headers[REASON_HEADER]
    assert await kring.drain(replies.name) == [], "no case, no answer"
