"""Site: a building, campus or plant — the unit of tenancy, sharding and autoscaling.

A Site becomes a TimescaleDB schema, an MQTT bridge (routing ConfigMap,
StatefulSet, Service, HorizontalPodAutoscaler), a Grafana dashboard ConfigMap
and the layout of the portal's 3D view.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dtwin_operator.api.common import NAME_PATTERN, Model, Status, cel, immutable, replica_range, sub, with_rules

TIMEZONE_PATTERN = r"^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$"


class GeoLocation(Model):
    """Where the site is on Earth; used for weather-normalised energy models and maps."""

    address: str | None = Field(default=None, description="Postal address, free text.", max_length=256)
    latitude: float | None = Field(default=None, description="Latitude in degrees.", ge=-90, le=90)
    longitude: float | None = Field(default=None, description="Longitude in degrees.", ge=-180, le=180)
    timezone: str = Field(
        default="UTC",
        description="IANA time zone (e.g. Europe/Paris) used for schedules, daily rollups and after-hours rules.",
        pattern=TIMEZONE_PATTERN,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.matches('{TIMEZONE_PATTERN}')",
                    "location.timezone must be an IANA time zone name such as Europe/Paris, America/New_York or UTC",
                )
            ]
        },
    )


class Zone(Model):
    """A rectangular area on a floor (a room, plant room, wing), in metres from the floor's origin."""

    name: str = Field(description="Zone id, unique on its floor.", pattern=NAME_PATTERN, max_length=63)
    display_name: str | None = Field(default=None, description="Name shown in the portal.", max_length=128)
    x: float = Field(default=0, description="West edge, metres from the floor origin.")
    y: float = Field(default=0, description="South edge, metres from the floor origin.")
    width: float = Field(default=10, description="East-west extent in metres.", gt=0, le=10000)
    depth: float = Field(default=10, description="North-south extent in metres.", gt=0, le=10000)


class Floor(Model):
    """One storey of the 3D view."""

    name: str = Field(
        description="Floor id (e.g. l1, basement), unique in the site.", pattern=NAME_PATTERN, max_length=63
    )
    level: int = Field(description="Storey number; 0 is the ground floor, negative below ground.", ge=-20, le=200)
    height: float = Field(default=3.5, description="Floor-to-floor height in metres.", gt=0, le=50)
    zones: list[Zone] = Field(
        default_factory=list,
        description="Zones on this floor.",
        max_length=200,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class Layout(Model):
    """The building as the portal's 3D view draws it."""

    floors: list[Floor] = Field(
        default_factory=list,
        description="Storeys of the site. Asset.spec.location.floor must name one of them.",
        max_length=200,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                cel(
                    "self.all(f, self.exists_one(g, g.level == f.level))",
                    "layout.floors: two floors have the same level; give each floor its own level",
                )
            ],
        },
    )


class Mqtt(Model):
    """Where the site's devices publish telemetry."""

    topic_prefix: str | None = Field(
        default=None,
        description="Topic prefix of this site's devices, without wildcards (default: sites/<site name>). "
        "The bridge subscribes to <prefix>/# with a shared subscription.",
        min_length=1,
        max_length=200,
        pattern=r"^[^+#]*[^+#/]$",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.contains('#') && !self.contains('+') && !self.endsWith('/')",
                    "mqtt.topicPrefix must not contain the MQTT wildcards '#' or '+' nor end with '/'; "
                    "the bridge subscribes to <topicPrefix>/# itself",
                )
            ]
        },
    )
    host: str = Field(default="127.0.0.1", description="MQTT broker host.", max_length=253)
    port: int = Field(default=1883, description="MQTT broker port.", ge=1, le=65535)
    tls: bool = Field(default=False, description="Connect to the broker over TLS.")


class Storage(Model):
    """Where and how long telemetry is kept."""

    database: str = Field(
        default="dtwin",
        description="PostgreSQL/TimescaleDB database holding the site schema (site_<name>).",
        pattern=r"^[a-z_][a-z0-9_]*$",
        max_length=63,
        json_schema_extra=immutable("storage.database", "create a new Site to move a site's data"),
    )
    chunk_interval_hours: int = Field(
        default=24, description="Time span of one hypertable chunk / partition, in hours.", ge=1, le=8760
    )
    retention_days: int = Field(
        default=365, description="Raw readings older than this many days are dropped.", ge=1, le=36500
    )
    compress_after_days: int = Field(
        default=7,
        description="Chunks older than this many days are compressed (TimescaleDB only).",
        ge=1,
        le=36500,
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="What happens to the site schema when the Site is deleted: Retain keeps the data, Delete drops it.",
    )

    model_config = with_rules(
        cel(
            "self.compressAfterDays < self.retentionDays",
            "storage.compressAfterDays must be less than storage.retentionDays "
            "(data would be dropped before it is compressed)",
            fieldPath=".compressAfterDays",
        ),
    )


class Bridge(Model):
    """The site's MQTT→database ingestion bridge and its autoscaling."""

    min_replicas: int = Field(default=1, description="Fewest bridge replicas.", ge=1, le=100)
    max_replicas: int = Field(default=3, description="Most bridge replicas the autoscaler may run.", ge=1, le=100)
    target_cpu_utilization: int = Field(
        default=70,
        description="Average CPU utilisation (percent of request) the autoscaler aims for.",
        ge=10,
        le=100,
    )
    # 5000, not 500: packed-message ingest measured ~50k instead of ~25k readings/s, from 10x fewer
    # transactions; a quiet site still writes within flushIntervalMs, since a batch goes when either is hit.
    batch_size: int = Field(
        default=5000,
        description="Most readings per database COPY batch (one transaction). Large batches mean fewer "
        "transactions and higher throughput; latency is bounded by flushIntervalMs, not by this cap.",
        ge=1,
        le=50000,
    )
    flush_interval_ms: int = Field(
        default=200, description="Longest time a reading waits in a batch before it is written.", ge=10, le=60000
    )

    model_config = with_rules(replica_range("bridge"))


class SiteSpec(Model):
    """Desired state of a Site."""

    display_name: str | None = Field(default=None, description="Name shown in the portal.", max_length=128)
    location: GeoLocation = sub(GeoLocation, "Where the site is and its time zone.")
    layout: Layout = sub(Layout, "Floors and zones for the 3D view; Assets are placed on them.")
    mqtt: Mqtt = sub(Mqtt, "MQTT broker and topic prefix of the site's devices.")
    storage: Storage = sub(Storage, "Database, partitioning, compression and retention of telemetry.")
    bridge: Bridge = sub(Bridge, "Ingestion bridge batching and autoscaling.")


class BridgeStatus(Model):
    replicas: int = Field(default=0, description="Bridge replicas that exist.")
    ready_replicas: int = Field(default=0, description="Bridge replicas that are ready.")
    live_replicas: int = Field(
        default=0,
        description="Bridge replicas whose heartbeat Lease is live (renewed within its duration); "
        "see the BridgeReady condition for which.",
    )


class StorageStatus(Model):
    """The Site's database schema."""

    backend: str | None = Field(default=None, description="timescaledb, or postgresql where the extension is absent.")
    database: str | None = Field(default=None, description="Database holding the schema.")
    schema_name: str | None = Field(default=None, description="Schema holding the site's tables (site_<name>).")
    version: int | None = Field(default=None, description="Newest schema migration applied.")


class SiteStatus(Status):
    """Observed state of a Site."""

    assets: int = Field(default=0, description="Assets placed at this site.")
    sensors: int = Field(default=0, description="Sensor bindings routed by this site's bridge.")
    bridge: BridgeStatus = Field(
        default_factory=BridgeStatus, description="Bridge StatefulSet state and live heartbeating replicas."
    )
    config_hash: str | None = Field(default=None, description="Hash of the routing table the bridge runs.")
    storage: StorageStatus | None = Field(default=None, description="Database schema state.")
