"""The follow-up service on the real servers, with an injected clock: the durable timer
fires exactly once, outcomes reach funders without personal data, reports add up."""

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from services.followup.app import create_app
from shared.auth import Role
from shared.contract.envelope import Envelope
from shared.contract.events import (
    AgreementCounts,
    ConferenceHeld,
    CoordinatorAssigned,
    Event,
    NoPlanReached,
    OutcomeRecorded,
    PlanAccepted,
    ReferralWithdrawn,
)
from shared.contract.vocabulary import (
    ConcernCategory,
    ExecutionStatus,
    ReferrerType,
    Region,
    RoleCounts,
    WithdrawalReason,
)
from shared.privacy import is_personal
from shared.pseudonym import pseudonyms
from tests.support.clock import ManualClock
from tests.support.harness import Harness
from tests.support.samples import referral_received
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
REGION = Region(province="UT", municipality="GM0344")
PREFETCH = 4


def build(kring: Harness, clock: ManualClock) -> FastAPI:
    app = kring.app(lambda s: create_app(s, clock=clock, sweep_seconds=0.3), "followup", prefetch=PREFETCH)
    app.state.harness = kring
    return app


async def publish(app: FastAPI, event: Event) -> None:
    """As the event's producer would (its own broker user)."""
    await app.state.harness.publish(Envelope.wrap(event, source="kring/test"))


async def accepted_case(app: FastAPI, clock: ManualClock, **referral: Any) -> str:
    event = referral_received().model_copy(update={"received_at": clock(), "region": REGION, **referral})
    await publish(app, event)
    await publish(app, CoordinatorAssigned(case_id=event.case_id, coordinator_id="coord-1", assigned_at=clock(), region=REGION))
    await publish(app, PlanAccepted(case_id=event.case_id, accepted_at=clock(), agreements=AgreementCounts(network_support=3), reviewed_by_professional=False))
    tracking = app.state.tracking

    async def scheduled() -> bool:
        followup = await tracking.followups.get(event.case_id)
        return followup is not None and followup.stage == "scheduled" and followup.coordinator_id == "coord-1"

    await eventually(scheduled, what="the follow-up scheduled")
    return event.case_id


async def test_follow_up_due_fires_exactly_once_with_two_replicas_sweeping(kring: Harness) -> None:
    clock = ManualClock(START)
    replicas = [build(kring, clock), build(kring, clock)]
    for app in replicas:
        await kring.start(app.state.kring)
    due = await kring.probe(kring.topology.events.name, "followup.due")
    case_ids = [await accepted_case(replicas[0], clock) for _ in range(3)]
    clock.advance(days=89)
    await asyncio.sleep(1.0)
    assert await kring.depth(due.name) == 0, "not before 90 days"
    clock.advance(days=1, seconds=1)
    await asyncio.gather(*(app.state.tracking.fire_due() for app in replicas for _ in range(3)))  # and the sweeps run too
    await asyncio.sleep(1.5)
    fired = Counter(json.loads(m.body)["case_id"] for m in await kring.drain(due.name))
    assert fired == {case_id: 1 for case_id in case_ids}


async def test_a_check_that_came_due_while_every_replica_was_down_fires_on_start(kring: Harness) -> None:
    clock = ManualClock(START)
    first = build(kring, clock)
    await kring.start(first.state.kring)
    due = await kring.probe(kring.topology.events.name, "followup.due")
    case_id = await accepted_case(first, clock)
    await kring.stop(first.state.kring)
    clock.advance(days=120)
    restarted = build(kring, clock)
    await kring.start(restarted.state.kring)
    await eventually(lambda: kring.depth(due.name), what="the overdue check fired on start")
    [message] = await kring.drain(due.name)
    assert json.loads(message.body)["case_id"] == case_id


async def test_moved_date_check_and_outcome_for_the_funder_without_personal_data(kring: Harness) -> None:
    clock = ManualClock(START)
    app = build(kring, clock)
    await kring.start(app.state.kring)
    # A funder's queue bound to its own slice: funder prov-nh, region Utrecht only.
    partner = await kring.probe(kring.topology.partner.name, OutcomeRecorded.funder_binding_key("prov-nh", "UT"))
    other_region = await kring.probe(kring.topology.partner.name, OutcomeRecorded.funder_binding_key("prov-nh", "NH"))
    events = await kring.probe(kring.topology.events.name, "followup.#")
    case_id = await accepted_case(app, clock)
    coordinator = kring.token(Role.COORDINATOR, subject="coord-1")
    check = {
        "execution_status": "in_progress_partly",
        "agreements": [{"agreement_id": "a1", "kind": "network_support", "status": "fully_carried_out"}],
        "ratings_by_children": [9, 8], "ratings_by_family": [8, 7, 9], "ratings_by_professionals": [7],
        "child_outcomes": ["placement_prevented", "none"],
    }  # fmt: skip
    async with kring.http(app, coordinator) as http:
        assert (await http.post(f"/cases/{case_id}/check", json=check)).status_code == 409, "not due yet"
        new_date = (clock() + timedelta(days=60)).isoformat()
        moved = await http.put(f"/cases/{case_id}/due", json={"due_at": new_date, "reason": "family on holiday"})
        assert moved.status_code == 200
        other = kring.token(Role.COORDINATOR, subject="coord-2")
        assert (await http.put(f"/cases/{case_id}/due", json={"due_at": new_date, "reason": "x" * 5}, headers={"authorization": f"Bearer {other}"})).status_code == 403
    clock.advance(days=60, seconds=1)
    await app.state.tracking.fire_due()
    async with kring.http(app, coordinator) as http:
        completed = await http.post(f"/cases/{case_id}/check", json=check)
        assert completed.status_code == 200, completed.text
        repeated = await http.post(f"/cases/{case_id}/check", json=check)
        assert (repeated.status_code, repeated.json()) == (200, completed.json()), "the same check again: answered, not applied twice"
        changed = await http.post(f"/cases/{case_id}/check", json={**check, "execution_status": "not_carried_out"})
        assert changed.status_code == 409, "a check is recorded once"
    [outcome] = await kring.drain(partner.name, settle=1.5)
    assert outcome.routing_key == "outcome.recorded.prov-nh.UT.GM0344"
    body = json.loads(outcome.body)
    assert body["ratings"] == {"children": 8.5, "family": 8.0, "professionals": 7.0}
    assert body["child_outcomes"] == ["placement_prevented", "none"] and body["period"] == "2026-Q4"
    assert_no_personal_fields(body)
    assert all(not is_personal(str(k)) for k in (outcome.headers or {}))
    # issue 23: the funder's own pseudonym of the case, nowhere the case id every service shares
    pseudonym = pseudonyms(kring.settings("followup")).of(case_id, "prov-nh")
    assert body["pseudonym"] == pseudonym and "case_id" not in body
    headers = {key: value.decode() if isinstance(value, bytes) else str(value) for key, value in (outcome.headers or {}).items()}
    assert headers["cloudEvents_subject"] == headers["cloudEvents_correlationid"] == pseudonym
    assert "cloudEvents_causationid" not in headers and outcome.correlation_id == pseudonym
    assert case_id not in outcome.body.decode() and case_id not in str(headers) and case_id not in str(outcome.info())
    assert await kring.drain(other_region.name) == [], "another region's queue gets nothing"
    kinds = [m.routing_key for m in await kring.drain(events.name)]
    assert kinds == ["followup.due", "followup.completed"]


def assert_no_personal_fields(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert not is_personal(key), key
            assert_no_personal_fields(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_personal_fields(item)


async def test_the_funder_report_adds_up_over_two_hundred_seeded_cases(kring: Harness) -> None:
    clock = ManualClock(START)
    app = build(kring, clock)
    await kring.start(app.state.kring)
    rng = random.Random(7)
    expected: Counter[str] = Counter()
    ratings: dict[str, list[float]] = {"children": [], "family": []}
    concerns: Counter[str] = Counter()
    envelopes: list[Envelope[Any]] = []
    checks: dict[str, dict[str, Any]] = {}
    cases = 200
    for n in range(cases):
        referrer = rng.choice([ReferrerType.YOUTH_CARE_BUREAU] * 9 + [ReferrerType.SELF])
        concern = rng.sample([ConcernCategory.HOUSING, ConcernCategory.INCOME_DEBT, ConcernCategory.PARENTING, ConcernCategory.ADDICTION], 2)
        referral = referral_received().model_copy(
            update={"received_at": START + timedelta(hours=n), "region": REGION, "funder_id": "prov-utrecht", "referrer_type": referrer, "concern_categories": concern}
        )
        case_id = referral.case_id
        envelopes.append(Envelope.wrap(referral, source="kring/test"))
        expected["referrals"] += 1
        expected["non_professional"] += referrer is ReferrerType.SELF
        concerns.update(c.value for c in concern)
        days = rng.randint(20, 90)
        participants = rng.randint(6, 20)
        held = ConferenceHeld(
            case_id=case_id, held_on=(START + timedelta(days=days)).date(), region=REGION, funder_id="prov-utrecht",
            days_since_referral=days, attended_by_role=RoleCounts(friends=participants), all_parents_with_responsibility_attended=True,
        )  # fmt: skip
        envelopes.append(Envelope.wrap(held, source="kring/test"))
        expected["conferences"] += 1
        expected["within_60"] += days <= 60
        expected["participants"] += participants
        roll = rng.random()
        if roll < 0.06:
            envelopes.append(Envelope.wrap(NoPlanReached(case_id=case_id, recorded_at=START, reason_category="family_disagreed"), source="kring/test"))
            expected["no_plan"] += 1
            continue
        meeting = 2 if roll < 0.15 else 1
        expected["two" if meeting == 2 else "one"] += 1
        accepted = PlanAccepted(case_id=case_id, meeting_number=meeting, accepted_at=START, agreements=AgreementCounts(network_support=2), reviewed_by_professional=False)
        envelopes.append(Envelope.wrap(accepted, source="kring/test"))
        status = rng.choice(list(ExecutionStatus))
        child, family = rng.randint(5, 10), rng.randint(4, 10)
        envelopes.append(Envelope.wrap(CoordinatorAssigned(case_id=case_id, coordinator_id="coord-1", assigned_at=START, region=REGION), source="kring/test"))
        outcomes = ["placement_prevented"] if status is ExecutionStatus.FULLY_CARRIED_OUT else []
        checks[case_id] = {"execution_status": status.value, "ratings_by_children": [child], "ratings_by_family": [family], "child_outcomes": outcomes}
        expected["followups"] += 1
        expected[status.value] += 1
        expected["prevented"] += status is ExecutionStatus.FULLY_CARRIED_OUT
        ratings["children"].append(child)
        ratings["family"].append(family)
    publisher = kring  # publishes as each event's producer
    for envelope in envelopes:
        await publisher.publish(envelope)
    await publisher.publish(envelopes[0])  # a redelivered referral counts once

    ops = kring.token(Role.OPS)

    async def report() -> dict[str, Any]:
        async with kring.http(app, ops) as http:
            return (await http.get("/reports", params={"funder_id": "prov-utrecht", "province": "UT", "period": "2026-Q4"})).json()

    async def referred_and_settled() -> bool:
        figures = await report()
        scheduled = await app.state.tracking.followups.find({"stage": "scheduled", "coordinator_id": "coord-1"})
        return figures["referrals"] == cases and figures["plans"] == cases and len(scheduled) == len(checks)

    await eventually(referred_and_settled, timeout=240, what="every referral, conference and plan counted")
    clock.advance(days=91)
    await app.state.tracking.fire_due()
    async with kring.http(app, kring.token(Role.COORDINATOR, subject="coord-1")) as http:
        for case_id, check in checks.items():  # the three-month checks, as the coordinator records them
            assert (await http.post(f"/cases/{case_id}/check", json=check)).status_code == 200

    async def complete() -> bool:
        figures = await report()
        return figures["referrals"] == cases and figures["followups"] == expected["followups"] and figures["plans"] == cases

    await eventually(complete, timeout=240, what="every event counted")
    figures = await report()
    assert figures["share_non_professional_referrers"] == round(expected["non_professional"] / cases, 3)
    assert figures["share_within_60_days"] == round(expected["within_60"] / cases, 3)
    assert figures["average_participants"] == round(expected["participants"] / cases, 1)
    assert figures["share_plan_one_meeting"] == round(expected["one"] / cases, 3)
    assert figures["share_plan_two_meetings"] == round(expected["two"] / cases, 3)
    assert figures["share_no_plan"] == round(expected["no_plan"] / cases, 3)
    assert figures["share_fully_carried_out"] == round(expected["fully_carried_out"] / expected["followups"], 3)
    in_progress = expected["in_progress_fully"] + expected["in_progress_partly"]
    assert figures["share_in_progress"] == round(in_progress / expected["followups"], 3)
    assert figures["rating_children"] == round(sum(ratings["children"]) / len(ratings["children"]), 2)
    assert figures["rating_family"] == round(sum(ratings["family"]) / len(ratings["family"]), 2)
    assert figures["outcomes"] == ({"placement_prevented": expected["prevented"]} if expected["prevented"] else {})
    assert [tuple(t) for t in figures["top_concerns"]] == sorted(concerns.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert figures["reference"]["share_within_60_days"] == 0.65

    async with kring.http(app, kring.token(Role.FUNDER, organisation_id="prov-utrecht")) as http:
        own = await http.get("/reports.html", params={"period": "2026-Q4"})
        assert own.status_code == 200 and "<svg" in own.text and "reference" in own.text
        assert (await http.get("/reports", params={"funder_id": "gm-amsterdam"})).status_code == 403


async def test_a_late_funder_gets_its_history_replayed_and_late_checks_show(kring: Harness) -> None:
    clock = ManualClock(START)
    app = build(kring, clock)
    await kring.start(app.state.kring)
    case_ids = [await accepted_case(app, clock, funder_id="gm-utrecht") for _ in range(2)]
    clock.advance(days=91)
    await app.state.tracking.fire_due()
    coordinator = kring.token(Role.COORDINATOR, subject="coord-1")
    async with kring.http(app, coordinator) as http:
        response = await http.post(f"/cases/{case_ids[0]}/check", json={"execution_status": "fully_carried_out"})
        assert response.status_code == 200
    log = app.state.kring.stores["partner_log"]
    await eventually(lambda: log.find({"funder_id": "gm-utrecht"}), what="the outcome kept")

    async with kring.http(app, kring.token(Role.OPS)) as http:
        missing = await http.post("/partner/replay", json={"funder_id": "gm-utrecht"})
        assert missing.status_code == 404, "the funder's queue is not there yet"
        late_queue = await kring.funder_queue("gm-utrecht", binding_key="outcome.recorded.nobody.#")  # new, empty
        replayed = await http.post("/partner/replay", json={"funder_id": "gm-utrecht"})
        assert replayed.json() == {"replayed": 1}
        clock.advance(days=15)
        late = (await http.get("/checks/late")).json()
    [message] = await kring.drain(late_queue.name)
    assert json.loads(message.body)["pseudonym"] == pseudonyms(kring.settings("followup")).of(case_ids[0], "gm-utrecht")
    assert case_ids[0] not in message.body.decode() and case_ids[0] not in str(message.headers)
    assert [entry["case_id"] for entry in late] == [case_ids[1]]


async def test_an_event_redelivered_long_after_is_not_counted_twice(kring: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redrive days later counts nothing twice, also when the case has forgotten the event's
    id (here after 3 others): what it counts is kept under that id."""
    clock = ManualClock(START)
    app = build(kring, clock)
    monkeypatch.setattr(app.state.tracking.followups, "MAX_APPLIED", 3)
    await kring.start(app.state.kring)
    referrals = [
        referral_received().model_copy(update={"received_at": START, "region": REGION, "funder_id": "gm-redrive"}) for _ in range(5)
    ]
    envelopes = [Envelope.wrap(event, source="kring/test") for event in referrals]
    publisher = kring  # publishes as each event's producer
    ops = kring.token(Role.OPS)

    async def counted() -> int:
        async with kring.http(app, ops) as http:
            return (await http.get("/reports", params={"funder_id": "gm-redrive"})).json()["referrals"]

    for envelope in envelopes:
        await publisher.publish(envelope)
    await eventually(lambda: _equals(counted, 5), what="five referrals counted")
    first = envelopes[0]
    for n in range(4):  # the case changes four more times: it forgets the referral's id too
        await app.state.tracking.followups.mutate(first.subject, lambda f: None, dedup_id=f"later-{n}")
    assert first.id not in await app.state.tracking.followups.applied(first.subject)
    await publisher.publish(first)  # long after
    await asyncio.sleep(2)
    assert await counted() == 5
    assert list((await app.state.tracking.followups.get(first.subject)).counted) == [first.id]  # type: ignore[union-attr]


async def _equals(check: Any, expected: int) -> bool:
    return await check() == expected


async def test_a_withdrawal_that_overtakes_the_referral_still_closes_the_case(kring: Harness) -> None:
    """After a restart the withdrawal's queue can be read before the referral's: the case
    must not stay open as if nothing happened."""
    clock = ManualClock(START)
    app = build(kring, clock)
    await kring.start(app.state.kring)
    event = referral_received().model_copy(update={"received_at": clock(), "region": REGION})
    await publish(app, ReferralWithdrawn(case_id=event.case_id, withdrawn_at=clock(), reason=WithdrawalReason.CONSENT_WITHDRAWN))
    await asyncio.sleep(1)  # the withdrawal has been delivered, the case is not known yet
    await publish(app, event)

    async def closed() -> bool:
        followup = await app.state.tracking.followups.get(event.case_id)
        return followup is not None and followup.stage == "closed"

    await eventually(closed, what="the case closed")
