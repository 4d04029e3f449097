"""The public side of the referral service (issue 21, finding 6), on the real servers: the
rate limit counts the real client (over uvicorn, as it is served), once per service for all
public routes and replicas; the public sends only the family's facts; an anonymous
self-referral takes no coordinator's place and tells no other service anything until an
intake worker accepts it; the form refuses cross-site posts and files."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.referral.app import create_app
from services.scheduling.app import create_app as create_scheduling
from shared.auth import Role
from shared.runtime import server_config
from tests.support.harness import Harness
from tests.support.referrals import family_token, form_token, form_values, self_referral
from tests.support.tokens import production_settings
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FORM = form_values()


async def started(kring: Harness, **overrides: Any) -> FastAPI:
    app = kring.app(create_app, "referral", **overrides)
    await kring.start(app.state.kring)
    return app


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app behind uvicorn as the service runs it (shared.runtime.server_config), on a
    free local port; the harness runs the app's lifespan."""
    server = uvicorn.Server(server_config(app, app.state.settings, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="uvicorn listening")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_varying_x_forwarded_for_does_not_reset_the_limit_without_a_trusted_proxy(kring: Harness) -> None:
    app = await started(kring, public_rate_limit="3/minute", http_host="127.0.0.1", http_port=0)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as http:
        statuses = [
            (await http.post("/self-referrals", json=self_referral(), headers={"x-forwarded-for": f"198.51.100.{n}"})).status_code
            for n in range(5)
        ]
    assert statuses == [201, 201, 201, 429, 429]


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(kring: Harness) -> None:
    app = await started(kring, public_rate_limit="2/minute", http_host="127.0.0.1", http_port=0, trusted_proxies=["127.0.0.1"])
    async with served(app) as url, httpx.AsyncClient(base_url=url) as http:

        async def from_client(address: str) -> int:
            return (await http.post("/self-referrals", json=self_referral(), headers={"x-forwarded-for": address})).status_code

        first = [await from_client("203.0.113.7") for _ in range(3)]
        other = await from_client("203.0.113.8")
    assert first == [201, 201, 429], "one client behind the proxy is limited"
    assert other == 201, "another client behind the same proxy has its own count"


async def test_the_limit_is_one_count_for_all_public_routes_and_every_replica(kring: Harness) -> None:
    one = await started(kring, public_rate_limit="4/minute")
    two = await started(kring, public_rate_limit="4/minute")  # a second replica: same database
    async with kring.http(one) as first, kring.http(two) as second:
        assert (await first.post("/self-referrals", json=self_referral())).status_code == 201
        assert (await first.post("/self-referrals", json=self_referral())).status_code == 201
        page = await second.get("/self-referral")
        assert page.status_code == 200
        sent = await second.post("/self-referral", data={**FORM, "csrf_token": form_token(page.text)})
        assert sent.status_code == 201, sent.text
        assert (await first.post("/self-referrals", json=self_referral())).status_code == 429
        refused = await second.post("/self-referral", data={**FORM, "csrf_token": form_token(page.text)})
        assert refused.status_code == 429 and "retry-after" in refused.headers


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("funder_id", "prov-utrecht", "funder_id"),
        ("statutory_context", "supervision_order", "statutory_context"),
        ("referrer", {"type": "self", "organisation_id": "bjz-utrecht"}, "referrer.organisation_id"),
        ("bottom_line_requirements", ["De kinderen gaan naar school."], "bottom_line_requirements"),
        ("source_organisation_id", "bjz-utrecht", "source_organisation_id"),
    ],
)
async def test_the_public_cannot_say_who_pays_the_statutory_context_or_an_organisation(
    kring: Harness, field: str, value: Any, named: str
) -> None:
    app = await started(kring)
    async with kring.http(app) as http:
        response = await http.post("/self-referrals", json=self_referral(**{field: value}))
    assert response.status_code == 422
    assert named in [f["field"] for f in response.json()["fields"]]


async def test_an_anonymous_self_referral_takes_no_place_and_tells_nobody_until_intake_accepts_it(kring: Harness) -> None:
    referral = await started(kring)
    scheduling = kring.app(create_scheduling, "scheduling")
    await kring.start(scheduling.state.kring)
    ops = kring.token(Role.OPS, subject="intake-1")
    async with kring.http(scheduling, ops) as http:
        coordinator = {"provinces": ["UT"], "languages": ["nl"], "max_cases": 1, "professional_care_provider": False}
        assert (await http.put("/coordinators/c1", json=coordinator)).status_code in (200, 201)
    events = await kring.probe(kring.topology.events.name, "referral.#")

    async with kring.http(referral) as http:
        created = (await http.post("/self-referrals", json=self_referral(region={"province": "UT"}))).json()
        family = {"authorization": f"Bearer {await family_token(http, created['case_id'], {'authorization': f'Bearer {ops}'})}"}
        case_path = f"/cases/{created['case_id']}"
        consented = await http.post(f"{case_path}/consent", json={"given_by": ["parent_with_responsibility"]}, headers=family)
        assert consented.status_code == 200 and consented.json()["intake_accepted"] is False
    assert await kring.drain(events.name, settle=1.5) == [], "nothing announced before intake"
    async with kring.http(scheduling, ops) as http:
        assert (await http.get(case_path)).status_code == 404, "scheduling has not heard of the case"
        [c1] = [c for c in (await http.get("/coordinators")).json() if c["coordinator_id"] == "c1"]
    assert c1["active_cases"] == [], "no place taken"

    async with kring.http(referral, ops) as http:
        contact = await http.get(f"{case_path}/contact")
        assert contact.status_code == 200 and contact.json()["contact"]["phone"], "the intake worker phones the family"
        accepted = await http.post(f"{case_path}/intake")
        assert accepted.status_code == 200 and accepted.json()["intake_accepted"] is True
        again = await http.post(f"{case_path}/intake")
        assert again.status_code == 200, "accepting twice changes nothing"
    [received] = await kring.drain(events.name, settle=1.0)
    body = json.loads(received.body)
    assert received.routing_key == "referral.received" and body["consent"] == "given"
    assert (body["funder_id"], body["statutory_context"], body["referrer_organisation_id"]) == ("province-UT", "none", None)

    async def assigned() -> str | None:
        async with kring.http(scheduling, ops) as http:
            response = await http.get(case_path)
            return response.json().get("coordinator_id") if response.status_code == 200 else None

    await eventually(lambda: _is(assigned(), "c1"), what="the place taken after intake")


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_only_ops_accepts_intake(kring: Harness) -> None:
    app = await started(kring)
    async with kring.http(app) as http:
        created = (await http.post("/self-referrals", json=self_referral())).json()
        family = await family_token(http, created["case_id"], {"authorization": f"Bearer {kring.token(Role.OPS, subject='intake-1')}"})
    for token in (family, kring.token(Role.COORDINATOR, subject="c1"), kring.token(Role.BUREAU, organisation_id="bjz-utrecht")):
        async with kring.http(app, token) as http:
            assert (await http.post(f"/cases/{created['case_id']}/intake")).status_code == 403


async def test_the_form_refuses_a_post_without_its_own_token(kring: Harness) -> None:
    app = await started(kring)
    async with kring.http(app) as http, kring.http(app) as other_browser:
        without = await http.post("/self-referral", data=FORM)
        page = await http.get("/self-referral")
        cookie = page.headers["set-cookie"].lower()
        assert "kring_form=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        wrong = await http.post("/self-referral", data={**FORM, "csrf_token": "x" * 43})
        # A token read from another page (an attacker's own visit) does not match this browser's cookie.
        theirs = form_token((await other_browser.get("/self-referral")).text)
        foreign = await http.post("/self-referral", data={**FORM, "csrf_token": theirs})
        sent = await http.post("/self-referral", data={**FORM, "csrf_token": form_token(page.text)})
    for refused in (without, wrong, foreign):
        assert refused.status_code == 403
        assert "niet verstuurd" in refused.text and "was not sent" in refused.text
    assert sent.status_code == 201 and "case-" in sent.text


async def test_the_production_form_cookie_is_secure(kring: Harness, tmp_path: Path) -> None:
    app = await started(kring, **production_settings(tmp_path))
    async with kring.http(app) as http:
        page = await http.get("/self-referral")
    assert "secure" in page.headers["set-cookie"].lower()


async def test_a_file_in_a_text_field_is_refused_naming_the_field(kring: Harness) -> None:
    app = await started(kring)
    async with kring.http(app) as http:
        token = form_token((await http.get("/self-referral")).text)
        fields = {key: value for key, value in FORM.items() if key != "description"}
        response = await http.post(
            "/self-referral", data={**fields, "csrf_token": token}, files={"description": ("brief.txt", b"Ik maak me zorgen.", "text/plain")}
        )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["description"]
    assert not re.search("zorgen", response.text), "the value is not echoed"
