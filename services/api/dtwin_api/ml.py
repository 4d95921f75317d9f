"""Pure rules of the ML routes: which ModelDeployments a site sees, their summary, and recommendation status.

A ModelDeployment belongs to the sites of its namespace that its selector admits: `spec.selector.site` names
one site; without it the model watches every asset of the namespace, so it serves (and is shown to) every site
claimed in that namespace. The site → namespace mapping is the operator's claims table, so a caller sees only
the models of sites they hold a grant on. Call statistics come from the callers' Leases. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from dtwin_core import model_calls

RecommendationStatus = Literal["open", "accepted", "dismissed"]
CanaryState = Literal["Off", "Progressing", "RolledBack"]  # the CRD's status.canaryState
CANARY_STATES: tuple[CanaryState, ...] = ("Off", "Progressing", "RolledBack")
RECOMMENDATION_ACTIONS: dict[str, str] = {"accepted": "accept", "dismissed": "dismiss", "open": "reopen"}


def serves_site(md: dict[str, Any], site: str, namespace: str) -> bool:
    """Whether the ModelDeployment `md` (a cluster object) belongs to `site`, claimed in `namespace`."""
    if md.get("metadata", {}).get("namespace") != namespace:
        return False
    selected = ((md.get("spec") or {}).get("selector") or {}).get("site")
    return selected is None or selected == site


def calls_by_model(leases: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """model -> call statistics per version, summed over its reporters' calls Leases (`dtwin_core.model_calls`:
    each caller of a model keeps one Lease labelled `dtwin.io/model=<name>` with its counters)."""
    per_model: dict[str, list[model_calls.CallStats | None]] = {}
    for lease in leases:
        meta = lease.get("metadata") or {}
        model = (meta.get("labels") or {}).get(model_calls.MODEL_LABEL)
        if model:
            per_model.setdefault(model, []).extend(model_calls.decode(meta.get("annotations")))
    return {
        model: [
            {
                "version": t.version,
                "calls": t.calls,
                "errors": t.errors,
                "error_rate": t.error_rate,
                "mean_score": t.mean_score,
            }
            for t in sorted(model_calls.aggregate(stats).values(), key=lambda t: t.version)
        ]
        for model, stats in per_model.items()
    }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def model_summary(md: dict[str, Any], calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The API's view of a ModelDeployment: what it serves, which versions, where, and how it is doing.

    The canary version is the one the operator serves (`status.canaryVersion`), else the spec's while the
    operator has yet to render it, but never a version the operator rolled back (the spec still names it until
    someone changes it).
    """
    meta, spec, status = md.get("metadata") or {}, md.get("spec") or {}, md.get("status") or {}
    model, canary = spec.get("model") or {}, spec.get("canary") or {}
    state = status.get("canaryState")
    canary_state = state if state in CANARY_STATES else None
    rolled_back = status.get("rolledBackVersion")
    pending = canary.get("version") if canary.get("version") != rolled_back else None
    conditions = [
        {
            "type": str(c.get("type", "")),
            "status": str(c.get("status", "Unknown")),
            "reason": c.get("reason"),
            "message": c.get("message"),
            "last_transition_time": c.get("lastTransitionTime"),
        }
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    ]
    return {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "task": spec.get("task", ""),
        "model": model.get("name", ""),
        "site": (spec.get("selector") or {}).get("site"),
        "desired_version": model.get("version"),
        "active_version": status.get("activeVersion"),
        "canary_version": status.get("canaryVersion") or pending,
        "canary_traffic_percent": canary.get("trafficPercent") if canary else None,
        "canary_state": canary_state,
        "rolled_back_version": rolled_back,
        "ready_replicas": _int(status.get("readyReplicas")),
        "canary_ready_replicas": _int(status.get("canaryReadyReplicas")),
        "endpoint": status.get("endpoint"),
        "selected_assets": status.get("selectedAssets"),
        "observed_generation": status.get("observedGeneration"),
        "generation": meta.get("generation"),
        "conditions": conditions,
        "calls": calls or [],
    }


def recommendation_change(current: str, wanted: str) -> str | None:
    """The audit action of a status change (`accept`, `dismiss`, `reopen`), None when nothing changes.
    Every move between the three states is allowed: a dismissed recommendation may be reconsidered."""
    if current == wanted:
        return None
    return RECOMMENDATION_ACTIONS[wanted]
