"""The referral service's handlers and routes on the in-memory store and FastStream's
TestRabbitBroker (no server)."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.referral.app import create_app
from shared.auth import Role, issue_token
from shared.contract.events import CoordinatorAssigned
from shared.contract.vocabulary import Region
from tests.support.inmemory import InMemoryService
from tests.support.referrals import PERSONAL_VALUES, family_token, referral_request, self_referral, submit_referral

pytestmark = pytest.mark.anyio
BUREAU = "bjz-utrecht"


def referral_token(referral: InMemoryService, role: Role, subject: str) -> str:
    return issue_token(referral.settings, subject=subject, role=role)


@pytest.fixture
async def referral() -> Any:
    async with InMemoryService(create_app, "referral") as service:
        yield service


async def test_a_bureau_command_opens_one_case_and_a_resubmission_answers_it_again(referral: InMemoryService) -> None:
    command = submit_referral(BUREAU)
    await referral.command("referral.submit", command, message_id=str(uuid.uuid4()))
    await referral.command("referral.submit", command, message_id=str(uuid.uuid4()))
    [received] = referral.sent("referral.received")
    first, again = referral.sent(f"referral.accepted.{BUREAU}")
    assert first["case_id"] == again["case_id"] == received["case_id"]
    assert (first["resubmission"], again["resubmission"]) == (False, True)
    assert not any(value in str(referral.messages) for value in PERSONAL_VALUES), "no personal data on the bus"


async def test_a_redelivered_command_is_answered_once(referral: InMemoryService) -> None:
    command, message_id = submit_referral(BUREAU), str(uuid.uuid4())
    for _ in range(2):
        await referral.command("referral.submit", command, message_id=message_id)
    assert len(referral.sent(f"referral.accepted.{BUREAU}")) == 1


async def test_an_invalid_command_is_rejected_naming_the_fields(referral: InMemoryService) -> None:
    command = submit_referral(BUREAU, language="Nederlands", children=[])
    await referral.command("referral.submit", command, message_id=str(uuid.uuid4()))
    [rejected] = referral.sent(f"referral.rejected.{BUREAU}")
    assert {error["field"] for error in rejected["errors"]} >= {"language", "children"}
    assert referral.sent("referral.received") == []


async def test_only_the_assigned_coordinator_reads_the_contact_person(referral: InMemoryService) -> None:
    response = await referral.http_settled("POST", "/self-referrals", Role.FAMILY, case_id="case-another", json=self_referral())  # anyone may
    assert response.status_code == 201
    case_id = response.json()["case_id"]
    async with referral.http(Role.OPS, subject="intake-1") as http:
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 200, "the intake worker phones the family"
        assert (await http.post(f"/cases/{case_id}/intake")).json()["intake_accepted"] is True
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 403, "after intake: the coordinator only"
    await referral.settle()
    await referral.publish(CoordinatorAssigned(case_id=case_id, coordinator_id="coord-1", assigned_at=datetime.now(UTC), region=Region(province="UT")))
    async with referral.http(Role.COORDINATOR, subject="coord-1") as http:
        contact = await http.get(f"/cases/{case_id}/contact")
        assert contact.status_code == 200 and contact.json()["contact"]["name"] == self_referral()["contact"]["name"]
    async with referral.http(Role.COORDINATOR, subject="coord-2") as http:
        assert (await http.get(f"/cases/{case_id}/contact")).status_code == 403
    async with referral.http() as http:
        family = await family_token(http, case_id, {"authorization": f"Bearer {referral_token(referral, Role.COORDINATOR, 'coord-1')}"})
        own = await http.get(f"/cases/{case_id}", headers={"authorization": f"Bearer {family}"})
        assert own.status_code == 200 and "contact" not in own.json()


async def test_consent_and_withdrawal_are_announced_once(referral: InMemoryService) -> None:
    created = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json=referral_request(consent=None))
    case_id = created.json()["case_id"]
    consent = {"given_by": ["parent_with_responsibility"]}
    for _ in range(2):
        assert (await referral.http_settled("POST", f"/cases/{case_id}/consent", Role.BUREAU, organisation_id=BUREAU, json=consent)).status_code == 200
    withdrawn = await referral.http_settled("POST", f"/cases/{case_id}/withdrawal", Role.BUREAU, organisation_id=BUREAU, json={"reason": "family_declined"})
    assert withdrawn.status_code == 200 and withdrawn.json()["active"] is False
    again = await referral.http_settled("POST", f"/cases/{case_id}/withdrawal", Role.BUREAU, organisation_id=BUREAU, json={"reason": "family_declined"})
    assert again.status_code == 409
    assert [c["consent"] for c in referral.sent("referral.consent-recorded")] == ["given"]
    assert len(referral.sent("referral.withdrawn")) == 1


async def test_a_changed_resubmission_is_rejected_naming_the_fields_and_changes_nothing(referral: InMemoryService) -> None:
    command = submit_referral(BUREAU)
    await referral.command("referral.submit", command, message_id=str(uuid.uuid4()))
    changed = {**command, "urgency": "urgent", "children": [{"age": 4}, {"age": 9}]}
    await referral.command("referral.submit", changed, message_id=str(uuid.uuid4()))
    [received] = referral.sent("referral.received")
    [accepted] = referral.sent(f"referral.accepted.{BUREAU}")
    [rejected] = referral.sent(f"referral.rejected.{BUREAU}")
    assert rejected["external_reference"] == command["external_reference"]
    assert [e["field"] for e in rejected["errors"]] == ["children", "urgency"]
    case_id = accepted["case_id"]
    async with referral.http(Role.OPS, subject="ops-1") as http:
        case = (await http.get(f"/cases/{case_id}")).json()
    assert (case["urgency"], len(case["child_age_bands"])) == ("normal", 3), "the case stands as first accepted"
    await referral.command("referral.submit", command, message_id=str(uuid.uuid4()))  # the original again: the same answer
    assert [a["resubmission"] for a in referral.sent(f"referral.accepted.{BUREAU}")] == [False, True]
    assert received["urgency"] == "normal" and len(referral.sent("referral.received")) == 1


async def test_a_changed_resubmission_over_http_is_a_conflict_naming_the_fields(referral: InMemoryService) -> None:
    body = {**referral_request(), "external_reference": "REF-http-1"}
    first = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json=body)
    same = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json=body)
    assert first.status_code == same.status_code == 201 and same.json() == {**first.json(), "resubmission": True}
    changed = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json={**body, "urgency": "urgent"})
    assert changed.status_code == 409 and changed.json()["detail"].startswith("urgency: differs")
    assert len(referral.sent("referral.received")) == 1


async def test_an_adult_subject_referral_is_taken_without_children(referral: InMemoryService) -> None:
    body = referral_request(
        subject="adult", children=[], statutory_context="none", bottom_line_requirements=[], responsible_professional_id=None,
        concern_categories=["addiction"], consent=None,
    )  # fmt: skip
    created = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json=body)
    assert created.status_code == 201, created.text
    [received] = referral.sent("referral.received")
    assert (received["subject"], received["child_age_bands"], received["bottom_line_requirements"]) == ("adult", [], [])
    child = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json={**body, "subject": "child"})
    assert child.status_code == 422 and "children" in child.text


async def test_a_statutory_referral_without_its_professional_is_refused_on_both_channels(referral: InMemoryService) -> None:
    await referral.command("referral.submit", submit_referral(BUREAU, responsible_professional_id=None), message_id=str(uuid.uuid4()))
    [rejected] = referral.sent(f"referral.rejected.{BUREAU}")
    assert [e["field"] for e in rejected["errors"]] == ["responsible_professional_id"]
    refused = await referral.http_settled("POST", "/referrals", Role.BUREAU, organisation_id=BUREAU, json=referral_request(responsible_professional_id=None))
    assert refused.status_code == 422 and "responsible_professional_id" in refused.text
    assert referral.sent("referral.received") == []
