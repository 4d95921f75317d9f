"""Settings of the simulator's broker connection, from `DTWIN_SIMULATOR_*` environment variables.

Only what differs between environments lives here (where the broker is, how to publish); what to simulate is
given on the command line, whose flags override these values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DTWIN_SIMULATOR_", frozen=True)

    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    qos: Literal[0, 1] = Field(default=1, description="QoS of every publish.")
    client_id: str | None = Field(default=None, description="MQTT client id (default: random).")
    window: int = Field(default=1000, ge=1, le=65535, description="Most unacknowledged QoS 1 messages.")
    progress_seconds: float = Field(default=5.0, gt=0, description="Wall seconds between progress lines.")
    trace_every: int = Field(
        default=0,
        ge=0,
        description="Publish every Nth message inside a PRODUCER span whose W3C trace context travels in MQTT v5 "
        "user properties (0: none). Spans go where OTEL_TRACES_EXPORTER says (see dtwin_core.tracing).",
    )
