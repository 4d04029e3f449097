"""What operations see, on the real servers: /metrics of running services (their own port,
not the public one), the Kring gauges moving when an outbox event or a dead letter waits,
one trace across two services for one bureau command, and the alert rules and dashboard
naming only metrics the services really export."""

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.followup.app import create_app as followup_app
from services.plans.app import create_app as plans_app
from services.referral.app import create_app as referral_app
from services.scheduling.app import create_app as scheduling_app
from shared import observability
from shared.auth import Role
from shared.contract.envelope import Envelope
from shared.runtime import KringService
from tests.support.harness import Harness
from tests.support.referrals import PERSONAL_VALUES, submit_referral
from tests.support.samples import referral_received
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


async def scrape(service: KringService) -> str:
    assert service.metrics is not None and service.metrics_listener is not None
    service.metrics.invalidate()  # the gauges afresh, not the last five seconds' values
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{service.metrics_listener.port}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def samples(text: str) -> dict[tuple[str, str], float]:
    """{(name, labels): value} of an exposition."""
    found = {}
    for line in text.splitlines():
        if (match := SAMPLE.match(line)) is not None:
            found[(match[1], match[2] or "")] = float(match[3])
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` whose labels include `labels`."""
    wanted = [f'{key}="{label}"' for key, label in labels.items()]
    matching = [v for (n, l), v in samples(text).items() if n == name and all(w in l for w in wanted)]
    assert len(matching) <= 1, (name, labels, matching)
    return matching[0] if matching else None


def exported_names(text: str) -> set[str]:
    names = {name for name, _ in samples(text)}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names |= {name} | ({f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else set())
    return names


async def test_metrics_count_handled_messages_and_the_gauges_follow_waiting_events_and_dead_letters(kring: Harness) -> None:
    app = kring.app(scheduling_app, "scheduling", metrics_port=0)
    service = await kring.start(app.state.kring)
    queue = kring.topology.queue_name("scheduling", "referral.received")

    case = referral_received()
    await kring.publish(Envelope.wrap(case, source="kring/referral"))
    cases = service.stores["cases"]
    await eventually(lambda: _exists(cases, case.case_id))

    last: dict[str, str] = {}

    async def scraped(name: str, expected: float, **labels: str) -> bool:
        last["text"] = await scrape(service)
        return value(last["text"], name, **labels) == expected

    handler = f"{kring.topology.events.name}.referral.received"
    await eventually(lambda: scraped("faststream_received_processed_messages_total", 1, app_name="scheduling", status="acked", handler=handler))
    text = last["text"]
    assert value(text, "faststream_received_processed_messages_duration_seconds_count", app_name="scheduling", handler=handler) == 1
    assert (value(text, "faststream_published_messages_total", status="success") or 0) >= 1, "the relay's publications"
    assert value(text, "kring_queue_consumers", queue=queue) == 1
    assert value(text, "kring_dlq_messages", queue=queue) == 0
    assert value(text, "kring_outbox_pending_events", store="cases") == 0
    assert value(text, "kring_outbox_oldest_event_age_seconds", store="cases") == 0
    assert value(text, "kring_scheduling_cases_waiting") is not None
    assert value(text, "kring_scheduling_sixty_day_share_at_risk") is not None
    assert "case_id" not in text and case.case_id not in text, "no case id in a label"

    # an event made to wait: the relay stopped, a change stores its events in the outbox
    await service.relay.stop()
    second = referral_received()
    await kring.publish(Envelope.wrap(second, source="kring/referral"))
    await eventually(lambda: _exists(cases, second.case_id))
    await asyncio.sleep(1.2)
    text = await scrape(service)
    assert (value(text, "kring_outbox_pending_events", store="cases") or 0) >= 1
    assert (value(text, "kring_outbox_oldest_event_age_seconds", store="cases") or 0) >= 1.0

    # a dead letter made to wait: ReferralReceived from a service that may not send it
    impostor = await kring.publisher_as("kring-plans")
    await impostor.publish(Envelope.wrap(referral_received(), source="kring/referral"))

    await eventually(lambda: scraped("kring_dlq_messages", 1, queue=queue))
    text = last["text"]
    assert value(text, "kring_dead_lettered_total", queue=queue, cause="invalid") == 1

    # the service's public port has no /metrics; the metrics port nothing else
    async with kring.http(app) as client:
        assert (await client.get("/metrics")).status_code == 404
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{service.metrics_listener.port}/health/ready")).status_code == 404


async def test_http_requests_are_counted_by_route_template_not_by_path(kring: Harness) -> None:
    app = kring.app(scheduling_app, "scheduling", metrics_port=0)
    service = await kring.start(app.state.kring)
    async with kring.http(app, kring.token(Role.OPS)) as client:
        assert (await client.get("/cases/case-0000-not-there")).status_code == 404
        await client.get("/no/such/route/for-anybody")
    text = await scrape(service)
    assert value(text, "kring_http_requests_total", route="/cases/{case_id}", status="404", method="GET") == 1
    assert value(text, "kring_http_requests_total", route="(unmatched)", status="404") == 1
    assert "case-0000-not-there" not in text and "for-anybody" not in text


async def _exists(store: Any, key: str) -> bool:
    return await store.get(key) is not None


@pytest.fixture
def spans() -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.install_tracer_provider(provider)
    try:
        yield exporter
    finally:
        observability.install_tracer_provider(None)


async def test_one_trace_follows_a_bureau_command_from_referral_into_scheduling(kring: Harness, spans: InMemorySpanExporter) -> None:
    referral = await kring.start(kring.app(referral_app, "referral").state.kring)
    scheduling = await kring.start(kring.app(scheduling_app, "scheduling").state.kring)
    events = await kring.probe(kring.topology.events.name, "referral.received")
    replies = await kring.probe(kring.topology.replies.name, "#")

    await kring.send_command("referral.submit", submit_referral("bjz-utrecht"), bureau="bjz-utrecht", correlation_id="bureau-chosen-id")
    received_by_scheduling = f"{kring.topology.events.name}.referral.received process"

    def finished() -> list[Any]:
        return [span for span in spans.get_finished_spans() if span.name == received_by_scheduling]

    await eventually(lambda: bool(finished()), timeout=30)
    [consumed] = finished()
    command = [s for s in spans.get_finished_spans() if s.name == f"{kring.topology.intake.name}.referral.submit process"]
    assert len(command) == 1
    trace_id = command[0].context.trace_id
    assert consumed.context.trace_id == trace_id, "scheduling's handling is in the trace of the bureau's command"
    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    assert any(s.name.endswith("referral.received publish") for s in in_trace), "the relay's publication too"
    assert any(s.attributes.get("db.system") == "mongodb" for s in in_trace), "and the database commands"

    # the case id on internal spans only; nothing a person wrote anywhere
    assert consumed.attributes.get("messaging.message.conversation_id"), "the (pseudonymous) case on the internal event"
    assert "messaging.message.conversation_id" not in command[0].attributes, "not the id a bureau chose"
    everything = json.dumps([dict(s.attributes or {}) for s in spans.get_finished_spans()], default=str)
    assert not [v for v in PERSONAL_VALUES if v in everything]

    # the trace context travels between services, not to the bureau
    [event] = await kring.drain(events.name)
    assert "traceparent" in (event.headers or {})
    answers = await kring.drain(replies.name)
    assert answers and all("traceparent" not in (a.headers or {}) for a in answers)
    assert referral.tracer_provider is scheduling.tracer_provider is not None


async def test_alert_rules_and_the_dashboard_name_only_metrics_the_services_export(kring: Harness) -> None:
    exported: set[str] = set()
    for create, name in ((referral_app, "referral"), (scheduling_app, "scheduling"), (plans_app, "plans"), (followup_app, "followup")):
        service = await kring.start(kring.app(create, name, metrics_port=0).state.kring)
        exported |= exported_names(await scrape(service))
    exported.add("up")  # Prometheus's own, per scrape target

    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {alert["alert"] for alert in alerts}
    assert {"KringDeadLetters", "KringOutboxStuck", "KringFollowUpsOverdue", "KringConsumerGone"} <= names
    runbook = (DEPLOY.parent / "docs" / "RUNBOOK.md").read_text()
    for alert in alerts:
        used = metric_names(alert["expr"])
        assert used and used <= exported, (alert["alert"], used - exported)
        assert alert["alert"] in runbook, f"{alert['alert']} has no runbook entry"
        assert alert["annotations"]["runbook"].startswith("docs/RUNBOOK.md#")

    dashboard = json.loads((DEPLOY / "grafana" / "kring.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 8
    for expr in expressions:
        used = metric_names(expr)
        assert used and used <= exported, (expr, used - exported)


def metric_names(expr: str) -> set[str]:
    """The series an expression reads (Kring's, FastStream's, up): label matchers and
    `by (...)` lists taken out first."""
    bare = re.sub(r"\{[^}]*\}", "", expr)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    return {token for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if token.startswith(("kring_", "faststream_")) or token == "up"}
