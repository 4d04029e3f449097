"""End to end, four service processes: a three-month check that asks for a new conference
opens a follow-up conference on the same case, with the same coordinator; its plan and its
own check flow like the first, with their own OutcomeRecorded; the funder report counts it
apart and shows the service standards reached."""

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.auth import Role
from tests.support.system import System, load_demo

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def test_a_follow_up_conference_runs_through_its_own_plan_check_and_outcome(system: System, rabbitmq_url: str) -> None:
    asyncio.run(follow_up_conference(system, rabbitmq_url))


async def follow_up_conference(system: System, rabbitmq_url: str) -> None:
    demo = load_demo()
    driver = demo.Driver(system.urls, rabbitmq_url, 90, system.prefix)
    await driver.watch()
    try:
        await run(demo, driver)
    finally:
        await driver.stop_watching()
        await driver.http.aclose()


async def run(demo: Any, driver: Any) -> None:  # noqa: PLR0915 (one story, told in order)
    ops = demo.token(Role.OPS, "ops-e2e")
    profile = {"provinces": ["UT"], "languages": ["nl"], "max_cases": 4, "professional_care_provider": False}
    # only "coord-fc-b" at first; "coord-fc-a" (first by name, as free) comes later: the
    # follow-up conference still goes to b, the previous coordinator
    (await driver.call("scheduling", "PUT", "/coordinators/coord-fc-b", ops, json=profile)).raise_for_status()
    s = demo.Scenario(
        number=9001, via_bureau=False, province="UT", municipality="GM0344", funder="prov-utrecht", bureau="bjz-utrecht",
        language="nl", statutory=False, consent_upfront=True, withdraws=False, revision=False, second_meeting=False,
        no_plan=False, children=[7],
    )  # fmt: skip
    response = await driver.call("referral", "POST", "/self-referrals", None, json=demo.request_body(s))
    response.raise_for_status()
    case_id = s.case_id = response.json()["case_id"]
    intake = demo.token(Role.OPS, "intake-e2e")
    (await driver.call("referral", "GET", f"/cases/{case_id}/contact", intake)).raise_for_status()
    (await driver.call("referral", "POST", f"/cases/{case_id}/intake", intake)).raise_for_status()

    async def scheduling_case() -> dict[str, Any]:
        return (await driver.call("scheduling", "GET", f"/cases/{case_id}", ops)).json()

    async def assigned(conference: int) -> str | None:
        found = await scheduling_case()
        return found.get("coordinator_id") if found.get("conference_number") == conference else None

    assert await driver.until("a coordinator", lambda: assigned(1)) == "coord-fc-b"
    coordinator = demo.token(Role.COORDINATOR, "coord-fc-b")
    (await driver.call("scheduling", "PUT", "/coordinators/coord-fc-a", ops, json=profile)).raise_for_status()

    async def first_contact() -> None:
        deadlines = (await driver.call("scheduling", "GET", "/cases/deadlines", coordinator, params={"within_days": 5})).json()
        assert (case_id, "first_contact") in {(d["case_id"], d["standard"]) for d in deadlines}
        body = {"contacted_at": datetime.now(UTC).isoformat()}
        (await driver.call("scheduling", "POST", f"/cases/{case_id}/first-contact", coordinator, json=body)).raise_for_status()

    async def check(conference: int, again: bool) -> None:
        async def due() -> bool:
            found = await driver.call("followup", "GET", f"/cases/{case_id}", coordinator)
            return found.status_code == 200 and (found.json()["stage"], found.json()["conference_number"]) == ("due", conference)

        await driver.until(f"the check of conference {conference}", due)
        body = {"execution_status": "in_progress_partly", "ratings_by_family": [7, 8], "new_conference_requested": again}
        (await driver.call("followup", "POST", f"/cases/{case_id}/check", coordinator, json=body)).raise_for_status()

    await first_contact()
    await driver.conference(s, coordinator, 1)
    await driver.present(case_id, coordinator, [[], []])
    await check(1, again=True)

    # the follow-up conference: the same case, conference 2 from meeting 1, the same coordinator
    assert await driver.until("the follow-up conference's coordinator", lambda: assigned(2)) == "coord-fc-b"
    opened = await scheduling_case()
    assert (opened["meeting_number"], opened["preferred_coordinator_id"]) == (1, "coord-fc-b")
    await first_contact()
    await driver.conference(s, coordinator, 1)
    await driver.present(case_id, coordinator, [[], []])
    plan = (await driver.call("plans", "GET", f"/cases/{case_id}/plan", coordinator)).json()
    assert [(m["conference_number"], m["number"], m["status"]) for m in plan["meetings"]] == [(1, 1, "accepted"), (2, 1, "accepted")]
    await check(2, again=False)

    expected = Counter({
        "referral.received": 1, "scheduling.coordinator-assigned": 2, "scheduling.first-contact-made": 2,
        "scheduling.conference-scheduled": 2, "scheduling.conference-held": 2, "plans.plan-presented": 2, "plans.plan-accepted": 2,
        "followup.due": 2, "followup.completed": 2, "outcome.recorded": 2,
    })  # fmt: skip

    async def every_event() -> bool:
        seen = Counter(kind for _, kind in driver.seen.get(case_id, []))
        return all(seen[kind] >= count for kind, count in expected.items())

    await driver.until("every event of both conferences", every_event)
    await asyncio.sleep(2)  # a duplicate would show now
    seen = Counter(kind for _, kind in driver.seen.get(case_id, []))
    assert {kind: seen[kind] for kind in expected} == dict(expected), sorted(seen.items())
    # what the funder received (the body is the first line): under its pseudonym of the case, never the case id
    bodies = [json.loads(message.split(b"\n", 1)[0]) for message in driver.partner_bodies]
    outcomes = [body for body in bodies if driver.by_pseudonym.get(body.get("pseudonym", "")) == case_id]
    assert outcomes and all("case_id" not in body for body in bodies)
    assert sorted((o["conference_number"], o["subject"], o["meeting_count"]) for o in outcomes) == [(1, "child", 1), (2, "child", 1)]
    assert all("coordinator_id" not in o and "contact" not in o for o in outcomes)
    assert (await scheduling_case())["stage"] == "closed"

    figures = (await driver.call("followup", "GET", "/reports", ops)).json()  # this namespace: only this case
    assert (figures["followup_conferences_requested"], figures["followup_conferences"], figures["followup_conference_plans"]) == (1, 1, 1)
    assert (figures["plans"], figures["followups"], figures["subjects"]) == (1, 2, {"child": 1})
    standards = {f["standard"]: (f["target_days"], f["reached"], f["missed"]) for f in figures["service_standards"]}
    assert standards == {"first_contact": (5, 2, 0), "conference": (60, 1, 0), "followup_check": (14, 2, 0)}
