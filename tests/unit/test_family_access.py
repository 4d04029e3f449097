"""Issue 23: family access delivered to the verified contact. The coordinator (or ops) asks
referral for a one-time code and hands it over; the family exchanges it once for a family
token; the token stops working when the case is withdrawn, at referral and at plans. On the
in-memory store and FastStream's TestRabbitBroker (no server); the same on the real servers:
tests/integration/test_family_access.py."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.plans.app import create_app as create_plans
from services.referral import family_codes
from services.referral.app import create_app as create_referral
from shared.auth import ROLE_LIFETIME, Role, issue_token
from shared.contract.events import PersonalDataErased, ReferralWithdrawn
from shared.contract.vocabulary import ErasureReason, WithdrawalReason
from shared.family_access import REVOKING, Revocation, admitted
from tests.support.clock import ManualClock
from tests.support.inmemory import InMemoryService
from tests.support.referrals import self_referral
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio


@pytest.fixture
async def referral() -> Any:
    clock = ManualClock()
    async with InMemoryService(lambda settings, **o: create_referral(settings, clock=clock, **o), "referral") as service:
        service.clock = clock  # type: ignore[attr-defined]
        yield service


async def new_case(referral: InMemoryService) -> str:
    response = await referral.http_settled("POST", "/self-referrals", Role.OPS, json=self_referral())
    assert response.status_code == 201 and set(response.json()) == {"case_id", "resubmission"}, "no token for whoever sent it"
    return str(response.json()["case_id"])


async def code_for(referral: InMemoryService, case_id: str, role: Role = Role.OPS, subject: str = "intake-1") -> str:
    response = await referral.http_settled("POST", f"/cases/{case_id}/family-access", role, subject)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"case_id", "code", "expires_at"}, "a code, never a token"
    return str(response.json()["code"])


async def exchange(referral: InMemoryService, code: str) -> Any:
    async with referral.http() as http:
        return await http.post("/family-access", json={"code": code})


async def test_a_code_is_exchanged_once_for_a_family_token_of_weeks(referral: InMemoryService) -> None:
    case_id = await new_case(referral)
    code = await code_for(referral, case_id)
    assert len(code) == 14 and code.count("-") == 2
    granted = await exchange(referral, code.lower().replace("-", " "))  # typed as it was heard
    assert granted.status_code == 200, granted.text
    assert granted.json()["case_id"] == case_id
    token = granted.json()["family_access_token"]
    async with referral.http() as http:
        own = await http.get(f"/cases/{case_id}", headers={"authorization": f"Bearer {token}"})
    assert own.status_code == 200
    lifetime = datetime.fromisoformat(granted.json()["expires_at"]) - referral.clock()  # type: ignore[attr-defined]
    assert timedelta(days=7) <= lifetime <= ROLE_LIFETIME[Role.FAMILY] <= timedelta(days=31), "weeks, not months"
    again = await exchange(referral, code)
    assert again.status_code == 403, "single use"
    assert "token" not in again.text


async def test_the_code_is_kept_only_as_a_hash(referral: InMemoryService) -> None:
    case_id = await new_case(referral)
    code = await code_for(referral, case_id)
    code_id, secret = family_codes.parsed(code)  # type: ignore[misc]
    stored = referral.app.state.kring.stores["family_codes"]
    record = await stored.get(code_id)
    assert record is not None and record.case_id == case_id
    assert secret not in record.model_dump_json() and code.replace("-", "") not in record.model_dump_json()


async def test_a_wrong_code_is_refused_and_attempts_are_limited(referral: InMemoryService) -> None:
    case_id = await new_case(referral)
    code = await code_for(referral, case_id)
    code_id, secret = family_codes.parsed(code)  # type: ignore[misc]
    wrong = family_codes.formatted(code_id, ("0" if secret[0] != "0" else "1") + secret[1:])
    for garbage in ("", "not a code", "ABCD-EFGH"):
        async with referral.http() as http:
            assert (await http.post("/family-access", json={"code": garbage})).status_code in (403, 422)
    for _ in range(family_codes.MAX_FAILED_ATTEMPTS):
        assert (await exchange(referral, wrong)).status_code == 403
    assert (await exchange(referral, code)).status_code == 403, "after the attempts, the right code is dead too"
    fresh = await code_for(referral, case_id)  # the coordinator gives a new one
    assert (await exchange(referral, fresh)).status_code == 200


async def test_an_expired_code_is_refused(referral: InMemoryService) -> None:
    case_id = await new_case(referral)
    code = await code_for(referral, case_id)
    referral.clock.advance(days=family_codes.CODE_LIFETIME.days, seconds=1)  # type: ignore[attr-defined]
    assert (await exchange(referral, code)).status_code == 403


async def test_only_the_cases_coordinator_or_ops_gets_a_code_and_nobody_mints_family_tokens(referral: InMemoryService) -> None:
    case_id = await new_case(referral)
    for role, claims in ((Role.COORDINATOR, {}), (Role.BUREAU, {"organisation_id": "bjz-utrecht"}), (Role.FAMILY, {"case_id": case_id})):
        async with referral.http(role, "coord-9", **claims) as http:
            assert (await http.post(f"/cases/{case_id}/family-access")).status_code in (401, 403), role
    paths = referral.app.openapi()["paths"]
    assert set(paths["/family-access"]) == {"post"} and set(paths["/cases/{case_id}/family-access"]) == {"post"}
    issued = paths["/cases/{case_id}/family-access"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert issued["$ref"].endswith("/FamilyCodeIssued")
    # no route answers with a family token but the exchange of a one-time code
    granting = [path for path, methods in paths.items() for op in methods.values() if "FamilyAccessGranted" in str(op)]
    assert granting == ["/family-access"]
    assert "family_access_token" not in str(paths["/self-referrals"]) and "family_access_token" not in str(paths["/referrals"])


async def test_family_tokens_stop_working_when_the_case_is_withdrawn(referral: InMemoryService) -> None:
    case_id = await new_case(referral)
    assert (await referral.http_settled("POST", f"/cases/{case_id}/intake", Role.OPS, "intake-1")).status_code == 200
    referral.clock.now = datetime.now(UTC)  # type: ignore[attr-defined]  # tokens carry the real time
    token = (await exchange(referral, await code_for(referral, case_id))).json()["family_access_token"]
    family = {"authorization": f"Bearer {token}"}
    referral.clock.now = datetime.now(UTC) + timedelta(seconds=1)  # type: ignore[attr-defined]  # the withdrawal comes after the token
    async with referral.http() as http:
        assert (await http.get(f"/cases/{case_id}", headers=family)).status_code == 200
        withdrawn = await http.post(f"/cases/{case_id}/withdrawal", json={"reason": "consent_withdrawn"}, headers=family)
        assert withdrawn.status_code == 200
        assert (await http.get(f"/cases/{case_id}", headers=family)).status_code == 401, "at once, before the event is back"
    await referral.settle()
    revocation = await referral.app.state.family_access.store.get(case_id)
    assert revocation is not None, "and from the event, like every service accepting family tokens"
    assert (await referral.http_settled("POST", f"/cases/{case_id}/family-access", Role.OPS)).status_code == 409, "no new code"


async def test_plans_refuses_a_family_token_issued_before_the_withdrawal() -> None:
    async with InMemoryService(create_plans, "plans") as plans:
        case_id = "case-withdrawn01"
        token = issue_token(plans.settings, subject=f"family-{case_id}", role=Role.FAMILY, audience="plans", case_id=case_id)
        family = {"authorization": f"Bearer {token}"}
        async with plans.http() as http:
            before = await http.get(f"/cases/{case_id}/plan", headers=family)
        assert before.status_code != 401, "not refused for being a family token"
        later = datetime.now(UTC) + timedelta(seconds=1)
        await plans.publish(ReferralWithdrawn(case_id=case_id, withdrawn_at=later, reason=WithdrawalReason.CONSENT_WITHDRAWN), time=later)
        await plans.settle()
        async with plans.http() as http:
            after = await http.get(f"/cases/{case_id}/plan", headers=family)
            other = issue_token(plans.settings, subject="family-x", role=Role.FAMILY, audience="plans", case_id="case-other0001")
            unaffected = await http.get("/cases/case-other0001/plan", headers={"authorization": f"Bearer {other}"})
        assert after.status_code == 401 and "ended" in after.text
        assert unaffected.status_code != 401, "another case's family is not affected"



async def test_plans_refuses_a_family_token_issued_before_the_erasure() -> None:
    """A case that ended without a withdrawal (follow-up done) and is erased after the
    retention period: plans' own record of the erasure ends the family's access too."""
    async with InMemoryService(create_plans, "plans") as plans:
        received = referral_received()
        await plans.publish(received)
        case_id = received.case_id
        token = issue_token(plans.settings, subject=f"family-{case_id}", role=Role.FAMILY, audience="plans", case_id=case_id)
        family = {"authorization": f"Bearer {token}"}
        async with plans.http() as http:
            assert (await http.get(f"/cases/{case_id}/plan", headers=family)).status_code != 401
        later = datetime.now(UTC) + timedelta(seconds=1)
        await plans.publish(PersonalDataErased(case_id=case_id, erased_at=later, reason=ErasureReason.RETENTION), time=later)
        await plans.settle()
        async with plans.http() as http:
            after = await http.get(f"/cases/{case_id}/plan", headers=family)
        assert after.status_code == 401 and "ended" in after.text

def test_revocation_rules() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    assert admitted(None, None) and admitted(None, at)
    assert not admitted(Revocation(revoked_at=at), at - timedelta(days=1))
    assert not admitted(Revocation(revoked_at=at), at), "issued in the same instant: refused"
    assert admitted(Revocation(revoked_at=at), at + timedelta(seconds=1))
    assert not admitted(Revocation(revoked_at=at), None), "a token without iat is refused"
    assert ReferralWithdrawn in REVOKING


async def test_a_service_admitting_family_tokens_without_revocations_refuses_them() -> None:
    async with InMemoryService(create_plans, "plans") as plans:
        del plans.app.state.family_access
        token = issue_token(plans.settings, subject="family-x", role=Role.FAMILY, audience="plans", case_id="case-unwired01")
        async with plans.http() as http:
            refused = await http.get("/cases/case-unwired01/plan", headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 401
