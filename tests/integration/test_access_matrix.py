"""Who may call what: every route of every service against every role (and no token).

The policy (tests/support/access.py) is written from the domain, not read from the code: a route added without a line there, or a role let in that the policy keeps out, fails.
What a role may see inside a route it is admitted to (a coordinator only their own cases,
a family only its own plan, a funder only its own slice) is tested with each service."""

import importlib

import pytest

from services.asyncapi import SERVICES
from shared.auth import Role
from shared.settings import KringSettings
from tests.support.access import POLICY, PUBLIC, claims
from tests.support.harness import Harness

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

def create_app(service: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"services.{service}.app").create_app


def routes(service: str) -> set[tuple[str, str, str]]:
    spec = create_app(service)(KringSettings(service_name=service)).openapi()
    return {(service, method.upper(), path) for path, operations in spec["paths"].items() for method in operations}


def test_every_route_of_every_service_has_a_policy() -> None:
    every = set().union(*(routes(service) for service in SERVICES))
    assert every - POLICY.keys() == set(), "routes without a policy line"
    assert POLICY.keys() - every == set(), "policy lines for routes that do not exist"


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
                # (a 403 that is no role refusal: the form's CSRF check, which this request fails)
                if response.status_code == 401 or refused_for_role:
                    wrong.append(f"anyone {method} {path}: {response.status_code}, but it is public")
            elif role is None:
                if response.status_code != 401:
                    wrong.append(f"no token {method} {path}: {response.status_code}, not 401")
            elif role in admitted and (refused_for_role or response.status_code == 401):
                wrong.append(f"{role} {method} {path}: refused, but the policy admits it")
            elif role not in admitted and not refused_for_role:
                wrong.append(f"{role} {method} {path}: {response.status_code}, but the policy keeps it out")
    assert wrong == []
