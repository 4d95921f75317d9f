"""The bridge's Prometheus metrics, on a registry of their own (created in `run`, never a module global).

Every series carries the `site` label so one Prometheus can scrape the bridges of many sites. Counters are
incremented by the runner as messages flow (once per socket read, not per message); the two gauges
(`buffer_depth`: rows in the open batch; `unacked_messages`: received and not yet acknowledged) are set by the
flusher on every turn; `commit_lag_seconds` says how long the oldest message of each batch waited for its commit.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

ROW_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000)


class Metrics:
    def __init__(self, site: str) -> None:
        self.registry = r = CollectorRegistry()
        self.site = site
        labels = ["site"]
        self._received = Counter(
            "dtwin_bridge_messages_received", "MQTT messages read from the broker", labels, registry=r
        )
        self._accepted = Counter(
            "dtwin_bridge_readings_accepted", "Readings that passed validation", labels, registry=r
        )
        self._rejected = Counter(
            "dtwin_bridge_readings_rejected", "Payloads or values sent to dead letters", [*labels, "reason"], registry=r
        )
        self._retries = Counter("dtwin_bridge_db_retries", "Failed batch writes that were retried", labels, registry=r)
        self._stale = Counter(
            "dtwin_bridge_stale_acks", "Committed messages not acked: their connection is gone", labels, registry=r
        )
        self._reloads = Counter(
            "dtwin_bridge_routing_reloads", "Routing table reloads", [*labels, "result"], registry=r
        )
        self._rows = Histogram(
            "dtwin_bridge_batch_rows", "Rows per written batch", labels, buckets=ROW_BUCKETS, registry=r
        )
        self._duration = Histogram(
            "dtwin_bridge_batch_duration_seconds", "Time to commit one batch, retries included", labels, registry=r
        )
        self._depth = Gauge("dtwin_bridge_buffer_depth", "Rows in the open batch", labels, registry=r)
        self._unacked = Gauge(
            "dtwin_bridge_unacked_messages", "Messages received and not yet acked", labels, registry=r
        )

        self._lag = Histogram(
            "dtwin_bridge_commit_lag_seconds",
            "From the arrival of a batch's first message to its commit: how far the database trails MQTT",
            labels,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self._last_commit = Gauge(
            "dtwin_bridge_last_commit_timestamp_seconds", "Unix time of the last committed batch", labels, registry=r
        )
        # The per-message series, bound once: `labels()` is a locked dict lookup, too dear per message.
        self._received_site = self._received.labels(site)
        self._accepted_site = self._accepted.labels(site)
        self._lag_site = self._lag.labels(site)
        self._last_commit_site = self._last_commit.labels(site)

        self._alerts = Counter(
            "dtwin_bridge_alerts",
            "Alert events emitted by the rules engine",
            [*labels, "kind", "severity", "transition"],
            registry=r,
        )
        self._alerts_pending = Gauge(
            "dtwin_bridge_alerts_pending", "Alert events waiting to be written (coalesced)", labels, registry=r
        )

    def serve(self, host: str, port: int) -> object | None:
        if not port:
            return None
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server

    def received(self, n: int = 1) -> None:
        self._received_site.inc(n)

    def accepted(self, n: int) -> None:
        self._accepted_site.inc(n)

    def committed(self, lag_s: float) -> None:
        self._lag_site.observe(lag_s)
        self._last_commit_site.set_to_current_time()

    def rejected(self, reason: str) -> None:
        self._rejected.labels(self.site, reason).inc()

    def retried(self) -> None:
        self._retries.labels(self.site).inc()

    def stale_acks(self, n: int) -> None:
        self._stale.labels(self.site).inc(n)

    def reloaded(self, result: str) -> None:
        self._reloads.labels(self.site, result).inc()

    def batch(self, rows: int, seconds: float) -> None:
        self._rows.labels(self.site).observe(rows)
        self._duration.labels(self.site).observe(seconds)

    def levels(self, depth: int, unacked: int) -> None:
        self._depth.labels(self.site).set(depth)
        self._unacked.labels(self.site).set(unacked)

    def alert(self, kind: str, severity: str, transition: str) -> None:
        self._alerts.labels(self.site, kind, severity, transition).inc()

    def alerts_pending(self, n: int) -> None:
        self._alerts_pending.labels(self.site).set(n)
