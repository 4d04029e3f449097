"""The AsyncAPI documents of the services, generated from their wiring and checked in.

    python -m services.asyncapi          # write docs/asyncapi/<service>.yaml and command schemas
    python -m services.asyncapi --check  # exit 1 if a document is out of date

They are the published contract for bureaus (intake) and funders (partner exchange).
Nothing connects: building an app opens no connection.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

from shared.settings import KringSettings

SERVICES = ("referral", "scheduling", "plans", "followup")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "asyncapi"
# The documents name this broker, not whatever this machine's environment points at.
PUBLISHED_BROKER = "amqp://rabbitmq.kring.example:5672/"


def document(service: str) -> str:
    module = importlib.import_module(f"services.{service}.app")
    settings = KringSettings(service_name=service, RABBITMQ_URL=PUBLISHED_BROKER)
    app = module.create_app(settings)
    specification = app.state.kring.asyncapi().to_specification().to_jsonable()
    # Sorted: FastStream's own order of channels varies between runs.
    return yaml.safe_dump(specification, sort_keys=True, allow_unicode=True, width=100)


def command_schemas() -> dict[str, str]:
    """JSON Schemas of the commands outsiders send (the AsyncAPI document links them)."""
    from services.referral.domain import SubmitReferral

    return {"submit-referral.schema.json": json.dumps(SubmitReferral.model_json_schema(), indent=2, sort_keys=True) + "\n"}


def documents() -> dict[str, str]:
    return {f"{service}.yaml": document(service) for service in SERVICES} | command_schemas()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    stale = []
    DOCS.mkdir(parents=True, exist_ok=True)
    for filename, text in documents().items():
        path = DOCS / filename
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} (run: python -m services.asyncapi)", file=sys.stderr)
        return 1
    if not args.check:
        print(f"{len(stale)} documents rewritten in {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
