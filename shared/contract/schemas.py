"""JSON Schemas of the catalogue, generated from the models and checked in.

    python -m shared.contract.schemas          # write shared/contract/jsonschema/*.json
    python -m shared.contract.schemas --check  # exit 1 if out of date or breaking

A checked-in schema is the published contract of that event version. Writing refuses a
breaking change to it (see shared.contract.compat): publish a new event version instead.
A retired version's schema (compat.RETIRED) stays checked in, untouched.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .compat import RETIRED, breaking_changes, unexcused
from .events import CATALOGUE, Event

SCHEMA_DIR = Path(__file__).parent / "jsonschema"


def schema_of(event: type[Event]) -> dict[str, Any]:
    schema = event.model_json_schema()
    schema["$id"] = f"urn:{event.type_name()}"
    schema["x-routing-key"] = event.binding_key()
    schema["x-exchange"] = event.channel.value
    return schema


def generated() -> dict[str, dict[str, Any]]:
    return {f"{event.type_name()}.json": schema_of(event) for event in CATALOGUE}


def checked_in() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.json"))}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def problems() -> tuple[list[str], list[str]]:
    """(breaking changes against the checked-in schemas, files out of date)."""
    published = checked_in()
    breaking, stale = [], []
    for filename, schema in generated().items():
        old = published.get(filename)
        if old is None:
            stale.append(f"{filename}: not checked in")
            continue
        breaking += [f"{filename}: {change}" for change in unexcused(filename, breaking_changes(old, schema))]
        if render(old) != render(schema):
            stale.append(f"{filename}: differs from the models")
    for filename in sorted(published.keys() - generated().keys() - RETIRED.keys()):
        breaking.append(f"{filename}: published schema has no model any more")
    for filename in sorted(RETIRED.keys() & generated().keys()):
        breaking.append(f"{filename}: retired (shared.contract.compat.RETIRED) but a model produces it again")
    for filename in sorted(RETIRED.keys() - published.keys()):
        stale.append(f"{filename}: retired, but its published schema is no longer checked in (keep it as the record)")
    return breaking, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    breaking, stale = problems()
    for line in breaking:
        print(f"BREAKING {line}", file=sys.stderr)
    if breaking:
        print("Refusing: make the change additive, or add a new version of the event.", file=sys.stderr)
        return 1
    if args.check:
        for line in stale:
            print(f"STALE {line}", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for filename, schema in generated().items():
        (SCHEMA_DIR / filename).write_text(render(schema))
    print(f"wrote {len(generated())} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
