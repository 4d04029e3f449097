"""The broker's users, permissions and policies, written as RabbitMQ definitions.

    python deploy/rabbitmq/definitions.py > deploy/rabbitmq/definitions.json
    python deploy/rabbitmq/definitions.py --development > deploy/rabbitmq/definitions.development.json

Which file is which:
- definitions.json: production's parties in namespace `kring` (the example bureau and funder;
  operations add each real bureau and funder the same way), loaded at boot (rabbitmq.conf).
  Passwords are development values; production sets its own with
  `rabbitmqctl change_password`.
- definitions.development.json (`--development`): the same parties plus the development
  bureaus and funders that tests, scripts/demo.py and bench/ use, passwords
  `<user>-dev-password`, and resource permissions for ANY namespace (tests and benchmarks
  each run in a namespace of their own). scripts/infra.sh imports it into the local broker;
  docker-compose.yml's broker loads it at boot.

Least privilege, one user per party:
- each service (`kring-<service>`): declares and reads only its own queues (and their DLQs);
  publishes only to the exchanges it sends on, and on `<prefix>.events` (topic permission)
  only the routing keys of the events it produces (shared.contract.events Event.producer());
  every message it publishes carries its user_id, which the broker validates and consumers
  check against the event's producer;
- a bureau (`bureau-<organisation>`): publishes `referral.submit` on the intake exchange,
  nothing else, and cannot consume; the intake takes the bureau's organisation from this
  user. Its answers are read by a separate reader user that may only consume the bureau's
  own replies queue (`<prefix>.replies.<bureau>`, declared by operations);
- a funder (`funder-<funder>`): consumes only its own partner queue
  (`<prefix>.partner.<funder>`, declared and bound by operations to its slice of the partner
  exchange), publishes nothing;
- kring-ops: administrator and impersonator (a dead-letter redrive keeps the original
  sender's user_id).
Topic permissions name one exchange each, so they hold for the `<prefix>` given here; a
harness that runs in a namespace of its own applies the same rules to its exchanges
(`topic_permissions(namespace)`, tests/support/harness.py).
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.contract.events import CATALOGUE, Channel, Event  # noqa: E402

SERVICES = {
    # service: exchanges it publishes to (amq.default: follow-up replays into one funder's queue)
    "referral": ("events", "replies", "dead-letter"),
    "scheduling": ("events", "dead-letter"),
    "plans": ("events", "dead-letter"),
    "followup": ("events", "partner", "dead-letter", "amq.default"),
}
EXCHANGES = ("events", "partner", "replies", "intake", "dead-letter", "unrouted")
EXAMPLE_BUREAUS = ("bjz-utrecht",)
EXAMPLE_FUNDERS = ("prov-utrecht",)
# grep tests/ scripts/demo.py bench/ for bureau and funder ids when adding one
DEVELOPMENT_BUREAUS = (
    "bjz-utrecht", "bjz-noord-holland", "bjz-bench", "bjz-ops", "bjz-old", "bjz-fuzz", "bjz-matrix", "bjz-nh",
    "bjz-gelderland", "bjz-a", "bjz-b",
)  # fmt: skip
DEVELOPMENT_FUNDERS = ("prov-utrecht", "prov-noord-holland", "prov-nh", "gm-utrecht", "gm-ops", "gm-redrive", "gm-amsterdam", "gm-a", "gm-b")
# settings.amqp_prefix's own pattern: in development any namespace
ANY_NAMESPACE = "[a-z][a-z0-9_-]*"
NOTHING = "^$"
EVERYTHING = ".*"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt or os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def development_password(user: str) -> str:
    return f"{user}-dev-password"


def _any_of(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def produced(service: str, channel: Channel) -> list[type[Event]]:
    return [event for event in CATALOGUE if event.producer() == service and event.channel is channel]


def _routing_keys(service: str) -> dict[str, str]:
    """Exchange (without prefix) → write regex on routing keys for `service`."""
    events = [event.binding_key() for event in produced(service, Channel.EVENTS)]
    keys = {"events": _any_of(events)}
    if produced(service, Channel.REPLIES):
        keys["replies"] = "^(" + "|".join(re.escape(e.name) for e in produced(service, Channel.REPLIES)) + r")\.[^.]+$"
    if produced(service, Channel.PARTNER):
        keys["partner"] = "^(" + "|".join(re.escape(e.name) for e in produced(service, Channel.PARTNER)) + r")\..+$"
    return keys


def permissions(
    prefix: str, *, namespace: str | None = None, bureaus: tuple[str, ...] = EXAMPLE_BUREAUS, funders: tuple[str, ...] = EXAMPLE_FUNDERS
) -> dict[str, dict[str, Any]]:
    """user → {configure, write, read, topic: {exchange: (write, read)}, tags}.

    `namespace` is a regex for the prefix in resource permissions (default: `prefix`
    itself); topic permissions are for the exchanges of `prefix`."""
    p = namespace or re.escape(prefix)
    exchanges = "|".join(rf"{p}\.{re.escape(name)}" for name in EXCHANGES)
    users: dict[str, dict[str, Any]] = {}
    for service, publishes_to in SERVICES.items():
        own_queues = rf"{p}\.{service}\..*"
        targets = "|".join(re.escape(e) if e.startswith("amq.") else rf"{p}\.{re.escape(e)}" for e in publishes_to)
        users[f"kring-{service}"] = {
            # declare the shared topology (idempotent) and its own queues
            "configure": rf"^({exchanges}|{own_queues})$",
            "write": rf"^({targets}|{own_queues}|{p}\.unrouted)$",
            "read": rf"^({exchanges}|{own_queues})$",
            "topic": {f"{prefix}.{exchange}": (keys, EVERYTHING) for exchange, keys in _routing_keys(service).items()},
            "tags": [],
        }
    for bureau in bureaus:
        users[f"bureau-{bureau}"] = {
            "configure": NOTHING,
            "write": rf"^{p}\.intake$",
            "read": NOTHING,
            "topic": {f"{prefix}.intake": (r"^referral\.submit$", NOTHING)},
            "tags": [],
        }
        users[f"bureau-{bureau}-replies"] = {
            "configure": NOTHING,
            "write": NOTHING,
            "read": rf"^{p}\.replies\.{re.escape(bureau)}$",
            "topic": {},
            "tags": [],
        }
    for funder in funders:
        users[f"funder-{funder}"] = {
            "configure": NOTHING,
            "write": NOTHING,
            "read": rf"^{p}\.partner\.{re.escape(funder)}$",
            "topic": {f"{prefix}.{exchange}": (NOTHING, NOTHING) for exchange in ("events", "partner", "intake", "replies")},
            "tags": [],
        }
    users["kring-ops"] = {"configure": EVERYTHING, "write": EVERYTHING, "read": EVERYTHING, "topic": {}, "tags": ["administrator", "impersonator"]}
    return users


def topic_permissions(users: dict[str, dict[str, Any]], vhost: str) -> list[dict[str, str]]:
    return [
        {"user": name, "vhost": vhost, "exchange": exchange, "write": write, "read": read}
        for name, s in users.items()
        for exchange, (write, read) in s["topic"].items()
    ]


def definitions(vhost: str, prefix: str, *, development: bool = False) -> dict[str, Any]:
    if development:
        users = permissions(prefix, namespace=ANY_NAMESPACE, bureaus=DEVELOPMENT_BUREAUS, funders=DEVELOPMENT_FUNDERS)
    else:
        users = permissions(prefix)
    return {
        "rabbit_version": "3.10.8",
        "users": [
            {
                "name": name,
                "password_hash": password_hash(development_password(name), salt=hashlib.sha256(name.encode()).digest()[:4]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": spec["tags"],
                "limits": {},
            }
            for name, spec in users.items()
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": name, "vhost": vhost, "configure": s["configure"], "write": s["write"], "read": s["read"]}
            for name, s in users.items()
        ],
        "topic_permissions": topic_permissions(users, vhost),
        "policies": [
            {
                "vhost": vhost,
                "name": "kring-quorum-safety",
                "pattern": rf"^{re.escape(prefix)}\.",
                "apply-to": "queues",
                "priority": 0,
                "definition": {"overflow": "reject-publish", "dead-letter-strategy": "at-least-once"},
            }
        ],
        "parameters": [],
        "global_parameters": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--prefix", default="kring")
    parser.add_argument("--development", action="store_true", help="development parties, any namespace")
    args = parser.parse_args(argv)
    json.dump(definitions(args.vhost, args.prefix, development=args.development), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
