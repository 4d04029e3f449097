"""Tokens issue_token would never make: claims signed as given, by the development key (a
well-kept key with a forged body) or by another key, to prove the services refuse them."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth import ALGORITHM, audience_of, signing_key
from shared.settings import KringSettings

OLD_DEVELOPMENT_SECRET = "kring-development-only-secret-change-me"  # HS256, in source until issue 21


def claims(service: str, role: str = "ops", **overrides: Any) -> dict[str, Any]:
    """What a valid token of `role` for `service` carries; `name=None` leaves a claim out."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "iss": "kring", "aud": [audience_of(service)], "sub": f"{role}-forged", "role": role,
        "iat": now, "exp": now + timedelta(hours=1),
    }  # fmt: skip
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def signed_by_development_key(settings: KringSettings, body: dict[str, Any]) -> str:
    key = signing_key(settings)
    return jwt.encode(body, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def signed_by_another_key(body: dict[str, Any]) -> str:
    return jwt.encode(body, ec.generate_private_key(ec.SECP256R1()), algorithm=ALGORITHM)


def signed_with_old_secret(body: dict[str, Any]) -> str:
    return jwt.encode(body, OLD_DEVELOPMENT_SECRET, algorithm="HS256")


def unsigned(body: dict[str, Any]) -> str:
    return jwt.encode(body, None, algorithm="none")


def production_settings(folder: Path) -> dict[str, Any]:
    """Settings production may start on (`insecurity()` is None): a published key set (never
    fetched unless a token comes), a fresh signing key file and a fresh pseudonym key file in `folder`."""
    pem = folder / "signing.pem"
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pseudonym_key = folder / "pseudonym.key"
    pseudonym_key.write_bytes(os.urandom(32))
    return {
        "environment": "production", "jwks_urls": ["https://issuer.example/jwks.json"], "signing_key_file": pem,
        "pseudonym_key_file": pseudonym_key,
    }  # fmt: skip
