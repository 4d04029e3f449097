"""The development OpenID Connect issuer (deploy/oidc-local) and the services' trust in it
(issue 25): a person signed in there calls the services with its access token, by the same
role and ownership rules as Kring's own tokens; the family role never comes from it; PKCE is
enforced; a token of an issuer nobody configured is refused."""

import jwt
import pytest

from services.plans.app import create_app as plans_app
from services.scheduling.app import create_app as scheduling_app
from shared.auth import Role
from tests.support.harness import Harness
from tests.support.oidc import CLIENT_ID, REDIRECT_URI, sign_in

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def test_the_issuer_signs_what_the_services_verify(oidc_issuer: str) -> None:
    token = sign_in(oidc_issuer, "coord-anna", {"role": "coordinator"})
    header, claims = jwt.get_unverified_header(token["access_token"]), jwt.decode(token["access_token"], options={"verify_signature": False})
    assert header["alg"] == "ES256"
    assert claims["iss"] == oidc_issuer and claims["sub"] == "coord-anna" and claims["role"] == "coordinator"
    assert {f"kring-{s}" for s in ("referral", "scheduling", "plans", "followup")} <= set(claims["aud"])
    assert claims["exp"] - claims["iat"] <= 3600
    identity = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert identity["azp"] == CLIENT_ID and CLIENT_ID in identity["aud"]


def test_the_code_is_only_for_the_verifier_it_was_asked_with(oidc_issuer: str) -> None:
    import httpx

    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "openid", "state": "s",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}  # fmt: skip
    redirect = httpx.post(f"{oidc_issuer}/authorize", params=params, data={"username": "coord-anna", "claims": '{"role": "coordinator"}'})
    code = httpx.URL(redirect.headers["location"]).params["code"]
    stolen = httpx.post(
        f"{oidc_issuer}/token", auth=(CLIENT_ID, "x"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": "not-the-one-" * 5},
    )  # fmt: skip
    assert stolen.status_code == 400 and "pkce" in stolen.text.lower()


async def test_the_services_take_the_issuers_tokens_by_the_same_rules(kring: Harness, oidc_issuer: str) -> None:
    scheduling = kring.app(scheduling_app, "scheduling", oidc_issuer=oidc_issuer)
    plans = kring.app(plans_app, "plans", oidc_issuer=oidc_issuer)
    coordinator = sign_in(oidc_issuer, "coord-anna", {"role": "coordinator"})["access_token"]
    professional = sign_in(oidc_issuer, "gezinsvoogd-ut", {"role": "professional"})["access_token"]
    family = sign_in(oidc_issuer, "coord-anna", {"role": "family", "case": "case-00000001"})["access_token"]
    funder_without_its_slice = sign_in(oidc_issuer, "funder-utrecht", {"role": "funder"})["access_token"]

    async def status(app, token: str, path: str) -> int:  # type: ignore[no-untyped-def]
        async with kring.http(app, token) as http:
            return (await http.get(path)).status_code

    assert await status(scheduling, coordinator, "/cases") == 200
    assert await status(plans, professional, "/cases") == 200
    assert await status(scheduling, coordinator, "/coordinators") == 403  # operations only, whoever signed the token
    assert await status(plans, family, "/cases/case-00000001/plan") == 401  # a family's token comes from Kring only
    assert await status(scheduling, funder_without_its_slice, "/sixty-days") == 401  # a funder's token names its slice

    not_trusted = kring.app(scheduling_app, "scheduling", oidc_issuer=None)
    assert await status(not_trusted, coordinator, "/cases") == 401
    assert await status(scheduling, kring.token(Role.COORDINATOR, subject="coord-anna"), "/cases") == 200  # Kring's own still work
