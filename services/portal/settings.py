"""The portal's configuration (KRING_PORTAL_*, beside what every Kring process has). Production
refuses plain HTTP, a session key it did not get from a file, and signing in anywhere but at an
https:// OpenID Connect issuer."""

from pathlib import Path

from pydantic import Field

from shared.settings import ProcessSettings


class PortalSettings(ProcessSettings):
    service_name: str = "portal"
    portal_public_url: str = Field(default="http://127.0.0.1:8080", description="where people reach the portal")
    portal_referral_url: str = "http://127.0.0.1:8081"
    portal_scheduling_url: str = "http://127.0.0.1:8082"
    portal_plans_url: str = "http://127.0.0.1:8083"
    portal_followup_url: str = "http://127.0.0.1:8084"
    portal_session_key_file: Path | None = Field(default=None, description="production: at least 32 secret bytes signing the session cookie")
    portal_oidc_client_id: str = Field(default="kring-portal", description="the portal's client at the OpenID Connect issuer")
    portal_oidc_client_secret_file: Path | None = Field(default=None, description="production: the portal's client secret at the issuer")

    def insecurity(self) -> str | None:
        if self.development:
            return None
        if not self.portal_public_url.startswith("https://"):
            return "KRING_PORTAL_PUBLIC_URL is not https://: session cookies would travel in the clear"
        if self.portal_session_key_file is None or not self.portal_session_key_file.is_file():
            return "KRING_PORTAL_SESSION_KEY_FILE is not a file: sessions need a secret key"
        if len(self.portal_session_key_file.read_bytes().strip()) < 32:
            return "KRING_PORTAL_SESSION_KEY_FILE holds fewer than 32 bytes"
        if reason := super().insecurity():
            return reason
        if self.oidc_issuer is not None and (self.portal_oidc_client_secret_file is None or not self.portal_oidc_client_secret_file.is_file()):
            return "KRING_PORTAL_OIDC_CLIENT_SECRET_FILE is not a file: the portal proves itself to the issuer with its secret"
        return None

    @property
    def service_urls(self) -> dict[str, str]:
        return {
            "referral": self.portal_referral_url, "scheduling": self.portal_scheduling_url,
            "plans": self.portal_plans_url, "followup": self.portal_followup_url,
        }  # fmt: skip
