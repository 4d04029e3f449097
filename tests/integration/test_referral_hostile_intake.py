"""Hypothesis throws malformed commands at the intake: every one is answered with a
rejection or dead-lettered with a reason, none is lost, and the intake keeps working."""

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.referral.app import create_app
from shared.messaging.publisher import REASON_HEADER
from tests.support.harness import Harness
from tests.support.referrals import submit_referral
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
BUREAU = "bjz-fuzz"
EXAMPLES = 150

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
FIELDS = list(submit_referral().keys())


@st.composite
def malformed_command(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, content type) of a command that is wrong in one of many ways."""
    command = submit_referral(BUREAU, reference=f"F-{uuid.uuid4().hex[:12]}")
    kind = draw(st.sampled_from(["retyped", "removed", "extra", "nested", "not-json", "not-object", "content-type", "huge"]))
    if kind == "retyped":
        command[draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif kind == "removed":
        for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
            command.pop(name)
    elif kind == "extra":
        command[draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in command))] = draw(json_values)
    elif kind == "nested":
        command["children"] = draw(st.lists(json_values, min_size=1, max_size=3))
        command["region"] = draw(json_values)
    elif kind == "not-json":
        return draw(st.binary(min_size=1, max_size=200)).replace(b"{", b"["), "application/json"
    elif kind == "not-object":
        return json.dumps(draw(st.lists(json_values, max_size=3))).encode(), "application/json"
    elif kind == "content-type":
        return json.dumps(command).encode(), draw(st.sampled_from(["text/plain", "application/xml", "image/png"]))
    elif kind == "huge":
        command["description"] = "x" * draw(st.integers(min_value=5001, max_value=300_000))
    if kind in ("retyped", "removed") and _valid(command):
        command["children"] = []  # the draw changed nothing that matters: make it wrong
    return json.dumps(command).encode(), "application/json"


def _valid(command: dict[str, Any]) -> bool:
    from services.referral.domain import SubmitReferral

    try:
        SubmitReferral.model_validate(command)
    except Exception:
        return False
    return True


def drawn_commands() -> list[tuple[bytes, str]]:
    drawn: list[tuple[bytes, str]] = []

    @settings(max_examples=EXAMPLES, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(malformed_command())
    def collect(command: tuple[bytes, str]) -> None:
        drawn.append(command)

    collect()
    return drawn


async def test_malformed_commands_are_all_answered_or_dead_lettered_and_intake_survives(kring: Harness) -> None:
    app = kring.app(create_app, "referral")
    service = app.state.kring
    await kring.start(service)
    replies = await kring.probe(kring.topology.replies.name, "referral.#")
    queue = kring.topology.queue_name("referral", "referral.submit")

    commands = drawn_commands()
    sent: dict[str, bytes] = {}
    for body, content_type in commands:
        message_id = str(uuid.uuid4())
        sent[message_id] = body
        await kring.send_command("referral.submit", body, bureau=BUREAU, content_type=content_type, message_id=message_id)
    good = submit_referral(BUREAU)
    await kring.send_command("referral.submit", json.dumps(good).encode(), bureau=BUREAU, content_type="application/json")

    async def all_settled() -> bool:
        return await kring.depth(queue) == 0

    await eventually(all_settled, timeout=120, what="the intake queue to empty")
    answers = await kring.drain(replies.name, settle=2.0)
    dead = await kring.drain(kring.topology.dead_letter_queue(queue).name)

    rejected = [m for m in answers if m.routing_key == f"referral.rejected.{BUREAU}"]
    accepted = [m for m in answers if m.routing_key == f"referral.accepted.{BUREAU}"]
    assert [json.loads(m.body)["external_reference"] for m in accepted] == [good["external_reference"]]
    assert all(json.loads(m.body)["errors"] for m in rejected)
    assert all(m.headers.get(REASON_HEADER) for m in dead), "every dead letter says why"
    assert {m.message_id for m in dead} <= set(sent)
    assert len(rejected) + len(dead) == len(commands), (
        f"{len(commands)} sent, {len(rejected)} rejected, {len(dead)} dead-lettered: none may be lost"
    )
    print(f"\n{len(commands)} malformed commands: {len(rejected)} rejected with reasons, {len(dead)} dead-lettered")
