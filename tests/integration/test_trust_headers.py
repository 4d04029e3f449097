"""Security headers and API docs (issue 21, finding 7), on the real servers: every answer
(API, pages, errors) carries the headers; personal data and tokens are never cached; the
docs exist only when switched on, and then come from the service itself."""

import importlib
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.asyncapi import SERVICES
from services.referral.app import create_app
from shared.auth import Role
from tests.support.harness import Harness
from tests.support.referrals import form_token, form_values, self_referral

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FORM = form_values(referrer_type="self", children="4")


async def started(kring: Harness, **overrides: Any) -> FastAPI:
    app = kring.app(create_app, "referral", **overrides)
    await kring.start(app.state.kring)
    return app


def assert_secured(response: httpx.Response, *, page: bool = False) -> None:
    what = f"{response.request.method} {response.request.url.path} {response.status_code}"
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("referrer-policy") == "no-referrer", what
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy, what
    assert "script-src" not in policy, f"{what}: no script at all"
    if page:
        assert "style-src 'self'" in policy and "unsafe-inline" not in policy, what
    assert headers.get("cache-control") == "no-store", what


async def test_api_pages_and_errors_all_carry_the_headers(kring: Harness) -> None:
    app = await started(kring)
    ops = {"authorization": f"Bearer {kring.token(Role.OPS, subject='ops-1')}"}
    async with kring.http(app) as http:
        created = await http.post("/self-referrals", json=self_referral())
        answers = [
            created,
            await http.get(f"/cases/{created.json()['case_id']}", headers=ops),
            await http.get("/cases/case-doesnotexist00", headers=ops),  # 404 of the app
            await http.get("/no-such-route"),  # 404 of the router
            await http.get("/cases/case-doesnotexist00"),  # 401
            await http.post("/self-referrals", json={"referrer": {"type": "self"}}),  # 422
            await http.post("/self-referrals", content=b"{", headers={"content-type": "application/json"}),  # 400
            await http.post("/self-referrals", content=b"x", headers={"content-type": "text/plain"}),  # 415
            await http.post("/self-referrals", content=b"x" * 300_000, headers={"content-type": "application/json"}),  # 413
            await http.get("/health/live"),
        ]
        form = await http.get("/self-referral")
        refused = await http.post("/self-referral", data=FORM)
        invalid = await http.post("/self-referral", data={"csrf_token": form_token(form.text), "referrer_type": "self"})
        thanks = await http.post("/self-referral", data={**FORM, "csrf_token": form_token(form.text)})
        style = await http.get("/self-referral/style.css")
    assert [a.status_code for a in answers] == [201, 200, 404, 404, 401, 422, 400, 415, 413, 200]
    for answer in answers:
        assert_secured(answer)
    assert (form.status_code, refused.status_code, invalid.status_code, thanks.status_code) == (200, 403, 422, 201)
    for answer in (form, refused, invalid, thanks):
        assert_secured(answer, page=True)
        assert "<script" not in answer.text and "style=" not in answer.text, "the page policy allows no inline code"
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "no-store" not in style.headers["cache-control"], "a static stylesheet may be cached"
    assert "strict-transport-security" not in form.headers, "development: plain HTTP"


async def test_personal_data_and_tokens_are_never_stored_by_a_cache(kring: Harness) -> None:
    app = await started(kring)
    ops = {"authorization": f"Bearer {kring.token(Role.OPS, subject='ops-1')}"}
    async with kring.http(app) as http:
        created = await http.post("/self-referrals", json=self_referral())
        case_id = created.json()["case_id"]
        contact = await http.get(f"/cases/{case_id}/contact", headers=ops)
        code = await http.post(f"/cases/{case_id}/family-access", headers=ops)
        family_token = await http.post("/family-access", json={"code": code.json()["code"]})
    assert (created.status_code, contact.status_code, code.status_code, family_token.status_code) == (201, 200, 201, 200)
    for answer in (created, contact, code, family_token):
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_answers_with_the_headers_and_hsts_in_production(kring: Harness, service: str) -> None:
    create = importlib.import_module(f"services.{service}.app").create_app
    app = kring.app(create, service, environment="production")
    async with kring.http(app) as http:
        answers = [await http.get("/health/live"), await http.get("/no-such-route"), await http.get("/docs"), await http.get("/openapi.json")]
    assert [a.status_code for a in answers] == [200, 404, 404, 404], "production: no API docs unless switched on"
    for answer in answers:
        assert_secured(answer)
        assert answer.headers["strict-transport-security"].startswith("max-age=")


async def test_api_docs_switched_off_are_absent(kring: Harness) -> None:
    app = await started(kring, api_docs=False)
    async with kring.http(app) as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 404
        assert (await http.get("/docs/assets/swagger-ui-bundle.js")).status_code == 404


async def test_api_docs_switched_on_come_from_the_service_itself(kring: Harness) -> None:
    app = await started(kring, api_docs=True)
    async with kring.http(app) as http:
        docs = await http.get("/docs")
        assert docs.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert sources and all(source.startswith("/docs/assets/") for source in sources), sources
        assert "http://" not in docs.text and "https://" not in docs.text, "no external URL in the page"
        assert "<script>" not in docs.text, "no inline script"
        policy = docs.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        for source in sources:
            asset = await http.get(source)
            assert asset.status_code == 200 and asset.content, source
            assert asset.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/docs/assets/..%2Fsettings.py")).status_code == 404
        schema = await http.get("/openapi.json")
        assert schema.status_code == 200 and "/self-referrals" in schema.json()["paths"]
