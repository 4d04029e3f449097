"""Signing in at the development OpenID Connect issuer as a browser would, without one:
authorization code with PKCE S256, the demo login page's form posted as a person's button does."""

import base64
import hashlib
import json
import secrets
from html.parser import HTMLParser
from typing import Any

import httpx

CLIENT_ID = "kring-portal"
REDIRECT_URI = "http://127.0.0.1:9/aanmelden/terug"  # never called: the code is read from the redirect


class LoginPage(HTMLParser):
    """The demo login page's forms: for each person's button, the hidden fields it posts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "form":
            self.forms.append({})
        elif tag == "input" and fields.get("type") == "hidden" and self.forms and fields.get("name"):
            self.forms[-1][str(fields["name"])] = fields.get("value") or ""

    def form_of(self, username: str) -> dict[str, str]:
        found = [form for form in self.forms if form.get("username") == username]
        assert len(found) == 1, f"the login page has {len(found)} forms for {username}"
        return found[0]


def sign_in(issuer: str, username: str, claims: dict[str, Any] | None = None, *, verify: bool = True) -> dict[str, Any]:
    """The issuer's token response for `username`: with `claims` posted as given, or (None) the
    form of that person's button on the login page posted as the browser posts it. `verify`
    False leaves the code_verifier out of the token request (what the issuer does then)."""
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
        form = LoginPage(login_page.text).form_of(username) if claims is None else {"username": username, "claims": json.dumps(claims)}
        # the form has no action: the browser posts it back to the address of the page
        redirect = http.post(login_page.url, data=form)
        assert redirect.status_code == 302, redirect.text[:500]
        back = httpx.URL(redirect.headers["location"])
        assert str(back.copy_with(query=None)) == REDIRECT_URI and back.params["state"] == authorize["state"]
        exchange = {"grant_type": "authorization_code", "code": back.params["code"], "redirect_uri": REDIRECT_URI}
        token = http.post(
            f"{issuer}/token", auth=(CLIENT_ID, "kring-portal-development"),
            data={**exchange, "code_verifier": verifier} if verify else exchange,
        )  # fmt: skip
        token.raise_for_status()
        return dict(token.json())
