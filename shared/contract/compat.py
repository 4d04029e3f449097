"""Is a new JSON Schema of an event version a breaking change to the published one?

Breaking (a consumer written against the old schema, or a message valid under it, fails):
a removed property; a property whose type, format, pattern or nullability changed; a new
required property or one that became required; a required property that became optional;
enum values removed or a const changed; additional properties no longer allowed.

Allowed: new optional properties, new enum values (deploy consumers before producers),
descriptions, titles, defaults and examples.
Pure standard library: it runs before anything else is installed.

A breaking change is made only as a new event version, and only the two lists below may
excuse what the check finds, each entry naming exactly what it excuses and why:
- RETIRED: a published event version taken out of service on purpose; its checked-in schema
  stays as the record of what was published, and no model produces it any more;
- ACCEPTED: one breaking change of one published schema, named as the check reports it.
"""

from typing import Any

Schema = dict[str, Any]
MAX_DEPTH = 40

RETIRED: dict[str, str] = {
    "nl.kring.outcome.recorded.v1.json": (
        "issue 23: carried the case id every service shares (data, subject and correlation id), "
        "so funders could link one another's records of a case; replaced by "
        "nl.kring.outcome.recorded.v2 (the funder's own pseudonym instead, same routing key). "
        "A breaking change for funders, announced in docs/funders.md"
    ),
}

ACCEPTED: dict[tuple[str, str], str] = {
    # ReferralReceived goes to scheduling, plans and follow-up only (never a bureau or funder):
    # the family's free text no longer leaves referral. Deploy referral first (it stops
    # sending text, and refuses it at intake), then the consumers.
    ("nl.kring.referral.received.v1.json", "coordinator_preferences.gender: retyped from string to enum"): (
        "issue 23: free text became the closed list Gender"
    ),
    ("nl.kring.referral.received.v1.json", "coordinator_preferences.culture: retyped from string to enum"): (
        "issue 23: free text became the closed list CulturalBackground"
    ),
}


def unexcused(filename: str, changes: list[str]) -> list[str]:
    """The breaking changes of `filename` that ACCEPTED does not name."""
    return [change for change in changes if (filename, change) not in ACCEPTED]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    changes: list[str] = []
    _compare(_Side(old), _Side(new), "", changes, depth=0)
    return changes


class _Side:
    """One schema document, able to resolve its own `$ref`s into `$defs`."""

    def __init__(self, root: Schema, node: Schema | None = None) -> None:
        self.root = root
        self.node = self.resolve(root if node is None else node)

    def resolve(self, node: Schema) -> Schema:
        node = dict(node)
        while True:
            if "$ref" in node:
                target = self._lookup(node.pop("$ref"))
                node = {**target, **node}
            elif len(node.get("allOf", ())) == 1:
                (only,) = node.pop("allOf")
                node = {**only, **node}
            else:
                return node

    def _lookup(self, ref: str) -> Schema:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        target: Any = self.root
        for part in ref[2:].split("/"):
            target = target[part]
        return target

    def child(self, node: Schema) -> "_Side":
        return _Side(self.root, node)

    def alternatives(self) -> tuple[list["_Side"], bool]:
        """The non-null alternatives of this node and whether null is allowed."""
        options = self.node.get("anyOf") or self.node.get("oneOf")
        if options is None:
            if isinstance(self.node.get("type"), list):
                types = self.node["type"]
                rest = {k: v for k, v in self.node.items() if k != "type"}
                return [self.child({**rest, "type": t}) for t in types if t != "null"], "null" in types
            return ([] if self.node.get("type") == "null" else [self]), self.node.get("type") == "null"
        sides = [self.child(option) for option in options]
        nullable = any(side.node.get("type") == "null" for side in sides)
        return [side for side in sides if side.node.get("type") != "null"], nullable

    @property
    def kind(self) -> str:
        if "const" in self.node:
            return f"const {type(self.node['const']).__name__}"
        if "enum" in self.node:
            return "enum"
        if "type" in self.node:
            return str(self.node["type"])
        if "properties" in self.node:
            return "object"
        return "any"


def _compare(old: _Side, new: _Side, path: str, changes: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    where = path or "(event)"
    old_options, old_nullable = old.alternatives()
    new_options, new_nullable = new.alternatives()
    if old_nullable != new_nullable:
        changes.append(f"{where}: {'may now be null' if new_nullable else 'can no longer be null'}")
    if len(old_options) == 1 and len(new_options) == 1:
        _compare_single(old_options[0], new_options[0], path, changes, depth)
        return
    old_kinds = sorted(side.kind for side in old_options)
    new_kinds = sorted(side.kind for side in new_options)
    if old_kinds != new_kinds:
        changes.append(f"{where}: retyped from {' | '.join(old_kinds)} to {' | '.join(new_kinds)}")


def _compare_single(old: _Side, new: _Side, path: str, changes: list[str], depth: int) -> None:
    where = path or "(event)"
    if old.kind != new.kind:
        changes.append(f"{where}: retyped from {old.kind} to {new.kind}")
        return
    for keyword in ("format", "pattern"):
        if old.node.get(keyword) != new.node.get(keyword):
            changes.append(f"{where}: {keyword} changed from {old.node.get(keyword)!r} to {new.node.get(keyword)!r}")
    if "const" in old.node and old.node["const"] != new.node["const"]:
        changes.append(f"{where}: const changed from {old.node['const']!r} to {new.node['const']!r}")
    if "enum" in old.node:
        removed = [value for value in old.node["enum"] if value not in new.node["enum"]]
        if removed:
            changes.append(f"{where}: enum values removed: {', '.join(map(str, removed))}")
    if "items" in old.node and "items" in new.node:
        _compare(old.child(old.node["items"]), new.child(new.node["items"]), f"{path}[]", changes, depth + 1)
    _compare_object(old, new, path, changes, depth)


def _compare_object(old: _Side, new: _Side, path: str, changes: list[str], depth: int) -> None:
    prefix = f"{path}." if path else ""
    old_properties: Schema = old.node.get("properties", {})
    new_properties: Schema = new.node.get("properties", {})
    old_required = set(old.node.get("required", ()))
    new_required = set(new.node.get("required", ()))
    for name, schema in old_properties.items():
        if name not in new_properties:
            changes.append(f"{prefix}{name}: removed")
            continue
        _compare(old.child(schema), new.child(new_properties[name]), f"{prefix}{name}", changes, depth + 1)
    for name in sorted(new_required - old_required):
        what = "became required" if name in old_properties else "new required field"
        changes.append(f"{prefix}{name}: {what}")
    for name in sorted(old_required - new_required):
        if name in new_properties:
            changes.append(f"{prefix}{name}: no longer required")
    old_extra, new_extra = old.node.get("additionalProperties", True), new.node.get("additionalProperties", True)
    if new_extra is False and old_extra is not False:
        changes.append(f"{path or '(event)'}: additional properties no longer allowed")
    elif isinstance(old_extra, dict) and isinstance(new_extra, dict):
        _compare(old.child(old_extra), new.child(new_extra), f"{path}{{}}", changes, depth + 1)
