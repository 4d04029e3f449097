"""Follow-up on the in-memory store: a follow-up conference's plan gets its own check and its
own OutcomeRecorded, counted apart from first conferences; the service standards reached and
missed against each funder's targets; adult and household subjects counted apart."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.followup import domain
from services.followup.app import create_app
from services.followup.report_html import render
from shared.auth import Role
from shared.contract.events import AgreementCounts, ConferenceHeld, CoordinatorAssigned, FirstContactMade, PlanAccepted
from shared.contract.vocabulary import Region, RoleCounts, Subject
from shared.standards import StandardsSettings
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio
START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
REGION = Region(province="UT", municipality="GM0344")
FUNDER = "prov-utrecht"


@pytest.fixture
async def followup() -> Any:
    clock = ManualClock(START)
    standards = StandardsSettings(per_funder={"gm-strict": {"first_contact_days": 2, "followup_check_days": 0}})
    async with InMemoryService(lambda settings, **o: create_app(settings, clock=clock, standards=standards, **o), "followup") as service:
        service.clock = clock  # type: ignore[attr-defined]
        yield service


async def referred(followup: InMemoryService, funder: str = FUNDER, subject: Subject = Subject.CHILD) -> str:
    clock: ManualClock = followup.clock  # type: ignore[attr-defined]
    referral = referral_received().model_copy(update={"received_at": clock(), "region": REGION, "funder_id": funder, "subject": subject})
    await followup.publish(referral)
    await followup.publish(CoordinatorAssigned(case_id=referral.case_id, coordinator_id="coord-1", assigned_at=clock(), region=REGION))
    return referral.case_id


async def conference(followup: InMemoryService, case_id: str, number: int, *, days: int = 30, funder: str = FUNDER) -> None:
    clock: ManualClock = followup.clock  # type: ignore[attr-defined]
    await followup.publish(
        ConferenceHeld(
            case_id=case_id, conference_number=number, held_on=clock().date(), region=REGION, funder_id=funder, days_since_referral=days,
            attended_by_role=RoleCounts(parents=2, friends=10), all_parents_with_responsibility_attended=True,
        )
    )  # fmt: skip
    await followup.publish(
        PlanAccepted(case_id=case_id, conference_number=number, accepted_at=clock(), agreements=AgreementCounts(network_support=2), reviewed_by_professional=False)
    )


async def checked(followup: InMemoryService, case_id: str, *, again: bool, late_days: int = 0) -> dict[str, Any]:
    clock: ManualClock = followup.clock  # type: ignore[attr-defined]
    clock.advance(days=90, seconds=1)
    await followup.app.state.tracking.fire_due()
    await followup.settle()
    assert (await followup.app.state.tracking.followups.get(case_id)).stage is domain.Stage.DUE
    clock.advance(days=late_days)
    check = {"execution_status": "in_progress_partly", "ratings_by_family": [7], "new_conference_requested": again}
    response = await followup.http_settled("POST", f"/cases/{case_id}/check", Role.COORDINATOR, "coord-1", json=check)
    assert response.status_code == 200, response.text
    return response.json()


async def report(followup: InMemoryService, funder: str = FUNDER) -> dict[str, Any]:
    async with followup.http(Role.FUNDER, subject="f", organisation_id=funder) as http:
        return (await http.get("/reports")).json()


def standards(figures: dict[str, Any]) -> dict[str, tuple[int | None, int, int]]:
    return {s["standard"]: (s["target_days"], s["reached"], s["missed"]) for s in figures["service_standards"]}


async def test_a_follow_up_conference_has_its_own_check_and_outcome_counted_apart(followup: InMemoryService) -> None:
    case_id = await referred(followup)
    await conference(followup, case_id, 1)
    first = await checked(followup, case_id, again=True)
    assert (first["stage"], first["conference_number"]) == ("completed", 1)
    [completed] = followup.sent("followup.completed")
    assert (completed["conference_number"], completed["new_conference_requested"]) == (1, True)

    await conference(followup, case_id, 2, days=200)  # scheduling opened conference 2; its plan starts the next round
    state = await followup.app.state.tracking.followups.get(case_id)
    assert (state.stage, state.conference_number, state.meetings) == (domain.Stage.SCHEDULED, 2, 1)
    second = await checked(followup, case_id, again=False)
    assert (second["stage"], second["conference_number"]) == ("completed", 2)
    dues = followup.sent("followup.due")
    assert [d["conference_number"] for d in dues] == [1, 2]
    outcomes = followup.sent("outcome.recorded")
    assert [(o["conference_number"], o["meeting_count"]) for o in outcomes] == [(1, 1), (2, 1)]

    figures = await report(followup)
    assert (figures["followup_conferences_requested"], figures["followup_conferences"], figures["followup_conference_plans"]) == (1, 1, 1)
    assert (figures["plans"], figures["share_plan_one_meeting"], figures["followups"]) == (1, 1.0, 2), "first conferences' shares stay apart"
    assert figures["share_within_60_days"] == 1.0, "the follow-up conference's day 200 is not a first conference's"
    page = render(domain.Report.model_validate(figures))
    assert "1 follow-up conferences held" in page


async def test_a_check_without_the_request_ends_the_case_and_a_late_plan_changes_nothing(followup: InMemoryService) -> None:
    case_id = await referred(followup)
    await conference(followup, case_id, 1)
    await checked(followup, case_id, again=False)
    await conference(followup, case_id, 2)  # not asked for: nothing to follow up again
    state = await followup.app.state.tracking.followups.get(case_id)
    assert (state.stage, state.conference_number) == (domain.Stage.COMPLETED, 1)


async def test_service_standards_reached_and_missed_against_each_funders_targets(followup: InMemoryService) -> None:
    clock: ManualClock = followup.clock  # type: ignore[attr-defined]
    quick, slow, strict = await referred(followup), await referred(followup), await referred(followup, "gm-strict")
    for case_id, days in ((quick, 2), (slow, 9), (strict, 3)):
        await followup.publish(
            FirstContactMade(case_id=case_id, coordinator_id="coord-1", contacted_at=clock(), days_since_assignment=days)
        )
    await conference(followup, quick, 1, days=40)
    await conference(followup, slow, 1, days=75)
    await conference(followup, strict, 1, days=50, funder="gm-strict")
    await checked(followup, quick, again=False)  # on the day it came due; slow's and strict's wait

    figures = await report(followup)
    assert standards(figures) == {"first_contact": (5, 1, 1), "conference": (60, 1, 1), "followup_check": (14, 1, 0)}
    assert [s["share_reached"] for s in figures["service_standards"]] == [0.5, 0.5, 1.0]
    strict_figures = standards(await report(followup, "gm-strict"))
    assert strict_figures["first_contact"] == (2, 0, 1), "three days: reached for the default, missed for gm-strict's two"
    async with followup.http(Role.OPS, "ops") as http:
        everyone = (await http.get("/reports")).json()
    assert standards(everyone)["first_contact"] == (None, 1, 2), "funders with different targets: each its own"
    async with followup.http(Role.OPS, "ops") as http:
        page = (await http.get("/reports.html", params={"funder_id": FUNDER})).text
    assert "First contact with the family after assignment</td><td>5</td><td>1</td><td>1</td><td>50%" in page


async def test_a_check_recorded_late_misses_the_standard(followup: InMemoryService) -> None:
    case_id = await referred(followup)
    await conference(followup, case_id, 1)
    await checked(followup, case_id, again=False, late_days=20)
    assert standards(await report(followup))["followup_check"] == (14, 0, 1)


async def test_adult_and_household_subjects_are_counted_apart(followup: InMemoryService) -> None:
    await referred(followup)
    adult = await referred(followup, subject=Subject.ADULT)
    await referred(followup, subject=Subject.HOUSEHOLD)
    await referred(followup, subject=Subject.ADULT)
    figures = await report(followup)
    assert (figures["referrals"], figures["subjects"]) == (4, {"adult": 2, "child": 1, "household": 1})
    await conference(followup, adult, 1)
    await checked(followup, adult, again=False)
    [outcome] = followup.sent("outcome.recorded")
    assert outcome["subject"] == "adult"
    page = render(domain.Report.model_validate(figures))
    assert "<td>an adult</td><td>2</td>" in page
