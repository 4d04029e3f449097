"""Tokens (issue 21, finding 1 and 4): signed ES256 by a key no service shares, for named
services, bounded in lifetime, and carrying the claim that bounds a role's scope."""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth import (
    ROLE_LIFETIME,
    SERVICES,
    DevelopmentKeys,
    Principal,
    Role,
    issue_token,
    jwks_of,
    main,
    verify_token,
)
from shared.errors import InsecureConfiguration, InvalidInput, TransientFault
from shared.runtime import KringService
from shared.settings import REPOSITORY, KringSettings
from tests.support.tokens import claims, signed_by_another_key, signed_by_development_key, signed_with_old_secret, unsigned

pytestmark = pytest.mark.anyio
SCHEDULING = KringSettings(service_name="scheduling")


def production(service: str = "scheduling", **values: object) -> KringSettings:
    return KringSettings(service_name=service, environment="production", **values)  # type: ignore[arg-type]


async def test_a_token_round_trips_for_its_service() -> None:
    token = issue_token(SCHEDULING, subject="ops-1", role=Role.OPS, audience="scheduling")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    verified = await verify_token(SCHEDULING, token)
    assert verified.model_copy(update={"issued_at": None}) == Principal(subject="ops-1", role=Role.OPS)
    assert verified.issued_at is not None and abs((datetime.now(UTC) - verified.issued_at).total_seconds()) < 5
    family = issue_token(SCHEDULING, subject="fam", role=Role.FAMILY, case_id="case-1")
    assert (await verify_token(SCHEDULING, family)).case_id == "case-1"


async def test_by_default_a_token_is_for_all_four_services() -> None:
    token = issue_token(SCHEDULING, subject="c", role=Role.COORDINATOR)
    for service in SERVICES:
        assert (await verify_token(KringSettings(service_name=service), token)).subject == "c"


@pytest.mark.parametrize(
    "why, token",
    [
        ("another service's audience", lambda: issue_token(SCHEDULING, subject="o", role=Role.OPS, audience="followup")),
        ("no audience", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", aud=None))),
        ("another issuer", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", iss="someone-else"))),
        ("no issuer", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", iss=None))),
        ("no exp", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", exp=None))),
        ("no iat", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", iat=None))),
        ("no subject", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", sub=None))),
        ("an unknown role", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", role="admin"))),
        ("expired", lambda: signed_by_development_key(
            SCHEDULING, claims("scheduling", iat=datetime.now(UTC) - timedelta(hours=2), exp=datetime.now(UTC) - timedelta(hours=1))
        )),
        ("over-long lifetime", lambda: signed_by_development_key(
            SCHEDULING, claims("scheduling", exp=datetime.now(UTC) + ROLE_LIFETIME[Role.OPS] + timedelta(minutes=5))
        )),
        ("a family token for a year", lambda: signed_by_development_key(
            SCHEDULING, claims("scheduling", "family", case="case-1", exp=datetime.now(UTC) + timedelta(days=365))
        )),
        ("issued in the future", lambda: signed_by_development_key(
            SCHEDULING, claims("scheduling", iat=datetime.now(UTC) + timedelta(hours=1), exp=datetime.now(UTC) + timedelta(hours=2))
        )),
        ("HS256 with the old development secret", lambda: signed_with_old_secret(claims("scheduling"))),
        ("alg none", lambda: unsigned(claims("scheduling"))),
        ("another key", lambda: signed_by_another_key(claims("scheduling"))),
        ("a funder without org", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", "funder"))),
        ("a funder with an empty org", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", "funder", org=""))),
        ("a bureau without org", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", "bureau"))),
        ("a referrer without org", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", "referrer"))),
        ("a family without case", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", "family"))),
        ("a coordinator with a numeric org", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", "coordinator", org=7))),
        ("a role that is a list", lambda: signed_by_development_key(SCHEDULING, claims("scheduling", ["ops"]))),
    ],
)
async def test_a_token_is_refused(why: str, token) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(jwt.InvalidTokenError):
        await verify_token(SCHEDULING, token())


@pytest.mark.parametrize(
    "role, given",
    [(Role.FUNDER, {}), (Role.BUREAU, {"case_id": "case-1"}), (Role.REFERRER, {"organisation_id": ""}), (Role.FAMILY, {"organisation_id": "x"})],
)
def test_a_token_without_the_claim_its_role_needs_is_not_issued(role: Role, given: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        issue_token(SCHEDULING, subject="x", role=role, **given)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [ROLE_LIFETIME[Role.OPS] + timedelta(seconds=1), timedelta(0), timedelta(seconds=-1)])
def test_a_token_outside_its_role_lifetime_is_not_issued(ttl: timedelta) -> None:
    with pytest.raises(InvalidInput):
        issue_token(SCHEDULING, subject="x", role=Role.OPS, ttl=ttl)


def test_concurrent_first_uses_agree_on_one_development_key_pair(tmp_path: Path) -> None:
    keys = [None] * 8

    def load(index: int) -> None:
        keys[index] = DevelopmentKeys(tmp_path).load().kid  # type: ignore[call-overload]

    threads = [threading.Thread(target=load, args=(index,)) for index in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and keys[0] is not None
    assert [path.name for path in tmp_path.iterdir()] == [DevelopmentKeys.FILE]
    assert (tmp_path / DevelopmentKeys.FILE).stat().st_mode & 0o077 == 0


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server publishing the JWKS of a fresh key, and that key's PEM file."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "signing.pem"
    pem.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    document = json.dumps(jwks_of(private_key.public_key())).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", pem
    finally:
        server.shutdown()
        server.server_close()


async def test_production_signs_with_its_key_file_and_verifies_with_the_published_keys(published: tuple[str, Path]) -> None:
    url, pem = published  # plain http on the loopback here; insecurity() asks https:// of production
    referral = production("referral", signing_key_file=pem, jwks_urls=[url])
    scheduling = production("scheduling", jwks_urls=[url])
    family = issue_token(referral, subject="fam", role=Role.FAMILY, audience=["referral", "plans"], case_id="case-1")
    ops = issue_token(referral, subject="o", role=Role.OPS, audience="scheduling")
    assert (await verify_token(production("plans", jwks_urls=[url]), family)).case_id == "case-1"
    assert (await verify_token(scheduling, ops)).role is Role.OPS
    with pytest.raises(jwt.InvalidTokenError):  # audience still checked
        await verify_token(scheduling, family)
    with pytest.raises(jwt.InvalidTokenError):  # the development key is not published
        await verify_token(scheduling, issue_token(SCHEDULING, subject="o", role=Role.OPS))


async def test_unreachable_published_keys_are_a_transient_fault_not_an_open_door() -> None:
    token = issue_token(SCHEDULING, subject="o", role=Role.OPS)
    with pytest.raises(TransientFault):
        await verify_token(production(jwks_urls=["http://127.0.0.1:9/jwks.json"]), token)


def test_production_without_keys_gives_one_reason(tmp_path: Path) -> None:
    pem = tmp_path / "signing.pem"
    pem.write_text("")
    url = "https://keys.kring.example/jwks.json"
    assert SCHEDULING.insecurity() is None  # development
    assert "KRING_JWKS_URLS is not set" in (production().insecurity() or "")
    assert "https://" in (production(jwks_urls=["http://keys.kring.example/jwks.json"]).insecurity() or "")
    assert "KRING_DEV_KEY_DIR" in (production(jwks_urls=[url], dev_key_dir=tmp_path).insecurity() or "")
    assert "KRING_SIGNING_KEY_FILE is not set" in (production("referral", jwks_urls=[url]).insecurity() or "")
    assert "no readable file" in (production("referral", jwks_urls=[url], signing_key_file=tmp_path / "absent.pem").insecurity() or "")
    assert production("referral", jwks_urls=[url], signing_key_file=pem).insecurity() is None
    assert production("scheduling", jwks_urls=[url]).insecurity() is None  # verifies only: needs no private key
    assert "KRING_OIDC_ISSUER is not https://" in (production(jwks_urls=[url], oidc_issuer="http://login.example/kring").insecurity() or "")
    assert "must differ" in (production(jwks_urls=[url], oidc_issuer="https://login.example", token_issuer="https://login.example").insecurity() or "")
    assert production(jwks_urls=[url], oidc_issuer="https://login.example/kring").insecurity() is None
    for reason in (production().insecurity(), production("referral", jwks_urls=[url]).insecurity()):
        assert reason is not None and "\n" not in reason


def test_jwks_urls_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRING_JWKS_URLS", "https://a.example/jwks.json, https://b.example/jwks.json")
    assert KringSettings(service_name="x").jwks_urls == ["https://a.example/jwks.json", "https://b.example/jwks.json"]


def test_the_production_default_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KRING_ENVIRONMENT")
    assert KringSettings(service_name="x").environment == "production"


async def test_a_service_does_not_start_insecurely_in_production() -> None:
    with pytest.raises(InsecureConfiguration, match="KRING_JWKS_URLS"):
        await KringService(production()).start()


def cli(*arguments: str, environment: str = "development") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KRING_ENVIRONMENT": environment}
    return subprocess.run([sys.executable, "-m", "shared.auth", *arguments], capture_output=True, text=True, env=env, cwd=REPOSITORY, timeout=60)


async def test_the_cli_issues_development_tokens_for_the_services_asked() -> None:
    done = cli("--role", "funder", "--subject", "f-1", "--org", "gm-utrecht", "--audience", "followup")
    assert done.returncode == 0, done.stderr
    principal = await verify_token(KringSettings(service_name="followup"), done.stdout.strip())
    assert principal.model_copy(update={"issued_at": None}) == Principal(subject="f-1", role=Role.FUNDER, organisation_id="gm-utrecht")
    with pytest.raises(jwt.InvalidTokenError):
        await verify_token(SCHEDULING, done.stdout.strip())


@pytest.mark.parametrize(
    "arguments, says",
    [
        (("--role", "funder", "--subject", "f-1"), "needs --org"),
        (("--role", "bureau", "--subject", "b-1"), "needs --org"),
        (("--role", "family", "--subject", "fam"), "needs --case"),
        (("--role", "ops", "--subject", "o", "--hours", "24"), "lives at most"),
        (("--role", "ops", "--subject", "o", "--audience", "elsewhere"), "invalid choice"),
    ],
)
def test_the_cli_refuses_a_token_its_role_may_not_have(arguments: tuple[str, ...], says: str) -> None:
    done = cli(*arguments)
    assert done.returncode == 2 and done.stdout == "" and says in done.stderr


def test_the_cli_refuses_in_production() -> None:
    done = cli("--role", "ops", "--subject", "o", environment="production")
    assert done.returncode == 2 and done.stdout == "" and "KRING_ENVIRONMENT=development" in done.stderr


def test_main_is_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--role", "coordinator", "--subject", "c-1"]) == 0
    assert jwt.get_unverified_header(capsys.readouterr().out.strip())["alg"] == "ES256"


async def test_the_cli_prints_the_jwks_that_verifies_a_signing_key(tmp_path: Path) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "signing-key.pem"
    pem.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    done = cli("--jwks-of", str(pem), environment="production")
    assert done.returncode == 0, done.stderr
    [published] = json.loads(done.stdout)["keys"]
    assert "d" not in published  # the public half only
    token = issue_token(production("referral", signing_key_file=pem), subject="o", role=Role.OPS)
    key = jwt.PyJWK(published).key
    assert jwt.decode(token, key, algorithms=["ES256"], audience="kring-plans")["sub"] == "o"
    assert jwt.get_unverified_header(token)["kid"] == published["kid"]


def test_the_funder_slice_fails_closed_even_past_verification() -> None:
    from shared.access import funder_slice
    from shared.errors import Forbidden

    with pytest.raises(Forbidden):
        funder_slice(Principal(subject="f", role=Role.FUNDER), None)
    with pytest.raises(Forbidden):
        funder_slice(Principal(subject="f", role=Role.FUNDER, organisation_id="prov-ut"), "prov-nh")
    assert funder_slice(Principal(subject="f", role=Role.FUNDER, organisation_id="prov-ut"), None) == "prov-ut"
    assert funder_slice(Principal(subject="o", role=Role.OPS), None) is None
    assert funder_slice(Principal(subject="o", role=Role.OPS), "prov-nh") == "prov-nh"


async def test_a_token_of_an_issuer_this_service_does_not_trust_is_refused() -> None:
    token = issue_token(SCHEDULING.model_copy(update={"token_issuer": "https://elsewhere.example"}), subject="o", role=Role.OPS)
    with pytest.raises(jwt.InvalidIssuerError):
        await verify_token(SCHEDULING, token)
    with pytest.raises(TransientFault):  # signed with Kring's key but naming the sign-in issuer: only that issuer's keys count
        await verify_token(SCHEDULING.model_copy(update={"oidc_issuer": "https://elsewhere.example"}), token)
