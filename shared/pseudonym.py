"""Per-funder pseudonyms: what a funder gets instead of the case id that every service shares.

A funder's pseudonym of a case is HMAC-SHA256(key, funder id NUL case id), in hex. The same
funder gets the same pseudonym for every event of a case (it can relate its own updates); two
funders get unrelated pseudonyms for one case, and without the key nobody can compute a case
id's pseudonym or go back from a pseudonym to the case id (a case id alone, guessed or leaked,
tells a funder nothing). The key is the deployment's secret:

- production: `KRING_PSEUDONYM_KEY_FILE`, at least 32 random bytes (e.g.
  `head -c 32 /dev/urandom > pseudonym.key`); the follow-up service refuses to start without
  it (`KringSettings.insecurity`). Changing the key changes every pseudonym: funders could no
  longer relate earlier updates, so it is kept like the signing key;
- development: generated on first use into `KRING_DEV_KEY_DIR` (see shared.auth.DevelopmentKeys).
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from shared.errors import InvalidInput
from shared.settings import KringSettings

MIN_KEY_BYTES = 32
DEVELOPMENT_FILE = "pseudonym.key"
PATTERN = r"^[0-9a-f]{64}$"  # what a pseudonym looks like on the partner exchange


class Pseudonyms:
    """Computes pseudonyms with one deployment key (the same inputs, the same answer). The key
    is read on first use: a service is wired before `insecurity()` refuses a production start
    without it, and refusing must stay a one-line message."""

    def __init__(self, key: bytes | Callable[[], bytes]) -> None:
        self._source = key if callable(key) else (lambda: key)
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            key = self._source()
            if len(key) < MIN_KEY_BYTES:
                raise InvalidInput(f"the pseudonym key must hold at least {MIN_KEY_BYTES} bytes", field="pseudonym_key_file")
            self._key = key
        return self._key

    def of(self, case_id: str, funder_id: str) -> str:
        """`funder_id`'s pseudonym of `case_id`."""
        message = f"{funder_id}\x00{case_id}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never the key, also not in a traceback or log
        return "Pseudonyms(key=<secret>)"


def pseudonyms(settings: KringSettings) -> Pseudonyms:
    """The deployment's pseudonyms: the key file in production, a generated one in development."""
    if settings.development:
        directory = settings.dev_key_dir
        return Pseudonyms(lambda: _development_key(directory))
    path = settings.pseudonym_key_file

    def production_key() -> bytes:
        if path is None:
            raise InvalidInput("KRING_PSEUDONYM_KEY_FILE is not set", field="pseudonym_key_file")
        return _production_key(path)

    return Pseudonyms(production_key)


@lru_cache(maxsize=8)
def _production_key(path: Path) -> bytes:
    return path.read_bytes()


@lru_cache(maxsize=8)
def _development_key(directory: Path) -> bytes:
    from shared.auth import write_once  # the key pair's race-free first write

    path = directory / DEVELOPMENT_FILE
    if not path.exists():
        write_once(path, secrets.token_bytes(MIN_KEY_BYTES))
    return path.read_bytes()
