"""W3C trace context through MQTT v5 user properties, both ways."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from dtwin_core import tracing


def test_user_properties_round_trip_the_current_span() -> None:
    tracer = TracerProvider().get_tracer("t")  # a recording tracer without touching the global provider
    with tracer.start_as_current_span("publish") as span:
        pairs = tracing.user_properties()
    sc = span.get_span_context()
    assert pairs == [("traceparent", f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}")]
    got = tracing.span_context_from_user_properties([("other", "x"), *pairs])
    assert got is not None and (got.trace_id, got.span_id, got.is_remote) == (sc.trace_id, sc.span_id, True)


def test_no_span_means_no_properties() -> None:
    assert trace.get_current_span().get_span_context().is_valid is False
    assert tracing.user_properties() == []


@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [("tracestate", "a=b")],
        [("traceparent", "garbage")],
        [("traceparent", "00-" + "0" * 32 + "-" + "1" * 16 + "-01")],
    ],
)
def test_missing_or_malformed_context_is_none(pairs: list[tuple[str, str]]) -> None:
    assert tracing.context_from_user_properties(pairs) is None


def test_unknown_exporter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="otlp, console and none"):
        tracing.setup("t")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.setup("t") is None
