"""Configuration from environment variables (pydantic-settings).

Broker and database come from RABBITMQ_URL / MONGODB_URL (the names tests and CI
use); everything else is KRING_<FIELD>, e.g. KRING_HTTP_PORT=8081.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPOSITORY = Path(__file__).resolve().parents[1]
# The services that sign tokens (referral hands a family its token); they need a private key.
SIGNING_SERVICES = frozenset({"referral"})
# The services that publish on the partner exchange: funders get per-funder pseudonyms keyed
# by the deployment's secret (shared.pseudonym), never the case id.
PSEUDONYMISING_SERVICES = frozenset({"followup"})
DEVELOPMENT_ONLY = ("dev_key_dir", "clock_offset_file")


class ProcessSettings(BaseSettings):
    """What every Kring process has, the four services and the portal: its name, production or
    development, where it listens, whom it believes about client addresses, its log level."""

    model_config = SettingsConfigDict(env_prefix="KRING_", extra="ignore")

    service_name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    environment: Literal["production", "development"] = Field(
        default="production", description="development: tokens signed with a key generated into dev_key_dir"
    )
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    trusted_proxies: list[str] = Field(
        default=[],
        description="addresses of the reverse proxies whose X-Forwarded-For is believed; empty: none, the peer is the client",
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    dev_key_dir: Path = Field(default=REPOSITORY / ".data" / "dev-keys", description="development only: the generated keys")
    oidc_issuer: str | None = Field(
        default=None,
        description="the OpenID Connect issuer people sign in with (the portal) and whose access tokens the services accept",
    )

    @property
    def development(self) -> bool:
        """Development mode (KRING_ENVIRONMENT=development); anything else is production."""
        return self.environment == "development"

    def insecurity(self) -> str | None:
        """Why this configuration may not run in production (None: it may, or it is development)."""
        if not self.development and self.oidc_issuer is not None and not self.oidc_issuer.startswith("https://"):
            return "KRING_OIDC_ISSUER is not https://: sign-ins and the keys of its tokens would travel in the clear"
        return None


class KringSettings(ProcessSettings):
    rabbitmq_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        validation_alias=AliasChoices("RABBITMQ_URL", "KRING_RABBITMQ_URL"),
    )
    mongodb_url: str = Field(
        default="mongodb://127.0.0.1:27017/",
        validation_alias=AliasChoices("MONGODB_URL", "KRING_MONGODB_URL"),
    )
    mongodb_database: str | None = Field(default=None, description="default: <prefix>_<service>")
    mongodb_database_prefix: str = Field(default="kring", pattern=r"^[a-z][a-z0-9_]*$")
    mongodb_timeout_ms: int = Field(default=5_000, gt=0)
    amqp_prefix: str = Field(default="kring", pattern=r"^[a-z][a-z0-9_-]*$")
    http_max_body_bytes: int = Field(default=256 * 1024, gt=0, description="larger requests get 413")
    public_rate_limit: str = Field(
        default="30/minute",
        description="per client address, for all public routes of a service together, shared by its replicas (limits syntax)",
    )
    api_docs: bool = Field(
        default=False, description="serve /docs and /openapi.json; default on in development, off in production"
    )
    token_issuer: str = Field(default="kring", min_length=1, description="the `iss` every token must carry")
    jwks_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="production: https:// JWKS with the keys that verify tokens, comma-separated"
    )
    signing_key_file: Path | None = Field(default=None, description="production: PEM EC P-256 private key of a service that signs")
    pseudonym_key_file: Path | None = Field(
        default=None, description="production, followup: at least 32 secret bytes keying funders' pseudonyms of cases"
    )
    retention_days: float = Field(
        default=365.0,
        gt=0,
        description="how long a case's personal data is kept after the case ended (withdrawn, no plan, "
        "follow-up done); then it is erased from every service (referral decides, PersonalDataErased)",
    )
    retention_sweep_seconds: float = Field(default=3600.0, gt=0, description="how often referral looks for cases past retention")
    clock_offset_file: Path | None = Field(
        default=None,
        description="development only: a file holding a number of seconds the services' clock runs ahead "
        "(tests move time past the retention period)",
    )
    prefetch: int = Field(default=32, gt=0, description="unacked messages per consumer")
    relay_sweep_seconds: float = Field(default=5.0, gt=0, description="outbox crash-recovery sweep")
    relay_lease_seconds: float = Field(default=30.0, gt=0, description="outbox claim lifetime")
    database_time_seconds: float | None = Field(
        default=None, gt=0, description="log where database time went, every this many seconds (off if unset)"
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="serve Prometheus GET /metrics on this port of its own (0: any free one); unset: no metrics",
    )  # fmt: skip
    metrics_host: str = Field(
        default="127.0.0.1", description="the address the metrics port listens on (the deployment's Prometheus must reach it, nobody else)"
    )
    otlp_endpoint: str | None = Field(
        default=None, description="export traces by OTLP/HTTP to this URL (e.g. http://collector:4318/v1/traces); unset: no tracing"
    )
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=10.0, gt=0)
    retry_give_up_seconds: float = Field(
        default=1200.0,
        gt=0,
        description="stop retrying a transient fault in-process and requeue (below the "
        "broker's 30-minute consumer timeout)",
    )

    @field_validator("jwks_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    def insecurity(self) -> str | None:
        if self.development:
            return None
        if used := [name for name in DEVELOPMENT_ONLY if name in self.model_fields_set]:
            return f"KRING_{used[0].upper()} is a development setting; production verifies with KRING_JWKS_URLS"
        if not self.jwks_urls:
            return "KRING_JWKS_URLS is not set: production verifies tokens only with the issuer's published public keys"
        if any(not url.startswith("https://") for url in self.jwks_urls):
            return "KRING_JWKS_URLS must be https:// URLs: keys fetched in the clear can be swapped"
        if reason := super().insecurity():
            return reason
        if self.oidc_issuer == self.token_issuer:
            return "KRING_OIDC_ISSUER and KRING_TOKEN_ISSUER must differ: each issuer is trusted with its own keys"
        if self.service_name in SIGNING_SERVICES:
            if self.signing_key_file is None:
                return f"KRING_SIGNING_KEY_FILE is not set: the {self.service_name} service signs tokens"
            if not self.signing_key_file.is_file():
                return f"KRING_SIGNING_KEY_FILE names no readable file: the {self.service_name} service signs tokens"
        if self.service_name in PSEUDONYMISING_SERVICES:
            if self.pseudonym_key_file is None:
                return "KRING_PSEUDONYM_KEY_FILE is not set: funders get pseudonyms of cases keyed by the deployment's secret"
            if not self.pseudonym_key_file.is_file() or self.pseudonym_key_file.stat().st_size < 32:
                return "KRING_PSEUDONYM_KEY_FILE names no readable file of at least 32 bytes"
        return None

    @model_validator(mode="before")
    @classmethod
    def _api_docs_follow_the_environment(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("api_docs") is None:
            return {**values, "api_docs": values.get("environment", "production") == "development"}
        return values

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"{self.mongodb_database_prefix}_{self.service_name.replace('-', '_')}"
