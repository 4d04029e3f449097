"""Service standards: the promises Kring makes to every family, with a target per funder.

Three standards, each a number of days (pure rules here, the targets from settings):
- `first_contact`: from the coordinator's assignment to the first contact with the family
  (the coordinator records it: scheduling's POST /cases/{id}/first-contact);
- `conference`: from the referral to the first conference held (the 60-day target);
- `followup_check`: from the day the three-month check came due to the check recorded.

Targets: KRING_STANDARD_FIRST_CONTACT_DAYS (default 5), KRING_STANDARD_CONFERENCE_DAYS
(default 60), KRING_STANDARD_FOLLOWUP_CHECK_DAYS (default 14), and per funder
KRING_STANDARD_PER_FUNDER, a JSON object of overrides, e.g.
`{"F1": {"first_contact_days": 3}}`. Scheduling (the coordinator's deadlines) and follow-up
(the funder report) read the same settings, so set them alike on both.
"""

from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Days = int


class Standard(StrEnum):
    FIRST_CONTACT = "first_contact"
    CONFERENCE = "conference"
    FOLLOWUP_CHECK = "followup_check"


DEFAULT_DAYS = {Standard.FIRST_CONTACT: 5, Standard.CONFERENCE: 60, Standard.FOLLOWUP_CHECK: 14}


class Targets(BaseModel):
    """The target of each standard, in days, for one funder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_contact_days: Days = Field(default=DEFAULT_DAYS[Standard.FIRST_CONTACT], ge=1, le=365)
    conference_days: Days = Field(default=DEFAULT_DAYS[Standard.CONFERENCE], ge=1, le=365)
    followup_check_days: Days = Field(default=DEFAULT_DAYS[Standard.FOLLOWUP_CHECK], ge=0, le=365)

    def days(self, standard: Standard) -> int:
        return int(getattr(self, f"{standard.value}_days"))

    def reached(self, standard: Standard, days: int) -> bool:
        return days <= self.days(standard)

    def deadline(self, standard: Standard, start: date) -> date:
        return start + timedelta(days=self.days(standard))


class TargetOverrides(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    first_contact_days: Days | None = Field(default=None, ge=1, le=365)
    conference_days: Days | None = Field(default=None, ge=1, le=365)
    followup_check_days: Days | None = Field(default=None, ge=0, le=365)


class StandardsSettings(BaseSettings):
    """The targets everywhere, and a funder's own where it agreed other ones."""

    model_config = SettingsConfigDict(env_prefix="KRING_STANDARD_", extra="ignore")

    first_contact_days: Days = Field(default=DEFAULT_DAYS[Standard.FIRST_CONTACT], ge=1, le=365)
    conference_days: Days = Field(default=DEFAULT_DAYS[Standard.CONFERENCE], ge=1, le=365)
    followup_check_days: Days = Field(default=DEFAULT_DAYS[Standard.FOLLOWUP_CHECK], ge=0, le=365)
    per_funder: dict[str, TargetOverrides] = {}

    def targets_for(self, funder_id: str) -> Targets:
        defaults = {f"{standard.value}_days": getattr(self, f"{standard.value}_days") for standard in Standard}
        overrides = self.per_funder.get(funder_id)
        chosen = overrides.model_dump(exclude_none=True) if overrides else {}
        return Targets(**{**defaults, **chosen})
