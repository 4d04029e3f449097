"""A bureau's client of Kring, written from the published documents only (docs/bureaus.md,
the referral service's /asyncapi.json and /openapi.json): it imports nothing of Kring.

    python examples/bureau_client.py --organisation bjz-utrecht \
        --broker amqp://bureau-bjz-utrecht:PASSWORD@rabbitmq.example:5672/ \
        --replies-broker amqp://bureau-bjz-utrecht-replies:PASSWORD@rabbitmq.example:5672/ \
        --referral-url https://referral.kring.example --token "$BUREAU_TOKEN" [--body referral.json]

Every option can come from the environment instead: KRING_ORGANISATION, KRING_BROKER_URL,
KRING_REPLIES_BROKER_URL, KRING_REFERRAL_URL, KRING_TOKEN (a bureau token with your `org`).

1. reads the AsyncAPI document the referral service serves: the intake exchange and routing
   key to publish on, and the name of your replies queue;
2. publishes the referral (a JSON object; without --body the example of docs/bureaus.md) as
   your own broker user, persistent, with content_type application/json, a message_id and
   user_id, publisher confirms and mandatory routing;
3. waits on your replies queue for the answer whose correlation_id is
   `<organisation>:<external reference>` (other answers there are printed and acknowledged);
4. accepted: reads the case over HTTP (GET /cases/{case_id}), and with --follow keeps
   reading until a coordinator is assigned. Rejected: prints every field named.

Exit status: 0 accepted, 2 rejected, 1 no answer in time or an HTTP error.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx

EXAMPLE = {
    "referrer": {"type": "youth_care_bureau", "organisation_id": "{organisation}"},
    "funder_id": "prov-utrecht",
    "region": {"province": "UT", "municipality": "GM0344"},
    "language": "nl",
    "interpreter_needed": False,
    "contact": {"name": "Voorbeeld Ouder", "relation": "mother", "phone": "+31 6 00000000"},
    "children": [{"age": 4}, {"age": 9}],
    "statutory_context": "none",
    "concern_categories": ["parenting"],
    "description": "Voorbeeldverwijzing van het voorbeeldprogramma (example referral).",
    "urgency": "normal",
    "consent": {"given_by": ["parent_with_responsibility"]},
}


def options(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--organisation", default=env("KRING_ORGANISATION"), help="your organisation id")
    parser.add_argument("--broker", default=env("KRING_BROKER_URL"), help="AMQP URL as bureau-<organisation>")
    parser.add_argument("--replies-broker", default=env("KRING_REPLIES_BROKER_URL"), help="AMQP URL as bureau-<organisation>-replies")
    parser.add_argument("--referral-url", default=env("KRING_REFERRAL_URL"), help="the referral service's base URL")
    parser.add_argument("--token", default=env("KRING_TOKEN"), help="a bureau token (role bureau, org = your organisation)")
    parser.add_argument("--body", type=Path, help="a JSON file with the referral (default: the example)")
    parser.add_argument("--reference", help="your external reference (default: a new one)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the answer")
    parser.add_argument("--follow", type=float, default=0, help="seconds to keep reading the case until a coordinator is assigned")
    args = parser.parse_args(argv)
    missing = [name for name in ("organisation", "broker", "replies_broker", "referral_url", "token") if not getattr(args, name)]
    if missing:
        parser.error(f"missing: {', '.join('--' + name.replace('_', '-') for name in missing)} (or their KRING_* variables)")
    return args


def intake_and_replies(document: dict[str, Any], organisation: str) -> tuple[str, str, str]:
    """(intake exchange, routing key, replies queue) from the service's AsyncAPI document."""
    intake = next(
        channel for channel in document["channels"].values()
        if channel["bindings"]["amqp"]["exchange"]["name"].endswith(".intake")
    )  # fmt: skip
    replies = next(channel["x-kring-party-queue"] for channel in document["channels"].values() if channel["address"].startswith("referral.accepted."))
    return intake["bindings"]["amqp"]["exchange"]["name"], intake["address"], replies["name"].replace("{organisation}", organisation)


async def publish(url: str, exchange_name: str, routing_key: str, organisation: str, body: dict[str, Any]) -> str:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(exchange_name, ensure=False)  # you may publish, not declare
        message_id = str(uuid.uuid4())
        message = aio_pika.Message(
            json.dumps(body).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            user_id=f"bureau-{organisation}",
        )
        await exchange.publish(message, routing_key, mandatory=True)  # raises if not confirmed or unroutable
        return message_id
    finally:
        await connection.close()


async def answer(url: str, queue_name: str, correlation_id: str, timeout: float) -> tuple[str, dict[str, Any]]:
    """(routing key, body) of the answer to our command."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)  # declared by operations
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = await queue.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.5)
                continue
            body = json.loads(message.body)
            await message.ack()
            if message.correlation_id == correlation_id:
                return message.routing_key or "", body
            print(f"an answer to another command: {message.correlation_id} {message.routing_key}")
        raise TimeoutError(f"no answer to {correlation_id} within {timeout:.0f} s")
    finally:
        await connection.close()


async def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    organisation = args.organisation
    body = json.loads(args.body.read_text()) if args.body else json.loads(json.dumps(EXAMPLE).replace("{organisation}", organisation))
    body["external_reference"] = args.reference or body.get("external_reference") or f"EX/{uuid.uuid4().hex[:12]}"
    correlation_id = f"{organisation}:{body['external_reference']}"
    async with httpx.AsyncClient(base_url=args.referral_url, timeout=10) as http:
        document = (await http.get("/asyncapi.json")).raise_for_status().json()
        exchange, routing_key, replies = intake_and_replies(document, organisation)
        message_id = await publish(args.broker, exchange, routing_key, organisation, body)
        print(f"sent {routing_key} on {exchange}: message_id {message_id}, reference {body['external_reference']}")
        try:
            kind, reply = await answer(args.replies_broker, replies, correlation_id, args.timeout)
        except TimeoutError as error:
            print(error, file=sys.stderr)
            return 1
        if kind.startswith("referral.rejected."):
            print("rejected:")
            for problem in reply["errors"]:
                print(f"  {problem['field']}: {problem['problem']}")
            return 2
        case_id = reply["case_id"]
        print(f"accepted: case {case_id}" + (" (a resubmission: the same case)" if reply.get("resubmission") else ""))
        headers = {"authorization": f"Bearer {args.token}"}
        deadline = time.monotonic() + args.follow
        while True:
            response = await http.get(f"/cases/{case_id}", headers=headers)
            if response.status_code != 200:
                print(f"GET /cases/{case_id}: {response.status_code} {response.text}", file=sys.stderr)
                return 1
            case = response.json()
            if case["coordinator_id"] or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1)
        print(json.dumps({"case": case["case_id"], "active": case["active"], "consent": case["consent"]["state"], "coordinator": case["coordinator_id"]}))
        return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
