"""Who is calling: signed JWTs (HS256) with a role, checked on every HTTP route.

A token carries `sub` (the person or system), `role`, and where it applies
`org` (organisation id of a bureau, referrer or funder) and `case` (the one case a
family contact may see). Services share the signing secret (KRING_JWT_SECRET).
Routes declare who may call them:

    @router.get("/cases/{case_id}")
    async def read(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR))): ...

Missing or invalid token → 401 with `WWW-Authenticate: Bearer`; a valid token of a role
the route does not admit → 403. Issue a token (demo, ops, tests):

    python -m shared.auth --role coordinator --subject coord-7 [--org ORG] [--case CASE]
"""

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ConfigDict

from .settings import KringSettings

ALGORITHM = "HS256"
ISSUER = "kring"


class Role(StrEnum):
    BUREAU = "bureau"  # a provincial youth-care bureau's system or staff
    REFERRER = "referrer"  # a professional who refers (school, GP, municipality, ...)
    COORDINATOR = "coordinator"  # the independent coordinator of a case
    PROFESSIONAL = "professional"  # statutory professional: sets requirements, reviews plans
    FUNDER = "funder"  # sees aggregates of its own slice, never a case
    OPS = "ops"  # operations
    FAMILY = "family"  # the family's contact person, for its own case only


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    organisation_id: str | None = None
    case_id: str | None = None


def issue_token(
    settings: KringSettings,
    *,
    subject: str,
    role: Role,
    organisation_id: str | None = None,
    case_id: str | None = None,
    ttl: timedelta = timedelta(hours=8),
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": subject, "role": role.value, "iss": ISSUER, "iat": now, "exp": now + ttl}
    if organisation_id is not None:
        claims["org"] = organisation_id
    if case_id is not None:
        claims["case"] = case_id
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_token(settings: KringSettings, token: str) -> Principal:
    """The principal of a valid token; raises jwt.InvalidTokenError otherwise."""
    claims = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=[ALGORITHM],
        issuer=ISSUER,
        options={"require": ["sub", "role", "exp", "iss"]},
    )
    try:
        role = Role(claims["role"])
    except ValueError as error:
        raise jwt.InvalidTokenError("unknown role") from error
    return Principal(subject=str(claims["sub"]), role=role, organisation_id=claims.get("org"), case_id=claims.get("case"))


def _unauthenticated(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def authorised(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency admitting callers with one of `roles`."""
    admitted = frozenset(roles)

    async def caller(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("a bearer token is required")
        try:
            principal = verify_token(request.app.state.settings, token.strip())
        except jwt.InvalidTokenError:
            raise _unauthenticated("the token is invalid or expired") from None
        if principal.role not in admitted:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"the role {principal.role} may not do this")
        return principal

    return caller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a signed Kring token (uses KRING_JWT_SECRET).")
    parser.add_argument("--role", required=True, choices=[role.value for role in Role])
    parser.add_argument("--subject", required=True)
    parser.add_argument("--org", dest="organisation_id")
    parser.add_argument("--case", dest="case_id")
    parser.add_argument("--hours", type=float, default=8.0)
    args = parser.parse_args(argv)
    settings = KringSettings(service_name="auth")
    print(
        issue_token(
            settings,
            subject=args.subject,
            role=Role(args.role),
            organisation_id=args.organisation_id,
            case_id=args.case_id,
            ttl=timedelta(hours=args.hours),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
