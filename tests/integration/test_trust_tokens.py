"""Issue 21, findings 1 and 4, against the real services on the real servers: a token is
honoured only when signed by the key the services trust, for the service it reaches, and a
funder sees its own slice and nothing else.

`kring.token` issues through shared.auth.issue_token, which refuses what these tests send;
the forged tokens here are signed as given (tests/support/tokens.py)."""

import os
import subprocess
import sys
from typing import Any

import pytest
from fastapi import FastAPI

from services.followup.app import create_app as followup_app
from services.scheduling.app import create_app as scheduling_app
from shared.auth import Role
from shared.contract.envelope import Envelope
from shared.contract.vocabulary import Region
from shared.settings import REPOSITORY
from tests.support.harness import Harness
from tests.support.samples import referral_received
from tests.support.tokens import claims, signed_by_another_key, signed_by_development_key, signed_with_old_secret, unsigned
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
UTRECHT = ("prov-utrecht", Region(province="UT", municipality="GM0344"))
NOORD_HOLLAND = ("prov-nh", Region(province="NH", municipality="GM0363"))


async def started(kring: Harness, create_app: Any, name: str) -> FastAPI:
    app = kring.app(create_app, name)
    await kring.start(app.state.kring)
    return app


async def status(kring: Harness, app: FastAPI, token: str, path: str, **params: str) -> int:
    async with kring.http(app, token) as http:
        return (await http.get(path, params=params)).status_code


async def test_a_forged_ops_token_does_not_reach_the_coordinators(kring: Harness) -> None:
    scheduling = await started(kring, scheduling_app, "scheduling")
    settings = kring.settings("scheduling")
    forged = {
        "HS256 with the old development secret": signed_with_old_secret(claims("scheduling", "ops")),
        "alg none": unsigned(claims("scheduling", "ops")),
        "another key": signed_by_another_key(claims("scheduling", "ops")),
        "no exp": signed_by_development_key(settings, claims("scheduling", "ops", exp=None)),
        "another issuer": signed_by_development_key(settings, claims("scheduling", "ops", iss="elsewhere")),
    }
    answers = {why: await status(kring, scheduling, token, "/coordinators") for why, token in forged.items()}
    assert answers == dict.fromkeys(forged, 401)
    assert await status(kring, scheduling, kring.token(Role.OPS, audience="scheduling"), "/coordinators") == 200


async def test_a_token_for_another_service_is_refused(kring: Harness) -> None:
    scheduling = await started(kring, scheduling_app, "scheduling")
    followup = await started(kring, followup_app, "followup")
    for_followup = kring.token(Role.OPS, audience="followup")
    assert await status(kring, followup, for_followup, "/checks/late") == 200
    assert await status(kring, scheduling, for_followup, "/coordinators") == 401


async def referrals_of_two_funders(kring: Harness, scheduling: FastAPI, followup: FastAPI) -> None:
    """Utrecht's funder has 2 cases in UT, Noord-Holland's 3 in NH, in both services."""
    for (funder, region), count in ((UTRECHT, 2), (NOORD_HOLLAND, 3)):
        for _ in range(count):
            event = referral_received().model_copy(update={"funder_id": funder, "region": region})
            await kring.publish(Envelope.wrap(event, source="kring/test"))
    ops = kring.token(Role.OPS)

    async def counted() -> bool:
        async with kring.http(scheduling, ops) as http:
            cases = (await http.get("/sixty-days")).json()["cases"]
        async with kring.http(followup, ops) as http:
            referrals = (await http.get("/reports")).json()["referrals"]
        return cases == referrals == 5

    await eventually(counted, timeout=60, what="five referrals counted in scheduling and follow-up")


async def test_a_funder_sees_its_own_slice_and_nothing_without_an_organisation(kring: Harness) -> None:
    scheduling = await started(kring, scheduling_app, "scheduling")
    followup = await started(kring, followup_app, "followup")
    await referrals_of_two_funders(kring, scheduling, followup)

    settings = kring.settings("auth")
    no_org = signed_by_development_key(settings, claims("followup", "funder", aud=["kring-followup", "kring-scheduling"]))
    empty_org = signed_by_development_key(settings, claims("followup", "funder", org="", aud=["kring-followup", "kring-scheduling"]))
    for token in (no_org, empty_org):
        answers = {
            "/reports": await status(kring, followup, token, "/reports"),
            "/reports.html": await status(kring, followup, token, "/reports.html"),
            "/reports?province=NH": await status(kring, followup, token, "/reports", province="NH"),
            "/sixty-days": await status(kring, scheduling, token, "/sixty-days"),
        }
        assert set(answers.values()) <= {401, 403}, answers

    utrecht = kring.token(Role.FUNDER, subject="funder-ut", organisation_id="prov-utrecht")
    async with kring.http(followup, utrecht) as http:
        assert (await http.get("/reports")).json()["referrals"] == 2
        assert (await http.get("/reports", params={"province": "UT"})).json()["referrals"] == 2
        other_province = await http.get("/reports", params={"province": "NH"})
        assert other_province.status_code == 403 or other_province.json()["referrals"] == 0
        assert (await http.get("/reports", params={"funder_id": "prov-nh"})).status_code == 403
        assert (await http.get("/reports.html", params={"funder_id": "prov-nh"})).status_code == 403
    async with kring.http(scheduling, utrecht) as http:
        assert (await http.get("/sixty-days")).json()["cases"] == 2
        other_province = await http.get("/sixty-days", params={"province": "NH"})
        assert other_province.status_code == 403 or other_province.json()["cases"] == 0
        assert (await http.get("/sixty-days", params={"funder_id": "prov-nh"})).status_code == 403


def test_a_service_in_production_without_keys_refuses_to_start() -> None:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("KRING_")}
    environment |= {"KRING_ENVIRONMENT": "production", "KRING_HTTP_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "services.scheduling"], capture_output=True, text=True, env=environment, cwd=REPOSITORY, timeout=120
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "refusing to start" in line and "KRING_JWKS_URLS" in line
