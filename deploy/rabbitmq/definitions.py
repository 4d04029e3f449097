"""The broker's users, permissions and policies, written to definitions.json.

    python deploy/rabbitmq/definitions.py [--vhost /] [--prefix kring] > deploy/rabbitmq/definitions.json

Least privilege, one user per party (passwords here are development values; production
sets its own with `rabbitmqctl change_password`):
- each service: declares and reads only its own queues (and their DLQs), publishes only to
  the exchanges it sends on;
- a bureau: publishes `referral.submit` on the intake exchange, nothing else, and cannot
  consume; its answers are read by a separate reader user that may only consume the
  bureau's own replies queue (`<prefix>.replies.<bureau>`, declared by operations);
- a funder: consumes only its own partner queue (`<prefix>.partner.<funder>`, declared and
  bound by operations to its slice of the partner exchange), publishes nothing;
- ops: administrator.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
from typing import Any

SERVICES = {
    # service: exchanges it publishes to
    "referral": ("events", "replies", "dead-letter"),
    "scheduling": ("events", "dead-letter"),
    "plans": ("events", "dead-letter"),
    "followup": ("events", "partner", "dead-letter"),
}
EXCHANGES = ("events", "partner", "replies", "intake", "dead-letter", "unrouted")
EXAMPLE_BUREAUS = ("bjz-utrecht",)
EXAMPLE_FUNDERS = ("prov-utrecht",)
NOTHING = "^$"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt or os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _any_of(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def permissions(prefix: str) -> dict[str, dict[str, Any]]:
    """user → {configure, write, read, topic: {exchange: (write, read)}, tags}."""
    p = re.escape(prefix)
    exchanges = [f"{prefix}.{name}" for name in EXCHANGES]
    users: dict[str, dict[str, Any]] = {}
    for service, publishes_to in SERVICES.items():
        own_queues = rf"{p}\.{service}\..*"
        users[f"kring-{service}"] = {
            # declare the shared topology (idempotent) and its own queues
            "configure": rf"^({'|'.join(re.escape(e) for e in exchanges)}|{p}\.unrouted|{own_queues})$",
            "write": rf"^({'|'.join(re.escape(f'{prefix}.{e}') for e in publishes_to)}|{own_queues}|{p}\.unrouted)$",
            "read": rf"^({'|'.join(re.escape(e) for e in exchanges)}|{own_queues})$",
            "topic": {},
            "tags": [],
        }
    for bureau in EXAMPLE_BUREAUS:
        users[f"bureau-{bureau}"] = {
            "configure": NOTHING,
            "write": _any_of([f"{prefix}.intake"]),
            "read": NOTHING,
            "topic": {f"{prefix}.intake": (r"^referral\.submit$", NOTHING)},
            "tags": [],
        }
        users[f"bureau-{bureau}-replies"] = {
            "configure": NOTHING,
            "write": NOTHING,
            "read": _any_of([f"{prefix}.replies.{bureau}"]),
            "topic": {},
            "tags": [],
        }
    for funder in EXAMPLE_FUNDERS:
        users[f"funder-{funder}"] = {
            "configure": NOTHING,
            "write": NOTHING,
            "read": _any_of([f"{prefix}.partner.{funder}"]),
            "topic": {},
            "tags": [],
        }
    users["kring-ops"] = {"configure": ".*", "write": ".*", "read": ".*", "topic": {}, "tags": ["administrator"]}
    return users


def definitions(vhost: str, prefix: str) -> dict[str, Any]:
    users = permissions(prefix)
    return {
        "rabbit_version": "3.10.8",
        "users": [
            {
                "name": name,
                "password_hash": password_hash(f"{name}-dev-password", salt=hashlib.sha256(name.encode()).digest()[:4]),
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
        "topic_permissions": [
            {"user": name, "vhost": vhost, "exchange": exchange, "write": write, "read": read}
            for name, s in users.items()
            for exchange, (write, read) in s["topic"].items()
        ],
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
    args = parser.parse_args(argv)
    json.dump(definitions(args.vhost, args.prefix), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
