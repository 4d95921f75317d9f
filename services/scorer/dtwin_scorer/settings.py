"""Process settings of the scorer: one pydantic-settings class, read from `DTWIN_SCORER_*` environment variables.

What is per model (URLs, canary share, batch size, threshold, assets, schemas) comes from the routing files the
operator renders; these are the per-process knobs around them. `reporter` names this process in its call
statistics Lease (`dtwin-model-<model>-calls-<reporter>`), so it must be stable across restarts and distinct
between replicas: the pod name (the default, via the hostname) is both.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DTWIN_SCORER_")

    database_url: str = "postgresql://dtwin@127.0.0.1:5432/dtwin"
    routing_dir: Path = Path("/etc/dtwin/models")  # one `<model>.json` per ModelDeployment (projected ConfigMaps)
    # Where a window ends: "wall" = the last complete bucket before now; "stream" = before the newest reading of
    # the site (never past now), so a replayed or backfilled history (the simulator under `make up`, days behind
    # the wall) is scored as it arrives, as the bridge's rules judge staleness in stream time.
    clock: Literal["wall", "stream"] = "wall"
    interval_s: float = Field(default=60.0, gt=0)  # one pass per interval; a slow pass delays the next, never overlaps
    request_timeout_s: float = Field(default=30.0, gt=0)  # one /predict call (a batch) or /info call
    backoff_initial_s: float = Field(default=30.0, ge=0)  # an endpoint that failed is not called again for this long
    backoff_max_s: float = Field(default=600.0, ge=0)  # ... doubling per consecutive failure up to this
    reporter: str = Field(default_factory=socket.gethostname, min_length=1)
    kube_enabled: bool = True  # report call statistics in Leases when an in-cluster config or kubeconfig exists
    kube_timeout_s: float = Field(default=5.0, gt=0)
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9466  # 0: no metrics endpoint
    db_pool_size: int = Field(default=2, ge=1)
