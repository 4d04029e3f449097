"""kring-ops against the real servers: queue depths, outbox backlog, DLQ inspection and redrive."""

import json
import uuid

import aio_pika
import pytest

from services import ops
from services.referral.app import create_app
from shared.messaging.publisher import ORIGINAL_USER_HEADER, REASON_HEADER, Unroutable
from tests.support.harness import Harness
from tests.support.referrals import submit_referral
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_a_dead_letter_is_shown_with_its_reason_and_redriven_to_be_consumed(kring: Harness) -> None:
    app = kring.app(create_app, "referral")
    service = app.state.kring
    await kring.start(service)
    settings = kring.settings("ops")
    queue = kring.topology.queue_name("referral", "referral.submit")
    replies = await kring.probe(kring.topology.replies.name, "referral.accepted.#")

    # A good command of bureau bjz-ops that was dead-lettered (say, during an outage of a
    # dependency): the referral service's copy names the bureau as its original sender.
    message_id = str(uuid.uuid4())
    command = json.dumps(submit_referral("bjz-ops")).encode()
    await service.publisher._send(
        kring.topology.dead_letter, queue, command,
        headers={
            REASON_HEADER: "handler failed on 6 deliveries: TimeoutError", "x-delivery-count": 5,
            ORIGINAL_USER_HEADER: "bureau-bjz-ops",
        },
        content_type="application/json", message_id=message_id,
    )  # fmt: skip
    await eventually(lambda: kring.depth(f"{queue}.dlq"), what="the dead letter")

    states = {state.name: state for state in await ops.queue_states(settings)}
    assert states[queue].dead_letters == 1 and states[queue].consumers == 1
    [letter] = await ops.dead_letters(settings, queue, limit=10)
    assert letter["message_id"] == message_id and letter["reason"].startswith("handler failed")
    await eventually(lambda: kring.depth(f"{queue}.dlq"), what="showing to leave it in place")

    assert await ops.redrive(settings, queue, limit=10, message_id="not-this-one") == 0
    assert await ops.redrive(settings, queue, limit=10) == 1
    [reply] = await kring.drain(replies.name, settle=1.5)
    assert json.loads(reply.body)["source_organisation_id"] == "bjz-ops"
    assert await kring.depth(f"{queue}.dlq") == 0
    backlog = await ops.outbox_backlog(settings)
    assert backlog["referral:referrals"] == 0, backlog


async def test_a_dead_letter_whose_queue_is_gone_stays_in_the_dlq(kring: Harness) -> None:
    """Redrive publishes mandatory and waits for the broker: a message no queue takes is
    returned, and the dead letter must then stay, not be acked away."""
    settings = kring.settings("ops")
    queue = f"{kring.namespace}.gone-{uuid.uuid4().hex[:6]}"
    kring.extra_queues.add(f"{queue}.dlq")
    assert kring.channel is not None
    dlq = await kring.channel.declare_queue(f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
    await kring.channel.default_exchange.publish(aio_pika.Message(b"{}", message_id="kept"), routing_key=dlq.name)
    await eventually(lambda: kring.depth(dlq.name), what="the dead letter")

    with pytest.raises(Unroutable):
        await ops.redrive(settings, queue, limit=10)
    assert await kring.depth(dlq.name) == 1


async def test_replay_publishes_a_funders_history_into_its_queue(kring: Harness) -> None:
    from services.followup.app import create_app as followup_app
    from shared.contract.envelope import Envelope
    from shared.contract.events import OutcomeRecorded
    from shared.contract.vocabulary import ExecutionStatus, Region

    app = kring.app(followup_app, "followup")
    service = app.state.kring
    await kring.start(service)
    outcome = OutcomeRecorded(
        pseudonym="0f" * 32, funder_id="gm-ops", region=Region(province="UT"), period="2026-Q4",
        concern_categories=["housing"], meeting_count=1, execution_status=ExecutionStatus.FULLY_CARRIED_OUT,
    )  # fmt: skip
    envelope = Envelope.wrap(outcome, source="kring/followup")
    await service.publisher.publish(envelope)
    await eventually(lambda: service.stores["partner_log"].find({"funder_id": "gm-ops"}), what="kept")
    late = await kring.funder_queue("gm-ops", binding_key="outcome.recorded.nobody.#")
    assert await ops.replay_partner(kring.settings("ops"), "gm-ops") == 1
    [message] = await kring.drain(late.name)
    assert message.message_id == envelope.id
