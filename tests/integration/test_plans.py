"""The plans service on the real servers: from conference to accepted plan, revisions,
second meetings, no plan, late requirements, who may read, duplicates."""

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from services.plans.app import create_app
from shared.auth import Role
from shared.contract.envelope import Envelope
from shared.contract.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    CoordinatorAssigned,
    Event,
)
from shared.contract.vocabulary import CancellationReason, Region, RoleCounts, StatutoryContext
from tests.support.clock import ManualClock
from tests.support.harness import Harness
from tests.support.samples import referral_received
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
REGION = Region(province="UT", municipality="GM0344")
PROFESSIONAL = "gezinsvoogd-1"  # the responsible professional the referral names


class Plans:
    def __init__(self, kring: Harness, app: FastAPI, clock: ManualClock) -> None:
        self.kring, self.app, self.clock = kring, app, clock
        self.service = app.state.kring
        self.coordinator = kring.token(Role.COORDINATOR, subject="coord-1")
        self.professional = kring.token(Role.PROFESSIONAL, subject=PROFESSIONAL)

    async def publish(self, event: Event) -> Envelope[Any]:
        envelope = Envelope.wrap(event, source="kring/test")
        await self.kring.publish(envelope)
        return envelope

    async def plan(self, case_id: str, token: str | None = None) -> dict[str, Any]:
        async with self.kring.http(self.app, token or self.coordinator) as http:
            response = await http.get(f"/cases/{case_id}/plan")
            return response.json() if response.status_code == 200 else {}

    async def open_case(self, statutory: StatutoryContext = StatutoryContext.NONE, *, conference_in_days: int = 10) -> tuple[str, date]:
        case_id = await self.assigned(statutory)
        day = (self.clock() + timedelta(days=conference_in_days)).date()
        await self.scheduled(case_id, 1, day)
        return case_id, day

    async def assigned(self, statutory: StatutoryContext = StatutoryContext.NONE, requirements: tuple[str, ...] = ()) -> str:
        named = PROFESSIONAL if statutory in (StatutoryContext.SUPERVISION_ORDER, StatutoryContext.OUT_OF_HOME_PLACEMENT) else None
        update = {"statutory_context": statutory, "responsible_professional_id": named, "bottom_line_requirements": list(requirements)}
        referral = referral_received().model_copy(update=update)
        await self.publish(referral)
        await self.publish(CoordinatorAssigned(case_id=referral.case_id, coordinator_id="coord-1", assigned_at=self.clock(), region=REGION))
        return referral.case_id

    async def scheduled(self, case_id: str, meeting: int, day: date) -> None:
        await self.publish(
            ConferenceScheduled(
                case_id=case_id, meeting_number=meeting, conference_date=day, region=REGION, funder_id="prov-utrecht",
                coordinator_id="coord-1", days_since_referral=10, invited_by_role=RoleCounts(parents=2, friends=4),
            )
        )  # fmt: skip

        async def opened() -> bool:
            return any(m["number"] == meeting for m in (await self.plan(case_id)).get("meetings", []))

        await eventually(opened, what=f"meeting {meeting} opened")

    async def held(self, case_id: str, meeting: int, day: date) -> None:
        self.clock.now = max(self.clock.now, self.clock.now.replace(year=day.year, month=day.month, day=day.day))
        await self.publish(
            ConferenceHeld(
                case_id=case_id, meeting_number=meeting, held_on=day, region=REGION, funder_id="prov-utrecht",
                days_since_referral=12, attended_by_role=RoleCounts(parents=2, friends=4),
                all_parents_with_responsibility_attended=True,
            )
        )  # fmt: skip

        async def is_held() -> bool:
            meetings = (await self.plan(case_id)).get("meetings", [])
            return any(m["number"] == meeting and m["status"] == "held" for m in meetings)

        await eventually(is_held, what=f"meeting {meeting} held")

    async def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        async with self.kring.http(self.app, token or self.coordinator) as http:
            return await http.request(method, path, **kwargs)


def draft(*answers: list[str]) -> dict[str, Any]:
    agreements = [
        {"agreement_id": f"a{n}", "what": "Oma haalt de kinderen elke woensdag uit school.", "who": "grandparent",
         "by_when": "2027-02-01", "kind": "network_support", "answers_requirements": list(answer)}
        for n, answer in enumerate(answers or ([],), start=1)
    ]  # fmt: skip
    agreements.append(
        {"agreement_id": "help", "what": "Schuldhulpverlening aanvragen", "who": "professional_service",
         "service_category": "debt_counselling", "by_when": "2027-01-15", "kind": "professional_help"}
    )  # fmt: skip
    return {"central_question": "Wat hebben Y en J nodig terwijl vader in behandeling is?", "agreements": agreements}


async def started(kring: Harness) -> tuple[Plans, Any]:
    clock = ManualClock()
    app = kring.app(lambda s: create_app(s, clock=clock), "plans")
    await kring.start(app.state.kring)
    events = await kring.probe(kring.topology.events.name, "plans.#")
    return Plans(kring, app, clock), events


def bodies(messages: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(m.routing_key, json.loads(m.body)) for m in messages]


async def test_without_statutory_involvement_the_plan_is_accepted_on_presentation(kring: Harness) -> None:
    plans, events = await started(kring)
    case_id, day = await plans.open_case()
    assert (await plans.call("PUT", f"/cases/{case_id}/plan", json=draft())).status_code == 409, "not before the conference"
    await plans.held(case_id, 1, day)
    assert (await plans.call("PUT", f"/cases/{case_id}/plan", json=draft())).status_code == 200
    assert (await plans.call("POST", f"/cases/{case_id}/plan/presentation")).status_code == 200
    seen = bodies(await kring.drain(events.name, settle=1.0))
    assert [key for key, _ in seen] == ["plans.plan-presented", "plans.plan-accepted"]
    presented, accepted = seen[0][1], seen[1][1]
    assert presented["agreements"] == {"network_support": 1, "professional_help": 1}
    assert presented["requested_service_categories"] == ["debt_counselling"] and presented["review_required"] is False
    assert accepted["reviewed_by_professional"] is False
    assert "Oma" not in json.dumps(seen) and "vader" not in json.dumps(seen), "the plan's words stay in the service"


async def test_a_missing_requirement_is_named_revised_and_then_accepted(kring: Harness) -> None:
    plans, events = await started(kring)
    case_id, day = await plans.open_case(StatutoryContext.SUPERVISION_ORDER)
    shared_at = plans.clock().isoformat()
    for text in ("De kinderen gaan elke dag naar school.", "Er is elke avond een volwassene thuis."):
        response = await plans.call("POST", f"/cases/{case_id}/requirements", plans.professional, json={"text": text, "shared_with_family_at": shared_at})
        assert response.status_code == 201, response.text
    await plans.held(case_id, 1, day)
    late = await plans.call("POST", f"/cases/{case_id}/requirements", plans.professional, json={"text": "Nog een eis", "shared_with_family_at": shared_at})
    assert late.status_code == 409, "requirements come before the conference"

    await plans.call("PUT", f"/cases/{case_id}/plan", json=draft(["r1"]))
    await plans.call("POST", f"/cases/{case_id}/plan/presentation")
    revision = await plans.call("POST", f"/cases/{case_id}/plan/review", plans.professional, json={})
    assert revision.status_code == 200, revision.text
    assert revision.json()["meetings"][0]["status"] == "revision_requested"
    assert revision.json()["unmet_requirement_ids"] == ["r2"], "the answer names what the revision is for"
    assert (await plans.call("PUT", f"/cases/{case_id}/plan", json=draft(["r1"], ["r2"]))).status_code == 200
    await plans.call("POST", f"/cases/{case_id}/plan/presentation")
    reviewed = await plans.call("POST", f"/cases/{case_id}/plan/review", plans.professional, json={})
    assert reviewed.json()["meetings"][0]["status"] == "accepted" and reviewed.json()["unmet_requirement_ids"] == []

    seen = bodies(await kring.drain(events.name, settle=1.0))
    assert [key for key, _ in seen] == [
        "plans.plan-presented", "plans.plan-revision-requested", "plans.plan-presented", "plans.plan-accepted",
    ]  # fmt: skip
    assert seen[1][1]["unmet_requirement_ids"] == ["r2"]
    assert seen[0][1]["requirements_all_met"] is False and seen[2][1]["requirements_all_met"] is True
    assert seen[3][1]["reviewed_by_professional"] is True


async def test_a_second_meeting_returns_to_scheduling_and_its_plan_is_meeting_two(kring: Harness) -> None:
    plans, events = await started(kring)
    case_id, day = await plans.open_case()
    await plans.held(case_id, 1, day)
    second = await plans.call("POST", f"/cases/{case_id}/second-meeting", json={"reason_category": "network_incomplete"})
    assert second.status_code == 200
    later = day + timedelta(days=14)
    await plans.scheduled(case_id, 2, later)
    await plans.held(case_id, 2, later)
    await plans.call("PUT", f"/cases/{case_id}/plan", json=draft())
    await plans.call("POST", f"/cases/{case_id}/plan/presentation")
    seen = bodies(await kring.drain(events.name, settle=1.0))
    assert [(key, body["meeting_number"]) for key, body in seen] == [
        ("plans.second-meeting-needed", 1), ("plans.plan-presented", 2), ("plans.plan-accepted", 2),
    ]  # fmt: skip
    meetings = (await plans.plan(case_id))["meetings"]
    assert [(m["number"], m["status"]) for m in meetings] == [(1, "second_meeting"), (2, "accepted")]


async def test_no_plan_reached(kring: Harness) -> None:
    plans, events = await started(kring)
    case_id, day = await plans.open_case()
    await plans.held(case_id, 1, day)
    assert (await plans.call("POST", f"/cases/{case_id}/no-plan", json={"reason_category": "family_disagreed"})).status_code == 200
    assert (await plans.call("POST", f"/cases/{case_id}/no-plan", json={"reason_category": "family_disagreed"})).status_code == 409
    [(key, body)] = bodies(await kring.drain(events.name, settle=1.0))
    assert key == "plans.no-plan-reached" and body["reason_category"] == "family_disagreed"


async def test_only_the_case_people_read_the_plan_and_duplicates_change_nothing(kring: Harness) -> None:
    plans, _ = await started(kring)
    case_id, day = await plans.open_case(StatutoryContext.OUT_OF_HOME_PLACEMENT)
    await plans.call("POST", f"/cases/{case_id}/requirements", plans.professional, json={"text": "Veilig thuis", "shared_with_family_at": plans.clock().isoformat()})
    family = plans.kring.token(Role.FAMILY, case_id=case_id)
    other_family = plans.kring.token(Role.FAMILY, case_id="case-someoneelse")
    statuses = {
        name: (await plans.call("GET", f"/cases/{case_id}/plan", token)).status_code
        for name, token in {
            "coordinator": plans.coordinator,
            "professional": plans.professional,
            "family": family,
            "other coordinator": plans.kring.token(Role.COORDINATOR, subject="coord-2"),
            "other professional": plans.kring.token(Role.PROFESSIONAL, subject="someone-else"),
            "other family": other_family,
            "funder": plans.kring.token(Role.FUNDER, organisation_id="prov-utrecht"),
            "ops": plans.kring.token(Role.OPS),
        }.items()
    }
    assert statuses == {
        "coordinator": 200, "professional": 200, "family": 200, "other coordinator": 403,
        "other professional": 403, "other family": 403, "funder": 403, "ops": 403,
    }  # fmt: skip
    assert (await plans.call("PUT", f"/cases/{case_id}/plan", family, json=draft())).status_code == 403

    scheduled = ConferenceScheduled(
        case_id=case_id, meeting_number=1, conference_date=day + timedelta(days=3), region=REGION,
        funder_id="prov-utrecht", coordinator_id="coord-1", days_since_referral=13, invited_by_role=RoleCounts(parents=2),
    )  # fmt: skip
    envelope = Envelope.wrap(scheduled, source="kring/test")
    for _ in range(3):
        await plans.kring.publish(envelope)

    async def moved() -> bool:
        return (await plans.plan(case_id))["meetings"][0]["conference_date"] == scheduled.conference_date.isoformat()

    await eventually(moved, what="the date moved")
    assert len((await plans.plan(case_id))["meetings"]) == 1


async def test_a_cancellation_or_a_move_that_overtakes_the_scheduling_still_applies(kring: Harness) -> None:
    """ConferenceScheduled, ConferenceRescheduled and ConferenceCancelled travel on three
    queues: after a restart a later one can be read first (found by the fault runs)."""
    plans, _ = await started(kring)
    day = (plans.clock() + timedelta(days=10)).date()
    cancelled, moved = await plans.assigned(), await plans.assigned()
    await plans.publish(ConferenceCancelled(case_id=cancelled, cancelled_at=plans.clock(), reason=CancellationReason.CONSENT_WITHDRAWN))
    await plans.publish(
        ConferenceRescheduled(case_id=moved, previous_date=day, conference_date=day + timedelta(days=7), days_since_referral=17)
    )
    await asyncio.sleep(1)  # both delivered before their meeting is known
    await plans.scheduled(cancelled, 1, day)
    await plans.scheduled(moved, 1, day)

    async def settled() -> bool:
        return (await plans.plan(moved))["meetings"][0]["conference_date"] == (day + timedelta(days=7)).isoformat()

    await eventually(settled, what="the move applied after the scheduling")
    assert [m["status"] for m in (await plans.plan(cancelled))["meetings"]] == ["cancelled"]
    assert [m["status"] for m in (await plans.plan(moved))["meetings"]] == ["planned"]


async def test_the_bureaus_requirements_are_checked_at_acceptance_by_the_named_professional_only(kring: Harness) -> None:
    plans, events = await started(kring)
    texts = ("De kinderen worden niet meer geslagen.", "Er is elke avond een volwassene thuis.")
    case_id = await plans.assigned(StatutoryContext.SUPERVISION_ORDER, requirements=texts)
    day = (plans.clock() + timedelta(days=10)).date()
    await plans.scheduled(case_id, 1, day)
    family = plans.kring.token(Role.FAMILY, case_id=case_id)
    shown = (await plans.plan(case_id, family))["requirements"]
    assert [(r["requirement_id"], r["text"], r["from_referral"]) for r in shown] == [("r1", texts[0], True), ("r2", texts[1], True)]
    first_comer = plans.kring.token(Role.PROFESSIONAL, subject="first-comer")
    body = {"text": "Vader komt niet in huis.", "shared_with_family_at": plans.clock().isoformat()}
    assert (await plans.call("POST", f"/cases/{case_id}/requirements", first_comer, json=body)).status_code == 403
    await plans.held(case_id, 1, day)
    await plans.call("PUT", f"/cases/{case_id}/plan", json=draft(["r1"]))
    await plans.call("POST", f"/cases/{case_id}/plan/presentation")
    assert (await plans.call("POST", f"/cases/{case_id}/plan/review", first_comer, json={})).status_code == 403
    assert (await plans.call("POST", f"/cases/{case_id}/plan/review", plans.professional, json={})).status_code == 200
    await plans.call("PUT", f"/cases/{case_id}/plan", json=draft(["r1"], ["r2"]))
    await plans.call("POST", f"/cases/{case_id}/plan/presentation")
    assert (await plans.call("POST", f"/cases/{case_id}/plan/review", plans.professional, json={})).json()["meetings"][0]["status"] == "accepted"
    seen = bodies(await kring.drain(events.name, settle=1.0))
    assert [key for key, _ in seen] == ["plans.plan-presented", "plans.plan-revision-requested", "plans.plan-presented", "plans.plan-accepted"]
    assert seen[0][1]["bottom_line_requirements"] == 2 and seen[1][1]["unmet_requirement_ids"] == ["r2"]
    assert not any(text in json.dumps(seen) for text in texts), "the requirements' words stay in plans"


async def test_requirements_are_refused_where_the_statutory_context_allows_none(kring: Harness) -> None:
    plans, _ = await started(kring)
    case_id, _ = await plans.open_case(StatutoryContext.VOLUNTARY_HELP)
    body = {"text": "Er wordt niet geslagen.", "shared_with_family_at": plans.clock().isoformat()}
    refused = await plans.call("POST", f"/cases/{case_id}/requirements", plans.professional, json=body)
    assert refused.status_code == 409 and "statutory context allows" in refused.json()["detail"]
    assert (await plans.plan(case_id))["requirements"] == [] and (await plans.plan(case_id))["professional_id"] is None


async def test_operations_rebinds_the_responsible_professional_and_the_reason_is_kept(kring: Harness) -> None:
    plans, _ = await started(kring)
    case_id, _ = await plans.open_case(StatutoryContext.OUT_OF_HOME_PLACEMENT)
    ops = plans.kring.token(Role.OPS, subject="ops-1")
    moved = await plans.call("PUT", f"/cases/{case_id}/professional", ops, json={"professional_id": "gezinsvoogd-2", "reason": "professional_left"})
    assert moved.status_code == 200 and moved.json()["professional_id"] == "gezinsvoogd-2"
    body = {"text": "Veilig thuis.", "shared_with_family_at": plans.clock().isoformat()}
    assert (await plans.call("POST", f"/cases/{case_id}/requirements", plans.professional, json=body)).status_code == 403
    successor = plans.kring.token(Role.PROFESSIONAL, subject="gezinsvoogd-2")
    assert (await plans.call("POST", f"/cases/{case_id}/requirements", successor, json=body)).status_code == 201
    history = (await plans.plan(case_id))["professional_history"]
    assert [(h["previous_professional_id"], h["professional_id"], h["reason"], h["by"]) for h in history] == [
        (PROFESSIONAL, "gezinsvoogd-2", "professional_left", "ops-1")
    ]
    free_text = await plans.call("PUT", f"/cases/{case_id}/professional", ops, json={"professional_id": "gezinsvoogd-3", "reason": "Jan is ziek"})
    assert free_text.status_code == 422, "a reason is a code: no story about people"


async def test_each_sees_only_its_own_cases_in_the_case_list(kring: Harness) -> None:
    plans, _ = await started(kring)
    statutory, day = await plans.open_case(StatutoryContext.SUPERVISION_ORDER)
    voluntary, _ = await plans.open_case()
    await plans.call("POST", f"/cases/{statutory}/requirements", plans.professional, json={"text": "Veilig thuis", "shared_with_family_at": plans.clock().isoformat()})

    async def listed(token: str) -> dict[str, dict[str, Any]]:
        response = await plans.call("GET", "/cases", token)
        assert response.status_code == 200, response.text
        return {line["case_id"]: line for line in response.json()}

    mine = await listed(plans.coordinator)
    assert {statutory, voluntary} <= set(mine)
    assert mine[statutory] == {"case_id": statutory, "statutory": True, "status": "planned", "conference_date": day.isoformat(), "requirements": 1}
    assert set(await listed(plans.professional)) == {statutory}  # bound to the statutory case only
    assert await listed(plans.kring.token(Role.COORDINATOR, subject="coord-2")) == {}
    assert await listed(plans.kring.token(Role.PROFESSIONAL, subject="someone-else")) == {}
    for refused in (plans.kring.token(Role.FAMILY, case_id=statutory), plans.kring.token(Role.OPS), plans.kring.token(Role.FUNDER, organisation_id="prov-utrecht")):
        assert (await plans.call("GET", "/cases", refused)).status_code == 403
