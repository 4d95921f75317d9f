"""Operator settings, read once at start from DTWIN_OPERATOR_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DTWIN_OPERATOR_", frozen=True)

    drift_interval: float = Field(
        default=60.0, gt=0, description="Seconds between level-based re-reconciles that repair drift."
    )
    retry_delay: float = Field(default=10.0, gt=0, description="Seconds before re-checking a missing reference.")
    error_backoff: float = Field(default=5.0, gt=0, description="Seconds before retrying a failed reconcile.")
    bridge_image: str = Field(default="dtwin/bridge:0.1.0", description="Image of the MQTT ingestion bridge.")
    model_image: str = Field(
        default="dtwin/model:0.1.0",
        description="Image of the BentoML model servers (every task's bento under /app/bentos/<task>).",
    )
    trainer_image: str = Field(
        default="dtwin/trainer:0.1.0",
        description="Image of the retraining and energy recommendation CronJobs (dtwin_trainer).",
    )
    scorer_image: str = Field(
        default="dtwin/scorer:0.1.0",
        description="Image of each ModelDeployment's online scorer Deployment (dtwin_scorer).",
    )
    model_store_claim: str | None = Field(
        default=None,
        description="PersistentVolumeClaim holding the BentoML model store, mounted at /models by the model "
        "servers and the trainers. Unset: an emptyDir (models must then be baked into the image).",
    )
    trainer_secret: str = Field(
        default="dtwin-trainer",
        min_length=1,
        description="Secret in each ModelDeployment's namespace whose key `dsn` the retraining CronJob passes to "
        "the trainer as DTWIN_TRAINER_DSN (optional: a missing Secret leaves it unset).",
    )
    calls_interval: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between reads of a canary's call statistics (its callers' Leases): a bad canary is "
        "rolled back within this interval of its callers reporting it.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint on metrics_host; 0 = off."
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the /metrics endpoint binds; 0.0.0.0 in a Pod so Prometheus can scrape it.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL/TimescaleDB server for Site schemas, e.g. postgresql://dtwin@db:5432/{database}; "
        "{database} is replaced by each Site's spec.storage.database. Unset: schemas are not managed.",
    )
    maintenance_interval: float = Field(
        default=300.0, gt=0, description="Seconds between partition/rollup/retention maintenance per Site."
    )
    health_interval: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between health refreshes per Site: at most one health status patch per Asset and "
        "SensorBinding per interval.",
    )
    lease_check_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between checks of each Site's bridge heartbeat Leases: a replica that dies without "
        "deleting its Lease shows in BridgeReady within its lease duration plus this. The check reads memory only.",
    )
    watch_server_timeout: int = Field(default=300, gt=0, description="Server-side watch timeout in seconds.")
