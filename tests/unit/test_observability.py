"""Observability without servers: off by default (no middleware, no listener, no trace
headers in stored events); with tracing on, HTTP spans keep the route template and lose
the path, query, client address and user agent."""

import json
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.scheduling.app import create_app
from shared import observability
from shared.contract.envelope import Envelope
from shared.memory import MemoryStorage
from shared.messaging.publisher import stored_form
from shared.settings import KringSettings
from tests.support.samples import referral_received

pytestmark = pytest.mark.anyio


def settings(**values: Any) -> KringSettings:
    return KringSettings(service_name="scheduling", environment="development", **values)


def test_off_by_default_nothing_is_installed() -> None:
    service = create_app(settings(), storage=MemoryStorage()).state.kring
    assert service.metrics is None and service.tracer_provider is None
    names = {type(middleware).__name__ for middleware in service.broker.middlewares}
    assert not names & {"PrometheusMiddleware", "TelemetryMiddleware", "InternalTraceHeaders"}
    assert "trace" not in stored_form(Envelope.wrap(referral_received(), source="kring/referral"))


async def test_http_spans_name_the_route_never_the_path_query_address_or_agent() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.install_tracer_provider(provider)
    try:
        app = create_app(settings(), storage=MemoryStorage())
    finally:
        observability.install_tracer_provider(None)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://kring.test") as client:
        await client.get("/cases/case-of-fatima?name=Fatima", headers={"user-agent": "Browser-of-Fatima"})
    spans = exporter.get_finished_spans()
    server = [span for span in spans if span.kind.name == "SERVER"]
    assert server and server[0].name == "GET /cases/{case_id}"
    assert server[0].attributes.get("http.route") == "/cases/{case_id}"
    everything = json.dumps([dict(span.attributes or {}) for span in spans]) + json.dumps([span.name for span in spans])
    assert "Fatima" not in everything and "192.0.2.7" not in everything


def test_an_event_written_under_a_span_keeps_its_trace_for_the_relay() -> None:
    from opentelemetry import trace

    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("handling a command") as span:
        entry = stored_form(Envelope.wrap(referral_received(), source="kring/referral"))
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert entry["trace"]["traceparent"].split("-")[1] == trace_id
    assert not trace.get_current_span().get_span_context().is_valid
    with observability.continued_trace(entry["trace"]):
        assert trace.get_current_span().get_span_context().trace_id == span.get_span_context().trace_id
    assert not trace.get_current_span().get_span_context().is_valid
