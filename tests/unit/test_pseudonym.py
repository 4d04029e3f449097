"""Funders' pseudonyms of cases (issue 23): keyed, per funder, stable, and the key is a
deployment secret that production cannot start without."""

from pathlib import Path

import pytest

from shared.errors import InvalidInput
from shared.pseudonym import MIN_KEY_BYTES, PATTERN, Pseudonyms, pseudonyms
from shared.settings import KringSettings

CASE = "case-0123456789abcdef"


def test_the_same_funder_gets_the_same_pseudonym_and_two_funders_different_ones() -> None:
    keyed = Pseudonyms(b"s" * 32)
    assert keyed.of(CASE, "gm-a") == keyed.of(CASE, "gm-a")
    assert keyed.of(CASE, "gm-a") != keyed.of(CASE, "gm-b")
    assert keyed.of(CASE, "gm-a") != keyed.of("case-0123456789abcdeg", "gm-a")
    import re

    assert re.fullmatch(PATTERN, keyed.of(CASE, "gm-a")) and CASE not in keyed.of(CASE, "gm-a")


def test_without_the_key_the_pseudonym_cannot_be_computed() -> None:
    assert Pseudonyms(b"s" * 32).of(CASE, "gm-a") != Pseudonyms(b"t" * 32).of(CASE, "gm-a")
    # no plain hash of what a funder could know or guess
    import hashlib

    assert Pseudonyms(b"s" * 32).of(CASE, "gm-a") not in {
        hashlib.sha256(f"gm-a\x00{CASE}".encode()).hexdigest(), hashlib.sha256(CASE.encode()).hexdigest()
    }


def test_a_short_key_is_refused_and_the_key_never_shows() -> None:
    with pytest.raises(InvalidInput):
        Pseudonyms(b"short").of(CASE, "gm-a")
    assert "s" * 32 not in repr(Pseudonyms(b"s" * 32))


def test_development_generates_one_key_into_the_dev_key_dir(tmp_path: Path) -> None:
    settings = KringSettings(service_name="followup", environment="development", dev_key_dir=tmp_path)
    first = pseudonyms(settings).of(CASE, "gm-a")
    key_file = tmp_path / "pseudonym.key"
    assert key_file.stat().st_size == MIN_KEY_BYTES and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert pseudonyms(settings).of(CASE, "gm-a") == first == Pseudonyms(key_file.read_bytes()).of(CASE, "gm-a")


def test_production_refuses_to_start_the_followup_service_without_the_key(tmp_path: Path) -> None:
    base = {"service_name": "followup", "environment": "production", "jwks_urls": ["https://issuer.example/jwks.json"]}
    assert "KRING_PSEUDONYM_KEY_FILE is not set" in (KringSettings(**base).insecurity() or "")
    (tmp_path / "short.key").write_bytes(b"x" * 8)
    assert "at least 32 bytes" in (KringSettings(**base, pseudonym_key_file=tmp_path / "short.key").insecurity() or "")
    assert "no readable file" in (KringSettings(**base, pseudonym_key_file=tmp_path / "absent").insecurity() or "")
    (tmp_path / "good.key").write_bytes(b"x" * 32)
    settings = KringSettings(**base, pseudonym_key_file=tmp_path / "good.key")
    assert settings.insecurity() is None
    assert pseudonyms(settings).of(CASE, "gm-a") == Pseudonyms(b"x" * 32).of(CASE, "gm-a")
    # the other services do not need it
    assert KringSettings(**{**base, "service_name": "scheduling"}).insecurity() is None
