"""Issue 21, finding 5: a partner replay goes to the funder's own queue only. The request
names the funder, never a queue, so one funder's outcomes cannot be poured into another's."""

import json

import aio_pika
from aiormq.exceptions import ChannelAccessRefused
import pytest
from fastapi import FastAPI

from services import ops
from services.followup.app import create_app
from shared.auth import Role
from shared.contract.envelope import Envelope
from shared.contract.events import OutcomeRecorded
from shared.contract.vocabulary import ExecutionStatus, Region
from tests.support.harness import Harness
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def outcome(case_id: str, funder_id: str) -> OutcomeRecorded:
    return OutcomeRecorded(
        case_id=case_id, funder_id=funder_id, region=Region(province="UT"), period="2026-Q4",
        concern_categories=["housing"], meeting_count=1, execution_status=ExecutionStatus.FULLY_CARRIED_OUT,
    )  # fmt: skip


async def followup_with_history(kring: Harness) -> tuple[FastAPI, dict[str, str]]:
    """Follow-up has sent one outcome for funder gm-a and one for gm-b (before either bound a
    queue); the ids by funder."""
    app = kring.app(create_app, "followup")
    await kring.start(app.state.kring)
    ids = {}
    for n, funder in enumerate(("gm-a", "gm-b")):
        envelope = Envelope.wrap(outcome(f"case-replay{n:04d}", funder), source="kring/followup")
        await app.state.kring.publisher.publish(envelope)
        ids[funder] = envelope.id
    log = app.state.kring.stores["partner_log"]
    await eventually(lambda: _kept(log, 2), what="both outcomes kept")
    return app, ids


async def _kept(log: object, count: int) -> bool:
    return len(await log.find({})) >= count  # type: ignore[attr-defined]


async def test_a_replay_for_one_funder_never_reaches_another_funders_queue(kring: Harness) -> None:
    app, ids = await followup_with_history(kring)
    queue_a = await kring.funder_queue("gm-a", binding_key="outcome.recorded.nobody-a.#")
    queue_b = await kring.funder_queue("gm-b", binding_key="outcome.recorded.nobody-b.#")

    async with kring.http(app, kring.token(Role.OPS)) as http:
        response = await http.post("/partner/replay", json={"funder_id": "gm-a"})
        assert response.status_code == 200 and response.json() == {"replayed": 1}
        # Naming a queue is refused, whichever: the request has no such field.
        for queue in (queue_b.name, queue_a.name):
            refused = await http.post("/partner/replay", json={"funder_id": "gm-a", "queue": queue})
            assert refused.status_code == 422, refused.text
    assert await ops.replay_partner(kring.settings("ops"), "gm-a") == 1  # the CLI, the same rule

    got_a = await kring.drain(queue_a.name)
    assert [m.message_id for m in got_a] == [ids["gm-a"], ids["gm-a"]]
    assert {json.loads(m.body)["funder_id"] for m in got_a} == {"gm-a"}
    assert await kring.drain(queue_b.name) == [], "nothing of gm-a's, and no replay of gm-b's"


async def test_the_funder_reads_its_replay_and_only_its_own_queue(kring: Harness) -> None:
    """End to end with the funders' own broker users: gm-a reads its replay, cannot read gm-b's queue."""
    app, ids = await followup_with_history(kring)
    queue_a = await kring.funder_queue("gm-a", binding_key="outcome.recorded.nobody-a.#")
    await kring.funder_queue("gm-b", binding_key="outcome.recorded.nobody-b.#")
    async with kring.http(app, kring.token(Role.OPS)) as http:
        assert (await http.post("/partner/replay", json={"funder_id": "gm-a"})).json() == {"replayed": 1}

    async with await aio_pika.connect(kring.broker_url("funder-gm-a")) as connection:
        channel = await connection.channel()
        own = await channel.get_queue(queue_a.name, ensure=False)
        await eventually(lambda: kring.depth(queue_a.name), what="the replay")
        message = await own.get(no_ack=True)
        assert message.message_id == ids["gm-a"] and message.user_id == "kring-followup"
        with pytest.raises(ChannelAccessRefused):
            other = await channel.get_queue(kring.topology.partner_queue_name("gm-b"), ensure=False)
            await other.get(fail=False)
