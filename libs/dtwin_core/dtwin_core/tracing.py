"""OpenTelemetry for dtwin's services: one `setup()` per process, and W3C trace context carried over MQTT v5.

Configuration is the SDK's standard environment (nothing dtwin-specific to learn): `OTEL_TRACES_EXPORTER` is
`otlp` (HTTP/protobuf to `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. an OpenTelemetry Collector or Jaeger), `console`
(JSON spans on stdout, what the tests read) or `none`, the default; `OTEL_SDK_DISABLED=true` turns it all off;
`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the process; `OTEL_TRACES_SAMPLER` picks the sampler.

Across MQTT: a publisher puts the `traceparent` (and `tracestate`) of its span into MQTT v5 user properties,
the W3C Trace Context wire format; `context_from_user_properties` reads them back on the other side. A bridge
commits thousands of messages in one batch, so the batch span *links* to the senders' contexts (the
OpenTelemetry pattern for batch receivers) rather than being a child of any one of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
HEADERS = ("traceparent", "tracestate")


def setup(service: str, **attributes: str) -> TracerProvider | None:
    """Install the process's tracer provider from the OTEL_* environment; None when tracing is off."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or exporter in ("", "none"):
        return None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service), **attributes})
    provider = TracerProvider(resource=resource)
    if exporter == "console":
        # Simple (synchronous) so every ended span is on stdout before the process exits, even on SIGTERM.
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter!r}: dtwin supports otlp, console and none")
    trace.set_tracer_provider(provider)
    return provider


def user_properties(ctx: Context | None = None) -> list[tuple[str, str]]:
    """The current (or given) span context as MQTT v5 user properties; empty when there is no recording span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return [(k, carrier[k]) for k in HEADERS if k in carrier]


def context_from_user_properties(pairs: Iterable[tuple[str, str]]) -> Context | None:
    """The sender's context from MQTT v5 user properties; None when they carry none (or a malformed one)."""
    carrier = {k: v for k, v in pairs if k in HEADERS}
    if "traceparent" not in carrier:
        return None
    ctx = _PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def span_context_from_user_properties(pairs: Iterable[tuple[str, str]]) -> trace.SpanContext | None:
    """Like `context_from_user_properties`, as the SpanContext a `Link` needs."""
    ctx = context_from_user_properties(pairs)
    return None if ctx is None else trace.get_current_span(ctx).get_span_context()
