"""Schemathesis against every service's OpenAPI, with the four services as processes on the
real servers: requests generated from each operation's schema (valid and invalid bodies,
odd path and query values), sent with a token of a role the access policy admits, never
get a 5xx. KRING_SCHEMATHESIS_EXAMPLES sets the examples per operation (default 12)."""

import os
from collections import Counter
from datetime import timedelta

import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings

from services.asyncapi import SERVICES
from shared.auth import issue_token
from shared.settings import KringSettings
from tests.support.access import POLICY, PUBLIC, claims
from tests.support.system import System

EXAMPLES = int(os.environ.get("KRING_SCHEMATHESIS_EXAMPLES", "12"))


def test_generated_requests_to_every_operation_never_get_a_server_error(system: System) -> None:
    signing = KringSettings(service_name="fuzz")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for service in SERVICES:
        schema = schemathesis.openapi.from_url(f"{system.urls[service]}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            admitted = POLICY[(service, operation.method.upper(), operation.path)]
            role = None if admitted is PUBLIC else sorted(admitted)[0]
            token = issue_token(signing, subject=f"{role}-fuzz", role=role, ttl=timedelta(hours=1), **claims(role)) if role else None
            headers = {"authorization": f"Bearer {token}"} if token else {}

            fuzz(operation, system.urls[service], headers, failures, statuses)
    print(f"\nschemathesis: {statuses.total()} generated requests to {len(POLICY)} operations, "
          f"statuses {dict(sorted(statuses.items()))}, {len(failures)} server errors")
    assert statuses.total() >= len(POLICY) * 2
    assert failures == []


def fuzz(operation, url: str, headers: dict[str, str], failures: list[str], statuses: Counter[int]) -> None:  # type: ignore[no-untyped-def]
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    def call(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call(base_url=url, headers=headers, timeout=60)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{operation.label}: {response.status_code} for {case.formatted_path} {str(case.body)[:200]}")

    call()
