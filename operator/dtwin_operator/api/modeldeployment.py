"""ModelDeployment: one ML task served for a selection of assets.

It becomes a BentoML serving Deployment + Service + HPA (and a second set for a
canary), a retraining CronJob, and a routing ConfigMap the scorer reads to call
it (`dtwin_operator.render.model`). The canary is judged from the call
statistics its callers report (`dtwin_core.model_calls`) and rolled back
automatically when it degrades.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dtwin_operator.api.asset import AssetKind
from dtwin_operator.api.common import NAME_PATTERN, Model, Status, cel, replica_range, sub, with_rules

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
Task = Literal["anomaly", "failure", "rul", "energy"]
CanaryState = Literal["Off", "Progressing", "RolledBack"]


class AssetSelector(Model):
    """Which assets the model watches; every given criterion must match. An empty selector selects every asset
    in the namespace."""

    site: str | None = Field(default=None, description="Only assets of this Site.", pattern=NAME_PATTERN, max_length=63)
    kinds: list[AssetKind] = Field(
        default_factory=list,
        description="Only assets of these kinds.",
        max_length=20,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    match_labels: dict[str, str] = Field(default_factory=dict, description="Only assets with all these labels.")


class ModelRef(Model):
    """The model in the BentoML model store, by tag name:version."""

    name: str = Field(description="Model name in the store.", pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)
    version: str = Field(default="latest", description="Model version to serve, or 'latest'.", pattern=VERSION_PATTERN)


class Training(Model):
    """When and on what the model is retrained."""

    schedule: str = Field(
        default="0 3 * * 0",
        description="Cron schedule (5 fields, or @daily/@weekly/...) of the retraining job.",
        pattern=r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$",
        max_length=100,
    )
    window_days: int = Field(default=90, description="Days of history to train on.", ge=1, le=3650)
    horizon_hours: int = Field(default=72, description="Prediction horizon (failure task).", ge=1, le=8760)


class Serving(Model):
    """Inference serving scale and batching."""

    # At least 1: a HorizontalPodAutoscaler cannot scale up from 0 without an alpha feature gate.
    min_replicas: int = Field(default=1, description="Fewest serving replicas.", ge=1, le=100)
    max_replicas: int = Field(default=2, description="Most serving replicas the autoscaler may run.", ge=1, le=100)
    max_batch_size: int = Field(default=64, description="Adaptive batching: largest batch.", ge=1, le=4096)
    max_latency_ms: int = Field(
        default=2000,
        description="Adaptive batching: latency budget of one call; BentoML refuses (503) a call that would queue "
        "longer, and the scorer retries it on its next pass.",
        ge=1,
        le=60000,
    )
    alert_threshold: float = Field(
        default=0.8, description="Score (0-1) above which a predictive alert is raised.", ge=0, le=1
    )

    model_config = with_rules(replica_range("serving"))


class Canary(Model):
    """A second model version served to part of the traffic, rolled back automatically when it degrades."""

    version: str = Field(
        description="Model version under test. A version that was rolled back stays off until this changes.",
        pattern=VERSION_PATTERN,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self != 'latest'",
                    "canary.version must name an explicit version, not 'latest' (a canary compares one known "
                    "version with model.version)",
                )
            ]
        },
    )
    traffic_percent: int = Field(default=10, description="Share of requests sent to the canary.", ge=0, le=100)
    max_error_rate: float = Field(
        default=0.05,
        description="Roll back when more than this share (0-1) of the canary's calls fail.",
        ge=0,
        le=1,
    )
    min_calls: int = Field(
        default=50,
        description="Calls the canary must have served before it is judged; no rollback before that.",
        ge=1,
        le=1000000,
    )
    max_score_drift: float = Field(
        default=0.2,
        description="Roll back when the canary's mean score differs from the stable version's by more than this "
        "(once both have minCalls calls).",
        ge=0,
        le=1,
    )


class ModelDeploymentSpec(Model):
    """Desired state of a ModelDeployment."""

    task: Task = Field(
        description="anomaly (unusual operation), failure (failure within horizon), rul (remaining useful life, "
        "in hours) or energy (day-ahead forecast and savings)."
    )
    model: ModelRef = Field(description="Model to serve.")
    selector: AssetSelector = sub(AssetSelector, "Assets the model watches.")
    training: Training = sub(Training, "Retraining schedule and window.")
    serving: Serving = sub(Serving, "Serving scale and batching.")
    canary: Canary | None = Field(default=None, description="Optional canary version.")

    model_config = with_rules(
        cel(
            "!has(self.canary) || self.canary.version != self.model.version",
            "canary.version must differ from model.version (the canary tests a new version)",
            fieldPath=".canary.version",
        ),
    )


class CallsStatus(Model):
    """Calls reported by the model's callers (Leases dtwin-model-<name>-calls-*), summed over reporters."""

    stable: int = Field(default=0, description="Calls to the stable version (spec.model.version).")
    canary: int = Field(default=0, description="Calls to the canary version.")
    stable_error_rate: float | None = Field(
        default=None, description="Share of the stable version's calls that failed."
    )
    canary_error_rate: float | None = Field(default=None, description="Share of the canary's calls that failed.")
    stable_mean_score: float | None = Field(default=None, description="Mean score of the stable version's calls.")
    canary_mean_score: float | None = Field(default=None, description="Mean score of the canary's calls.")


class ModelDeploymentStatus(Status):
    """Observed state of a ModelDeployment."""

    selected_assets: int = Field(default=0, description="Assets matched by the selector.")
    active_version: str | None = Field(
        default=None, description="Version the stable Deployment has fully rolled out (serves the main traffic)."
    )
    canary_version: str | None = Field(default=None, description="Version serving the canary share, if any.")
    canary_state: CanaryState = Field(
        default="Off",
        description="Off (no canary), Progressing (the canary serves its share) or RolledBack (the canary failed "
        "its checks and was removed; see rolledBackVersion and the CanaryHealthy condition).",
    )
    rolled_back_version: str | None = Field(
        default=None,
        description="Canary version that was rolled back; it stays off until spec.canary.version changes.",
    )
    endpoint: str | None = Field(default=None, description="URL of the stable inference Service.")
    ready_replicas: int = Field(default=0, description="Ready replicas of the stable serving Deployment.")
    canary_ready_replicas: int = Field(default=0, description="Ready replicas of the canary serving Deployment.")
    calls: CallsStatus = Field(default_factory=CallsStatus, description="Call statistics the canary is judged on.")
