"""Tokens of the OpenID Connect issuer people sign in at (KRING_OIDC_ISSUER, issue 25), with the
issuer simulated by a local HTTP server: its discovery document and a JWKS of a test key. Unit
level only: tests/integration/test_oidc_issuer.py signs in at the real one (deploy/oidc-local).

The development issuer makes a new key at every start and names it after itself (kid "kring"),
so a restarted issuer's tokens carry the kid the services cached with the old key."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared import auth
from shared.auth import ALGORITHM, Role, issue_token, verify_token
from shared.errors import TransientFault
from shared.settings import KringSettings

pytestmark = pytest.mark.anyio
KID = "kring"  # what mock-oauth2-server names its key: the issuer id, the same after every restart
AUDIENCE = ["kring-referral", "kring-scheduling", "kring-plans", "kring-followup", "kring-portal"]


@dataclass
class Issuer:
    """A simulated issuer: `url`, its current `key` (replace it to restart the issuer), how often
    its JWKS was fetched."""

    url: str = ""
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    jwks_fetches: int = 0
    discovery: dict[str, Any] | None = None  # None: the proper document

    def token(self, subject: str = "coord-anna", lifetime: timedelta = timedelta(hours=1), **claims: Any) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        body = {"iss": self.url, "aud": AUDIENCE, "sub": subject, "role": "coordinator", "iat": now, "nbf": now,
                "exp": now + lifetime, "azp": "kring-portal", **claims}  # fmt: skip
        return jwt.encode(body, self.key, algorithm=ALGORITHM, headers={"kid": KID, "typ": "JWT"})

    def restart(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    simulated = Issuer()

    class Endpoints(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/kring/.well-known/openid-configuration":
                body: Any = simulated.discovery or {"issuer": simulated.url, "jwks_uri": f"{simulated.url}/jwks"}
            elif self.path == "/kring/jwks":
                simulated.jwks_fetches += 1
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(simulated.key.public_key()))
                body = {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": ALGORITHM}]}
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoints)
    simulated.url = f"http://127.0.0.1:{server.server_address[1]}/kring"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield simulated
    finally:
        server.shutdown()
        server.server_close()
        auth._issuer_keys.cache_clear()  # each test's issuer is a new one at a new address


def service(issuer: Issuer, name: str = "scheduling") -> KringSettings:
    return KringSettings(service_name=name, environment="development", oidc_issuer=issuer.url)


async def test_a_signed_in_persons_token_is_admitted(issuer: Issuer) -> None:
    person = await verify_token(service(issuer), issuer.token("coord-anna"))
    assert (person.subject, person.role, person.organisation_id) == ("coord-anna", Role.COORDINATOR, None)
    funder = await verify_token(service(issuer, "followup"), issuer.token("funder-utrecht", role="funder", org="prov-utrecht"))
    assert (funder.role, funder.organisation_id) == (Role.FUNDER, "prov-utrecht")


async def test_the_family_role_never_comes_from_the_sign_in_issuer(issuer: Issuer) -> None:
    with pytest.raises(jwt.InvalidTokenError, match="family"):
        await verify_token(service(issuer, "plans"), issuer.token("someone", role="family", case="case-00000001"))


@pytest.mark.parametrize(
    "why, claims",
    [
        ("for other services only", {"aud": ["kring-portal"]}),
        ("no audience at all (a refreshed token of the development issuer)", {"aud": None}),
        ("lives longer than the role allows", {"lifetime": timedelta(hours=13)}),
        ("expired", {"lifetime": timedelta(hours=1), "exp": datetime.now(UTC) - timedelta(minutes=5)}),
        ("a funder without its slice", {"role": "funder"}),
        ("a role Kring does not know", {"role": "admin"}),
        ("no subject", {"sub": ""}),
    ],
)
async def test_the_same_rules_as_for_kringss_own_tokens(issuer: Issuer, why: str, claims: dict[str, Any]) -> None:
    lifetime = claims.pop("lifetime", timedelta(hours=1))
    subject = claims.pop("sub", "coord-anna")
    token = issuer.token(subject, lifetime, **claims)
    if claims.get("aud", ...) is None:
        body = jwt.decode(token, options={"verify_signature": False})
        token = jwt.encode({k: v for k, v in body.items() if k != "aud"}, issuer.key, algorithm=ALGORITHM, headers={"kid": KID})
    with pytest.raises(jwt.InvalidTokenError):
        await verify_token(service(issuer), token)


async def test_an_issuer_nobody_configured_is_refused(issuer: Issuer) -> None:
    with pytest.raises(jwt.InvalidIssuerError):
        await verify_token(KringSettings(service_name="scheduling", environment="development"), issuer.token())
    with pytest.raises(jwt.InvalidIssuerError):  # near is not equal: no prefix, no trailing slash
        await verify_token(service(issuer), issuer.token(iss=issuer.url + "/"))
    with pytest.raises(jwt.InvalidTokenError):  # the sign-in issuer's name on a token another key signed
        await verify_token(service(issuer), Issuer(url=issuer.url).token())


async def test_kringss_own_tokens_work_as_before_beside_the_issuer(issuer: Issuer) -> None:
    settings = service(issuer)
    own = issue_token(settings, subject="ops-demo", role=Role.OPS)
    assert (await verify_token(settings, own)).role is Role.OPS
    family = issue_token(settings, subject="fam", role=Role.FAMILY, case_id="case-00000001")
    assert (await verify_token(settings, family)).case_id == "case-00000001"  # Kring's family access still counts
    assert issuer.jwks_fetches == 0  # Kring's own tokens never ask the sign-in issuer


async def test_a_restarted_issuers_new_key_is_fetched_under_the_same_kid(issuer: Issuer) -> None:
    settings = service(issuer)
    assert (await verify_token(settings, issuer.token())).subject == "coord-anna"
    issuer.restart()  # a new key, the same kid: the cached key does not verify the new tokens
    assert (await verify_token(settings, issuer.token("coord-bram"))).subject == "coord-bram"
    assert issuer.jwks_fetches == 2
    for _ in range(5):  # tokens no key of the issuer signed do not make every request a fetch
        with pytest.raises(jwt.InvalidSignatureError):
            await verify_token(settings, Issuer(url=issuer.url).token())
    assert issuer.jwks_fetches <= 3


async def test_an_unreachable_issuer_is_a_transient_fault(issuer: Issuer) -> None:
    gone = KringSettings(service_name="scheduling", environment="development", oidc_issuer="http://127.0.0.1:9/kring")
    with pytest.raises(TransientFault):
        await verify_token(gone, Issuer(url="http://127.0.0.1:9/kring").token())
    issuer.discovery = {"issuer": "http://elsewhere.example/kring", "jwks_uri": f"{issuer.url}/jwks"}
    with pytest.raises(TransientFault):  # a discovery document naming another issuer is not this one's
        await verify_token(service(issuer), issuer.token())
    issuer.discovery = ["not", "a", "document"]  # type: ignore[assignment]
    with pytest.raises(TransientFault):
        await verify_token(service(issuer), issuer.token())


def production(**values: object) -> KringSettings:
    return KringSettings(service_name="scheduling", environment="production", jwks_urls=["https://keys.example/jwks"], **values)  # type: ignore[arg-type]


def test_production_asks_https_and_an_issuer_apart_from_kringss_own() -> None:
    assert "https://" in (production(oidc_issuer="http://login.example/kring").insecurity() or "")
    assert "must differ" in (production(oidc_issuer="https://login.example", token_issuer="https://login.example").insecurity() or "")
    assert production(oidc_issuer="https://login.example/kring").insecurity() is None
    assert production().insecurity() is None  # no sign-in issuer: Kring's own tokens only


async def test_production_refuses_keys_the_issuer_publishes_in_the_clear(issuer: Issuer) -> None:
    settings = KringSettings(service_name="scheduling", environment="production", jwks_urls=["https://keys.example/jwks"], oidc_issuer=issuer.url)
    with pytest.raises(TransientFault, match="clear"):  # its discovery names an http:// jwks_uri
        await verify_token(settings, issuer.token())
