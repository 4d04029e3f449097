"""One-time codes that give a family its access token, delivered to the verified contact.

The case's coordinator (or ops, e.g. the intake worker who phoned the family) asks for a code
and hands it over at the first call; the family types it in once and gets a family token
(shared.auth ROLE_LIFETIME: weeks). Pure rules, no I/O.

A code is 12 characters in three groups, e.g. ``K7QM-4XRT-9PWC`` (Crockford base32: no I, L,
O or U, read aloud without confusion; typed in any case, with or without the dashes):

- the first group names the code's record (its key in the store, 20 bits), the other two are
  the secret (40 bits), kept only as a salted scrypt hash: the database never holds a
  usable code;
- single use: the exchange that uses it is one compare-and-set write, so of two at once only
  one gets a token;
- it expires CODE_LIFETIME after it was issued, and dies after MAX_FAILED_ATTEMPTS wrong
  secrets for its record (with the public rate limit per address on top); a guess is right
  with odds 1 in 2^40 per try;
- never for a withdrawn case; the answer to a wrong, used, expired or dead code is the same.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel

from shared.domain import Change
from shared.errors import Forbidden

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
ID_LENGTH = 4
SECRET_LENGTH = 8
CODE_LIFETIME = timedelta(days=3)
MAX_FAILED_ATTEMPTS = 5
REFUSED = "this code is wrong, used or expired: ask your coordinator for a new one (deze code klopt niet, is gebruikt of verlopen)"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


class FamilyCode(BaseModel):
    """A code's record: never the secret itself."""

    case_id: str
    salt: str
    secret_hash: str
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    issued_by_role: str
    failed_attempts: int = 0
    used_at: AwareDatetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at and self.failed_attempts < MAX_FAILED_ATTEMPTS


def new_code() -> tuple[str, str]:
    """(record key, secret), from the operating system's randomness."""
    return _random(ID_LENGTH), _random(SECRET_LENGTH)


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def formatted(code_id: str, secret: str) -> str:
    return f"{code_id}-{secret[:4]}-{secret[4:]}"


def parsed(text: str) -> tuple[str, str] | None:
    """(record key, secret) of a typed code, or None if it cannot be one."""
    compact = text.upper().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(compact) != ID_LENGTH + SECRET_LENGTH or any(c not in ALPHABET for c in compact):
        return None
    return compact[:ID_LENGTH], compact[ID_LENGTH:]


def hashed(secret: str, salt: str) -> str:
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def record(case_id: str, secret: str, *, now: datetime, role: str) -> FamilyCode:
    salt = secrets.token_hex(16)
    return FamilyCode(
        case_id=case_id, salt=salt, secret_hash=hashed(secret, salt), issued_at=now, expires_at=now + CODE_LIFETIME,
        issued_by_role=role,
    )  # fmt: skip


class CodeKeyTaken(Exception):
    """Another live code has this record key: draw a new code."""


def issued(current: FamilyCode | None, code: FamilyCode, now: datetime) -> Change[FamilyCode]:
    """Store a new code under its key; the key of a used, expired or dead code is reused."""
    if current is not None and current.usable(now):
        raise CodeKeyTaken()
    return Change(code)


def exchanged(current: FamilyCode | None, secret: str, now: datetime) -> Change[FamilyCode]:
    """Use the code (`used_at` = now) if it is usable and the secret is right; a wrong secret
    counts as a failed attempt (written, so that attempts add up across replicas)."""
    if current is None or not current.usable(now):
        raise Forbidden(REFUSED)
    if hmac.compare_digest(hashed(secret, current.salt), current.secret_hash):
        return Change(current.model_copy(update={"used_at": now}))
    return Change(current.model_copy(update={"failed_attempts": current.failed_attempts + 1}))
