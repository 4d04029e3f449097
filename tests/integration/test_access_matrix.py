"""Who may call what: every route of every service against every role (and no token).

The policy below is written from the domain (DOMAIN.md: who does what), not read from the
code: a route added without a line here, or a role let in that the policy keeps out, fails.
What a role may see inside a route it is admitted to (a coordinator only their own cases,
a family only its own plan, a funder only its own slice) is tested with each service."""

import importlib

import pytest

from services.asyncapi import SERVICES
from shared.auth import Role
from shared.settings import KringSettings
from tests.support.harness import Harness

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

B, R, C, P, F, O, FAM = Role.BUREAU, Role.REFERRER, Role.COORDINATOR, Role.PROFESSIONAL, Role.FUNDER, Role.OPS, Role.FAMILY
PUBLIC = None  # no token needed: a family referring itself
ON_THE_CASE = {B, R, FAM, C, O}

POLICY: dict[tuple[str, str, str], set[Role] | None] = {
    ("referral", "POST", "/referrals"): {B, R},
    ("referral", "POST", "/self-referrals"): PUBLIC,
    ("referral", "GET", "/self-referral"): PUBLIC,
    ("referral", "POST", "/self-referral"): PUBLIC,
    ("referral", "GET", "/cases/{case_id}"): ON_THE_CASE,
    ("referral", "GET", "/cases/{case_id}/contact"): {C},
    ("referral", "POST", "/cases/{case_id}/consent"): ON_THE_CASE,
    ("referral", "POST", "/cases/{case_id}/withdrawal"): ON_THE_CASE,
    ("referral", "POST", "/cases/{case_id}/family-access"): {C, O},
    ("scheduling", "PUT", "/coordinators/{coordinator_id}"): {O},
    ("scheduling", "GET", "/coordinators"): {O},
    ("scheduling", "GET", "/cases"): {C, O},
    ("scheduling", "GET", "/cases/waiting"): {O},
    ("scheduling", "GET", "/cases/at-risk"): {O},
    ("scheduling", "GET", "/sixty-days"): {O, F},
    ("scheduling", "GET", "/cases/{case_id}"): {C, O},
    ("scheduling", "PUT", "/cases/{case_id}/preparation"): {C},
    ("scheduling", "PUT", "/cases/{case_id}/conference"): {C},
    ("scheduling", "POST", "/cases/{case_id}/held"): {C},
    ("scheduling", "POST", "/cases/{case_id}/cancellation"): {C, O},
    ("scheduling", "POST", "/cases/{case_id}/reassignment"): {O},
    ("plans", "GET", "/cases/{case_id}/plan"): {C, P, FAM},
    ("plans", "PUT", "/cases/{case_id}/plan"): {C},
    ("plans", "POST", "/cases/{case_id}/requirements"): {P},
    ("plans", "POST", "/cases/{case_id}/plan/presentation"): {C},
    ("plans", "POST", "/cases/{case_id}/plan/review"): {P},
    ("plans", "POST", "/cases/{case_id}/second-meeting"): {C},
    ("plans", "POST", "/cases/{case_id}/no-plan"): {C},
    ("followup", "GET", "/cases/{case_id}"): {C, O},
    ("followup", "PUT", "/cases/{case_id}/due"): {C},
    ("followup", "POST", "/cases/{case_id}/check"): {C},
    ("followup", "GET", "/checks/late"): {O},
    ("followup", "PUT", "/intervals/{funder_id}"): {O},
    ("followup", "GET", "/reports"): {O, F},
    ("followup", "GET", "/reports.html"): {O, F},
    ("followup", "POST", "/partner/replay"): {O},
}
# Nobody outside the case ever reaches a case: the funder sees aggregates only.
assert all(F not in roles for (_, _, path), roles in POLICY.items() if roles and "{case_id}" in path)


def create_app(service: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"services.{service}.app").create_app


def routes(service: str) -> set[tuple[str, str, str]]:
    spec = create_app(service)(KringSettings(service_name=service)).openapi()
    return {(service, method.upper(), path) for path, operations in spec["paths"].items() for method in operations}


def test_every_route_of_every_service_has_a_policy() -> None:
    every = set().union(*(routes(service) for service in SERVICES))
    assert every - POLICY.keys() == set(), "routes without a policy line"
    assert POLICY.keys() - every == set(), "policy lines for routes that do not exist"


def claims(role: Role) -> dict[str, str]:
    return {"case_id": "case-matrix"} if role is Role.FAMILY else {"organisation_id": "bjz-matrix"} if role in (B, R) else {}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_role_is_let_in_exactly_where_the_policy_says(service: str, kring: Harness) -> None:
    app = kring.app(create_app(service), service)
    await kring.start(app.state.kring)
    wrong: list[str] = []
    for (owner, method, template), admitted in POLICY.items():
        if owner != service:
            continue
        path = template.format(case_id="case-matrix", coordinator_id="coordinator-matrix", funder_id="funder-matrix")
        callers: list[Role | None] = [None, *Role] if admitted is not PUBLIC else [None]
        for role in callers:
            token = kring.token(role, f"{role}-matrix", **claims(role)) if role else None
            async with kring.http(app, token) as http:
                response = await http.request(method, path, json={} if method in ("POST", "PUT") else None)
            refused_for_role = response.status_code == 403 and "may not do this" in response.text
            if response.status_code >= 500:
                wrong.append(f"{role} {method} {path}: {response.status_code}")
            elif admitted is PUBLIC:
                if response.status_code in (401, 403):
                    wrong.append(f"anyone {method} {path}: {response.status_code}, but it is public")
            elif role is None:
                if response.status_code != 401:
                    wrong.append(f"no token {method} {path}: {response.status_code}, not 401")
            elif role in admitted and (refused_for_role or response.status_code == 401):
                wrong.append(f"{role} {method} {path}: refused, but the policy admits it")
            elif role not in admitted and not refused_for_role:
                wrong.append(f"{role} {method} {path}: {response.status_code}, but the policy keeps it out")
    assert wrong == []
