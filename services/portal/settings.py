"""The portal's configuration (KRING_PORTAL_*). Production refuses plain HTTP and a session
key it did not get from a file."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import REPOSITORY


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KRING_", extra="ignore")

    environment: str = Field(default="production", pattern="^(production|development)$")
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    log_level: str = "INFO"
    portal_public_url: str = Field(default="http://127.0.0.1:8080", description="where people reach the portal")
    portal_referral_url: str = "http://127.0.0.1:8081"
    portal_plans_url: str = "http://127.0.0.1:8083"
    portal_session_key_file: Path | None = Field(default=None, description="production: at least 32 secret bytes signing the session cookie")
    dev_key_dir: Path = Field(default=REPOSITORY / ".data" / "dev-keys", description="development: where the session key is generated")

    @property
    def development(self) -> bool:
        return self.environment == "development"

    def insecurity(self) -> str | None:
        """Why this configuration may not run in production (None: it may, or it is development)."""
        if self.development:
            return None
        if not self.portal_public_url.startswith("https://"):
            return "KRING_PORTAL_PUBLIC_URL is not https://: session cookies would travel in the clear"
        if self.portal_session_key_file is None or not self.portal_session_key_file.is_file():
            return "KRING_PORTAL_SESSION_KEY_FILE is not a file: sessions need a secret key"
        if len(self.portal_session_key_file.read_bytes().strip()) < 32:
            return "KRING_PORTAL_SESSION_KEY_FILE holds fewer than 32 bytes"
        return None
