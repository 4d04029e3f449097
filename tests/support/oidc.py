"""Signing in at the development OpenID Connect issuer as a browser would, without one:
authorization code with PKCE S256, the demo login page's form posted as a person's button does."""

import base64
import hashlib
import json
import secrets
from typing import Any

import httpx

CLIENT_ID = "kring-portal"
REDIRECT_URI = "http://127.0.0.1:9/aanmelden/terug"  # never called: the code is read from the redirect


def sign_in(issuer: str, username: str, claims: dict[str, Any]) -> dict[str, Any]:
    """The issuer's token response for `username` with `claims` (as the login page posts them)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    authorize = {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "openid",
        "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    with httpx.Client(timeout=10) as http:
        login_page = http.get(f"{issuer}/authorize", params=authorize)
        assert login_page.status_code == 200 and username in login_page.text, login_page.text[:500]
        redirect = http.post(f"{issuer}/authorize", params=authorize, data={"username": username, "claims": json.dumps(claims)})
        assert redirect.status_code == 302, redirect.text[:500]
        back = httpx.URL(redirect.headers["location"])
        assert back.params["state"] == authorize["state"]
        token = http.post(
            f"{issuer}/token", auth=(CLIENT_ID, "kring-portal-development"),
            data={"grant_type": "authorization_code", "code": back.params["code"], "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
        )  # fmt: skip
        token.raise_for_status()
        return dict(token.json())
