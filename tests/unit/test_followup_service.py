"""The follow-up service's handlers, due sweep, check and report on the in-memory store and
FastStream's TestRabbitBroker (no server)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.followup.app import create_app
from shared.auth import Role
from shared.contract.events import AgreementCounts, ConferenceHeld, CoordinatorAssigned, PlanAccepted
from shared.contract.vocabulary import Region, RoleCounts
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio
START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
REGION = Region(province="UT", municipality="GM0344")


@pytest.fixture
async def followup() -> Any:
    clock = ManualClock(START)
    async with InMemoryService(lambda settings, **o: create_app(settings, clock=clock, **o), "followup") as service:
        service.clock = clock  # type: ignore[attr-defined]
        yield service


async def accepted_case(followup: InMemoryService) -> str:
    clock: ManualClock = followup.clock  # type: ignore[attr-defined]
    referral = referral_received().model_copy(update={"received_at": clock(), "region": REGION, "funder_id": "prov-utrecht"})
    await followup.publish(referral)
    await followup.publish(CoordinatorAssigned(case_id=referral.case_id, coordinator_id="coord-1", assigned_at=clock(), region=REGION))
    await followup.publish(
        ConferenceHeld(
            case_id=referral.case_id, held_on=clock().date(), region=REGION, funder_id="prov-utrecht", days_since_referral=30,
            attended_by_role=RoleCounts(parents=2, friends=10), all_parents_with_responsibility_attended=True,
        )
    )  # fmt: skip
    await followup.publish(PlanAccepted(case_id=referral.case_id, accepted_at=clock(), agreements=AgreementCounts(network_support=2), reviewed_by_professional=False))
    return referral.case_id


async def report(followup: InMemoryService) -> dict[str, Any]:
    async with followup.http(Role.FUNDER, subject="f", organisation_id="prov-utrecht") as http:
        return (await http.get("/reports")).json()


async def test_the_check_falls_due_once_and_counts_for_the_funder(followup: InMemoryService) -> None:
    clock: ManualClock = followup.clock  # type: ignore[attr-defined]
    case_id = await accepted_case(followup)
    tracking = followup.app.state.tracking
    assert await tracking.fire_due() == 0, "not before ninety days"
    clock.advance(days=90, seconds=1)
    assert [await tracking.fire_due(), await tracking.fire_due()] == [1, 0]
    await followup.settle()
    assert [due["case_id"] for due in followup.sent("followup.due")] == [case_id]
    check = {"execution_status": "fully_carried_out", "ratings_by_family": [8, 9], "child_outcomes": ["placement_prevented"]}
    response = await followup.http_settled("POST", f"/cases/{case_id}/check", Role.COORDINATOR, "coord-1", json=check)
    assert response.status_code == 200 and "counted" not in response.json()
    [outcome] = followup.sent("outcome.recorded")
    assert outcome["execution_status"] == "fully_carried_out" and outcome["ratings"]["family"] == 8.5
    figures = await report(followup)
    assert (figures["referrals"], figures["plans"], figures["followups"], figures["average_participants"]) == (1, 1, 1, 12)
    assert figures["outcomes"] == {"placement_prevented": 1}


async def test_every_event_counts_once_however_often_it_comes(followup: InMemoryService) -> None:
    referral = referral_received().model_copy(update={"received_at": START, "region": REGION, "funder_id": "prov-utrecht"})
    envelope = await followup.publish(referral)
    for _ in range(2):
        await followup.redeliver(envelope)
    assert (await report(followup))["referrals"] == 1


async def test_a_funder_sees_only_its_own_figures(followup: InMemoryService) -> None:
    await accepted_case(followup)
    async with followup.http(Role.FUNDER, subject="f", organisation_id="gm-amsterdam") as http:
        assert (await http.get("/reports")).json()["referrals"] == 0
        assert (await http.get("/reports", params={"funder_id": "prov-utrecht"})).status_code == 403


async def test_a_coordinator_moves_only_their_own_check(followup: InMemoryService) -> None:
    case_id = await accepted_case(followup)
    later = {"due_at": (START + timedelta(days=120)).isoformat(), "reason": "family on holiday"}
    assert (await followup.http_settled("PUT", f"/cases/{case_id}/due", Role.COORDINATOR, "coord-2", json=later)).status_code == 403
    moved = await followup.http_settled("PUT", f"/cases/{case_id}/due", Role.COORDINATOR, "coord-1", json=later)
    assert moved.status_code == 200 and moved.json()["due_at"].startswith("2027-02-02")
