"""Issue 23 end to end, four service processes on the real servers: a case's personal data
is erased from every collection of every service's database after the retention period
(the processes' clock moved past it) or at once on request, and the funder figures stay."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from services.asyncapi import SERVICES
from services.ops import audit_entries, erase_case
from shared.auth import Role
from shared.contract.vocabulary import ErasureRequestReason
from tests.support.referrals import RESPONSIBLE_PROFESSIONAL, referral_request
from tests.support.scan import values_found_in
from tests.e2e.conftest import running
from tests.support.system import System, load_demo

pytestmark = [pytest.mark.integration]
RETENTION_DAYS = 30
BUREAU = "bjz-utrecht"
token = load_demo().token


@pytest.fixture
def private_system(rabbitmq_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[System]:
    """The four services with a retention period of 30 days, swept every second, on a clock
    the test moves (KRING_CLOCK_OFFSET_FILE, development only)."""
    system = System(rabbitmq_url, mongodb_url, tmp_path)
    clock_offset = tmp_path / "clock-offset"
    clock_offset.write_text("0")
    system.environment |= {
        "KRING_RETENTION_DAYS": str(RETENTION_DAYS), "KRING_RETENTION_SWEEP_SECONDS": "1", "KRING_CLOCK_OFFSET_FILE": str(clock_offset),
    }  # fmt: skip
    with running(system) as started:
        yield started


def personal(tag: str) -> dict[str, str]:
    """Values only this case has, so a find anywhere is this case's."""
    return {
        "name": f"Anouk Verbeek-{tag}", "phone": f"+31 6 {int(tag, 16) % 10**8:08d}", "email": f"anouk.{tag}@example.nl",
        "description": f"Moeder Anouk ({tag}) is de zorg voor de tweeling alleen niet meer aan.",
        "bottom_line": f"De tweeling {tag} slaapt elke nacht thuis.",
        "requirement": f"Opa Verbeek {tag} is er elke ochtend.", "question": f"Hoe blijft de tweeling {tag} veilig thuis?",
        "agreement": f"Tante Sandra {tag} kookt op dinsdag.", "reference": f"BJZ/{tag}",
    }  # fmt: skip


def everything(system: System) -> list[str]:
    """Every document of every collection of every service's database, as text."""
    texts = []
    with MongoClient(system.mongodb_url) as client:
        for service in SERVICES:
            database = client[f"{system.prefix}_{service}"]
            for name in database.list_collection_names():
                texts += [json.dumps(document, default=str) for document in database[name].find()]
    return texts


def until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.3)
    return found


class Case:
    """One case driven through the services' HTTP routes as the people involved would."""

    def __init__(self, system: System, values: dict[str, str]) -> None:
        self.system, self.values = system, values
        self.http = httpx.Client(timeout=10)
        self.ops = {"authorization": f"Bearer {token(Role.OPS, 'privacy-desk-1')}"}
        self.case_id = ""

    def call(self, service: str, method: str, path: str, bearer: str | dict[str, str], **request: Any) -> httpx.Response:
        headers = bearer if isinstance(bearer, dict) else {"authorization": f"Bearer {bearer}"}
        return self.http.request(method, self.system.urls[service] + path, headers=headers, **request)

    def refer(self, coordinator: str, *, consent: bool = True) -> str:
        v = self.values
        profile = {"provinces": ["UT"], "languages": ["nl"], "max_cases": 5, "professional_care_provider": False}
        assert self.call("scheduling", "PUT", f"/coordinators/{coordinator}", self.ops, json=profile).status_code == 200
        body = referral_request(
            contact={"name": v["name"], "relation": "mother", "phone": v["phone"], "email": v["email"]},
            description=v["description"], coordinator_preferences={"language": "nl", "culture": "surinamese"},  # a code (issue 23)
            bottom_line_requirements=[v["bottom_line"]], consent={"given_by": ["parent_with_responsibility"]} if consent else None,
        )  # fmt: skip
        bureau = token(Role.BUREAU, "bjz-intake", organisation_id=BUREAU)
        created = self.call("referral", "POST", "/referrals", bureau, json={**body, "external_reference": v["reference"]})
        assert created.status_code == 201, created.text
        self.case_id = created.json()["case_id"]
        return self.case_id

    def assigned(self) -> str:
        case = lambda: self.call("scheduling", "GET", f"/cases/{self.case_id}", self.ops)  # noqa: E731
        return str(until("a coordinator", lambda: case().json().get("coordinator_id")))

    def prepare(self, coordinator: str, professional: str) -> None:
        me = token(Role.COORDINATOR, coordinator)
        assert self.call("referral", "GET", f"/cases/{self.case_id}/contact", me).status_code == 200
        requirement = {"text": self.values["requirement"], "shared_with_family_at": datetime.now(UTC).isoformat()}
        until("the plan record", lambda: self.call("plans", "POST", f"/cases/{self.case_id}/requirements", professional, json=requirement).status_code == 201)
        until("preparing", lambda: self.call("scheduling", "GET", f"/cases/{self.case_id}", me).json().get("stage") == "preparing")
        network = {"parents": 1, "children": 2, "grandparents": 1}
        preparation = {"network": network, "invited": network, "accepted": network, "parents_with_responsibility": 1, "location_booked": True}
        assert self.call("scheduling", "PUT", f"/cases/{self.case_id}/preparation", me, json=preparation).status_code == 200
        today = datetime.now(UTC).date().isoformat()
        assert self.call("scheduling", "PUT", f"/cases/{self.case_id}/conference", me, json={"conference_date": today}).status_code == 200

    def to_the_end(self, coordinator: str, professional: str) -> None:
        """Held, the plan accepted, the follow-up done: OutcomeRecorded."""
        me = token(Role.COORDINATOR, coordinator)
        attended = {"attended": {"parents": 1, "children": 2, "grandparents": 1}, "all_parents_with_responsibility_attended": True}
        assert self.call("scheduling", "POST", f"/cases/{self.case_id}/held", me, json=attended).status_code == 200
        held = lambda: any(m["status"] == "held" for m in self.call("plans", "GET", f"/cases/{self.case_id}/plan", me).json().get("meetings", []))  # noqa: E731
        until("plans to see the conference", held)
        agreement = {"agreement_id": "a1", "what": self.values["agreement"], "who": "other_relative", "by_when": "2027-03-01", "kind": "network_support", "answers_requirements": ["r1", "r2"]}
        plan = {"central_question": self.values["question"], "agreements": [agreement]}
        assert self.call("plans", "PUT", f"/cases/{self.case_id}/plan", me, json=plan).status_code == 200
        assert self.call("plans", "POST", f"/cases/{self.case_id}/plan/presentation", me).status_code == 200
        assert self.call("plans", "POST", f"/cases/{self.case_id}/plan/review", professional, json={}).status_code == 200
        due = lambda: self.call("followup", "GET", f"/cases/{self.case_id}", me).json().get("stage") == "due"  # noqa: E731
        until("the follow-up to fall due", due)
        check = {"execution_status": "fully_carried_out", "ratings_by_family": [8], "child_outcomes": ["placement_prevented", "none"]}
        assert self.call("followup", "POST", f"/cases/{self.case_id}/check", me, json=check).status_code == 200
        until("the case's end to reach referral", lambda: self.call("followup", "GET", f"/cases/{self.case_id}", me).json().get("stage") == "completed")


def report(case: Case) -> dict[str, Any]:
    answer = case.call("followup", "GET", "/reports", token(Role.FUNDER, "funder-1", organisation_id="prov-utrecht"))
    assert answer.status_code == 200
    return dict(answer.json())


def test_after_the_retention_period_no_personal_value_of_a_case_is_left_anywhere_and_the_figures_stay(private_system: System) -> None:
    values = personal(uuid.uuid4().hex[:8])
    case = Case(private_system, values)
    professional = token(Role.PROFESSIONAL, RESPONSIBLE_PROFESSIONAL)  # the one the referral names
    case.refer("coord-privacy-1")
    coordinator = case.assigned()
    case.prepare(coordinator, professional)
    case.to_the_end(coordinator, professional)
    figures = report(case)
    assert (figures["referrals"], figures["plans"], figures["followups"], figures["outcomes"]) == (1, 1, 1, {"placement_prevented": 1, "none": 1})
    found = values_found_in(values.values(), everything(private_system))
    assert {"name", "description", "bottom_line", "requirement", "question"} <= {k for k, v in values.items() if v in found}, "the case held them"

    time.sleep(3)  # a few sweeps inside the period: nothing is erased
    assert case.call("referral", "GET", f"/cases/{case.case_id}", case.ops).status_code == 200
    ahead = timedelta(days=RETENTION_DAYS, hours=1)  # every process's clock, past the period
    Path(private_system.environment["KRING_CLOCK_OFFSET_FILE"]).write_text(str(ahead.total_seconds()))

    until("no personal value left in any collection", lambda: values_found_in(values.values(), everything(private_system)) == set(), timeout=90)
    assert case.call("referral", "GET", f"/cases/{case.case_id}", case.ops).status_code == 404
    assert report(case) == figures, "the funder figures are unchanged"
    kinds = {entry.operation for entry in asyncio.run(audit_entries(private_system.ops_settings(), case_id=case.case_id))}
    assert {"GET /cases/{case_id}/contact", "POST /cases/{case_id}/requirements", "GET /cases/{case_id}/plan"} <= kinds


def test_erasure_on_request_mid_case_closes_it_frees_the_place_and_is_audited(private_system: System) -> None:
    values = personal(uuid.uuid4().hex[:8])
    case = Case(private_system, values)
    professional = token(Role.PROFESSIONAL, RESPONSIBLE_PROFESSIONAL)  # the one the referral names
    case.refer("coord-privacy-2")
    coordinator = case.assigned()
    case.prepare(coordinator, professional)
    active = lambda: next(c for c in case.call("scheduling", "GET", "/coordinators", case.ops).json() if c["coordinator_id"] == coordinator)["active_cases"]  # noqa: E731
    assert case.case_id in active()
    assert {"name", "bottom_line", "requirement"} <= {k for k, v in values.items() if v in values_found_in(values.values(), everything(private_system))}

    body = {"reason": "data_subject_request", "reference": "AVG-2026-0042"}
    erased = case.call("referral", "POST", f"/cases/{case.case_id}/erasure", case.ops, json=body)
    assert erased.status_code == 200, erased.text
    stage = lambda: case.call("scheduling", "GET", f"/cases/{case.case_id}", case.ops).json()["stage"]  # noqa: E731
    until("scheduling to close the case", lambda: stage() == "withdrawn")
    until("the coordinator's place to be freed", lambda: case.case_id not in active())
    until("no personal value left in any collection", lambda: values_found_in(values.values(), everything(private_system)) == set())
    entries = asyncio.run(audit_entries(private_system.ops_settings(), case_id=case.case_id))
    [erasure] = [e for e in entries if e.operation == "POST /cases/{case_id}/erasure"]
    assert (erasure.service, erasure.subject, erasure.role, erasure.outcome) == ("referral", "privacy-desk-1", "ops", "allowed")
    assert values_found_in(values.values(), [e.model_dump_json() for e in entries]) == set()

    # the same from the command line, for a case still waiting for consent
    other = Case(private_system, personal(uuid.uuid4().hex[:8]))
    other.refer("coord-privacy-3", consent=False)
    until("scheduling to know the case", lambda: other.call("scheduling", "GET", f"/cases/{other.case_id}", other.ops).status_code == 200)
    state = asyncio.run(erase_case(private_system.ops_settings(), other.case_id, ErasureRequestReason.DUPLICATE, operator="os-privacy"))
    assert state.erasure.request_reason == "duplicate"
    until("no personal value of that case left", lambda: values_found_in(other.values.values(), everything(private_system)) == set(), timeout=30)
    [command] = [e for e in asyncio.run(audit_entries(private_system.ops_settings(), case_id=other.case_id)) if e.operation == "kring-ops erase"]
    assert (command.subject, command.outcome) == ("os-privacy", "allowed")
