"""What outside parties get is what the published documents say, on the running system.

The four services run as processes. Operations declares a bureau's replies queue and a
funder's partner queue; test-owned probe queues copy every reply and partner message. A
bureau's invalid command is answered ReferralRejected; the example bureau client
(examples/bureau_client.py, run as a subprocess from the documents only) submits a referral,
gets ReferralAccepted and reads its case over HTTP; the demo carries cases to their
outcomes; the example funder client (examples/funder_client.py) receives its
OutcomeRecorded events and fetches its report. Every captured message (the parties' and the
internal events too) is validated against the AsyncAPI document its sender serves at
/asyncapi.json: the exchange and routing key, the AMQP properties, every header (none
undocumented), and the body against the payload schema."""

import asyncio
import json
import os
import re
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import jsonschema_rs
import pytest

from shared.auth import Role, issue_token
from shared.messaging.parties import development_url
from shared.settings import KringSettings
from tests.support.referrals import submit_referral
from tests.support.system import REPO, System, load_demo

pytestmark = [pytest.mark.integration]
BUREAU = "bjz-gelderland"  # no demo case comes from it: its replies queue holds only ours
FUNDER = "prov-utrecht"
SIGNING = KringSettings(service_name="e2e", environment="development")
DEMO_CASES = 6


def validate(schema: dict[str, Any], components: dict[str, Any], instance: Any) -> list[str]:
    return [error.message for error in jsonschema_rs.validator_for({**schema, "components": components}).iter_errors(instance)]


def text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def address_pattern(address: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^.]+", re.escape(address)) + "$")


def check_against_document(message: aio_pika.abc.AbstractIncomingMessage, document: dict[str, Any]) -> list[str]:
    """Everything about `message` the document of its sender says, checked; the problems."""
    headers = {name: text(value) for name, value in (message.headers or {}).items()}
    event_type = headers.get("cloudEvents_type")
    components = document["components"]
    named = [m for m in components["messages"].values() if m["name"] == event_type]
    if not named:
        return [f"{event_type}: no such message in the document"]
    spec = named[0]
    channels = [c for c in document["channels"].values() if any(r["$ref"].endswith(f"/{spec['title']}") for r in c["messages"].values())]
    channel = channels[0]
    problems = []
    if message.exchange != channel["bindings"]["amqp"]["exchange"]["name"] or not address_pattern(channel["address"]).match(message.routing_key or ""):
        problems.append(f"{event_type}: sent on {message.exchange} / {message.routing_key}, documented {channel['title']}")
    properties = {
        "content_type": message.content_type, "delivery_mode": int(message.delivery_mode) if message.delivery_mode else None,
        "message_id": message.message_id, "correlation_id": message.correlation_id, "user_id": message.user_id, "type": message.type,
        "timestamp": int(message.timestamp.timestamp()) if isinstance(message.timestamp, datetime) else message.timestamp,
    }  # fmt: skip
    properties = {name: value for name, value in properties.items() if value is not None}
    problems += [f"{event_type} properties: {p}" for p in validate(spec["x-amqp-properties"], components, properties)]
    problems += [f"{event_type} headers: {p}" for p in validate(spec["headers"], components, headers)]
    undocumented = set(headers) - set(spec["headers"]["properties"])
    if undocumented:
        problems.append(f"{event_type}: undocumented headers {sorted(undocumented)}")
    location = spec["correlationId"]["location"].removeprefix("$message.header#/")
    if headers.get(location) != message.correlation_id or headers.get("cloudEvents_id") != message.message_id:
        problems.append(f"{event_type}: correlation_id/message_id differ from their headers")
    if properties.get("timestamp") != int(datetime.fromisoformat(headers["cloudEvents_time"]).timestamp()):
        problems.append(f"{event_type}: timestamp is not cloudEvents_time")
    problems += [f"{event_type} body: {p}" for p in validate(spec["payload"], components, json.loads(message.body))]
    return problems


async def run_client(script: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    """An example client as a subprocess: its exit status and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "examples" / script), *args, cwd=str(REPO / "examples"),
        env={"PATH": os.environ.get("PATH", ""), **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return process.returncode or 0, output.decode()


async def scenario(system: System, rabbitmq_url: str) -> None:
    prefix = system.prefix
    documents = {service: httpx.get(f"{system.urls[service]}/asyncapi.json").json() for service in system.urls}
    for service in ("referral", "followup"):
        page = httpx.get(f"{system.urls[service]}/asyncapi")
        assert page.status_code == 200 and "<script" not in page.text and "default-src 'none'" in page.headers["content-security-policy"]
        for message in documents[service]["components"]["messages"].values():
            assert httpx.get(system.urls[service] + message["x-kring-json-schema"]).status_code == 200, message["x-kring-json-schema"]

    admin = await aio_pika.connect(rabbitmq_url)  # operations: declares and binds the parties' queues
    channel = await admin.channel()
    replies_queue, partner_queue = f"{prefix}.replies.{BUREAU}", f"{prefix}.partner.{FUNDER}"
    probes = {f"{prefix}.probe.{exchange}.{uuid.uuid4().hex[:6]}": f"{prefix}.{exchange}" for exchange in ("replies", "partner", "events")}
    ours = [replies_queue, partner_queue, *probes]
    try:
        for name in ours:
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await (await channel.get_queue(replies_queue)).bind(f"{prefix}.replies", f"referral.*.{BUREAU}")
        await (await channel.get_queue(partner_queue)).bind(f"{prefix}.partner", f"outcome.recorded.{FUNDER}.#")
        for name, exchange in probes.items():
            await (await channel.get_queue(name)).bind(exchange, "#")

        # A command with an invalid field, as the bureau's broker user: answered, not dropped.
        invalid = {**submit_referral(BUREAU), "children": [{"age": -3}]}
        invalid["referrer"]["organisation_id"] = BUREAU
        invalid.pop("source_organisation_id")
        bureau = await aio_pika.connect(development_url(rabbitmq_url, f"bureau-{BUREAU}"))
        intake = await (await bureau.channel(publisher_confirms=True)).get_exchange(f"{prefix}.intake", ensure=False)
        await intake.publish(
            aio_pika.Message(json.dumps(invalid).encode(), content_type="application/json", message_id=str(uuid.uuid4()),
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=f"bureau-{BUREAU}"),
            "referral.submit",
        )  # fmt: skip
        await bureau.close()

        bureau_env = {
            "KRING_ORGANISATION": BUREAU, "KRING_REFERRAL_URL": system.urls["referral"],
            "KRING_BROKER_URL": development_url(rabbitmq_url, f"bureau-{BUREAU}"),
            "KRING_REPLIES_BROKER_URL": development_url(rabbitmq_url, f"bureau-{BUREAU}-replies"),
            "KRING_TOKEN": issue_token(SIGNING, subject="bureau-system", role=Role.BUREAU, organisation_id=BUREAU, audience="referral"),
        }  # fmt: skip
        status, output = await run_client("bureau_client.py", bureau_env, "--timeout", "60")
        assert status == 0, output
        assert "rejected" in output or "an answer to another command" in output, "the invalid command's answer was on the queue first"
        accepted = re.search(r"accepted: case (case-\S+)", output)
        assert accepted, output
        case = json.loads(output.strip().splitlines()[-1])
        assert case["case"] == accepted.group(1) and case["consent"] == "given" and case["active"] is True

        demo = load_demo()
        await demo.run(DEMO_CASES, 2026, system.urls, rabbitmq_url, timeout=180, quiet=True, prefix=prefix)

        captured: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = {}
        for name in probes:
            probe = await channel.get_queue(name, ensure=False)
            while (message := await probe.get(no_ack=True, fail=False)) is not None:
                captured.setdefault(text((message.headers or {}).get("cloudEvents_type")), []).append(message)
        assert {"nl.kring.referral.accepted.v1", "nl.kring.referral.rejected.v1", "nl.kring.outcome.recorded.v2"} <= captured.keys(), captured.keys()
        problems = []
        for event_type, messages in captured.items():  # each against the document of the service that sends it
            senders = [document for document in documents.values() if f"send.{event_type}" in document["operations"]]
            assert len(senders) == 1, f"{event_type}: sent according to {len(senders)} documents"
            for message in messages:
                problems += check_against_document(message, senders[0])
        assert problems == [], problems[:10]
        internal = {t for t in captured if not t.startswith(("nl.kring.referral.accepted", "nl.kring.referral.rejected", "nl.kring.outcome."))}
        assert len(internal) >= 10, f"the internal events checked too: {sorted(internal)}"
        rejected = [json.loads(m.body) for m in captured["nl.kring.referral.rejected.v1"] if m.routing_key == f"referral.rejected.{BUREAU}"]
        assert rejected and rejected[0]["errors"][0]["field"].startswith("children.0.age")
        for_funder = [m for m in captured["nl.kring.outcome.recorded.v2"] if (m.routing_key or "").startswith(f"outcome.recorded.{FUNDER}.")]
        assert for_funder, "the demo's seed gives the funder outcomes"

        funder_env = {
            "KRING_FUNDER": FUNDER, "KRING_FOLLOWUP_URL": system.urls["followup"],
            "KRING_BROKER_URL": development_url(rabbitmq_url, f"funder-{FUNDER}"),
            "KRING_TOKEN": issue_token(SIGNING, subject="funder-system", role=Role.FUNDER, organisation_id=FUNDER, audience="followup"),
        }  # fmt: skip
        status, output = await run_client("funder_client.py", funder_env, "--count", str(len(for_funder)), "--timeout", "60")
        assert status == 0, output
        assert f"{len(for_funder)} outcome(s) from {partner_queue}" in output, output
        report = json.loads(output.split("report: ", 1)[1])
        assert report  # the funder's own report, read with its token
    finally:
        for name in ours:
            await channel.queue_delete(name)
        await admin.close()


def test_parties_receive_what_the_documents_say_and_the_example_clients_work_from_them(system: System, rabbitmq_url: str) -> None:
    asyncio.run(scenario(system, rabbitmq_url))


def test_example_clients_need_no_kring_code() -> None:
    for script in ("bureau_client.py", "funder_client.py"):
        source = (REPO / "examples" / script).read_text()
        assert not re.search(r"^\s*(from|import) (shared|services|tests)\b", source, re.MULTILINE), script
