#!/usr/bin/env python3
"""Writes the demo campus in examples/ (namespace dtwin-demo) deterministically.

    PYTHONPATH=operator python hack/gen_examples.py [DIR]

The campus is two Sites: `hq`, a seven-storey office building (basement plant
room, ground floor, four office floors, roof plant), and `plant`, the central
utility plant and pumping station that feeds it chilled water. Each asset kind
has a catalogue of physically sensible sensor points (units, plausible ranges,
alert thresholds, reporting intervals) that its SensorBindings are made from.

Every spec is validated with the pydantic models before anything is written,
and `operator/tests/test_examples.py` fails when the committed YAML differs
from what this script generates, so edit the tables here, not the YAML.
Apply with `kubectl apply -f examples/` once the CRDs in crds/ are installed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtwin_operator.api import yaml11
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.common import API_VERSION
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec

NAMESPACE = "dtwin-demo"
PART_OF = {"app.kubernetes.io/part-of": "dtwin-demo"}
SPEC_MODELS = {
    "Site": SiteSpec,
    "Asset": AssetSpec,
    "SensorBinding": SensorBindingSpec,
    "ModelDeployment": ModelDeploymentSpec,
}

# --------------------------------------------------------------------------- sites


def zone(name: str, display: str, x: float, y: float, width: float, depth: float) -> dict[str, Any]:
    return {"name": name, "displayName": display, "x": x, "y": y, "width": width, "depth": depth}


def office_floor(level: int) -> dict[str, Any]:
    """A typical 60 m x 30 m office floor: two open-plan wings and a meeting/core block."""
    return {
        "name": f"l{level}",
        "level": level,
        "height": 3.6,
        "zones": [
            zone("south-wing", f"Level {level} south open plan", 0, 0, 40, 15),
            zone("north-wing", f"Level {level} north open plan", 0, 15, 40, 15),
            zone("core", f"Level {level} meeting rooms and core", 40, 0, 20, 30),
        ],
    }


SITES: dict[str, dict[str, Any]] = {
    "hq": {
        "displayName": "Headquarters tower",
        "location": {
            "address": "12 Quai Perrache, 69002 Lyon, France",
            "latitude": 45.7485,
            "longitude": 4.8253,
            "timezone": "Europe/Paris",
        },
        "layout": {
            "floors": [
                {
                    "name": "basement",
                    "level": -1,
                    "height": 4.5,
                    "zones": [
                        zone("plant-room", "Basement plant room", 0, 0, 24, 18),
                        zone("electrical-room", "LV switchroom", 24, 0, 10, 18),
                        zone("parking", "Car park", 34, 0, 26, 30),
                    ],
                },
                {
                    "name": "ground",
                    "level": 0,
                    "height": 4.5,
                    "zones": [
                        zone("lobby", "Entrance lobby", 0, 0, 20, 30),
                        zone("cafe", "Staff cafe", 20, 0, 15, 15),
                        zone("meeting", "Ground-floor meeting suite", 20, 15, 15, 15),
                        zone("office-east", "East office", 35, 0, 25, 30),
                    ],
                },
                *(office_floor(level) for level in (1, 2, 3, 4)),
                {
                    "name": "roof",
                    "level": 5,
                    "height": 3.0,
                    "zones": [
                        zone("roof-plant", "Rooftop plant area", 0, 0, 30, 30),
                        zone("roof-deck", "Roof deck", 30, 0, 30, 30),
                    ],
                },
            ]
        },
        "mqtt": {"topicPrefix": "sites/hq", "port": 1883, "tls": False},
        "storage": {
            "database": "dtwin",
            "chunkIntervalHours": 24,
            "retentionDays": 730,
            "compressAfterDays": 7,
            "deletionPolicy": "Retain",
        },
        "bridge": {
            "minReplicas": 1,
            "maxReplicas": 4,
            "targetCpuUtilization": 70,
            "batchSize": 500,
            "flushIntervalMs": 200,
        },
    },
    "plant": {
        "displayName": "Central utility plant and pumping station",
        "location": {
            "address": "3 Rue de la Centrale, 69007 Lyon, France",
            "latitude": 45.7412,
            "longitude": 4.8318,
            "timezone": "Europe/Paris",
        },
        "layout": {
            "floors": [
                {
                    "name": "basement",
                    "level": -1,
                    "height": 5.0,
                    "zones": [
                        zone("pump-pit", "Condenser water pump pit", 0, 0, 20, 16),
                        zone("valve-gallery", "Valve gallery", 20, 0, 30, 16),
                    ],
                },
                {
                    "name": "ground",
                    "level": 0,
                    "height": 8.0,
                    "zones": [
                        zone("chiller-hall", "Chiller hall", 0, 0, 30, 20),
                        zone("pump-hall", "Chilled water pump hall", 30, 0, 20, 20),
                        zone("control-room", "Control room", 0, 20, 15, 16),
                        zone("workshop", "Workshop and stores", 15, 20, 35, 16),
                    ],
                },
                {
                    "name": "mezzanine",
                    "level": 1,
                    "height": 4.0,
                    "zones": [
                        zone("switchgear", "MV/LV switchgear", 0, 20, 25, 16),
                        zone("mcc-room", "Motor control centre", 25, 20, 25, 16),
                    ],
                },
                {
                    "name": "roof",
                    "level": 2,
                    "height": 3.0,
                    "zones": [zone("cooling-tower-deck", "Cooling tower deck", 0, 0, 50, 20)],
                },
            ]
        },
        "mqtt": {"topicPrefix": "sites/plant", "port": 1883, "tls": False},
        "storage": {
            "database": "dtwin",
            "chunkIntervalHours": 12,
            "retentionDays": 1825,
            "compressAfterDays": 3,
            "deletionPolicy": "Retain",
        },
        "bridge": {
            "minReplicas": 2,
            "maxReplicas": 6,
            "targetCpuUtilization": 65,
            "batchSize": 1000,
            "flushIntervalMs": 250,
        },
    },
}

# -------------------------------------------------------------------------- assets

SYSTEM_OF_KIND = {
    "AHU": "hvac",
    "VAV": "hvac",
    "Fan": "hvac",
    "Boiler": "hvac",
    "Chiller": "hvac",
    "CoolingTower": "hvac",
    "Pump": "water",
    "Meter": "electrical",
}


@dataclass(frozen=True)
class AssetDef:
    name: str
    site: str
    kind: str
    display: str
    manufacturer: str
    model: str
    rated_kw: float
    criticality: str
    floor: str
    zone: str
    offset: tuple[float, float]  # position relative to the zone's south-west corner, metres
    interval_days: int
    last_service: str
    payload: str = "json"  # json | senml | sparkplugb
    extra_labels: dict[str, str] = field(default_factory=dict)


# fmt: off
ASSETS: tuple[AssetDef, ...] = (
    # --- hq: air side on the roof and in the basement, terminal units on the office floors
    AssetDef("ahu-1", "hq", "AHU", "AHU-1 (levels 1-2)", "Trane", "CLCP-30", 30, "High",
             "roof", "roof-plant", (5, 6), 90, "2026-09-15", extra_labels={"dtwin.io/serves": "l1-l2"}),
    AssetDef("ahu-2", "hq", "AHU", "AHU-2 (levels 3-4)", "Trane", "CLCP-30", 30, "High",
             "roof", "roof-plant", (5, 20), 90, "2026-09-16", extra_labels={"dtwin.io/serves": "l3-l4"}),
    AssetDef("ahu-3", "hq", "AHU", "AHU-3 (lobby and ground floor)", "Daikin", "Professional D-AHU 25", 18.5,
             "Medium", "basement", "plant-room", (4, 12), 90, "2026-10-02",
             extra_labels={"dtwin.io/serves": "ground"}),
    AssetDef("vav-l2-north", "hq", "VAV", "VAV L2 north wing", "Trox", "TFP fan-powered terminal", 0.25, "Low",
             "l2", "north-wing", (20, 7), 365, "2026-03-01", payload="senml"),
    AssetDef("vav-l3-south", "hq", "VAV", "VAV L3 south wing", "Trox", "TFP fan-powered terminal", 0.25, "Low",
             "l3", "south-wing", (20, 7), 365, "2026-03-01", payload="senml"),
    AssetDef("fan-roof-1", "hq", "Fan", "Toilet and kitchen extract fan", "Systemair", "DVV 800D6-XL", 11,
             "Medium", "roof", "roof-plant", (24, 15), 180, "2026-06-20"),
    AssetDef("boiler-1", "hq", "Boiler", "Condensing boiler 1", "Viessmann", "Vitocrossal 200 CI2", 1.2,
             "High", "basement", "plant-room", (14, 5), 365, "2026-08-30", payload="sparkplugb"),
    AssetDef("hwp-1", "hq", "Pump", "Heating hot water pump", "Grundfos", "TPE3 80-240-S", 7.5, "High",
             "basement", "plant-room", (18, 12), 180, "2026-08-30"),
    AssetDef("meter-hq-main", "hq", "Meter", "HQ main LV incomer meter", "Schneider Electric", "PowerLogic PM8000",
             0.01, "Critical", "basement", "electrical-room", (5, 9), 1825, "2025-11-12", payload="sparkplugb"),
    # --- plant: chillers, towers and pumps
    AssetDef("chiller-1", "plant", "Chiller", "Chiller 1 (1.2 MW)", "Carrier", "AquaForce 30XW-V 1252", 245,
             "Critical", "ground", "chiller-hall", (7, 10), 180, "2026-05-04"),
    AssetDef("chiller-2", "plant", "Chiller", "Chiller 2 (1.2 MW)", "Carrier", "AquaForce 30XW-V 1252", 245,
             "Critical", "ground", "chiller-hall", (22, 10), 180, "2026-05-05"),
    AssetDef("ct-1", "plant", "CoolingTower", "Cooling tower 1", "Baltimore Aircoil", "VTL-E 1212", 22, "High",
             "roof", "cooling-tower-deck", (12, 10), 90, "2026-07-10"),
    AssetDef("ct-2", "plant", "CoolingTower", "Cooling tower 2", "Baltimore Aircoil", "VTL-E 1212", 22, "High",
             "roof", "cooling-tower-deck", (36, 10), 90, "2026-07-11"),
    AssetDef("chwp-1", "plant", "Pump", "Chilled water distribution pump 1", "KSB", "Etanorm 150-125-315", 55,
             "Critical", "ground", "pump-hall", (6, 10), 180, "2026-04-18"),
    AssetDef("chwp-2", "plant", "Pump", "Chilled water distribution pump 2", "KSB", "Etanorm 150-125-315", 55,
             "Critical", "ground", "pump-hall", (14, 10), 180, "2026-04-18"),
    AssetDef("cwp-1", "plant", "Pump", "Condenser water pump 1", "Xylem", "e-1510 6x8x11", 45, "High",
             "basement", "pump-pit", (10, 8), 180, "2026-04-19"),
    AssetDef("meter-plant-main", "plant", "Meter", "Plant MV incomer meter", "Siemens", "SENTRON PAC5200", 0.01,
             "Critical", "mezzanine", "switchgear", (6, 8), 1825, "2025-11-13", payload="sparkplugb"),
)
# fmt: on


def zone_of(a: AssetDef) -> dict[str, Any]:
    floor = next(f for f in SITES[a.site]["layout"]["floors"] if f["name"] == a.floor)
    return next(z for z in floor["zones"] if z["name"] == a.zone)


def asset_spec(a: AssetDef) -> dict[str, Any]:
    z = zone_of(a)
    index = ASSETS.index(a)
    spec: dict[str, Any] = {
        "siteRef": a.site,
        "kind": a.kind,
        "displayName": a.display,
        "manufacturer": a.manufacturer,
        "model": a.model,
        "serialNumber": f"{a.manufacturer[:3].upper()}-{2019 + index % 6}-{4711 + 97 * index:05d}",
        "ratedPowerKw": a.rated_kw,
        "criticality": a.criticality,
        "location": {
            "floor": a.floor,
            "zone": a.zone,
            "position": {"x": z["x"] + a.offset[0], "y": z["y"] + a.offset[1], "z": 0},
        },
        "maintenance": {"intervalDays": a.interval_days, "lastServiceDate": a.last_service},
    }
    return spec


# ------------------------------------------------------------------------- sensors


@dataclass(frozen=True)
class Point:
    """One sensor point of an asset kind: metric, unit, where it is in each payload format, limits."""

    metric: str
    unit: str
    json_field: str
    sparkplug: str
    valid: tuple[float, float]
    interval: int
    thresholds: dict[str, float | int] = field(default_factory=dict)


def th(
    wh: float | None = None,
    ch: float | None = None,
    wl: float | None = None,
    cl: float | None = None,
    for_s: int = 300,
    hyst: float = 0,
) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for key, value in (("warningHigh", wh), ("criticalHigh", ch), ("warningLow", wl), ("criticalLow", cl)):
        if value is not None:
            out[key] = value
    if out:
        out["forSeconds"] = for_s
        out["hysteresis"] = hyst
    return out


# ISO 10816-3 zone boundaries for medium machines on rigid foundations: 2.8 / 4.5 / 7.1 mm/s RMS.
VIBRATION = Point("vibration_rms", "mm/s", "vibration.rms", "Motor/VibrationRMS", (0, 50), 60,
                  th(wh=4.5, ch=7.1, for_s=300, hyst=0.3))  # fmt: skip


# fmt: off
def points(a: AssetDef) -> list[Point]:
    """The sensor points of one asset, sized by its rating where that matters."""
    kw = a.rated_kw
    amps = round(kw * 1000 / (1.732 * 400 * 0.88), 0)  # full-load current at 400 V, pf 0.88
    if a.kind == "AHU":
        return [
            Point("supply_air_temp", "degC", "temperature.supply", "AHU/SupplyAirTemp", (-10, 60), 30,
                  th(wh=18, ch=22, wl=10, cl=7, for_s=300, hyst=0.5)),
            Point("return_air_temp", "degC", "temperature.return", "AHU/ReturnAirTemp", (-10, 60), 30,
                  th(wh=26, ch=30, for_s=600, hyst=0.5)),
            Point("mixed_air_temp", "degC", "temperature.mixed", "AHU/MixedAirTemp", (-30, 60), 30,
                  th(wl=5, cl=2, for_s=120, hyst=1)),  # frost protection of the coils
            Point("supply_fan_speed", "percent", "fan.supply.speed", "AHU/SupplyFanSpeed", (0, 100), 30,
                  th(wh=90, ch=98, for_s=900, hyst=2)),
            Point("filter_dp", "Pa", "filter.dp", "AHU/FilterDP", (0, 1000), 60,
                  th(wh=250, ch=350, for_s=3600, hyst=10)),
            Point("power", "kW", "power.kw", "AHU/Power", (0, kw * 1.5), 60,
                  th(wh=round(kw * 0.95, 1), ch=round(kw * 1.1, 1), for_s=600, hyst=round(kw * 0.02, 1))),
        ]
    if a.kind == "VAV":
        return [
            Point("zone_temp", "degC", "zone.temp", "VAV/ZoneTemp", (0, 50), 60,
                  th(wh=26, ch=28, wl=19, cl=16, for_s=900, hyst=0.5)),
            Point("airflow", "L/s", "airflow", "VAV/Airflow", (0, 1500), 60),
            Point("damper_position", "percent", "damper.position", "VAV/DamperPosition", (0, 100), 60),
            Point("zone_co2", "ppm", "zone.co2", "VAV/ZoneCO2", (300, 5000), 120,
                  th(wh=1000, ch=1500, for_s=600, hyst=50)),
        ]
    if a.kind == "Fan":
        return [
            Point("fan_speed", "rpm", "fan.speed", "Fan/Speed", (0, 1200), 30),
            Point("motor_current", "A", "motor.current", "Motor/Current", (0, amps * 3), 30,
                  th(wh=round(amps * 1.05), ch=round(amps * 1.15), for_s=120, hyst=1)),
            VIBRATION,
        ]
    if a.kind == "Boiler":
        return [
            Point("supply_water_temp", "degC", "water.supply.temp", "Boiler/SupplyWaterTemp", (0, 120), 30,
                  th(wh=82, ch=90, wl=50, cl=40, for_s=300, hyst=2)),
            Point("return_water_temp", "degC", "water.return.temp", "Boiler/ReturnWaterTemp", (0, 120), 30,
                  th(wh=60, ch=70, for_s=600, hyst=2)),  # condensing boilers need a cool return
            Point("gas_flow", "m3/h", "gas.flow", "Boiler/GasFlow", (0, 200), 60,
                  th(wh=125, ch=140, for_s=300, hyst=5)),
            Point("flue_gas_temp", "degC", "flue.temp", "Boiler/FlueGasTemp", (0, 400), 60,
                  th(wh=110, ch=150, for_s=300, hyst=5)),
        ]
    if a.kind == "Pump":
        flow_max = {"hwp-1": 120, "chwp-1": 600, "chwp-2": 600, "cwp-1": 800}[a.name]
        return [
            # Only high limits: a standby pump legitimately shows no flow and no pressure.
            Point("flow", "m3/h", "flow", "Pump/Flow", (0, flow_max), 30,
                  th(wh=round(flow_max * 0.85), ch=round(flow_max * 0.95), for_s=300, hyst=round(flow_max * 0.02))),
            Point("discharge_pressure", "kPa", "pressure.discharge", "Pump/DischargePressure", (0, 1600), 30,
                  th(wh=900, ch=1000, for_s=60, hyst=10)),
            Point("motor_current", "A", "motor.current", "Motor/Current", (0, amps * 3), 30,
                  th(wh=round(amps * 1.05), ch=round(amps * 1.15), for_s=120, hyst=1)),
            VIBRATION,
        ]
    if a.kind == "Chiller":
        return [
            Point("chw_supply_temp", "degC", "chw.supply.temp", "Chiller/CHWSupplyTemp", (-5, 30), 30,
                  th(wh=9, ch=12, wl=4, cl=2, for_s=300, hyst=0.3)),
            Point("chw_return_temp", "degC", "chw.return.temp", "Chiller/CHWReturnTemp", (-5, 35), 30,
                  th(wh=16, ch=18, for_s=600, hyst=0.3)),
            Point("condenser_water_temp", "degC", "cw.entering.temp", "Chiller/CWEnteringTemp", (0, 50), 30,
                  th(wh=32, ch=35, for_s=300, hyst=0.5)),
            Point("compressor_power", "kW", "compressor.power", "Chiller/CompressorPower", (0, kw * 1.3), 60,
                  th(wh=round(kw * 1.0), ch=round(kw * 1.1), for_s=600, hyst=5)),
            Point("vibration_rms", "mm/s", "compressor.vibration.rms", "Chiller/VibrationRMS", (0, 50), 60,
                  th(wh=4.5, ch=7.1, for_s=300, hyst=0.3)),
        ]
    if a.kind == "CoolingTower":
        return [
            Point("fan_speed", "percent", "fan.speed", "CT/FanSpeed", (0, 100), 30),
            Point("basin_temp", "degC", "basin.temp", "CT/BasinTemp", (-5, 50), 60,
                  th(wh=30, ch=33, wl=5, cl=2, for_s=600, hyst=0.5)),
            Point("fan_vibration_rms", "mm/s", "fan.vibration.rms", "CT/FanVibrationRMS", (0, 50), 60,
                  th(wh=4.5, ch=7.1, for_s=300, hyst=0.3)),
        ]
    if a.kind == "Meter":
        kw_max = {"meter-hq-main": 1600, "meter-plant-main": 4000}[a.name]
        return [
            Point("active_power", "kW", "power.active", "Meter/ActivePower", (0, kw_max), 15,
                  th(wh=round(kw_max * 0.8), ch=round(kw_max * 0.9), for_s=900, hyst=round(kw_max * 0.02))),
            Point("energy", "kWh", "energy.import", "Meter/EnergyImport", (0, 1e9), 900),
            Point("voltage_ll", "V", "voltage.ll", "Meter/VoltageLL", (0, 500), 15,
                  th(wh=424, ch=440, wl=376, cl=360, for_s=60, hyst=2)),  # 400 V +/-6 % / +10 %
        ]
    raise ValueError(f"no sensor catalogue for {a.kind}")
# fmt: on


def topic(a: AssetDef) -> str:
    prefix = SITES[a.site]["mqtt"]["topicPrefix"]
    if a.payload == "sparkplugb":
        # Sparkplug B namespace below the site prefix: spBv1.0/<group>/DDATA/<edge node>/<device>
        return f"{prefix}/spBv1.0/{a.site}/DDATA/edge-{a.site}-1/{a.name}"
    if a.payload == "senml":
        return f"{prefix}/{a.name}/senml"
    return f"{prefix}/{a.name}/telemetry"


def binding_spec(a: AssetDef, p: Point) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "assetRef": a.name,
        "metric": p.metric,
        "topic": topic(a),
        "payloadFormat": a.payload,
    }
    if a.payload == "json":
        spec["field"] = p.json_field
    elif a.payload == "sparkplugb":
        spec["field"] = p.sparkplug
    # senml: the SenML record name is the metric name, which is the default field
    spec["unit"] = p.unit
    spec["validRange"] = {"min": p.valid[0], "max": round(p.valid[1], 1)}
    if p.thresholds:
        spec["thresholds"] = dict(p.thresholds)
    spec["expectedIntervalSeconds"] = p.interval
    return spec


# -------------------------------------------------------------------------- models

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "anomaly-hvac": (
        "Unusual operation of air handlers and chillers, scored by an isolation forest; 1.1.0 runs as a canary.",
        {
            "task": "anomaly",
            "model": {"name": "anomaly-iforest", "version": "1.0.0"},
            "selector": {"kinds": ["AHU", "Chiller"]},
            "training": {"schedule": "0 2 * * 0", "windowDays": 60},
            "serving": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "maxBatchSize": 128,
                "maxLatencyMs": 1000,
                "alertThreshold": 0.85,
            },
            "canary": {
                "version": "1.1.0",
                "trafficPercent": 10,
                "maxErrorRate": 0.02,
                "minCalls": 200,
                "maxScoreDrift": 0.15,
            },
        },
    ),
    "failure-rotating": (
        "Failure within the next 7 days for rotating equipment (pumps and chiller compressors).",
        {
            "task": "failure",
            "model": {"name": "failure-xgboost", "version": "2.0.1"},
            "selector": {"kinds": ["Pump", "Chiller"]},
            "training": {"schedule": "0 3 * * 0", "windowDays": 365, "horizonHours": 168},
            "serving": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "maxBatchSize": 64,
                "maxLatencyMs": 2000,
                "alertThreshold": 0.7,
            },
        },
    ),
    "rul-pumps": (
        "Remaining useful life (hours) of the pumps, for planning maintenance weeks ahead.",
        {
            "task": "rul",
            "model": {"name": "rul-gbr", "version": "1.0.0"},
            "selector": {"kinds": ["Pump"]},
            "training": {"schedule": "0 4 * * 0", "windowDays": 365, "horizonHours": 720},
            "serving": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "maxBatchSize": 64,
                "maxLatencyMs": 2000,
                "alertThreshold": 0.8,
            },
        },
    ),
    "energy-forecast": (
        "Day-ahead electricity forecast and savings estimate from the main meters of both sites.",
        {
            "task": "energy",
            "model": {"name": "energy-lightgbm", "version": "1.2.0"},
            "selector": {"kinds": ["Meter"], "matchLabels": {"dtwin.io/system": "electrical"}},
            "training": {"schedule": "@daily", "windowDays": 730, "horizonHours": 48},
            "serving": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "maxBatchSize": 32,
                "maxLatencyMs": 5000,
                "alertThreshold": 0.9,
            },
        },
    ),
}

# -------------------------------------------------------------------------- output


def obj(kind: str, name: str, labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    SPEC_MODELS[kind].model_validate(spec)  # fail here, not at kubectl apply time
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {**PART_OF, **labels}},
        "spec": spec,
    }


def dump(docs: list[tuple[str, dict[str, Any]]], header: str) -> str:
    """A YAML stream: the file's header comment, then one document per object, each under a comment."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    lines.append("# Generated by hack/gen_examples.py; edit that script, not this file.")
    out = "\n".join(lines) + "\n"
    for comment, doc in docs:
        out += f"---\n# {comment}\n" + yaml11.dump(doc, sort_keys=False, width=120)
    return out


def files() -> dict[str, str]:
    """File name -> content of every example file."""
    out: dict[str, str] = {}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": dict(PART_OF)}}
    out["00-namespace.yaml"] = dump(
        [("The demo campus lives in its own namespace.", ns)],
        "Demo campus of the dtwin digital twin platform.\n"
        "Install the CRDs first (kubectl apply --server-side -f crds/), then: kubectl apply -f examples/",
    )

    site_docs = []
    for name, spec in SITES.items():
        floors = ", ".join(f"{f['name']} ({f['level']})" for f in spec["layout"]["floors"])
        site_docs.append(
            (f"{name}: {spec['displayName']}; floors {floors}", obj("Site", name, {"dtwin.io/site": name}, spec))
        )
    out["10-sites.yaml"] = dump(
        site_docs,
        "Sites of the demo campus: `hq`, an office tower whose plant room is in the basement and whose air\n"
        "handlers are on the roof, and `plant`, the central chilled-water plant and pumping station next door.",
    )

    for site in SITES:
        docs = []
        for a in ASSETS:
            if a.site != site:
                continue
            labels = {"dtwin.io/site": site, "dtwin.io/system": SYSTEM_OF_KIND[a.kind], **a.extra_labels}
            docs.append(
                (f"{a.name}: {a.kind}, {a.display}, on {a.floor}/{a.zone}", obj("Asset", a.name, labels, asset_spec(a)))
            )
        kinds = sorted({a.kind for a in ASSETS if a.site == site})
        out[f"20-assets-{site}.yaml"] = dump(
            docs, f"Assets of site `{site}` ({', '.join(kinds)}), each placed on a floor/zone of its layout."
        )

    for site in SITES:
        docs = []
        for a in ASSETS:
            if a.site != site:
                continue
            for p in points(a):
                name = f"{a.name}-{p.metric.replace('_', '-')}"
                labels = {"dtwin.io/site": site, "dtwin.io/asset": a.name, "dtwin.io/system": SYSTEM_OF_KIND[a.kind]}
                spec = binding_spec(a, p)
                docs.append(
                    (
                        f"{name}: {p.metric} of {a.name} [{p.unit}], {a.payload} on {spec['topic']}",
                        obj("SensorBinding", name, labels, spec),
                    )
                )
        out[f"30-sensors-{site}.yaml"] = dump(
            docs,
            f"Sensor points of site `{site}`: one SensorBinding per (asset, metric), published under the\n"
            f"site's topic prefix `{SITES[site]['mqtt']['topicPrefix']}`, with plausible ranges and alert "
            "thresholds\n(vibration limits follow ISO 10816-3: warning 4.5 mm/s, critical 7.1 mm/s RMS).",
        )

    out["40-models.yaml"] = dump(
        [
            (f"{name}: {comment}", obj("ModelDeployment", name, {"dtwin.io/task": spec["task"]}, spec))
            for name, (comment, spec) in MODELS.items()
        ],
        "ML models of the demo campus: anomaly detection, failure prediction and energy forecasting.",
    )
    return out


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (directory / name).write_text(text)
        print(directory / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "examples")
