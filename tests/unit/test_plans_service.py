"""The plans service's handlers and routes on the in-memory store and FastStream's
TestRabbitBroker (no server): from a held conference to an accepted plan."""

from datetime import timedelta
from typing import Any

import pytest

from services.plans.app import create_app
from shared.auth import Role
from shared.contract.events import ConferenceHeld, ConferenceScheduled, CoordinatorAssigned
from shared.contract.vocabulary import Region, RoleCounts, StatutoryContext
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio
REGION = Region(province="UT", municipality="GM0344")
PROFESSIONAL = "gezinsvoogd-1"


@pytest.fixture
async def plans() -> Any:
    clock = ManualClock()
    async with InMemoryService(lambda settings, **o: create_app(settings, clock=clock, **o), "plans") as service:
        service.clock = clock  # type: ignore[attr-defined]
        yield service


async def held_case(plans: InMemoryService, statutory: StatutoryContext) -> str:
    clock: ManualClock = plans.clock  # type: ignore[attr-defined]
    professional = PROFESSIONAL if statutory is StatutoryContext.SUPERVISION_ORDER else None
    referral = referral_received().model_copy(update={"statutory_context": statutory, "responsible_professional_id": professional})
    await plans.publish(referral)
    await plans.publish(CoordinatorAssigned(case_id=referral.case_id, coordinator_id="coord-1", assigned_at=clock(), region=REGION))
    day = (clock() + timedelta(days=10)).date()
    await plans.publish(
        ConferenceScheduled(
            case_id=referral.case_id, conference_date=day, region=REGION, funder_id="prov-utrecht", coordinator_id="coord-1",
            days_since_referral=10, invited_by_role=RoleCounts(parents=2),
        )
    )  # fmt: skip
    if statutory is StatutoryContext.SUPERVISION_ORDER:
        for text in ("De kinderen gaan elke dag naar school.", "Er wordt niet geslagen."):
            requirement = {"text": text, "shared_with_family_at": clock().isoformat()}
            response = await plans.http_settled("POST", f"/cases/{referral.case_id}/requirements", Role.PROFESSIONAL, PROFESSIONAL, json=requirement)
            assert response.status_code == 201, response.text
    clock.advance(days=10)
    await plans.publish(
        ConferenceHeld(
            case_id=referral.case_id, held_on=day, region=REGION, funder_id="prov-utrecht", days_since_referral=20,
            attended_by_role=RoleCounts(parents=2, friends=3), all_parents_with_responsibility_attended=True,
        )
    )  # fmt: skip
    return referral.case_id


def draft(*answers: list[str]) -> dict[str, Any]:
    return {
        "central_question": "Wat hebben de kinderen nodig?",
        "agreements": [
            {"agreement_id": f"a{n}", "what": "Oma haalt de kinderen op.", "who": "grandparent", "by_when": "2027-02-01",
             "kind": "network_support", "answers_requirements": answer}
            for n, answer in enumerate(answers, start=1)
        ],
    }  # fmt: skip


async def test_a_plan_without_statutory_involvement_is_accepted_when_presented(plans: InMemoryService) -> None:
    case_id = await held_case(plans, StatutoryContext.NONE)
    assert (await plans.http_settled("PUT", f"/cases/{case_id}/plan", Role.COORDINATOR, "coord-1", json=draft([]))).status_code == 200
    assert (await plans.http_settled("POST", f"/cases/{case_id}/plan/presentation", Role.COORDINATOR, "coord-1")).status_code == 200
    [accepted] = plans.sent("plans.plan-accepted")
    assert accepted["reviewed_by_professional"] is False


async def test_an_unmet_requirement_asks_for_a_revision_and_the_revised_plan_is_accepted(plans: InMemoryService) -> None:
    case_id = await held_case(plans, StatutoryContext.SUPERVISION_ORDER)
    assert (await plans.http_settled("PUT", f"/cases/{case_id}/plan", Role.COORDINATOR, "coord-1", json=draft(["r1"]))).status_code == 200
    await plans.http_settled("POST", f"/cases/{case_id}/plan/presentation", Role.COORDINATOR, "coord-1")
    other = await plans.http_settled("POST", f"/cases/{case_id}/plan/review", Role.PROFESSIONAL, "someone-else", json={})
    assert other.status_code == 403
    await plans.http_settled("POST", f"/cases/{case_id}/plan/review", Role.PROFESSIONAL, PROFESSIONAL, json={})
    [revision] = plans.sent("plans.plan-revision-requested")
    assert revision["unmet_requirement_ids"] == ["r2"]
    await plans.http_settled("PUT", f"/cases/{case_id}/plan", Role.COORDINATOR, "coord-1", json=draft(["r1"], ["r2"]))
    await plans.http_settled("POST", f"/cases/{case_id}/plan/presentation", Role.COORDINATOR, "coord-1")
    await plans.http_settled("POST", f"/cases/{case_id}/plan/review", Role.PROFESSIONAL, PROFESSIONAL, json={})
    [accepted] = plans.sent("plans.plan-accepted")
    assert accepted["reviewed_by_professional"] is True and accepted["accepted_with_justification"] is False


async def test_the_family_reads_its_own_plan_only(plans: InMemoryService) -> None:
    case_id = await held_case(plans, StatutoryContext.NONE)
    async with plans.http(Role.FAMILY, subject="family", case_id=case_id) as http:
        assert (await http.get(f"/cases/{case_id}/plan")).status_code == 200
    async with plans.http(Role.FAMILY, subject="family", case_id="case-someoneelse") as http:
        assert (await http.get(f"/cases/{case_id}/plan")).status_code == 403
    async with plans.http(Role.COORDINATOR, subject="coord-2") as http:
        assert (await http.get(f"/cases/{case_id}/plan")).status_code == 403


async def test_the_bureaus_requirements_reach_the_plan_and_bind_the_named_professional(plans: InMemoryService) -> None:
    texts = ["De kinderen worden niet meer geslagen.", "Er is elke avond een volwassene thuis."]
    referral = referral_received().model_copy(
        update={"statutory_context": StatutoryContext.OUT_OF_HOME_PLACEMENT, "responsible_professional_id": PROFESSIONAL,
                "bottom_line_requirements": texts, "bottom_line_requirements_set": True}
    )  # fmt: skip
    await plans.publish(referral)
    async with plans.http(Role.FAMILY, subject="family", case_id=referral.case_id) as http:
        seen = (await http.get(f"/cases/{referral.case_id}/plan")).json()
    assert [(r["requirement_id"], r["text"], r["from_referral"]) for r in seen["requirements"]] == [("r1", texts[0], True), ("r2", texts[1], True)]
    assert seen["professional_id"] == PROFESSIONAL
    requirement = {"text": "Vader komt niet in huis.", "shared_with_family_at": plans.clock().isoformat()}  # type: ignore[attr-defined]
    path = f"/cases/{referral.case_id}/requirements"
    first_comer = await plans.http_settled("POST", path, Role.PROFESSIONAL, "first-comer", json=requirement)
    assert first_comer.status_code == 403 and "another professional" in first_comer.text
    again = await plans.http_settled("POST", path, Role.PROFESSIONAL, "first-comer", json={**requirement, "text": texts[0]})
    assert again.status_code == 403  # not even a requirement it already has
    added = await plans.http_settled("POST", path, Role.PROFESSIONAL, PROFESSIONAL, json=requirement)
    assert added.status_code == 201 and [r["requirement_id"] for r in added.json()["requirements"]] == ["r1", "r2", "r3"]
    await plans.publish(referral)  # redelivered: nothing twice
    async with plans.http(Role.PROFESSIONAL, subject=PROFESSIONAL) as http:
        assert len((await http.get(f"/cases/{referral.case_id}/plan")).json()["requirements"]) == 3
    async with plans.http(Role.PROFESSIONAL, subject="first-comer") as http:
        assert (await http.get(f"/cases/{referral.case_id}/plan")).status_code == 403


async def test_requirements_only_where_the_statutory_context_allows_them(plans: InMemoryService) -> None:
    for context in (StatutoryContext.NONE, StatutoryContext.VOLUNTARY_HELP):
        referral = referral_received().model_copy(update={"statutory_context": context})
        await plans.publish(referral)
        requirement = {"text": "Er wordt niet geslagen.", "shared_with_family_at": plans.clock().isoformat()}  # type: ignore[attr-defined]
        refused = await plans.http_settled("POST", f"/cases/{referral.case_id}/requirements", Role.PROFESSIONAL, PROFESSIONAL, json=requirement)
        assert refused.status_code == 409 and "supervision order" in refused.json()["detail"]
        async with plans.http(Role.PROFESSIONAL, subject=PROFESSIONAL) as http:
            assert (await http.get(f"/cases/{referral.case_id}/plan")).status_code == 403  # and it gains no access


async def test_operations_rebinds_the_professional_with_a_reason_kept_in_the_history(plans: InMemoryService) -> None:
    case_id = await held_case(plans, StatutoryContext.SUPERVISION_ORDER)
    await plans.http_settled("PUT", f"/cases/{case_id}/plan", Role.COORDINATOR, "coord-1", json=draft(["r1"], ["r2"]))
    await plans.http_settled("POST", f"/cases/{case_id}/plan/presentation", Role.COORDINATOR, "coord-1")
    assignment = {"professional_id": "gezinsvoogd-2", "reason": "caseload_transfer"}
    refused = await plans.http_settled("PUT", f"/cases/{case_id}/professional", Role.OPS, "ops-1", json={"professional_id": "gezinsvoogd-2"})
    assert refused.status_code == 422  # no reason, no change
    moved = await plans.http_settled("PUT", f"/cases/{case_id}/professional", Role.OPS, "ops-1", json=assignment)
    assert moved.status_code == 200, moved.text
    view = moved.json()
    assert set(view) == {"case_id", "professional_id", "professional_history"}  # operations does not read the plan
    [entry] = view["professional_history"]
    assert (entry["professional_id"], entry["previous_professional_id"], entry["reason"], entry["by"]) == (
        "gezinsvoogd-2", PROFESSIONAL, "caseload_transfer", "ops-1"
    )
    old = await plans.http_settled("POST", f"/cases/{case_id}/plan/review", Role.PROFESSIONAL, PROFESSIONAL, json={})
    assert old.status_code == 403
    new = await plans.http_settled("POST", f"/cases/{case_id}/plan/review", Role.PROFESSIONAL, "gezinsvoogd-2", json={})
    assert new.status_code == 200
    [accepted] = plans.sent("plans.plan-accepted")
    assert accepted["reviewed_by_professional"] is True
    # the professional change is in the audit log once per request, with who and why it was
    # refused, never the values sent
    changes = [e for e in await plans.service.audit.entries(case_id=case_id) if e.operation == "PUT /cases/{case_id}/professional"]
    assert [(e.subject, e.role, e.outcome, e.status) for e in changes] == [
        ("ops-1", "ops", "refused", 422), ("ops-1", "ops", "allowed", 200),
    ]  # fmt: skip
    assert not [e for e in changes if "gezinsvoogd-2" in e.model_dump_json() or "caseload_transfer" in e.model_dump_json()]
