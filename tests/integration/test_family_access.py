"""Issue 23 on the real servers: a one-time code is exchanged once for a family token (also
when two exchanges race: the store's compare-and-set lets one win), and the token stops
working when the case is withdrawn, at referral at once and at plans from the event."""

import asyncio

import pytest

from services.plans.app import create_app as create_plans
from services.referral.app import create_app as create_referral
from shared.auth import Role
from tests.support.harness import Harness
from tests.support.referrals import family_token, self_referral
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_two_exchanges_of_one_code_at_once_give_one_token(kring: Harness) -> None:
    referral = kring.app(create_referral, "referral")
    await kring.start(referral.state.kring)
    ops = {"authorization": f"Bearer {kring.token(Role.OPS, subject='intake-1')}"}
    async with kring.http(referral) as http:
        case_id = (await http.post("/self-referrals", json=self_referral())).json()["case_id"]
        code = (await http.post(f"/cases/{case_id}/family-access", headers=ops)).json()["code"]
        answers = await asyncio.gather(*(http.post("/family-access", json={"code": code}) for _ in range(4)))
    assert sorted(answer.status_code for answer in answers) == [200, 403, 403, 403]
    stored = await referral.state.kring.db["family_codes"].find_one({"state.case_id": case_id})
    assert stored is not None and code.replace("-", "")[4:] not in str(stored), "only the hash is kept"


async def test_a_family_token_is_refused_everywhere_after_the_withdrawal(kring: Harness) -> None:
    referral = kring.app(create_referral, "referral")
    plans = kring.app(create_plans, "plans")
    for app in (referral, plans):
        await kring.start(app.state.kring)
    ops = {"authorization": f"Bearer {kring.token(Role.OPS, subject='intake-1')}"}
    async with kring.http(referral) as http:
        case_id = (await http.post("/self-referrals", json=self_referral())).json()["case_id"]
        assert (await http.post(f"/cases/{case_id}/intake", headers=ops)).status_code == 200  # announced from now on
        family = {"authorization": f"Bearer {await family_token(http, case_id, ops)}"}
        assert (await http.get(f"/cases/{case_id}", headers=family)).status_code == 200
    async with kring.http(plans) as http:
        assert (await http.get(f"/cases/{case_id}/plan", headers=family)).status_code != 401, "plans takes the token"

    async with kring.http(referral) as http:
        withdrawn = await http.post(f"/cases/{case_id}/withdrawal", json={"reason": "consent_withdrawn"}, headers=family)
        assert withdrawn.status_code == 200, withdrawn.text
        assert (await http.get(f"/cases/{case_id}", headers=family)).status_code == 401, "referral: at once"
        assert (await http.post(f"/cases/{case_id}/family-access", headers=ops)).status_code == 409, "no new code"

    async def plans_refuses() -> bool:
        async with kring.http(plans) as http:
            return (await http.get(f"/cases/{case_id}/plan", headers=family)).status_code == 401

    await eventually(plans_refuses, what="plans refusing the family token after ReferralWithdrawn")
    revoked = await plans.state.kring.db["family_access"].find_one({"_id": case_id})
    assert revoked is not None and set(revoked["state"]) == {"revoked_at"}, "a time per case, nothing else"
