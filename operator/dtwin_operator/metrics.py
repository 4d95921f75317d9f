"""The operator's Prometheus metrics (conventional names, `dtwin_operator_` prefix)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "dtwin_operator_reconciles_total", "Reconcile runs by kind and result (ok, degraded).", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram(
    "dtwin_operator_reconcile_duration_seconds", "Time one reconcile takes, by kind.", ["kind"]
)
APPLIED = Counter(
    "dtwin_operator_applied_objects_total", "Server-side applies by object kind and outcome.", ["kind", "action"]
)
HEALTH_REFRESHES = Counter(
    "dtwin_operator_health_refreshes_total", "Health refreshes of a Site by result (ok, skipped, error).", ["result"]
)
HEALTH_PATCHES = Counter(
    "dtwin_operator_health_status_patches_total", "Health status patches by object kind (unchanged: none).", ["kind"]
)
