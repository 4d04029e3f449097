"""The scheduling service's handlers and assignment process on the in-memory store and
FastStream's TestRabbitBroker (no server): every step of finding a case a coordinator."""

from datetime import timedelta
from typing import Any

import pytest

from services.scheduling import domain
from services.scheduling.app import create_app
from shared.auth import Role
from shared.contract.events import (
    AgreementCounts,
    ConsentRecorded,
    PlanAccepted,
    ReferralReceived,
    ReferralWithdrawn,
)
from shared.contract.vocabulary import ConsentState, Region, WithdrawalReason
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio
UTRECHT = Region(province="UT", municipality="GM0344")


def profile(max_cases: int = 2, **extra: Any) -> dict[str, Any]:
    return {"provinces": ["UT"], "languages": ["nl"], "max_cases": max_cases, "professional_care_provider": False, **extra}


def referral(**overrides: Any) -> ReferralReceived:
    return referral_received().model_copy(update={"region": UTRECHT, "referrer_organisation_id": "bjz-utrecht", **overrides})


@pytest.fixture
async def scheduling() -> Any:
    async with InMemoryService(lambda settings, **o: create_app(settings, clock=ManualClock(), **o), "scheduling") as service:
        yield service


async def register(scheduling: InMemoryService, coordinator_id: str, body: dict[str, Any]) -> int:
    return (await scheduling.http_settled("PUT", f"/coordinators/{coordinator_id}", Role.OPS, json=body)).status_code


async def case(scheduling: InMemoryService, case_id: str) -> domain.Case:
    found = await scheduling.app.state.assignments.cases.get(case_id)
    assert found is not None
    return found


async def caseload(scheduling: InMemoryService, coordinator_id: str) -> list[str]:
    coordinator = await scheduling.app.state.assignments.coordinators.get(coordinator_id)
    assert coordinator is not None
    return coordinator.active_cases


async def test_a_referral_is_assigned_in_steps_each_one_write(scheduling: InMemoryService) -> None:
    assert await register(scheduling, "c1", profile()) == 200
    event = referral()
    await scheduling.publish(event)
    assert (await case(scheduling, event.case_id)).coordinator_id == "c1"
    assert await caseload(scheduling, "c1") == [event.case_id]
    steps = [key for _, key, body in scheduling.messages if body.get("case_id") == event.case_id and key.startswith("scheduling.")]
    assert steps == ["scheduling.coordinator-wanted", "scheduling.place-reserved", "scheduling.coordinator-assigned"]
    [assigned] = scheduling.sent("scheduling.coordinator-assigned")
    assert assigned["coordinator_id"] == "c1" and assigned["manual"] is False


async def test_a_redelivered_step_changes_nothing(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile())
    event = referral()
    envelope = await scheduling.publish(event)
    await scheduling.redeliver(envelope)
    assert len(scheduling.sent("scheduling.coordinator-assigned")) == 1
    assert await caseload(scheduling, "c1") == [event.case_id]


async def test_a_case_waits_for_consent_and_then_for_a_place_and_gets_the_freed_one(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile(max_cases=1))
    holder, pending = referral(), referral(consent=ConsentState.PENDING)
    await scheduling.publish(holder)
    await scheduling.publish(pending)
    assert (await case(scheduling, pending.case_id)).stage is domain.Stage.AWAITING_CONSENT
    await scheduling.publish(ConsentRecorded(case_id=pending.case_id, consent=ConsentState.GIVEN, recorded_at=pending.received_at))
    waiting = await case(scheduling, pending.case_id)
    assert waiting.stage is domain.Stage.UNASSIGNED
    assert waiting.waiting_reason is not None and waiting.waiting_reason.endswith("the region's only coordinator has a full caseload")

    await scheduling.publish(ReferralWithdrawn(case_id=holder.case_id, withdrawn_at=holder.received_at, reason=WithdrawalReason.FAMILY_DECLINED))
    assert (await case(scheduling, holder.case_id)).stage is domain.Stage.WITHDRAWN
    assert (await case(scheduling, pending.case_id)).coordinator_id == "c1", "the freed place went to the waiting case"
    assert await caseload(scheduling, "c1") == [pending.case_id]


async def test_a_settled_plan_closes_the_case_and_frees_the_place(scheduling: InMemoryService) -> None:
    clock: ManualClock = scheduling.app.state.assignments.clock
    await register(scheduling, "c1", profile(max_cases=1))
    event = referral()
    await scheduling.publish(event)
    preparation = {"invited": {"parents": 2, "friends": 3}}
    day = (clock() + timedelta(days=10)).date().isoformat()
    assert (await scheduling.http_settled("PUT", f"/cases/{event.case_id}/preparation", Role.COORDINATOR, "c1", json=preparation)).status_code == 200
    assert (await scheduling.http_settled("PUT", f"/cases/{event.case_id}/conference", Role.COORDINATOR, "c1", json={"conference_date": day})).status_code == 200
    clock.advance(days=10)
    attended = {"attended": {"parents": 2, "friends": 3}, "all_parents_with_responsibility_attended": True}
    assert (await scheduling.http_settled("POST", f"/cases/{event.case_id}/held", Role.COORDINATOR, "c1", json=attended)).status_code == 200
    await scheduling.publish(PlanAccepted(case_id=event.case_id, accepted_at=clock(), agreements=AgreementCounts(network_support=2), reviewed_by_professional=False))
    assert (await case(scheduling, event.case_id)).stage is domain.Stage.CLOSED
    assert await caseload(scheduling, "c1") == []


async def test_a_second_place_reserved_for_one_case_is_given_back(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile())
    await register(scheduling, "c2", profile())
    event = referral()
    await scheduling.publish(event)
    first = (await case(scheduling, event.case_id)).coordinator_id
    other = "c2" if first == "c1" else "c1"
    await scheduling.app.state.assignments.coordinators.mutate(other, lambda c: domain.reserve(c, event.case_id))  # a racing attempt
    await scheduling.settle()
    assert (await case(scheduling, event.case_id)).coordinator_id == first
    assert await caseload(scheduling, other) == []


async def test_a_place_reserved_for_a_withdrawn_case_is_given_back(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile())
    event = referral(consent=ConsentState.PENDING)
    await scheduling.publish(event)
    await scheduling.publish(ReferralWithdrawn(case_id=event.case_id, withdrawn_at=event.received_at, reason=WithdrawalReason.FAMILY_DECLINED))
    await scheduling.app.state.assignments.coordinators.mutate("c1", lambda c: domain.reserve(c, event.case_id))  # a late attempt
    await scheduling.settle()
    assert (await case(scheduling, event.case_id)).coordinator_id is None
    assert await caseload(scheduling, "c1") == []


async def test_operations_reassigns_and_the_previous_place_is_given_back(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile())
    await register(scheduling, "c2", profile(tied_organisations=["bjz-utrecht"]))
    await register(scheduling, "c3", profile())
    event = referral()
    await scheduling.publish(event)
    first = (await case(scheduling, event.case_id)).coordinator_id
    target = "c3" if first == "c1" else "c1"
    tied = await scheduling.http_settled("POST", f"/cases/{event.case_id}/reassignment", Role.OPS, json={"coordinator_id": "c2", "reason": "sick"})
    assert tied.status_code == 409 and "tied to the referring organisation" in tied.json()["detail"]
    moved = await scheduling.http_settled("POST", f"/cases/{event.case_id}/reassignment", Role.OPS, json={"coordinator_id": target, "reason": "sick"})
    assert moved.status_code == 200 and moved.json()["coordinator_id"] == target
    assert (await caseload(scheduling, target), await caseload(scheduling, first)) == ([event.case_id], [])
    assert [a["manual"] for a in scheduling.sent("scheduling.coordinator-assigned")] == [False, True]


async def test_coordinators_see_only_their_own_cases(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile(max_cases=1))
    await register(scheduling, "c2", profile(max_cases=1))
    mine, theirs = referral(), referral()
    await scheduling.publish(mine)
    await scheduling.publish(theirs)
    owner = (await case(scheduling, mine.case_id)).coordinator_id
    async with scheduling.http(Role.COORDINATOR, subject=owner) as http:
        assert (await http.get(f"/cases/{mine.case_id}")).status_code == 200
        assert (await http.get(f"/cases/{theirs.case_id}")).status_code == 403
        assert (await http.get("/cases/case-doesnotexist")).status_code == 404
        assert [c["case_id"] for c in (await http.get("/cases")).json()] == [mine.case_id]
