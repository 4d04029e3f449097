"""Who is calling: signed JWTs (ES256) with a role, checked on every HTTP route.

A token carries `iss` (KRING_TOKEN_ISSUER), `aud` (`kring-<service>` of each service it is
for), `sub` (the person or system), `role`, `iat` and `exp`, and where the role needs it
`org` (organisation id of a bureau, referrer or funder) or `case` (the one case a family
contact may see). A token without a claim its role needs, for another service, or living
longer than its role allows (ROLE_LIFETIME) is refused. Routes declare who may call them:

    @router.get("/cases/{case_id}")
    async def read(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR))): ...

Missing or invalid token → 401 with `WWW-Authenticate: Bearer`; a valid token of a role
the route does not admit → 403.

People sign in at an OpenID Connect issuer (KRING_OIDC_ISSUER; the portal): its access tokens,
`iss` that issuer, are verified with the keys its discovery document names, by the same rules,
and never carry the family role.

Keys: in production (the default) services verify with the public keys of the JWKS at
KRING_JWKS_URLS, and a service that signs (referral: family tokens) signs with the PEM
private key at KRING_SIGNING_KEY_FILE; no service holds a secret that can mint any token.
With KRING_ENVIRONMENT=development an EC P-256 pair is generated once into
KRING_DEV_KEY_DIR and used for both. Issue a development token (demo, tests):

    python -m shared.auth --role coordinator --subject coord-7 [--org ORG] [--case CASE] [--audience scheduling]

and the JWKS to publish for a production signing key: `python -m shared.auth --jwks-of key.pem`.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, ValidationError

from .audit import note_caller, note_refusal
from .errors import InvalidInput, TransientFault
from .settings import KringSettings

ALGORITHM = "ES256"
SERVICES = ("referral", "scheduling", "plans", "followup")
LEEWAY = timedelta(seconds=30)  # clock skew between issuer and service


class Role(StrEnum):
    BUREAU = "bureau"  # a provincial youth-care bureau's system or staff
    REFERRER = "referrer"  # a professional who refers (school, GP, municipality, ...)
    COORDINATOR = "coordinator"  # the independent coordinator of a case
    PROFESSIONAL = "professional"  # statutory professional: sets requirements, reviews plans
    FUNDER = "funder"  # sees aggregates of its own slice, never a case
    OPS = "ops"  # operations
    FAMILY = "family"  # the family's contact person, for its own case only


# The longest a token of a role may live (exp - iat). A family gets its token by exchanging
# a one-time code its coordinator handed over (services/referral/family_codes.py), for the
# weeks of its plan, and it ends with the case (shared/family_access.py); people and systems
# sign in again each working day.
ROLE_LIFETIME: dict[Role, timedelta] = {
    Role.FAMILY: timedelta(days=28),
    Role.BUREAU: timedelta(hours=12),
    Role.REFERRER: timedelta(hours=12),
    Role.COORDINATOR: timedelta(hours=12),
    Role.PROFESSIONAL: timedelta(hours=12),
    Role.FUNDER: timedelta(hours=12),
    Role.OPS: timedelta(hours=8),
}
# The claims without which a role's scope would be unbounded: refused when issued and verified.
REQUIRED_CLAIMS: dict[Role, tuple[str, ...]] = {
    Role.FUNDER: ("org",),
    Role.BUREAU: ("org",),
    Role.REFERRER: ("org",),
    Role.FAMILY: ("case",),
}
CLAIM_OPTIONS = {"org": "--org", "case": "--case"}


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    organisation_id: str | None = None
    case_id: str | None = None
    issued_at: datetime | None = None  # the token's `iat`: a family token issued before its case's revocation is refused


def audience_of(service: str) -> str:
    return f"kring-{service}"


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The RFC 7638 thumbprint of the key: the `kid` a JWKS lists it under."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({name: jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def jwks_of(*public_keys: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The JWKS document publishing `public_keys` (what KRING_JWKS_URLS serves)."""
    keys = []
    for public_key in public_keys:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
        keys.append({**jwk, "kid": key_id(public_key), "use": "sig", "alg": ALGORITHM})
    return {"keys": keys}


class SigningKey:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(private_key.curve, ec.SECP256R1):
            raise InvalidInput("the signing key must be an EC P-256 private key", field="signing_key_file")
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    @classmethod
    def from_pem(cls, pem: bytes) -> "SigningKey":
        key = serialization.load_pem_private_key(pem, password=None)
        return cls(key)  # type: ignore[arg-type]  # checked in __init__


class DevelopmentKeys:
    """An EC P-256 pair generated on first use into `directory`. Services starting at once
    agree on one pair: each writes its candidate to a temporary file and links it into
    place, which succeeds for exactly one of them; the others read the winner's."""

    FILE = "signing-key.pem"

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.FILE

    def load(self) -> SigningKey:
        if not self.path.exists():
            self._generate()
        return SigningKey.from_pem(self.path.read_bytes())

    def _generate(self) -> None:
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_once(self.path, pem)


def write_once(path: Path, content: bytes) -> None:
    """Write a generated secret to `path` (0600) unless a concurrent starter wrote its own
    first: each writes a temporary file and links it into place, which succeeds for exactly
    one; the others then read the winner's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, candidate = tempfile.mkstemp(dir=path.parent, prefix=".candidate-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)  # mkstemp made it 0600
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
    finally:
        os.unlink(candidate)


@lru_cache(maxsize=8)
def _development_key(directory: Path) -> SigningKey:
    return DevelopmentKeys(directory).load()


@lru_cache(maxsize=8)
def _production_key(path: Path) -> SigningKey:
    return SigningKey.from_pem(path.read_bytes())


class JwksKeys:
    """The published public keys at `urls`, fetched (and cached for five minutes) in a
    worker thread so that a slow key server never blocks the event loop.

    A key is looked up in the JWKS again when the cached ones do not name its `kid`, and when
    the caller asks for a `fresh` key because the cached one did not verify the signature: an
    issuer that restarts with a new key may keep the kid (the development issuer names its key
    after itself). Either refetch happens at most once every REFETCH_SECONDS, so tokens signed
    by no published key cannot make every request a fetch."""

    REFETCH_SECONDS = 10.0

    def __init__(self, urls: Sequence[str]) -> None:
        # no per-kid cache (PyJWKClient's cache_keys never expires): the five-minute JWKS cache only
        self.clients = [jwt.PyJWKClient(url, lifespan=300, timeout=5, cooldown_duration=self.REFETCH_SECONDS) for url in urls]
        self._refetched_at: float | None = None
        self._lock = threading.Lock()

    async def key_for(self, token: str, *, fresh: bool = False) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise jwt.InvalidTokenError("the token names no key")
        return await asyncio.to_thread(self._find, kid, fresh)

    def _refetch(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._refetched_at is not None and now - self._refetched_at < self.REFETCH_SECONDS:
                return
            self._refetched_at = now
        for client in self.clients:
            with contextlib.suppress(jwt.PyJWKClientError):  # unreachable: the lookup below says so
                client.get_jwk_set(refresh=True)

    def _find(self, kid: str, fresh: bool) -> Any:
        if fresh:
            self._refetch()
        unreachable = False
        for client in self.clients:
            try:
                return client.get_signing_key(kid).key
            except jwt.PyJWKClientConnectionError:
                unreachable = True
            except jwt.PyJWKClientError:
                continue
        if unreachable:
            raise TransientFault("the token keys cannot be fetched")
        raise jwt.InvalidTokenError("the token is signed by no published key")


@lru_cache(maxsize=8)
def _jwks(urls: tuple[str, ...]) -> JwksKeys:
    return JwksKeys(urls)


class IssuerKeys:
    """The keys of the OpenID Connect issuer people sign in at (KRING_OIDC_ISSUER): the JWKS its
    discovery document names, looked up once, in a worker thread."""

    def __init__(self, issuer: str, *, https_only: bool) -> None:
        self.issuer, self.https_only = issuer, https_only
        self._keys: JwksKeys | None = None
        self._lock = threading.Lock()

    async def key_for(self, token: str, *, fresh: bool = False) -> Any:
        keys = await asyncio.to_thread(self._discovered)
        return await keys.key_for(token, fresh=fresh)

    def _discovered(self) -> JwksKeys:
        with self._lock:
            if self._keys is None:
                try:
                    document = httpx.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration", timeout=5).raise_for_status().json()
                except (httpx.HTTPError, ValueError) as error:
                    raise TransientFault("the sign-in issuer's discovery document cannot be fetched") from error
                if not isinstance(document, dict):
                    raise TransientFault("the sign-in issuer's discovery document is not a JSON object")
                jwks_uri = document.get("jwks_uri")
                if document.get("issuer") != self.issuer or not isinstance(jwks_uri, str):
                    raise TransientFault("the sign-in issuer's discovery document is not its own")
                if self.https_only and not jwks_uri.startswith("https://"):
                    raise TransientFault("the sign-in issuer publishes its keys in the clear")
                self._keys = JwksKeys([jwks_uri])
            return self._keys


@lru_cache(maxsize=4)
def _issuer_keys(issuer: str, https_only: bool) -> IssuerKeys:
    return IssuerKeys(issuer, https_only=https_only)


def signing_key(settings: KringSettings) -> SigningKey:
    if settings.development:
        return _development_key(settings.dev_key_dir)
    if settings.signing_key_file is None:
        raise InvalidInput("this service does not sign tokens: KRING_SIGNING_KEY_FILE is not set", field="signing_key_file")
    return _production_key(settings.signing_key_file)


def _published_keys(settings: KringSettings, issuer: str) -> JwksKeys | IssuerKeys | None:
    """Where the keys of `issuer` are published (None: the development key pair, held here)."""
    if issuer == settings.oidc_issuer:
        return _issuer_keys(issuer, not settings.development)
    if settings.development:
        return None
    return _jwks(tuple(settings.jwks_urls))


async def verification_key(settings: KringSettings, token: str, issuer: str, *, fresh: bool = False) -> Any:
    published = _published_keys(settings, issuer)
    if published is None:
        return _development_key(settings.dev_key_dir).public_key
    return await published.key_for(token, fresh=fresh)


def _issuer_of(settings: KringSettings, token: str) -> str:
    """Which of the two issuers Kring trusts signed this token (the signature is checked next)."""
    issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    if issuer not in (settings.token_issuer, settings.oidc_issuer) or not isinstance(issuer, str):
        raise jwt.InvalidIssuerError("the token is from an issuer this service does not trust")
    return issuer


def _missing_claims(role: Role, claims: dict[str, Any]) -> list[str]:
    return [name for name in REQUIRED_CLAIMS.get(role, ()) if not isinstance(claims.get(name), str) or not claims[name]]


def issue_token(
    settings: KringSettings,
    *,
    subject: str,
    role: Role,
    audience: str | Sequence[str] = SERVICES,
    organisation_id: str | None = None,
    case_id: str | None = None,
    ttl: timedelta | None = None,
) -> str:
    """A token for `role`, valid at the service(s) `audience` (names: "scheduling", …)."""
    lifetime = ROLE_LIFETIME[role] if ttl is None else ttl
    if not timedelta(0) < lifetime <= ROLE_LIFETIME[role]:
        raise InvalidInput(f"a {role} token lives at most {ROLE_LIFETIME[role]}", field="exp")
    services = [audience] if isinstance(audience, str) else list(audience)
    if not services or any(not service for service in services):
        raise InvalidInput("a token is for at least one service", field="aud")
    now = datetime.now(UTC).replace(microsecond=0)
    claims: dict[str, Any] = {
        "iss": settings.token_issuer,
        "aud": [audience_of(service) for service in services],
        "sub": subject,
        "role": role.value,
        "iat": now,
        "exp": now + lifetime,
    }
    if organisation_id is not None:
        claims["org"] = organisation_id
    if case_id is not None:
        claims["case"] = case_id
    if missing := _missing_claims(role, claims):
        raise InvalidInput(f"a {role} token needs {missing[0]}", field=missing[0])
    key = signing_key(settings)
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


async def verify_token(settings: KringSettings, token: str) -> Principal:
    """The principal of a valid token for this service; raises jwt.InvalidTokenError otherwise.
    Kring's own tokens (KRING_TOKEN_ISSUER) and those of the issuer people sign in at
    (KRING_OIDC_ISSUER) pass the same checks; a family's token only ever comes from Kring."""
    issuer = _issuer_of(settings, token)

    def decoded(key: Any) -> dict[str, Any]:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience_of(settings.service_name),
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "sub", "role", "iat", "exp"]},
        )

    try:
        claims = decoded(await verification_key(settings, token, issuer))
    except jwt.InvalidSignatureError:
        if _published_keys(settings, issuer) is None:
            raise
        # the issuer may have a new key under the kid the cached one had (a restart): once more, fresh
        claims = decoded(await verification_key(settings, token, issuer, fresh=True))
    try:
        role = Role(claims["role"])
    except (ValueError, TypeError) as error:
        raise jwt.InvalidTokenError("unknown role") from error
    if role is Role.FAMILY and issuer != settings.token_issuer:
        raise jwt.InvalidTokenError("a family's token comes from Kring's family access only")
    issued, expires = claims["iat"], claims["exp"]
    if not all(isinstance(value, int | float) for value in (issued, expires)) or expires - issued > ROLE_LIFETIME[role].total_seconds():
        raise jwt.InvalidTokenError("the token lives longer than its role allows")
    if _missing_claims(role, claims):
        raise jwt.InvalidTokenError("the token lacks a claim its role needs")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise jwt.InvalidTokenError("the token names no subject")
    try:
        return Principal(
            subject=claims["sub"], role=role, organisation_id=claims.get("org"), case_id=claims.get("case"),
            issued_at=datetime.fromtimestamp(issued, UTC),
        )  # fmt: skip
    except ValidationError as error:
        raise jwt.InvalidTokenError("a claim is not a string") from error


def _unauthenticated(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


class Scope(Protocol):
    """What narrows a role inside a route (an ownership rule, a funder's slice): per role,
    in words (`says`), for the route's OpenAPI description and `x-kring-ownership`."""

    says: Mapping[Role, str]


def authorised(*roles: Role, owned: Scope | None = None) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency admitting callers with one of `roles`; `owned` is the rule the
    route then applies (shared.access), so that its documentation is the rule's own.

    The dependency carries both (`kring_roles`, `kring_scope`): shared.http's OpenAPI reads
    them from the route, so the document names exactly the roles this check admits."""
    admitted = frozenset(roles)
    if not admitted:
        raise ValueError("a route admits at least one role (a public route has no authorised dependency)")

    async def caller(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated("a bearer token is required")
        try:
            principal = await verify_token(request.app.state.settings, token.strip())
        except jwt.InvalidTokenError:
            raise _unauthenticated("the token is invalid or expired") from None
        note_caller(principal)  # the audit log says who (shared.audit)
        if principal.role not in admitted:
            note_refusal("role_not_admitted", f"the role {principal.role} may not do this")
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"the role {principal.role} may not do this")
        if principal.role is Role.FAMILY:
            # shared.family_access: a service admitting family tokens knows when each case's
            # family access was revoked; one that does not know refuses them all.
            access = getattr(request.app.state, "family_access", None)
            if access is None or not await access.admits(principal):
                raise _unauthenticated("the family's access to this case has ended")
        return principal

    caller.kring_roles = tuple(role for role in Role if role in admitted)  # type: ignore[attr-defined]
    caller.kring_scope = owned  # type: ignore[attr-defined]
    return caller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a development token (KRING_ENVIRONMENT=development only).")
    parser.add_argument("--jwks-of", type=Path, metavar="PEM", help="instead: print the JWKS publishing this private key's public half")
    parser.add_argument("--role", choices=[role.value for role in Role])
    parser.add_argument("--subject")
    parser.add_argument("--org", dest="organisation_id")
    parser.add_argument("--case", dest="case_id")
    parser.add_argument("--audience", action="append", choices=SERVICES, help="a service it is for (repeatable; default: all)")
    parser.add_argument("--hours", type=float, help="lifetime (default: the longest the role allows)")
    args = parser.parse_args(argv)
    if args.jwks_of is not None:
        print(json.dumps(jwks_of(SigningKey.from_pem(args.jwks_of.read_bytes()).public_key), indent=2))
        return 0
    if not args.role or not args.subject:
        parser.error("--role and --subject are required")
    settings = KringSettings(service_name="auth")
    if not settings.development:
        parser.error(
            "tokens are issued here only with KRING_ENVIRONMENT=development; "
            "production tokens come from the identity provider whose keys KRING_JWKS_URLS publishes"
        )
    role = Role(args.role)
    given = {"org": args.organisation_id, "case": args.case_id}
    if missing := [name for name in REQUIRED_CLAIMS.get(role, ()) if not given[name]]:
        parser.error(f"a {role} token needs {CLAIM_OPTIONS[missing[0]]}")
    try:
        token = issue_token(
            settings,
            subject=args.subject,
            role=role,
            audience=args.audience or SERVICES,
            organisation_id=args.organisation_id,
            case_id=args.case_id,
            ttl=None if args.hours is None else timedelta(hours=args.hours),
        )
    except InvalidInput as refusal:
        parser.error(refusal.problem)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
