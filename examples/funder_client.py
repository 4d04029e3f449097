"""A funder's client of Kring, written from the published documents only (docs/funders.md,
docs/REPORT.md, the follow-up service's /asyncapi.json and /openapi.json): it imports
nothing of Kring.

    python examples/funder_client.py --funder prov-utrecht \
        --broker amqp://funder-prov-utrecht:PASSWORD@rabbitmq.example:5672/ \
        --followup-url https://followup.kring.example --token "$FUNDER_TOKEN" [--count 1] [--timeout 60]

Every option can come from the environment instead: KRING_FUNDER, KRING_BROKER_URL,
KRING_FOLLOWUP_URL, KRING_TOKEN (a funder token with `org` = your funder id).

1. reads the AsyncAPI document the follow-up service serves: the name of your partner
   queue (operations declared it and bound it to your slice of the partner exchange) and
   the headers every OutcomeRecorded carries;
2. consumes that queue with manual acknowledgements, skipping a cloudEvents_id seen before
   (a redelivery or replay), and prints each outcome (pseudonymous case, period, region,
   execution) until --count outcomes arrived or --timeout passed;
3. fetches your report over HTTP (GET /reports?funder_id=…, optionally --period 2026-Q4).

Exit status: 0 when --count outcomes arrived and the report was read, 1 otherwise.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import aio_pika
import httpx


def options(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--funder", default=env("KRING_FUNDER"), help="your funder id")
    parser.add_argument("--broker", default=env("KRING_BROKER_URL"), help="AMQP URL as funder-<funder>")
    parser.add_argument("--followup-url", default=env("KRING_FOLLOWUP_URL"), help="the follow-up service's base URL")
    parser.add_argument("--token", default=env("KRING_TOKEN"), help="a funder token (role funder, org = your funder id)")
    parser.add_argument("--count", type=int, default=1, help="outcomes to receive before fetching the report")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for them")
    parser.add_argument("--period", help="the report's quarter, e.g. 2026-Q4 (default: all)")
    args = parser.parse_args(argv)
    missing = [name for name in ("funder", "broker", "followup_url", "token") if not getattr(args, name)]
    if missing:
        parser.error(f"missing: {', '.join('--' + name.replace('_', '-') for name in missing)} (or their KRING_* variables)")
    return args


def partner_queue(document: dict[str, Any], funder: str) -> tuple[str, list[str]]:
    """(your queue, the headers an outcome must carry) from the AsyncAPI document."""
    channel = next(c for c in document["channels"].values() if c.get("x-kring-party-queue", {}).get("reader") == "funder-{funder}")
    message = document["components"]["messages"][next(iter(channel["messages"].values()))["$ref"].rsplit("/", 1)[1]]
    return channel["x-kring-party-queue"]["name"].replace("{funder}", funder), message["headers"]["required"]


def header(message: aio_pika.abc.AbstractIncomingMessage, name: str) -> str | None:
    value = (message.headers or {}).get(name)
    return value.decode() if isinstance(value, bytes) else value  # type: ignore[return-value]


async def outcomes(url: str, queue_name: str, required: list[str], count: int, timeout: float) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    seen: set[str] = set()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)  # you may read it, not declare it
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            message = await queue.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.5)
                continue
            event_id = header(message, "cloudEvents_id")
            if message.content_type != "application/json" or any(header(message, name) is None for name in required):
                print(f"not an outcome as documented (message {message.message_id}): left for operations", file=sys.stderr)
                await message.reject(requeue=False)
                continue
            if event_id in seen:
                await message.ack()  # a redelivery or replay: already handled
                continue
            outcome = json.loads(message.body)
            # ... store it in your own system here, then acknowledge ...
            await message.ack()
            seen.add(event_id or "")
            received.append(outcome)
            print(json.dumps({key: outcome.get(key) for key in ("pseudonym", "period", "region", "execution_status", "meeting_count", "conference_number", "subject")}))
    finally:
        await connection.close()
    return received


async def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    async with httpx.AsyncClient(base_url=args.followup_url, timeout=10) as http:
        document = (await http.get("/asyncapi.json")).raise_for_status().json()
        queue_name, required = partner_queue(document, args.funder)
        received = await outcomes(args.broker, queue_name, required, args.count, args.timeout)
        print(f"{len(received)} outcome(s) from {queue_name}")
        query = {"funder_id": args.funder, **({"period": args.period} if args.period else {})}
        response = await http.get("/reports", params=query, headers={"authorization": f"Bearer {args.token}"})
        if response.status_code != 200:
            print(f"GET /reports: {response.status_code} {response.text}", file=sys.stderr)
            return 1
        print("report: " + json.dumps(response.json(), ensure_ascii=False))
    return 0 if len(received) >= args.count else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
