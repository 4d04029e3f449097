"""The portal's configuration (KRING_PORTAL_*, beside what every Kring process has). Production
refuses plain HTTP and a session key it did not get from a file."""

from pathlib import Path

from pydantic import Field

from shared.settings import ProcessSettings


class PortalSettings(ProcessSettings):
    service_name: str = "portal"
    portal_public_url: str = Field(default="http://127.0.0.1:8080", description="where people reach the portal")
    portal_referral_url: str = "http://127.0.0.1:8081"
    portal_plans_url: str = "http://127.0.0.1:8083"
    portal_session_key_file: Path | None = Field(default=None, description="production: at least 32 secret bytes signing the session cookie")

    def insecurity(self) -> str | None:
        if self.development:
            return None
        if not self.portal_public_url.startswith("https://"):
            return "KRING_PORTAL_PUBLIC_URL is not https://: session cookies would travel in the clear"
        if self.portal_session_key_file is None or not self.portal_session_key_file.is_file():
            return "KRING_PORTAL_SESSION_KEY_FILE is not a file: sessions need a secret key"
        if len(self.portal_session_key_file.read_bytes().strip()) < 32:
            return "KRING_PORTAL_SESSION_KEY_FILE holds fewer than 32 bytes"
        return None
