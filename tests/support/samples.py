"""Sample events and tiny aggregates for the delivery tests (no business rules)."""

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel

from shared.contract.events import ReferralReceived
from shared.contract.vocabulary import ConcernCategory, ConsentState, ReferrerType, Region, StatutoryContext


def case_id() -> str:
    return f"case-{uuid.uuid4().hex}"


def referral_received(case: str | None = None) -> ReferralReceived:
    return ReferralReceived(
        case_id=case or case_id(),
        received_at=datetime.now(UTC),
        referrer_type=ReferrerType.YOUTH_CARE_BUREAU,
        referrer_organisation_id="bjz-nh",
        funder_id="prov-nh",
        region=Region(province="NH", municipality="GM0363"),
        language="nl",
        concern_categories=[ConcernCategory.HOUSING, ConcernCategory.PARENTING],
        statutory_context=StatutoryContext.VOLUNTARY_HELP,
        consent=ConsentState.GIVEN,
    )


class Intake(BaseModel):
    """Stand-in for the referral aggregate: enough to write a state change + event."""

    case_id: str
    status: str = "received"


class Tally(BaseModel):
    """Stand-in for a consumer's aggregate: counts the effects applied to it."""

    effects: int = 0
    event_ids: list[str] = []
