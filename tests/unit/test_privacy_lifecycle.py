"""Issue 23 on the in-memory store: the retention period and erasure (referral decides,
every service erases its part on PersonalDataErased), and the audit log (one entry per
access, without values, written before the answer)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.plans.app import create_app as create_plans
from services.referral.app import create_app as create_referral
from services.scheduling.app import create_app as create_scheduling
from shared.auth import Role
from shared.contract.events import CoordinatorAssigned, FollowUpCompleted, NoPlanReached, PersonalDataErased
from shared.contract.vocabulary import CoordinatorPreferences, ErasureReason, ExecutionStatus, Region, StatutoryContext
from shared.memory import MemoryStorage
from shared.store import utc_now
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.referrals import PERSONAL_VALUES, referral_request
from tests.support.samples import referral_received
from tests.support.scan import values_found_in

pytestmark = pytest.mark.anyio
BUREAU = "bjz-utrecht"
RETENTION_DAYS = 30
PREFERENCE = "moroccan"  # the family's wish for its coordinator: a code since issue 23, still about the family
REQUIREMENT = "Oma Fatima haalt de kinderen elke dag van school."


def everything(storage: MemoryStorage) -> list[str]:
    """Every document of every collection, audit log included, as text."""
    documents = [document for collection in storage.collections.values() for document in collection.values()]
    return [json.dumps(document, default=str) for document in [*documents, *storage.audit]]


@pytest.fixture
async def referral() -> Any:
    clock = ManualClock()
    async with InMemoryService(lambda settings, **o: create_referral(settings.model_copy(update={"retention_days": RETENTION_DAYS}), clock=clock, **o), "referral") as service:
        service.clock = clock  # type: ignore[attr-defined]
        yield service


async def referred(referral: InMemoryService, reference: str | None = "BJZ/4711") -> str:
    body = referral_request(coordinator_preferences={"language": "ar", "gender": "female", "culture": PREFERENCE})
    created = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json={**body, "external_reference": reference})
    assert created.status_code == 201
    return str(created.json()["case_id"])


async def test_an_ended_case_is_erased_after_the_retention_period_and_only_then(referral: InMemoryService) -> None:
    clock: ManualClock = referral.clock  # type: ignore[attr-defined]
    case_id = await referred(referral)
    withdrawn = await referral.http_settled("POST", f"/cases/{case_id}/withdrawal", Role.BUREAU, organisation_id=BUREAU, json={"reason": "family_declined"})
    assert withdrawn.status_code == 200
    retention = referral.app.state.retention
    clock.advance(days=RETENTION_DAYS - 1)
    assert await retention.sweep() == 0 and values_found_in(PERSONAL_VALUES, everything(referral.storage)) != set()
    clock.advance(days=2)
    assert await retention.sweep() == 1
    await referral.settle()
    [erased] = referral.sent("referral.personal-data-erased")
    assert (erased["case_id"], erased["reason"], erased["announced"]) == (case_id, "retention", True)
    assert values_found_in([*PERSONAL_VALUES, PREFERENCE, "BJZ/4711", "De kinderen gaan"], everything(referral.storage)) == set()
    assert "alternate_key" not in referral.storage.collections["referrals"][case_id], "the bureau's reference is gone too"
    assert await retention.sweep() == 0, "erased once"
    async with referral.http(Role.OPS) as http:
        assert (await http.get(f"/cases/{case_id}")).status_code == 404
    assert len(referral.sent("referral.personal-data-erased")) == 1


async def test_no_plan_and_a_finished_follow_up_end_a_case_and_start_its_retention_period(referral: InMemoryService) -> None:
    clock: ManualClock = referral.clock  # type: ignore[attr-defined]
    no_plan, followed_up, running = await referred(referral), await referred(referral, None), await referred(referral, None)
    await referral.publish(NoPlanReached(case_id=no_plan, recorded_at=clock(), reason_category="family_disagreed"))
    await referral.publish(FollowUpCompleted(case_id=followed_up, completed_at=clock(), execution_status=ExecutionStatus.FULLY_CARRIED_OUT))
    clock.advance(days=RETENTION_DAYS + 1)
    assert await referral.app.state.retention.sweep() == 2
    await referral.settle()
    assert {event["case_id"] for event in referral.sent("referral.personal-data-erased")} == {no_plan, followed_up}
    async with referral.http(Role.BUREAU, organisation_id=BUREAU) as http:
        assert (await http.get(f"/cases/{running}")).status_code == 200, "a running case is kept"


async def test_ops_erase_a_running_case_on_request_it_is_closed_and_the_erasure_audited(referral: InMemoryService) -> None:
    case_id = await referred(referral)
    body = {"reason": "data_subject_request", "reference": "AVG-2026-0042"}
    erased = await referral.http_settled("POST", f"/cases/{case_id}/erasure", Role.OPS, subject="privacy-desk-1", json=body)
    assert erased.status_code == 200 and erased.json()["request_reason"] == "data_subject_request"
    [withdrawn] = referral.sent("referral.withdrawn")
    assert withdrawn["reason"] == "personal_data_erased", "scheduling closes the case and frees the coordinator's place"
    [event] = referral.sent("referral.personal-data-erased")
    assert event["reason"] == ErasureReason.REQUEST
    again = await referral.http_settled("POST", f"/cases/{case_id}/erasure", Role.OPS, subject="privacy-desk-1", json=body)
    assert again.json()["erased_at"] == erased.json()["erased_at"] and len(referral.sent("referral.personal-data-erased")) == 1
    assert values_found_in([*PERSONAL_VALUES, PREFERENCE], everything(referral.storage)) == set()
    entries = [e for e in await referral.service.audit.entries(case_id=case_id) if e.operation == "POST /cases/{case_id}/erasure"]
    assert [(e.subject, e.role, e.outcome) for e in entries] == [("privacy-desk-1", "ops", "allowed")] * 2
    refused = await referral.http_settled("POST", f"/cases/{case_id}/erasure", Role.BUREAU, organisation_id=BUREAU, json=body)
    assert refused.status_code == 403


async def test_reading_the_contact_leaves_one_entry_and_a_refusal_one_without_values(referral: InMemoryService) -> None:
    case_id = await referred(referral)
    await referral.publish(CoordinatorAssigned(case_id=case_id, coordinator_id="coord-1", assigned_at=referral.clock(), region=Region(province="UT")))  # type: ignore[attr-defined]
    log = referral.service.audit
    before = len(await log.entries(case_id=case_id))
    async with referral.http(Role.COORDINATOR, subject="coord-1") as http:
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 200
    [read] = (await log.entries(case_id=case_id))[before:]
    assert (read.subject, read.role, read.operation, read.outcome, read.status) == ("coord-1", "coordinator", "GET /cases/{case_id}/contact", "allowed", 200)
    async with referral.http(Role.COORDINATOR, subject="coord-2") as http:
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 403
    [refused] = (await log.entries(case_id=case_id))[before + 1 :]
    assert (refused.subject, refused.outcome, refused.reason, refused.detail) == ("coord-2", "refused", "forbidden", "this case is not yours")
    async with referral.http(Role.FUNDER, subject="funder-x", organisation_id="prov-utrecht") as http:
        assert (await http.get(f"/cases/{case_id}")).status_code == 403
    [role] = (await log.entries(case_id=case_id))[before + 2 :]
    assert (role.role, role.reason) == ("funder", "role_not_admitted")
    async with referral.http() as http:
        assert (await http.get("/cases/Fatima Jansen/contact")).status_code == 401
    assert values_found_in(PERSONAL_VALUES, [json.dumps(entry, default=str) for entry in referral.storage.audit]) == set()
    assert (await log.entries())[-1].case_id == "(invalid)", "a path that is no case id is not kept as typed"


async def test_a_family_is_told_who_read_its_case_and_not_of_other_cases(referral: InMemoryService) -> None:
    case_id, other = await referred(referral), await referred(referral, None)
    for case in (case_id, other):
        await referral.publish(CoordinatorAssigned(case_id=case, coordinator_id="coord-1", assigned_at=referral.clock(), region=Region(province="UT")))  # type: ignore[attr-defined]
    async with referral.http(Role.COORDINATOR, subject="coord-1") as http:
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 200
        assert (await http.get(f"/cases/{other}/contact")).status_code == 200
    async with referral.http(Role.FAMILY, subject=f"family-{case_id}", case_id=case_id) as http:
        seen = (await http.get(f"/cases/{case_id}/access-log")).json()
        assert (await http.get(f"/cases/{other}/access-log")).status_code == 403
    assert {(r["role"], r["operation"]) for r in seen} >= {("coordinator", "GET /cases/{case_id}/contact")}
    assert all(r["role"] != "family" for r in seen) and "subject" not in seen[0]
    assert sum(r["operation"] == "GET /cases/{case_id}/contact" for r in seen) == 1, "the other case's read is not in it"


class Unwritable(list):  # type: ignore[type-arg]
    def append(self, item: Any) -> None:
        raise OSError("the audit collection is unreachable")


async def test_an_access_that_cannot_be_audited_is_not_answered(referral: InMemoryService) -> None:
    case_id = await referred(referral)
    await referral.publish(CoordinatorAssigned(case_id=case_id, coordinator_id="coord-1", assigned_at=referral.clock(), region=Region(province="UT")))  # type: ignore[attr-defined]
    referral.service.audit.memory = Unwritable()
    async with referral.http(Role.COORDINATOR, subject="coord-1") as http:
        answer = await http.get(f"/cases/{case_id}/contact")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert values_found_in(PERSONAL_VALUES, [answer.text]) == set()


# --- the other services erase their part ------------------------------------------------------


async def test_scheduling_erases_the_familys_wishes_and_keeps_the_figures() -> None:
    async with InMemoryService(create_scheduling, "scheduling") as scheduling:
        received = referral_received().model_copy(update={"coordinator_preferences": CoordinatorPreferences(gender="female", culture=PREFERENCE)})
        await scheduling.publish(received)
        assert values_found_in([PREFERENCE], everything(scheduling.storage)) == {PREFERENCE}
        erased = PersonalDataErased(case_id=received.case_id, erased_at=received.received_at + timedelta(days=400), reason=ErasureReason.RETENTION)
        for _ in range(2):
            await scheduling.publish(erased)
        assert values_found_in([PREFERENCE], everything(scheduling.storage)) == set()
        async with scheduling.http(Role.OPS) as http:
            case = (await http.get(f"/cases/{received.case_id}")).json()
        assert case["referral"]["region"]["province"] == "NH" and case["personal_data_erased_at"] is not None
        # a case never announced (a self-referral erased before intake) is nothing to wait for
        await scheduling.publish(PersonalDataErased(case_id="case-never-here", erased_at=received.received_at, reason=ErasureReason.REQUEST, announced=False))
        assert "case-never-here" not in scheduling.storage.collections["cases"]


async def test_plans_erases_every_text_and_refuses_changes_afterwards() -> None:
    clock = ManualClock()
    async with InMemoryService(lambda settings, **o: create_plans(settings, clock=clock, **o), "plans") as plans:
        received = referral_received().model_copy(
            update={"statutory_context": StatutoryContext.SUPERVISION_ORDER, "responsible_professional_id": "gv-1"}
        )
        await plans.publish(received)
        requirement = {"text": REQUIREMENT, "shared_with_family_at": clock().isoformat()}
        added = await plans.http_settled("POST", f"/cases/{received.case_id}/requirements", Role.PROFESSIONAL, subject="gv-1", json=requirement)
        assert added.status_code == 201
        [change] = [e for e in await plans.service.audit.entries(case_id=received.case_id) if e.operation == "POST /cases/{case_id}/requirements"]
        assert (change.subject, change.role, change.outcome) == ("gv-1", "professional", "allowed"), "the bound professional's requirement"
        async with plans.http(Role.PROFESSIONAL, subject="gv-1") as http:
            assert (await http.get(f"/cases/{received.case_id}/plan")).status_code == 200
        reads = [e for e in await plans.service.audit.entries(case_id=received.case_id) if e.operation == "GET /cases/{case_id}/plan"]
        assert len(reads) == 1 and values_found_in([REQUIREMENT], [r.model_dump_json() for r in reads]) == set()
        await plans.publish(PersonalDataErased(case_id=received.case_id, erased_at=clock(), reason=ErasureReason.REQUEST))
        assert values_found_in([REQUIREMENT, "Oma Fatima"], everything(plans.storage)) == set()
        again = await plans.http_settled("POST", f"/cases/{received.case_id}/requirements", Role.PROFESSIONAL, subject="gv-1", json=requirement)
        assert again.status_code == 409


def test_the_movable_clock_is_for_development_only(tmp_path: Any) -> None:
    from shared.runtime import service_clock
    from shared.settings import KringSettings
    from tests.support.tokens import production_settings

    offset = tmp_path / "offset"
    offset.write_text(str(timedelta(days=31).total_seconds()))
    development = KringSettings(service_name="referral", environment="development", clock_offset_file=offset)
    assert service_clock(development)() - datetime.now(UTC) > timedelta(days=30)
    production = KringSettings(service_name="referral", clock_offset_file=offset, **production_settings(tmp_path))
    assert "KRING_CLOCK_OFFSET_FILE" in (production.insecurity() or "")
    assert service_clock(KringSettings(service_name="referral")) is utc_now


async def test_a_case_withdrawn_before_cases_had_a_lifecycle_is_erased_after_the_period_too(referral: InMemoryService) -> None:
    clock: ManualClock = referral.clock  # type: ignore[attr-defined]
    case_id = await referred(referral)
    await referral.http_settled("POST", f"/cases/{case_id}/withdrawal", Role.BUREAU, organisation_id=BUREAU, json={"reason": "consent_withdrawn"})
    stored = referral.storage.collections["referrals"][case_id]["state"]
    for field in ("lifecycle", "ended_at", "erasure", "referrer_organisation_id"):  # as the previous version stored it
        stored.pop(field)
    clock.advance(days=RETENTION_DAYS + 1)
    assert await referral.app.state.retention.sweep() == 1
    assert values_found_in(PERSONAL_VALUES, everything(referral.storage)) == set()


async def test_followup_erases_the_check_and_the_funder_figures_stay() -> None:
    from services.followup.app import create_app as create_followup
    from tests.unit.test_followup_service import START, accepted_case, report

    clock = ManualClock(START)
    async with InMemoryService(lambda settings, **o: create_followup(settings, clock=clock, **o), "followup") as followup:
        followup.clock = clock  # type: ignore[attr-defined]
        case_id = await accepted_case(followup)
        clock.advance(days=91)
        await followup.app.state.tracking.fire_due()
        await followup.settle()
        check = {"execution_status": "in_progress_partly", "ratings_by_children": [7], "ratings_by_family": [6, 9], "child_outcomes": ["placement_prevented"]}
        assert (await followup.http_settled("POST", f"/cases/{case_id}/check", Role.COORDINATOR, "coord-1", json=check)).status_code == 200
        figures = await report(followup)
        await followup.publish(PersonalDataErased(case_id=case_id, erased_at=clock(), reason=ErasureReason.RETENTION))
        kept = followup.storage.collections["followups"][case_id]["state"]
        assert kept["check"] is None and kept["personal_data_erased_at"] is not None
        assert await report(followup) == figures, "the figures are counted from codes and counts, which stay"
