"""Process settings of the bridge: one pydantic-settings class, read from `DTWIN_BRIDGE_*` environment variables.

Everything that is per Site (broker, schema, database name, batch size, topics) comes from the routing table the
operator renders; these are the per-process knobs around it. `database_url` may carry a `{database}` placeholder
that is filled with the routing table's `database`, so one Secret serves every Site. `replica` names this process
in the MQTT client id, which must be stable across restarts: the broker keeps the persistent session (and the
QoS 1 messages queued for it while the process is down) under that id.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DTWIN_BRIDGE_")

    routing: Path = Path("/etc/dtwin/routing/routing.json")
    database_url: str = "postgresql://dtwin@127.0.0.1:5432/{database}"
    replica: str = Field(default_factory=socket.gethostname)
    client_id: str | None = None  # default: dtwin-bridge-<site>-<replica>
    metrics_host: str = "0.0.0.0"  # a listener, scraped by Prometheus in the pod network
    metrics_port: int = 9465  # 0: no metrics endpoint
    max_unacked_batches: int = 4  # parsed-but-unacked messages are bounded at this many batches' worth
    session_expiry_s: int = 7 * 24 * 3600  # how long the broker keeps queuing for this replica while it is down
    keepalive_s: int = 30
    reload_interval_s: float = 1.0
    db_pool_size: int = 2
    live_events: bool = True  # committed readings on <prefix>/events/telemetry, for the API's live views

    def dsn(self, database: str) -> str:
        return self.database_url.replace("{database}", database)

    def mqtt_client_id(self, site: str) -> str:
        return self.client_id or f"dtwin-bridge-{site}-{self.replica}"
