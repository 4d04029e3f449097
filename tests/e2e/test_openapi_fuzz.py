"""Schemathesis against every service's OpenAPI, with the four services as processes on the
real servers: requests generated from each operation's schema (valid and invalid bodies,
odd path and query values), sent with a token of a role the access policy admits, never
get a 5xx, and every 4xx they get is one the operation documents, with a body that fits
the documented schema. KRING_SCHEMATHESIS_EXAMPLES sets the examples per operation (default 12).

Generated ids mostly name no case, so before generating the run makes real ones: cases
carried to their end by the demo and cases left open with a coordinator. A route with a
case id then gets, as often as not, a real case and a token of someone on it (its own
coordinator, its family, its bureau), so the generated bodies meet the domain's rules in
real states, not just a 404."""

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import jsonschema_rs
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from services.asyncapi import SERVICES
from shared.auth import Role, issue_token
from shared.settings import KringSettings
from tests.support.access import POLICY, PUBLIC, claims
from tests.support.system import System, load_demo

EXAMPLES = int(os.environ.get("KRING_SCHEMATHESIS_EXAMPLES", "12"))
SIGNING = KringSettings(service_name="fuzz", environment="development")


@dataclass(frozen=True)
class RealCase:
    case_id: str
    coordinator_id: str | None
    bureau: str | None
    professional: str


def test_generated_requests_to_every_operation_never_get_a_server_error(system: System, rabbitmq_url: str) -> None:
    real_cases = asyncio.run(make_real_cases(system, rabbitmq_url))
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    on_real_cases: Counter[int] = Counter()
    for service in SERVICES:
        schema = schemathesis.openapi.from_url(f"{system.urls[service]}/openapi.json")
        document = httpx.get(f"{system.urls[service]}/openapi.json").json()
        for result in schema.get_all_operations():
            operation = result.ok()
            admitted = POLICY[(service, operation.method.upper(), operation.path)]
            roles: list[Role | None] = [None] if admitted is PUBLIC else sorted(admitted)
            cases: list[RealCase | None] = [None, *real_cases] if "{case_id}" in operation.path else [None]
            documented = document["paths"][operation.path][operation.method.lower()]["responses"]
            fuzz(operation, system.urls[service], roles, cases, failures, statuses, on_real_cases, documented, document["components"])
    print(f"\nschemathesis: {statuses.total()} generated requests to {len(POLICY)} operations, "
          f"statuses {dict(sorted(statuses.items()))}; of them on {len(real_cases)} real cases "
          f"{dict(sorted(on_real_cases.items()))}; {len(failures)} server errors")
    assert statuses.total() >= len(POLICY) * 2
    assert failures == [], sorted(set(failures))
    assert any(200 <= status < 300 for status in on_real_cases), "no generated request got through to a real case"
    assert on_real_cases[409] > 0, "no generated request met a rule of a real case"


async def make_real_cases(system: System, rabbitmq_url: str) -> list[RealCase]:
    """Four cases carried to their end by the demo, and three self-referrals that intake
    accepts, that consent and wait with a coordinator, preparing their conference."""
    demo = load_demo()
    finished = await demo.run(4, 7, system.urls, rabbitmq_url, timeout=120, quiet=True, prefix=system.prefix)
    assert all(s.case_id and not s.outcome.startswith(("running", "failed")) for s in finished), [s.outcome for s in finished]
    ops = {"authorization": f"Bearer {demo.token(Role.OPS, 'ops-fuzz')}"}
    async with httpx.AsyncClient(timeout=60) as http:

        async def coordinator_of(case_id: str, wait: bool) -> str | None:
            for _ in range(120 if wait else 1):
                response = await http.get(f"{system.urls['scheduling']}/cases/{case_id}", headers=ops)
                if response.status_code == 200 and response.json().get("coordinator_id"):
                    return str(response.json()["coordinator_id"])
                await asyncio.sleep(0.5)
            return None

        real = [RealCase(s.case_id, await coordinator_of(s.case_id, wait=False), s.bureau if s.via_bureau else None,
                         f"gezinsvoogd-{s.province.lower()}") for s in finished]  # fmt: skip
        for s in demo.scenarios(3, 11):
            body = demo.request_body(replace(s, via_bureau=False, statutory=False, consent_upfront=False))
            referred = await http.post(f"{system.urls['referral']}/self-referrals", json=body)
            assert referred.status_code == 201, referred.text
            case_id = referred.json()["case_id"]
            intake = await http.post(f"{system.urls['referral']}/cases/{case_id}/intake", headers=ops)
            assert intake.status_code == 200, intake.text
            code = await http.post(f"{system.urls['referral']}/cases/{case_id}/family-access", headers=ops)
            assert code.status_code == 201, code.text
            granted = await http.post(f"{system.urls['referral']}/family-access", json={"code": code.json()["code"]})
            assert granted.status_code == 200, granted.text
            family = granted.json()["family_access_token"]
            consent = await http.post(f"{system.urls['referral']}/cases/{case_id}/consent", json={"given_by": ["parent_with_responsibility"]},
                                      headers={"authorization": f"Bearer {family}"})  # fmt: skip
            assert consent.status_code == 200, consent.text
            coordinator = await coordinator_of(case_id, wait=True)
            assert coordinator, f"{case_id} got no coordinator"
            real.append(RealCase(case_id, coordinator, None, f"gezinsvoogd-{s.province.lower()}"))
    return real


def headers_for(role: Role | None, case: RealCase | None) -> dict[str, str]:
    """A token of `role`: for a real case, of the one on that case (its coordinator, its
    family, its bureau, its professional)."""
    if role is None:
        return {}
    if case is None:
        token = issue_token(SIGNING, subject=f"{role}-fuzz", role=role, ttl=timedelta(hours=1), **claims(role))
    elif role is Role.COORDINATOR:
        token = issue_token(SIGNING, subject=case.coordinator_id or "coord-fuzz", role=role, ttl=timedelta(hours=1))
    elif role is Role.FAMILY:
        token = issue_token(SIGNING, subject="family-fuzz", role=role, case_id=case.case_id, ttl=timedelta(hours=1))
    elif role in (Role.BUREAU, Role.REFERRER):
        token = issue_token(SIGNING, subject=f"{role}-fuzz", role=role, organisation_id=case.bureau or "bjz-fuzz", ttl=timedelta(hours=1))
    elif role is Role.PROFESSIONAL:
        token = issue_token(SIGNING, subject=case.professional, role=role, ttl=timedelta(hours=1))
    else:
        token = issue_token(SIGNING, subject=f"{role}-fuzz", role=role, ttl=timedelta(hours=1), **claims(role))
    return {"authorization": f"Bearer {token}"}


def undocumented(response: Any, documented: dict[str, Any], components: dict[str, Any]) -> str | None:
    """Why an error answer is not what the operation's OpenAPI says, or None."""
    answer = documented.get(str(response.status_code))
    if answer is None:
        return f"status {response.status_code} is not documented"
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    content_type = response.headers.get("content-type") or [""]  # schemathesis: a list per header
    if schema is None or not (content_type if isinstance(content_type, str) else content_type[0]).startswith("application/json"):
        return None if "text/html" in answer.get("content", {}) else f"{response.status_code}: not the documented JSON"
    errors = [e.message for e in jsonschema_rs.validator_for({**schema, "components": components}).iter_errors(response.json())]
    return f"{response.status_code} body does not fit its schema: {errors[:2]}" if errors else None


def fuzz(operation: Any, url: str, roles: list[Role | None], cases: list[RealCase | None],
         failures: list[str], statuses: Counter[int], on_real_cases: Counter[int],
         documented: dict[str, Any], components: dict[str, Any]) -> None:  # fmt: skip
    generated = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=generated, role=st.sampled_from(roles), real=st.sampled_from(cases))
    def call(case: Any, role: Role | None, real: RealCase | None) -> None:
        if real is not None:
            case.path_parameters = {**case.path_parameters, "case_id": real.case_id}
        response = case.call(base_url=url, headers=headers_for(role, real), timeout=60)
        statuses[response.status_code] += 1
        if real is not None:
            on_real_cases[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{operation.label} as {role}: {response.status_code} for {case.formatted_path} {str(case.body)[:200]}")
        elif response.status_code >= 400 and (problem := undocumented(response, documented, components)):
            failures.append(f"{operation.label} as {role}: {problem}")

    call()
