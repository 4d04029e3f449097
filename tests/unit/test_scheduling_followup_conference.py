"""Scheduling on the in-memory store: a three-month check asking for a new conference opens a
follow-up conference on the same case (not a second meeting), preferably with the same
coordinator; the first contact and the deadlines of the service standards; the waiting
reasons said as they are."""

from datetime import date, timedelta
from typing import Any

import pytest

from services.scheduling import domain
from services.scheduling.app import create_app
from shared.auth import Role
from shared.contract.events import AgreementCounts, FollowUpCompleted, FollowUpDue, PlanAccepted, SecondMeetingNeeded
from shared.contract.vocabulary import ExecutionStatus, Province, Region
from shared.standards import StandardsSettings
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio
UTRECHT = Region(province="UT", municipality="GM0344")
TODAY = date(2026, 11, 23)


def profile(max_cases: int = 2, **extra: Any) -> dict[str, Any]:
    return {"provinces": ["UT"], "languages": ["nl"], "max_cases": max_cases, "professional_care_provider": False, **extra}


@pytest.fixture
async def scheduling() -> Any:
    clock = ManualClock()
    standards = StandardsSettings(per_funder={"gm-strict": {"first_contact_days": 2}})
    async with InMemoryService(lambda settings, **o: create_app(settings, clock=clock, standards=standards, **o), "scheduling") as service:
        service.clock = clock  # type: ignore[attr-defined]
        yield service


async def register(scheduling: InMemoryService, coordinator_id: str, body: dict[str, Any]) -> None:
    assert (await scheduling.http_settled("PUT", f"/coordinators/{coordinator_id}", Role.OPS, json=body)).status_code == 200


async def case(scheduling: InMemoryService, case_id: str) -> domain.Case:
    found = await scheduling.app.state.assignments.cases.get(case_id)
    assert found is not None
    return found


async def hold(scheduling: InMemoryService, case_id: str, coordinator: str) -> None:
    clock: ManualClock = scheduling.clock  # type: ignore[attr-defined]
    preparation = {"invited": {"parents": 2, "friends": 3}}
    day = (clock() + timedelta(days=5)).date().isoformat()
    for method, path, body in (("PUT", "preparation", preparation), ("PUT", "conference", {"conference_date": day})):
        assert (await scheduling.http_settled(method, f"/cases/{case_id}/{path}", Role.COORDINATOR, coordinator, json=body)).status_code == 200
    clock.advance(days=5)
    attended = {"attended": {"parents": 2, "friends": 3}, "all_parents_with_responsibility_attended": True}
    assert (await scheduling.http_settled("POST", f"/cases/{case_id}/held", Role.COORDINATOR, coordinator, json=attended)).status_code == 200


async def settled_case(scheduling: InMemoryService, **referral: Any) -> str:
    clock: ManualClock = scheduling.clock  # type: ignore[attr-defined]
    event = referral_received().model_copy(update={"region": UTRECHT, "referrer_organisation_id": "bjz-utrecht", "received_at": clock(), **referral})
    await scheduling.publish(event)
    await hold(scheduling, event.case_id, "c1")
    await scheduling.publish(PlanAccepted(case_id=event.case_id, accepted_at=clock(), agreements=AgreementCounts(network_support=1), reviewed_by_professional=False))
    assert (await case(scheduling, event.case_id)).stage is domain.Stage.CLOSED
    return event.case_id


def check(case_id: str, *, again: bool, conference: int = 1) -> FollowUpCompleted:
    return FollowUpCompleted(
        case_id=case_id, conference_number=conference, completed_at=ManualClock()(), execution_status=ExecutionStatus.IN_PROGRESS_PARTLY,
        new_conference_requested=again,
    )  # fmt: skip


async def test_a_check_asking_for_a_new_conference_opens_a_follow_up_conference_with_the_same_coordinator(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile())
    await register(scheduling, "c2", profile())  # as free as c1: only the preference for the previous one decides
    case_id = await settled_case(scheduling)
    assert len(scheduling.sent("scheduling.coordinator-assigned")) == 1
    envelope = await scheduling.publish(check(case_id, again=True))
    await scheduling.redeliver(envelope)
    opened = await case(scheduling, case_id)
    assert (opened.conference_number, opened.meeting_number, opened.stage, opened.coordinator_id) == (2, 1, domain.Stage.PREPARING, "c1")
    assert opened.preparation == domain.Preparation() and opened.conference_date is None
    first, again = scheduling.sent("scheduling.coordinator-assigned")
    assert (first["conference_number"], again["conference_number"], again["coordinator_id"]) == (1, 2, "c1")

    await hold(scheduling, case_id, "c1")
    [_, held] = scheduling.sent("scheduling.conference-held")
    assert (held["conference_number"], held["meeting_number"]) == (2, 1), "a follow-up conference, not a second meeting"
    assert (await case(scheduling, case_id)).held_days_since_referral is not None
    sixty = domain.sixty_day_share([await case(scheduling, case_id)])
    assert sixty.held == 1, "the 60 days stay the first conference's"
    # the plan of conference 1 settled long ago; only conference 2's closes the case again
    clock: ManualClock = scheduling.clock  # type: ignore[attr-defined]
    await scheduling.publish(PlanAccepted(case_id=case_id, accepted_at=clock(), agreements=AgreementCounts(), reviewed_by_professional=False))
    assert (await case(scheduling, case_id)).stage is domain.Stage.HELD
    await scheduling.publish(
        PlanAccepted(case_id=case_id, conference_number=2, accepted_at=clock(), agreements=AgreementCounts(), reviewed_by_professional=False)
    )
    assert (await case(scheduling, case_id)).stage is domain.Stage.CLOSED
    await scheduling.publish(check(case_id, again=True))  # conference 1's check once more: nothing opens
    assert (await case(scheduling, case_id)).conference_number == 2


async def test_a_check_without_the_request_or_the_previous_coordinator_full_takes_the_normal_way(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile(max_cases=1))
    case_id = await settled_case(scheduling)
    await scheduling.publish(check(case_id, again=False))
    assert (await case(scheduling, case_id)).conference_number == 1
    other = referral_received().model_copy(update={"region": UTRECHT, "referrer_organisation_id": "bjz-utrecht"})
    await scheduling.publish(other)  # takes c1's only place
    await scheduling.publish(check(case_id, again=True))
    waiting = await case(scheduling, case_id)
    assert (waiting.conference_number, waiting.stage, waiting.preferred_coordinator_id) == (2, domain.Stage.UNASSIGNED, "c1")
    assert waiting.waiting_reason == (
        "de enige coördinator in de regio heeft geen plaats meer; de vorige coördinator heeft geen plaats meer / "
        "the region's only coordinator has a full caseload; the previous coordinator has a full caseload"
    )
    await register(scheduling, "c2", profile())
    assert (await case(scheduling, case_id)).coordinator_id == "c2"


async def test_a_second_meeting_stays_in_its_conference(scheduling: InMemoryService) -> None:
    await register(scheduling, "c1", profile())
    clock: ManualClock = scheduling.clock  # type: ignore[attr-defined]
    event = referral_received().model_copy(update={"region": UTRECHT, "received_at": clock()})
    await scheduling.publish(event)
    await hold(scheduling, event.case_id, "c1")
    await scheduling.publish(SecondMeetingNeeded(case_id=event.case_id, recorded_at=clock(), reason_category="network_incomplete"))
    again = await case(scheduling, event.case_id)
    assert (again.conference_number, again.meeting_number, again.coordinator_id) == (1, 2, "c1")


async def test_first_contact_and_the_deadlines_a_coordinator_sees(scheduling: InMemoryService) -> None:
    clock: ManualClock = scheduling.clock  # type: ignore[attr-defined]
    await register(scheduling, "c1", profile(max_cases=5))
    normal = referral_received().model_copy(update={"region": UTRECHT, "received_at": clock(), "funder_id": "prov-utrecht"})
    strict = referral_received().model_copy(update={"region": UTRECHT, "received_at": clock(), "funder_id": "gm-strict"})
    await scheduling.publish(normal)
    await scheduling.publish(strict)
    today = clock().date()

    async def deadlines(coordinator: str, within: int) -> list[tuple[str, str, int]]:
        async with scheduling.http(Role.COORDINATOR, coordinator) as http:
            response = await http.get("/cases/deadlines", params={"within_days": within})
        assert response.status_code == 200
        return [(d["case_id"], d["standard"], d["days_left"]) for d in response.json()]

    assert await deadlines("c1", 3) == [(strict.case_id, "first_contact", 2)], "gm-strict agreed on two days"
    assert sorted(await deadlines("c1", 60)) == sorted(
        [(strict.case_id, "first_contact", 2), (normal.case_id, "first_contact", 5), (strict.case_id, "conference", 60), (normal.case_id, "conference", 60)]
    )
    assert await deadlines("someone-else", 60) == []

    contact = {"contacted_at": (clock() + timedelta(days=1)).isoformat()}
    clock.advance(days=1, seconds=1)
    async with scheduling.http(Role.COORDINATOR, "someone-else") as http:
        assert (await http.post(f"/cases/{normal.case_id}/first-contact", json=contact)).status_code == 403
    for _ in range(2):  # the same moment again changes nothing
        response = await scheduling.http_settled("POST", f"/cases/{normal.case_id}/first-contact", Role.COORDINATOR, "c1", json=contact)
        assert response.status_code == 200
    [made] = scheduling.sent("scheduling.first-contact-made")
    assert (made["case_id"], made["days_since_assignment"], made["conference_number"]) == (normal.case_id, 1, 1)
    assert set(made) == {"case_id", "conference_number", "coordinator_id", "contacted_at", "days_since_assignment"}
    assert normal.case_id not in [c for c, s, _ in await deadlines("c1", 60) if s == "first_contact"]
    clock.advance(days=3)
    assert (strict.case_id, "first_contact", -2) in await deadlines("c1", 0), "missed already: listed, negative"
    assert today < clock().date()

    await scheduling.publish(FollowUpDue(case_id=normal.case_id, due_at=clock(), plan_accepted_at=clock()))
    assert (normal.case_id, "followup_check", 14) in await deadlines("c1", 14)
    await scheduling.publish(check(normal.case_id, again=False))
    assert "followup_check" not in [s for c, s, _ in await deadlines("c1", 60) if c == normal.case_id]


# --- the waiting reasons ----------------------------------------------------------------------


def coordinator(cid: str, *, provinces=("UT",), languages=("nl",), max_cases=3, active=(), **extra) -> domain.Coordinator:  # type: ignore[no-untyped-def]
    profile = domain.CoordinatorProfile(
        provinces=list(provinces), languages=list(languages), max_cases=max_cases, professional_care_provider=False, **extra
    )
    return domain.Coordinator(coordinator_id=cid, profile=profile, active_cases=list(active))


def waiting_case(**referral: object) -> domain.Case:
    event = referral_received().model_copy(
        update={"region": Region(province=Province.UTRECHT), "language": "nl", "referrer_organisation_id": "bjz-1", **referral}
    )
    change = domain.referral_received(None, event)
    assert change is not None
    return change.state


def why(coordinators: list[domain.Coordinator], case: domain.Case | None = None) -> str:
    ranked, reason = domain.ranked(coordinators, case or waiting_case(), TODAY)
    assert ranked == []
    return reason.split(" / ", 1)[1]  # the English half (Dutch first)


def test_the_waiting_reason_says_the_real_reason() -> None:
    away = [domain.Unavailable(starts=TODAY - timedelta(days=1), ends=TODAY + timedelta(days=5))]
    assert domain.ranked([], waiting_case(), TODAY)[1] == domain.NO_COORDINATORS
    assert why([coordinator("x", provinces=("GE",))]) == "no coordinator works in the region (UT)"
    # the example: the region's only coordinator is tied to the referring bureau
    tied = coordinator("x", tied_organisations=["bjz-1"])
    assert why([tied, coordinator("y", provinces=("GE",))]) == "the region's only coordinator is tied to the referrer"
    assert why([tied, coordinator("y", tied_organisations=["bjz-1"])]) == "all 2 coordinators of the region are tied to the referrer"
    assert why([coordinator("x", max_cases=1, active=["a"]), coordinator("y", max_cases=1, active=["b"])]) == (
        "all 2 coordinators of the region have a full caseload"
    )
    assert why([coordinator("x", unavailable=away), coordinator("y", unavailable=away)]) == "all 2 coordinators of the region are unavailable now"
    assert why([coordinator("x", languages=("ar",))], waiting_case(language="tr")) == (
        "the region's only coordinator does not speak the family's language (tr)"
    )
    mixed = [coordinator("a", languages=("ar",)), coordinator("b", languages=("ar",)), tied]
    assert why(mixed) == (
        "none of the region's 3 coordinators can take it: 2 do not speak the family's language (nl), 1 is tied to the referrer"
    )
    full = domain.ranked([coordinator("x", max_cases=1, active=["a"])], waiting_case(), TODAY)[1]
    assert full.startswith("de enige coördinator in de regio heeft geen plaats meer / "), "Dutch first, English beside it"


def test_preferences_only_rank_and_the_previous_coordinator_comes_first() -> None:
    follow_up = waiting_case().model_copy(update={"preferred_coordinator_id": "busy", "conference_number": 2})
    idle, busy = coordinator("idle"), coordinator("busy", max_cases=4, active=["a", "b"])
    assert [c.coordinator_id for c in domain.ranked([idle, busy], follow_up, TODAY)[0]] == ["busy", "idle"]
    assert [c.coordinator_id for c in domain.ranked([idle, busy], waiting_case(), TODAY)[0]] == ["idle", "busy"]
    gone = follow_up.model_copy(update={"preferred_coordinator_id": "gone"})
    assert why([coordinator("x", tied_organisations=["bjz-1"])], gone) == (
        "the region's only coordinator is tied to the referrer; the previous coordinator is no longer registered"
    )
