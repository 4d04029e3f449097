"""The HTTP conventions every service gets from shared.http and shared.auth (no servers:
the app's lifespan, which connects, is not run)."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import AutoReconnect, OperationFailure

from shared.auth import Principal, Role, authorised, issue_token
from shared.errors import RuleViolation
from shared.http import public_rate_limit
from shared.memory import MemoryStorage
from shared.runtime import KringService
from shared.settings import KringSettings
from tests.support.tokens import claims, signed_by_another_key, signed_by_development_key

pytestmark = pytest.mark.anyio
SETTINGS = KringSettings(service_name="example", http_max_body_bytes=1000, public_rate_limit="3/minute")
DATABASE_FAILURES = {
    "stopping": OperationFailure("interrupted at shutdown", 11600),
    "unreachable": AutoReconnect("connection closed"),
    "refusing": OperationFailure("unknown operator: $foo", 2),
}


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    age: int = Field(ge=0, le=25)
    language: str = Field(pattern=r"^[a-z]{2}$")


def client(token: str | None = None, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/notes", status_code=201)
    async def write(note: Note, caller: Principal = Depends(authorised(Role.COORDINATOR))) -> dict[str, str]:
        return {"by": caller.subject}

    @router.post("/public", dependencies=[Depends(public_rate_limit)])
    async def public(note: Note) -> dict[str, bool]:
        return {"ok": True}

    @router.get("/database/{failure}")
    async def read(failure: str) -> None:
        raise DATABASE_FAILURES[failure]

    @router.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    @router.post("/closed-case")
    async def refuse() -> None:
        raise RuleViolation("the case is closed")

    app = KringService(SETTINGS, storage=MemoryStorage()).http_app(router)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)


def token(role: Role, **options: object) -> str:
    return issue_token(SETTINGS, subject="c-1", role=role, audience="example", **options)  # type: ignore[arg-type]


async def test_a_valid_token_of_an_admitted_role_passes() -> None:
    async with client(token(Role.COORDINATOR)) as http:
        response = await http.post("/notes", json={"age": 9, "language": "nl"})
    assert response.status_code == 201 and response.json() == {"by": "c-1"}


@pytest.mark.parametrize(
    "bearer",
    [None, "not-a-jwt", signed_by_another_key(claims("example", "coordinator"))],
)
async def test_no_or_a_forged_token_is_401(bearer: str | None) -> None:
    async with client(bearer) as http:
        response = await http.post("/notes", json={"age": 9, "language": "nl"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_expired_token_is_401() -> None:
    now = datetime.now(UTC)
    expired = claims("example", "coordinator", iat=now - timedelta(hours=2), exp=now - timedelta(hours=1))
    async with client(signed_by_development_key(SETTINGS, expired)) as http:
        assert (await http.post("/notes", json={"age": 9, "language": "nl"})).status_code == 401


async def test_a_role_the_route_does_not_admit_is_403() -> None:
    async with client(token(Role.FUNDER, organisation_id="funder-1")) as http:
        assert (await http.post("/notes", json={"age": 9, "language": "nl"})).status_code == 403


async def test_invalid_fields_are_named_without_echoing_values() -> None:
    async with client(token(Role.COORDINATOR)) as http:
        response = await http.post("/notes", json={"age": 99, "language": "Jansen", "secret": "x"})
    assert response.status_code == 422
    body = response.json()
    assert sorted(field["field"] for field in body["fields"]) == ["age", "language", "secret"]
    assert "Jansen" not in response.text


async def test_broken_json_wrong_type_and_huge_bodies_are_clear_4xx() -> None:
    async with client(token(Role.COORDINATOR)) as http:
        broken = await http.post("/notes", content=b'{"age": 9,', headers={"content-type": "application/json"})
        wrong_type = await http.post("/notes", content=b"age=9", headers={"content-type": "text/plain"})
        huge = await http.post("/notes", json={"age": 9, "language": "nl", "pad": "x" * 5000})
    assert broken.status_code == 400
    assert wrong_type.status_code == 415
    assert huge.status_code == 413


async def test_a_huge_body_without_a_length_is_cut_off_while_streaming() -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 500

    async with client(token(Role.COORDINATOR)) as http:
        response = await http.post("/notes", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_public_writes_are_rate_limited_per_address() -> None:
    async with client() as http:
        statuses = [(await http.post("/public", json={"age": 1, "language": "nl"})).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_a_domain_rule_refusing_is_409_with_the_rule() -> None:
    async with client() as http:
        response = await http.post("/closed-case")
    assert response.status_code == 409 and response.json() == {"detail": "the case is closed"}


async def test_a_database_that_is_away_is_503_and_one_that_refuses_is_500() -> None:
    async with client() as http:
        for failure in ("stopping", "unreachable"):
            response = await http.get(f"/database/{failure}")
            assert (response.status_code, response.headers.get("retry-after")) == (503, "5"), failure
        refused = await http.get("/database/refusing")
        assert (refused.status_code, refused.json()) == (500, {"error": "internal error"})


async def test_even_a_bug_answers_with_the_security_headers() -> None:
    async with client(raise_app_exceptions=False) as http:
        response = await http.get("/bug")
    assert (response.status_code, response.json()) == (500, {"error": "internal error"})
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
