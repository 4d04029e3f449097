"""End to end, the four services as OS processes: a bureau's bottom-line requirements and
the professional it names travel with the case, and only that professional sets
requirements and reviews; a plan that answers one of two requirements is sent back naming
the other, and the revised plan is accepted (issue 22)."""

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest

from shared.auth import Role
from tests.support.referrals import submit_referral
from tests.support.system import System, load_demo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
BUREAU = "bjz-utrecht"
NAMED = "gezinsvoogd-e2e-1"
REQUIREMENTS = ["De kinderen worden niet meer geslagen.", "Er is elke avond een volwassene thuis."]


def test_the_named_professional_alone_holds_the_bureaus_bottom_lines(system: System, rabbitmq_url: str) -> None:
    asyncio.run(bottom_lines(system, rabbitmq_url))


async def bottom_lines(system: System, rabbitmq_url: str) -> None:
    demo = load_demo()
    driver = demo.Driver(system.urls, rabbitmq_url, 120, system.prefix)
    seen: list[tuple[str, dict[str, Any]]] = []
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(f"{system.prefix}.events", "plans.#")
        await queue.bind(f"{system.prefix}.partner", "#")

        async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                seen.append((message.routing_key or "", json.loads(message.body)))

        await queue.consume(record)
        await driver.watch()
        await walk(demo, driver)

        async def accepted() -> bool:
            return any(key == "plans.plan-accepted" for key, _ in seen)

        await driver.until("PlanAccepted on the bus", accepted)
        kinds = [key for key, _ in seen]
        assert kinds == ["plans.plan-presented", "plans.plan-revision-requested", "plans.plan-presented", "plans.plan-accepted"]
        assert seen[1][1]["unmet_requirement_ids"] == ["r2"], "the revision names the unanswered requirement"
        assert seen[0][1]["bottom_line_requirements"] == 2 and seen[0][1]["requirements_all_met"] is False
        assert seen[3][1]["reviewed_by_professional"] is True and seen[3][1]["accepted_with_justification"] is False
        assert not any(text in json.dumps(seen) for text in REQUIREMENTS), "plans' events carry counts, not the texts"
    finally:
        await driver.stop_watching()
        await driver.http.aclose()
        await connection.close()


async def walk(demo: Any, driver: Any) -> None:
    ops = demo.token(Role.OPS, "ops-e2e")
    profile = {"provinces": ["UT"], "languages": ["nl", "ar"], "gender": "female", "max_cases": 4, "professional_care_provider": False}
    (await driver.call("scheduling", "PUT", "/coordinators/coord-e2e", ops, json=profile)).raise_for_status()

    reference = f"E2E/{uuid.uuid4().hex[:8]}"
    command = submit_referral(BUREAU, reference, bottom_line_requirements=REQUIREMENTS, responsible_professional_id=NAMED)
    del command["source_organisation_id"]  # the intake knows the sender from its broker user
    await driver.submit(command, BUREAU)
    case_id = await driver.until("the bureau's answer", lambda: asyncio.sleep(0, driver.accepted.get(reference)))

    named = demo.token(Role.PROFESSIONAL, NAMED)
    other = demo.token(Role.PROFESSIONAL, "first-comer")

    async def plan_as(bearer: str) -> Any:
        response = await driver.call("plans", "GET", f"/cases/{case_id}/plan", bearer)
        return response.json() if response.status_code == 200 else None

    plan = await driver.until("the requirements in plans", lambda: plan_as(named))
    assert [(r["requirement_id"], r["text"], r["from_referral"]) for r in plan["requirements"]] == [
        ("r1", REQUIREMENTS[0], True), ("r2", REQUIREMENTS[1], True),
    ]  # fmt: skip
    assert plan["professional_id"] == NAMED and plan["statutory"] is True

    # Another professional, first or not, is refused: no claim by acting first.
    body = {"text": "Vader komt niet meer in huis.", "shared_with_family_at": plan["requirements"][0]["set_at"]}
    refused = await driver.call("plans", "POST", f"/cases/{case_id}/requirements", other, json=body)
    assert refused.status_code == 403, refused.text
    assert (await driver.call("plans", "GET", f"/cases/{case_id}/plan", other)).status_code == 403

    async def coordinator_of() -> str | None:
        response = await driver.call("scheduling", "GET", f"/cases/{case_id}", ops)
        return response.json().get("coordinator_id") if response.status_code == 200 else None

    coordinator_id = await driver.until("a coordinator", coordinator_of)
    coordinator = demo.token(Role.COORDINATOR, coordinator_id)
    # The family reads its plan's bottom lines (a one-time code from the coordinator, exchanged for its token).
    async def referral_knows_the_coordinator() -> bool:
        return (await driver.call("referral", "GET", f"/cases/{case_id}", coordinator)).status_code == 200

    await driver.until("referral to know the coordinator", referral_knows_the_coordinator)
    family_view = await plan_as(await driver.family_access(case_id, coordinator))
    assert [r["text"] for r in family_view["requirements"]] == REQUIREMENTS

    scenario = demo.Scenario(
        number=1, via_bureau=True, province="UT", municipality="GM0344", funder="prov-utrecht", bureau=BUREAU, language="nl",
        statutory=True, consent_upfront=True, withdraws=False, revision=True, second_meeting=False, no_plan=False,
        children=[4, 9, 13], case_id=case_id,
    )  # fmt: skip
    await driver.conference(scenario, coordinator, 1)
    await driver.present(case_id, coordinator, [["r1"], []])  # answers the first requirement only
    refused_review = await driver.call("plans", "POST", f"/cases/{case_id}/plan/review", other, json={})
    assert refused_review.status_code == 403, refused_review.text
    review = await driver.call("plans", "POST", f"/cases/{case_id}/plan/review", named, json={})
    assert review.status_code == 200 and review.json()["meetings"][0]["status"] == "revision_requested"

    await driver.present(case_id, coordinator, [["r1"], ["r2"]])
    assert (await driver.call("plans", "POST", f"/cases/{case_id}/plan/review", other, json={})).status_code == 403
    final = await driver.call("plans", "POST", f"/cases/{case_id}/plan/review", named, json={})
    assert final.status_code == 200 and final.json()["meetings"][0]["status"] == "accepted"
