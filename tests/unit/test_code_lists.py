"""Closed code lists (issue 23): every string of every event in the catalogue is an enum, a
literal or a code bounded by a pattern (identifiers, ids, pseudonyms, language, municipality and
period codes), or a date; free text would carry whatever a person typed. Checked on the models'
JSON Schemas, so nothing is missed by a field's name. The exceptions are named one by one."""

from typing import Any

from shared.contract.events import CATALOGUE, Channel

Schema = dict[str, Any]
DATE_FORMATS = frozenset({"date", "date-time"})

# (CloudEvents type, path as reported below): why this string may be other than a closed code.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("nl.kring.referral.accepted.v1", "external_reference"): (
        "the bureau's own reference for its referral, echoed back on the replies exchange to that bureau only "
        "(routing key <name>.<organisation>); never on the events or partner exchange"
    ),
    ("nl.kring.referral.rejected.v1", "external_reference"): "as for referral.accepted: the bureau's own reference, back to it only",
    ("nl.kring.referral.rejected.v1", "errors[].field"): (
        "the name of the refused field of the bureau's own command (a path such as `contact.phone`), back to that bureau only"
    ),
    ("nl.kring.referral.rejected.v1", "errors[].problem"): (
        "what is wrong with that field, written by the service (shared.http.field_errors), never the value sent"
    ),
    ("nl.kring.plans.plan-presented.v1", "requested_service_categories[]"): (
        "plans' snake-case service code (pattern ^[a-z][a-z_]{1,39}$ at plans' route, services/plans/domain.py), an open "
        "list kept by the municipalities' service catalogues; not yet closed on the event: adding the pattern or an enum "
        "to this published schema is a breaking change of a plans event (issue 22's area). Never on the partner exchange"
    ),
    ("nl.kring.plans.second-meeting-needed.v1", "reason_category"): (
        "plans' snake-case reason code (pattern ^[a-z][a-z_]{2,59}$ at plans' route): as requested_service_categories"
    ),
    ("nl.kring.plans.no-plan-reached.v1", "reason_category"): "as second-meeting-needed's reason_category",
    ("nl.kring.referral.received.v1", "bottom_line_requirements[]"): (
        "the bottom-line requirements as the responsible professional wrote them (issue 22): plans checks the "
        "family's plan against each and shows them to the family; internal exchange only, never on partner events "
        "(tests/unit/test_contract.py), redacted in logs (shared.privacy.CONFIDENTIAL_FIELDS), erased with the case"
    ),
}


def _resolve(root: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def free_strings(root: Schema, node: Schema | None = None, path: str = "") -> list[str]:
    """Paths of the string nodes of `root` that are neither enum, const, pattern nor date."""
    node = _resolve(root, root if node is None else node)
    found: list[str] = []
    for option in [*node.get("anyOf", ()), *node.get("oneOf", ()), *node.get("allOf", ())]:
        found += free_strings(root, option, path)
    types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
    if "string" in types and not ({"enum", "const", "pattern"} & node.keys() or node.get("format") in DATE_FORMATS):
        found.append(path or "(event)")
    if "items" in node:
        found += free_strings(root, node["items"], f"{path}[]")
    for name, child in node.get("properties", {}).items():
        found += free_strings(root, child, f"{path}.{name}" if path else name)
    if isinstance(node.get("additionalProperties"), dict):
        found += free_strings(root, node["additionalProperties"], f"{path}{{}}")
    return found


def test_every_string_of_every_event_is_a_code_an_identifier_or_a_date() -> None:
    offenders = {
        (event.type_name(), path)
        for event in CATALOGUE
        for path in free_strings(event.model_json_schema())
    }
    unexplained = sorted(offenders - EXCEPTIONS.keys())
    assert unexplained == [], "make these closed codes (shared/contract/vocabulary.py), or name them in EXCEPTIONS with why"
    assert sorted(EXCEPTIONS.keys() - offenders) == [], "an exception for a string that is a code now (or is gone): remove it"


def test_partner_events_have_no_exception_at_all() -> None:
    partner = {event.type_name() for event in CATALOGUE if event.channel is Channel.PARTNER}
    assert partner and not [key for key in EXCEPTIONS if key[0] in partner]
    for event in CATALOGUE:
        if event.channel is Channel.PARTNER:
            assert free_strings(event.model_json_schema()) == []


def test_the_walk_finds_free_text_where_there_is_some() -> None:
    from pydantic import BaseModel, Field

    class Nested(BaseModel):
        note: str

    class Probe(BaseModel):
        code: str = Field(pattern=r"^[a-z]+$")
        words: list[str] = []
        maybe: str | None = None
        nested: Nested | None = None
        counts: dict[str, str] = {}

    assert sorted(free_strings(Probe.model_json_schema())) == ["counts{}", "maybe", "nested.note", "words[]"]


def test_coordinator_preferences_are_closed_lists() -> None:
    from shared.contract.events import ReferralReceived

    schema = ReferralReceived.model_json_schema()
    preferences = _resolve(schema, schema["properties"]["coordinator_preferences"])
    for name in ("gender", "culture"):
        (coded,) = [_resolve(schema, option) for option in preferences["properties"][name]["anyOf"] if option.get("type") != "null"]
        assert "enum" in coded, name
