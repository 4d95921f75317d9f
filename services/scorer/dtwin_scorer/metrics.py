"""The scorer's Prometheus metrics, on a registry of their own (one per `Scorer`, never a module global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.windows = Counter("dtwin_scorer_windows", "Windows sent to a model track", ["model", "track"], registry=r)
        self.errors = Counter(
            "dtwin_scorer_errors",
            "Failures: windows not scored (timeout, connect, http, invalid, window) or a stage that failed (db_read, "
            "db_write, info, routing, lease)",
            ["model", "track", "reason"],
            registry=r,
        )
        self.duration = Histogram(
            "dtwin_scorer_request_duration_seconds",
            "One /predict request (a batch of windows)",
            ["model", "track"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.alerts = Counter(
            "dtwin_scorer_alerts", "Predictive alert changes written", ["model", "transition"], registry=r
        )
        self.predictions = Counter("dtwin_scorer_predictions", "Prediction rows written", ["model"], registry=r)
        self.last_pass = Gauge(
            "dtwin_scorer_last_pass_timestamp_seconds", "Unix time the last pass finished", registry=r
        )

    def error(self, model: str, track: str, reason: str, n: int = 1) -> None:
        self.errors.labels(model, track, reason).inc(n)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), for tests and logs."""
        return float(self.registry.get_sample_value(name, labels) or 0.0)

    def serve(self, host: str, port: int) -> None:
        if port:
            start_http_server(port, host, registry=self.registry)
