"""ModelDeployment: one ML task served for a selection of assets.

It becomes a BentoML serving Deployment + Service + HPA (and a second set for a
canary), a retraining CronJob, and the routing the bridges use to call it.
This issue's operator resolves the asset selection; serving lands with the ML work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dtwin_operator.api.asset import AssetKind
from dtwin_operator.api.common import NAME_PATTERN, Model, Status, cel, replica_range, sub, with_rules

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


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

    min_replicas: int = Field(default=1, description="Fewest serving replicas.", ge=0, le=100)
    max_replicas: int = Field(default=2, description="Most serving replicas the autoscaler may run.", ge=1, le=100)
    max_batch_size: int = Field(default=64, description="Adaptive batching: largest batch.", ge=1, le=4096)
    max_latency_ms: int = Field(default=50, description="Adaptive batching: longest wait.", ge=1, le=60000)
    alert_threshold: float = Field(
        default=0.8, description="Score (0-1) above which a predictive alert is raised.", ge=0, le=1
    )

    model_config = with_rules(replica_range("serving"))


class Canary(Model):
    """A second model version served to part of the traffic, rolled back automatically when it degrades."""

    version: str = Field(description="Model version under test.", pattern=VERSION_PATTERN)
    traffic_percent: int = Field(default=10, description="Share of requests sent to the canary.", ge=0, le=100)
    max_error_rate: float = Field(default=0.05, description="Roll back above this error rate (0-1).", ge=0, le=1)


class ModelDeploymentSpec(Model):
    """Desired state of a ModelDeployment."""

    task: Literal["anomaly", "failure", "energy"] = Field(
        description="anomaly (unusual operation), failure (failure within horizon) or energy (day-ahead "
        "forecast and savings)."
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


class ModelDeploymentStatus(Status):
    """Observed state of a ModelDeployment."""

    selected_assets: int = Field(default=0, description="Assets matched by the selector.")
    active_version: str | None = Field(default=None, description="Version serving the main traffic.")
    canary_version: str | None = Field(default=None, description="Version serving the canary share.")
    endpoint: str | None = Field(default=None, description="URL of the inference service.")
