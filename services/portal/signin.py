"""Staff sign in with OpenID Connect (authlib) at the configured issuer: authorization code with
PKCE, the ID token checked (signature, issuer, audience, nonce). The access token the issuer
gives is what the portal calls the services with; they verify it themselves and decide what the
person may see. The session keeps the token, who it is and until when: no personal data."""

import time
from typing import Any
from urllib.parse import quote

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from shared.auth import Role
from shared.errors import Forbidden, TransientFault

from .settings import PortalSettings
from .web import SignInNeeded, checked_form, render

STAFF = frozenset({Role.COORDINATOR, Role.PROFESSIONAL, Role.FUNDER, Role.OPS})
START_PAGE = {Role.COORDINATOR: "/coordinator", Role.PROFESSIONAL: "/professional", Role.FUNDER: "/financier", Role.OPS: "/beheer"}
EARLY = 30  # seconds: a token about to expire is not sent any more; the person signs in again
DEVELOPMENT_SECRET = "kring-portal-development"  # the development issuer takes any client secret

router = APIRouter()


class Staff(BaseModel):
    subject: str
    role: Role
    organisation_id: str | None = None
    token: str
    expires_at: float


def issuer_client(settings: PortalSettings) -> Any | None:
    """The issuer's OAuth client (its discovery document is fetched at the first sign-in)."""
    if settings.oidc_issuer is None:
        return None
    secret = (
        settings.portal_oidc_client_secret_file.read_text().strip()
        if settings.portal_oidc_client_secret_file is not None
        else DEVELOPMENT_SECRET
    )
    oauth = OAuth()
    return oauth.register(
        "kring",
        server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}/.well-known/openid-configuration",
        client_id=settings.portal_oidc_client_id,
        client_secret=secret,
        code_challenge_method="S256",
        client_kwargs={"scope": "openid", "timeout": 10},
    )


def signed_in(request: Request, *roles: Role) -> Staff:
    """The signed-in person of one of `roles`; SignInNeeded (to the sign-in) or Forbidden otherwise."""
    try:
        person = Staff.model_validate(request.session.get("staff"))
    except ValidationError:
        raise SignInNeeded("nobody is signed in") from None
    if person.expires_at - EARLY <= time.time():
        raise SignInNeeded("the sign-in has expired")
    if person.role not in roles:
        raise Forbidden(f"a {person.role} may not open this page")
    return person


def _local(path: str | None) -> str | None:
    """Only a path of this portal is a place to come back to (no open redirect)."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else None


@router.get("/aanmelden")
async def sign_in(request: Request, terug: str | None = None) -> Response:
    client = request.app.state.issuer
    if client is None:
        raise TransientFault("no OpenID Connect issuer is configured (KRING_OIDC_ISSUER)")
    request.session["after_sign_in"] = _local(terug)
    settings: PortalSettings = request.app.state.settings
    try:
        return await client.authorize_redirect(request, f"{settings.portal_public_url.rstrip('/')}/aanmelden/terug")
    except (OAuthError, httpx.HTTPError) as error:
        raise TransientFault("the sign-in service cannot be reached") from error


@router.get("/aanmelden/terug")
async def signed_in_at_the_issuer(request: Request) -> Response:
    try:
        token = await request.app.state.issuer.authorize_access_token(request)
    except OAuthError:  # a stale or forged state, a refused code, an ID token that does not check out
        return render(request, "signin/failed.html", 400)
    except httpx.HTTPError as error:
        raise TransientFault("the sign-in service cannot be reached") from error
    claims = token.get("userinfo") or {}
    try:
        role = Role(claims.get("role"))
    except ValueError:
        role = None
    if role not in STAFF or not isinstance(claims.get("sub"), str):
        raise Forbidden("the portal's staff pages are for coordinators, professionals, funders and operations")
    after = request.session.get("after_sign_in")
    request.session.clear()  # a new person in this browser: nothing of an earlier session stays
    person = Staff(
        subject=claims["sub"], role=role, organisation_id=claims.get("org"), token=token["access_token"],
        expires_at=float(token.get("expires_at") or time.time() + float(token.get("expires_in", 300))),
    )  # fmt: skip
    request.session["staff"] = person.model_dump(mode="json")
    return RedirectResponse(after or START_PAGE[role], status_code=303)


@router.post("/afmelden")
async def sign_out(request: Request) -> Response:
    """Staff and families alike: the session ends here (the issuer's own session is its affair)."""
    await checked_form(request)
    request.session.clear()
    return RedirectResponse("/", status_code=303)


def sign_in_page(request: Request) -> Response:
    """Where SignInNeeded sends the browser: the sign-in, and back here afterwards."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/aanmelden?terug={quote(back)}", status_code=303 if request.method != "GET" else 302)
