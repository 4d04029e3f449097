"""The AsyncAPI documents of the services, generated from their wiring and checked in.

    python -m services.asyncapi          # write docs/asyncapi/
    python -m services.asyncapi --check  # exit 1 if a document is out of date

docs/asyncapi/<service>.yaml is each service's document (shared.messaging.asyncapi builds
it from the service's subscribers and the events it documents; each service also serves
it at /asyncapi.json and /asyncapi); docs/asyncapi/kring.yaml is the one document for
outside parties (intake, replies, partner exchange), and docs/asyncapi/schemas/ holds the
JSON Schemas of what those parties send and receive. Nothing connects: building an app
opens no connection.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from shared.messaging.asyncapi import event_schemas, for_parties
from shared.runtime import PUBLISHED_BROKER, KringService
from shared.settings import KringSettings

SERVICES = ("referral", "scheduling", "plans", "followup")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "asyncapi"
PARTIES = "kring.yaml"


def service(name: str) -> KringService:
    module = importlib.import_module(f"services.{name}.app")
    # The documents name the published broker and the default namespace, not this machine's.
    settings = KringSettings(service_name=name, RABBITMQ_URL=PUBLISHED_BROKER, amqp_prefix="kring")
    kring: KringService = module.create_app(settings).state.kring
    return kring


def dump(specification: dict[str, Any]) -> str:
    return yaml.safe_dump(specification, sort_keys=True, allow_unicode=True, width=100)


def documents() -> dict[str, str]:
    services = {name: service(name) for name in SERVICES}
    specifications = {name: kring.asyncapi() for name, kring in services.items()}
    parties = for_parties(specifications.values(), server=PUBLISHED_BROKER)
    files = {f"{name}.yaml": dump(specification) for name, specification in specifications.items()}
    files[PARTIES] = dump(parties)
    linked = {message["x-kring-json-schema"].rsplit("/", 1)[1] for message in parties["components"]["messages"].values()}
    schemas: dict[str, Any] = {}
    for kring in services.values():
        schemas |= event_schemas(kring)
    for name in sorted(linked):
        files[f"schemas/{name}"] = json.dumps(schemas[name], indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    expected = documents()
    stale = [name for name, text in expected.items() if not (DOCS / name).exists() or (DOCS / name).read_text() != text]
    leftover = sorted(
        str(path.relative_to(DOCS)) for path in DOCS.rglob("*") if path.is_file() and str(path.relative_to(DOCS)) not in expected
    )
    if args.check:
        if stale or leftover:
            print(f"out of date: {', '.join(stale + leftover)} (run: python -m services.asyncapi)", file=sys.stderr)
            return 1
        return 0
    for name in stale:
        (DOCS / name).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / name).write_text(expected[name])
    for name in leftover:
        (DOCS / name).unlink()
    print(f"{len(stale)} documents rewritten, {len(leftover)} removed in {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
