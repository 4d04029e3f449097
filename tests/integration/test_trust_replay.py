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
from shared.pseudonym import Pseudonyms, pseudonyms
from tests.support.harness import Harness
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def outcome(case_id: str, funder_id: str) -> OutcomeRecorded:
    return OutcomeRecorded(
        pseudonym=Pseudonyms(b"r" * 32).of(case_id, funder_id), funder_id=funder_id, region=Region(province="UT"), period="2026-Q4",
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


async def test_an_outcome_kept_before_v2_is_replayed_under_the_pseudonym_without_the_case_id(kring: Harness) -> None:
    """Issue 23: the partner log still holds outcomes sent as v1 (with the shared case id);
    a replay sends them as v2, under the funder's pseudonym, with the original event id."""
    from services.followup import partner
    from shared.domain import Change

    app = kring.app(create_app, "followup")
    await kring.start(app.state.kring)
    case_id = "case-legacy0001"
    legacy = {
        "channel": "partner", "routing_key": "outcome.recorded.gm-a.UT.none",
        "envelope": {
            "id": "legacy-event-1", "source": "kring/followup", "type": partner.LEGACY_TYPE, "time": "2026-01-05T09:00:00+00:00",
            "subject": case_id, "specversion": "1.0", "correlation_id": case_id, "causation_id": "internal-cause-1",
            "data": {
                "case_id": case_id, "funder_id": "gm-a", "region": {"province": "UT", "municipality": None}, "period": "2026-Q1",
                "concern_categories": ["housing"], "meeting_count": 1, "execution_status": "fully_carried_out",
                "ratings": {}, "child_outcomes": [],
            },
        },
    }  # fmt: skip
    log = app.state.kring.stores["partner_log"]
    await log.mutate("legacy-event-1", lambda _: Change(partner.SentOutcome(funder_id="gm-a", entry=legacy)))
    queue_a = await kring.funder_queue("gm-a", binding_key="outcome.recorded.nobody-a.#")
    assert await ops.replay_partner(kring.settings("ops"), "gm-a") == 1
    (message,) = await kring.drain(queue_a.name)
    expected = pseudonyms(kring.settings("followup")).of(case_id, "gm-a")
    headers = {key: (value.decode() if isinstance(value, bytes) else str(value)) for key, value in message.headers.items()}
    assert message.message_id == "legacy-event-1" and headers["cloudEvents_type"] == OutcomeRecorded.type_name()
    assert headers["cloudEvents_subject"] == headers["cloudEvents_correlationid"] == expected
    assert "cloudEvents_causationid" not in headers and message.correlation_id == expected
    assert json.loads(message.body)["pseudonym"] == expected
    assert case_id not in message.body.decode() and case_id not in str(headers) and "internal-cause-1" not in str(headers)
