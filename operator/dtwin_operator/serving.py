"""Pure decisions of a ModelDeployment's reconcile: is a serving track available, which version has rolled out,
and what happens to the canary given the calls its callers reported.

The canary's life: Off (no spec.canary) -> Progressing (rendered, judged on every reconcile once it has
canary.minCalls calls) -> RolledBack (its error rate or score drift broke the limits: it is no longer rendered,
and stays off until spec.canary.version changes). Promotion is a person's decision: they set spec.model.version
to the canary's version (and drop or change spec.canary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dtwin_core.model_calls import CallStats, verdict
from dtwin_operator.api.modeldeployment import CanaryState, ModelDeploymentSpec
from dtwin_operator.status import Cond


def rolled_out(dep: Mapping[str, Any] | None) -> bool:
    """Every replica the Deployment should run runs its current template and is available, and no old one is left."""
    if dep is None:
        return False
    st, want = dep.get("status") or {}, dep.get("replicas", 1)
    return bool(
        (st.get("observedGeneration") or 0) >= dep.get("generation", 0)
        and (st.get("updatedReplicas") or 0) == want
        and (st.get("availableReplicas") or 0) >= want
        and (st.get("replicas") or 0) == want
    )


def active_version(dep: Mapping[str, Any] | None, previous: str | None) -> str | None:
    """The version the stable track serves: its template's once rolled out, else what it served before."""
    if rolled_out(dep):
        return (dep or {}).get("version") or previous
    return previous


def ready_replicas(dep: Mapping[str, Any] | None) -> int:
    return int(((dep or {}).get("status") or {}).get("readyReplicas") or 0)


def serving_available(name: str, dep: Mapping[str, Any] | None, version: str) -> Cond:
    """ServingAvailable of the stable track, from its Deployment's spec and status (as `k8s.deployment_state`)."""
    if dep is None:
        return Cond("ServingAvailable", False, "ServingMissing", f"Deployment {name} does not exist yet.")
    st, want = dep.get("status") or {}, dep.get("replicas", 1)
    up = st.get("availableReplicas") or 0
    counted = f"{up}/{want} serving replicas available"
    if rolled_out(dep):
        return Cond("ServingAvailable", True, "Available", f"{counted}, version {dep.get('version')}")
    rolling = f"rolling out version {version} ({st.get('updatedReplicas') or 0} updated so far)"
    if up >= 1:
        # maxUnavailable 0: while a new version rolls out, the old one keeps serving.
        return Cond("ServingAvailable", True, "RollingUpdate", f"{counted}; {rolling}")
    return Cond(
        "ServingAvailable",
        False,
        "ServingUnavailable",
        f"Deployment {name}: {counted}; {rolling}. A model server is ready only once it has loaded its model "
        f"from the store: see kubectl describe deployment {name} and its pods' logs (is the model version in "
        "the store?).",
    )


@dataclass(frozen=True)
class CanaryPlan:
    state: CanaryState
    render: bool  # the canary track is rendered
    rolled_back_version: str | None
    condition: Cond  # CanaryHealthy
    rollback: str | None = None  # why, when this very reconcile rolls the canary back


def plan(
    spec: ModelDeploymentSpec,
    rolled_back: str | None,
    totals: Mapping[str, CallStats],
    previous_message: str = "",
) -> CanaryPlan:
    """The canary's state given the spec, the version rolled back before (if any) and the call totals per version.

    `previous_message` is the CanaryHealthy message of the last status, which says why a rolled-back version
    was rolled back (the counts that proved it may since have moved on).
    """
    c = spec.canary
    if c is None:
        return CanaryPlan("Off", False, None, Cond("CanaryHealthy", True, "NoCanary", "no canary (spec.canary)"))
    again = "it stays off until spec.canary.version changes (promote a good version with spec.model.version)"
    if rolled_back == c.version:
        message = previous_message or f"canary {c.version} was rolled back; {again}"
        return CanaryPlan("RolledBack", False, c.version, Cond("CanaryHealthy", False, "RolledBack", message))
    ok, why = verdict(
        totals.get(spec.model.version), totals.get(c.version), c.min_calls, c.max_error_rate, c.max_score_drift
    )
    if ok is False:
        message = f"canary {c.version} rolled back: {why}; {again}"
        return CanaryPlan(
            "RolledBack", False, c.version, Cond("CanaryHealthy", False, "RolledBack", message), rollback=why
        )
    at = f"canary {c.version} serves {c.traffic_percent}% of calls"
    if ok is None:
        return CanaryPlan("Progressing", True, None, Cond("CanaryHealthy", True, "AwaitingCalls", f"{at}; {why}", True))
    return CanaryPlan("Progressing", True, None, Cond("CanaryHealthy", True, "Healthy", f"{at}; {why}"))


def calls_status(spec: ModelDeploymentSpec, totals: Mapping[str, CallStats]) -> dict[str, Any]:
    """status.calls: the totals of the stable and the canary version (None leaves a field out)."""
    stable = totals.get(spec.model.version) or CallStats(spec.model.version)
    canary = totals.get(spec.canary.version) if spec.canary else None
    canary = canary or CallStats("")

    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, 4)  # 4 digits: a status that changes only when people would see it

    return {
        "stable": stable.calls,
        "canary": canary.calls,
        "stableErrorRate": rounded(stable.error_rate),
        "canaryErrorRate": rounded(canary.error_rate),
        "stableMeanScore": rounded(stable.mean_score),
        "canaryMeanScore": rounded(canary.mean_score),
    }
