"""The OpenAPI documents tell the truth: every route names the roles it admits (the same set
the access policy, written from the domain, admits, and the access matrix enforces), its
ownership rule, and every error with the schema of the body that is really sent.

The second half drives real 400/401/403/404/409/413/415/422/429 answers from a service on
the real servers and validates each body against the schema its own /openapi.json documents
for that operation and status."""

import importlib
import json
from typing import Any

import jsonschema_rs
import pytest
from fastapi import FastAPI

from services.asyncapi import SERVICES
from shared.auth import Role
from shared.settings import KringSettings
from tests.support.access import POLICY, PUBLIC
from tests.support.harness import Harness
from tests.support.referrals import referral_request, self_referral

pytestmark = [pytest.mark.anyio]
ERRORS = ("400", "401", "403", "404", "409", "413", "415", "422", "429", "503")


def openapi(service: str, **settings: Any) -> dict[str, Any]:
    create_app = importlib.import_module(f"services.{service}.app").create_app
    return create_app(KringSettings(service_name=service, environment="development", **settings)).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, methods in document["paths"].items() for method, operation in methods.items()]


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_documents_the_roles_it_admits_and_its_bearer_scheme(service: str) -> None:
    document = openapi(service)
    assert document["components"]["securitySchemes"]["bearer"] == {**document["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    assert "ES256" in document["components"]["securitySchemes"]["bearer"]["bearerFormat"]
    wrong = []
    for method, path, operation in operations(document):
        admitted = POLICY[(service, method, path)]
        if admitted is PUBLIC:
            if not (operation.get("x-kring-public") is True and operation["security"] == [] and operation["x-kring-roles"] == []):
                wrong.append(f"{method} {path}: public, but not documented so")
            if "**Public:**" not in operation["description"] or "429" not in operation["responses"]:
                wrong.append(f"{method} {path}: the description or 429 is missing")
            continue
        documented = {Role(role) for role in operation.get("x-kring-roles", [])}
        if documented != admitted:
            wrong.append(f"{method} {path}: documents {sorted(documented)}, the policy admits {sorted(admitted)}")
        if operation.get("security") != [{"bearer": []}] or not {"401", "403"} <= operation["responses"].keys():
            wrong.append(f"{method} {path}: no bearer security or no 401/403")
        if not all(str(role) in operation["description"] for role in admitted):
            wrong.append(f"{method} {path}: the description does not name every role")
        for role, rule in operation["x-kring-ownership"].items():
            if Role(role) not in admitted or f"{role} ({rule})" not in operation["description"]:
                wrong.append(f"{method} {path}: ownership of {role} not in the description")
    assert wrong == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_is_documented_with_kring_s_error_bodies_not_fastapi_s(service: str) -> None:
    document = openapi(service)
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and '"detail": {"items"' not in text
    schemas = document["components"]["schemas"]
    assert schemas["InvalidRequest"]["required"] == ["error", "fields"]
    assert schemas["FieldProblem"]["required"] == ["field", "problem"]
    for method, path, operation in operations(document):
        assert "503" in operation["responses"], f"{method} {path}"
        if operation.get("x-kring-roles") and "{case_id}" in path:
            assert "404" in operation["responses"], f"{method} {path}"
            if method != "GET":
                assert "409" in operation["responses"], f"{method} {path}"
        if method in ("POST", "PUT"):
            assert {"413", "415", "422"} <= operation["responses"].keys(), f"{method} {path}"
        for status, answer in operation["responses"].items():
            if status in ERRORS:
                content = answer.get("content", {})
                assert "application/json" in content and "$ref" in content["application/json"]["schema"] or "text/html" in content, (method, path, status)


@pytest.mark.parametrize("service", SERVICES)
def test_ownership_is_stated_wherever_a_role_is_limited_to_its_own_cases(service: str) -> None:
    """A coordinator, family, bureau or referrer on a case route, and a funder anywhere, is
    limited to its own: the document says so, in words and in x-kring-ownership."""
    limited = {Role.COORDINATOR, Role.FAMILY, Role.BUREAU, Role.REFERRER}
    for method, path, operation in operations(openapi(service)):
        roles = {Role(role) for role in operation["x-kring-roles"]}
        expected = {role for role in roles if (role in limited and "{case_id}" in path) or role is Role.FUNDER}
        assert expected <= {Role(role) for role in operation.get("x-kring-ownership", {})}, f"{method} {path}"


# --- the documented schemas validate the real answers -----------------------------------------


def validator(document: dict[str, Any], method: str, path: str, status: int) -> Any:
    answer = document["paths"][path][method.lower()]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


async def started(kring: Harness, **overrides: Any) -> FastAPI:
    app = kring.app(importlib.import_module("services.referral.app").create_app, "referral", **overrides)
    await kring.start(app.state.kring)
    return app


@pytest.mark.integration
async def test_the_documented_error_schemas_validate_the_real_answers(kring: Harness) -> None:
    app = await started(kring, public_rate_limit="4/minute")
    async with kring.http(app) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
    ops = kring.token(Role.OPS, "intake-1")
    bureau = kring.token(Role.BUREAU, "bureau-1", organisation_id="bjz-utrecht")
    coordinator = kring.token(Role.COORDINATOR, "coord-x")
    answers: list[tuple[str, str, int, Any]] = []  # (method, documented path, status, response)

    async def call(token: str | None, method: str, path: str, template: str, status: int, **request: Any) -> Any:
        async with kring.http(app, token) as http:
            response = await http.request(method, path, **request)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        answers.append((method, template, status, response))
        return response

    created = await call(None, "POST", "/self-referrals", "/self-referrals", 201, json=self_referral())
    case_id = created.json()["case_id"]
    case = f"/cases/{case_id}"
    code = (await call(ops, "POST", f"{case}/family-access", "/cases/{case_id}/family-access", 201)).json()["code"]
    await call(None, "POST", "/family-access", "/family-access", 403, json={"code": "AAAA-AAAA-AAAA"})  # a wrong code
    family = (await call(None, "POST", "/family-access", "/family-access", 200, json={"code": code})).json()["family_access_token"]
    await call(None, "GET", case, "/cases/{case_id}", 401)
    await call("not-a-token", "GET", case, "/cases/{case_id}", 401)
    await call(kring.token(Role.FUNDER, "f-1", organisation_id="prov-utrecht"), "GET", case, "/cases/{case_id}", 403)  # role
    await call(coordinator, "GET", case, "/cases/{case_id}", 403)  # not theirs
    await call(ops, "GET", "/cases/case-nobody-has", "/cases/{case_id}", 404)
    await call(family, "POST", f"{case}/consent", "/cases/{case_id}/consent", 422, json={"given_by": "nobody"})
    await call(family, "POST", f"{case}/withdrawal", "/cases/{case_id}/withdrawal", 200, json={"reason": "consent_withdrawn"})
    await call(ops, "POST", f"{case}/intake", "/cases/{case_id}/intake", 409)  # withdrawn: no intake
    await call(family, "GET", case, "/cases/{case_id}", 401)  # the family's access ended with the withdrawal
    await call(bureau, "POST", "/referrals", "/referrals", 422, json=referral_request(children=[{"age": -1}]))
    await call(bureau, "POST", "/referrals", "/referrals", 400, content=b"{not json", headers={"content-type": "application/json"})
    await call(bureau, "POST", "/referrals", "/referrals", 415, content=b"x", headers={"content-type": "text/plain"})
    await call(bureau, "POST", "/referrals", "/referrals", 413, content=b"x" * 300_000, headers={"content-type": "application/json"})
    for _ in range(4):  # the fifth public request this minute (limit 4)
        async with kring.http(app) as http:
            last = await http.post("/self-referrals", json=self_referral())
    assert last.status_code == 429
    answers.append(("POST", "/self-referrals", 429, last))

    assert {status for _, _, status, _ in answers} >= {400, 401, 403, 404, 409, 413, 415, 422, 429}
    for method, template, status, response in answers:
        if status >= 400:
            body = response.json()
            errors = [error.message for error in validator(document, method, template, status).iter_errors(body)]
            assert errors == [], f"{method} {template} {status}: {body} does not fit the documented schema: {errors}"
    unauthenticated = next(r for _, _, status, r in answers if status == 401)
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert "retry-after" in last.headers
    # A field problem names the field, never the value sent
    problems = next(r for m, t, status, r in answers if status == 422 and t == "/referrals").json()["fields"]
    assert problems and problems[0]["field"].startswith("children.0.age") and "-1" not in json.dumps(problems)
