"""What counts as personal data, by field name.

Names, contact details and free text about a family never go to logs or onto the
bus. The log redaction processor (shared.logging) and the contract test that scans
the catalogue both use this list; a service that stores a new kind of personal field
adds its name here.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        # who
        "name", "first_name", "last_name", "family_name", "full_name", "given_name",
        "surname", "initials", "display_name", "contact_name", "contact_person",
        "date_of_birth", "birth_date", "dob", "bsn", "citizen_service_number",
        # how to reach them
        "email", "email_address", "phone", "phone_number", "telephone", "mobile",
        "address", "street", "house_number", "postcode", "postal_code",
        # what they said
        "description", "free_text", "notes", "note", "comment", "comments",
        "situation", "narrative", "message_text",
        # secrets
        "password", "token", "authorization", "secret",
        "family_access_token", "one_time_code", "secret_hash", "pseudonym_key",
    }
)  # fmt: skip

# Text about a family that Kring's own services pass on the internal events exchange (plans
# must check the family's plan against it) but that never goes to funders or into logs.
CONFIDENTIAL_FIELDS: frozenset[str] = frozenset({"bottom_line_requirements"})

REDACTED = "[redacted]"


def is_personal(field_name: str) -> bool:
    return field_name.lower() in PERSONAL_FIELDS


def is_confidential(field_name: str) -> bool:
    """Personal, or internal-only text: never logged."""
    return is_personal(field_name) or field_name.lower() in CONFIDENTIAL_FIELDS


def redact(value: Any) -> Any:
    """A copy of `value` with every personal or confidential field's value replaced, at any depth."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_confidential(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item) for item in value]
    return value
