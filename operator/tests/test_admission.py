"""Admission of dtwin objects by a real kube-apiserver running the generated CRDs.

Invalid objects must be refused when they are written (HTTP 422), with a message
that names the field and says what to fix; the checks are the CRDs' OpenAPI
schemas (enums, ranges, patterns) and CEL rules, including transition rules that
make references immutable. The API server must also fill in the models' defaults,
`kubectl explain` must show the field descriptions, and the `dtwin` category must
list all four kinds. Needs the local control plane (`-m cluster`).
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from dtwin_localcp.controlplane import ControlPlane
from dtwin_localcp.kubeapi import wait_until
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.api.crds import BY_KIND
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
KUBECTL_TIMEOUT = 60.0
OPENAPI_TIMEOUT = 60.0  # the CRDs' OpenAPI is published a moment after they are Established

SPEC_MODELS: dict[str, type[BaseModel]] = {
    "Site": SiteSpec,
    "Asset": AssetSpec,
    "SensorBinding": SensorBindingSpec,
    "ModelDeployment": ModelDeploymentSpec,
}

# A valid object of each kind; every rejection case breaks exactly one thing in one of them.
VALID: dict[str, tuple[str, dict[str, Any]]] = {
    "Site": (
        "hq",
        {
            "location": {"latitude": 45.75, "longitude": 4.83, "timezone": "Europe/Paris"},
            "layout": {
                "floors": [
                    {"name": "basement", "level": -1, "zones": [{"name": "plant-room", "width": 20, "depth": 15}]},
                    {"name": "l1", "level": 1},
                ]
            },
            "mqtt": {"topicPrefix": "sites/hq"},
            "storage": {"retentionDays": 90, "compressAfterDays": 7},
            "bridge": {"minReplicas": 1, "maxReplicas": 2},
        },
    ),
    "Asset": (
        "pump-1",
        {
            "siteRef": "hq",
            "kind": "Pump",
            "ratedPowerKw": 7.5,
            "location": {"floor": "basement", "zone": "plant-room"},
        },
    ),
    "SensorBinding": (
        "pump-1-vibration-rms",
        {
            "assetRef": "pump-1",
            "metric": "vibration_rms",
            "topic": "sites/hq/pump-1/telemetry",
            "field": "vibration.rms",
            "unit": "mm/s",
            "validRange": {"min": 0, "max": 50},
            "thresholds": {"warningHigh": 4.5, "criticalHigh": 7.1, "forSeconds": 300, "hysteresis": 0.3},
        },
    ),
    "ModelDeployment": (
        "failure-pumps",
        {
            "task": "failure",
            "model": {"name": "failure-xgboost", "version": "1.0.0"},
            "selector": {"kinds": ["Pump"]},
            "serving": {"minReplicas": 1, "maxReplicas": 2},
        },
    ),
}


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`base` with `change` applied as a JSON merge patch (RFC 7386: None deletes, lists are replaced)."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Rejection:
    """One invalid object: `change` applied to the VALID object of `kind` must be refused with 422."""

    id: str
    kind: str
    change: dict[str, Any]
    expect: tuple[str, ...]  # substrings of the API server's message: the field and what to fix
    update: bool = False  # create the valid object first, then send `change` as a merge patch of its spec
    name: str | None = None  # metadata.name, if not the valid object's

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


WILDCARDS = "must not contain the MQTT wildcards '#' or '+'"
REJECTIONS = [
    # ---- SensorBinding
    Rejection(
        "binding-critical-high-below-warning-high",
        "SensorBinding",
        {"thresholds": {"warningHigh": 7.1, "criticalHigh": 4.5}},
        ("spec.thresholds.criticalHigh", "thresholds.warningHigh must be less than thresholds.criticalHigh"),
    ),
    Rejection(
        "binding-critical-high-equal-warning-high",
        "SensorBinding",
        {"thresholds": {"warningHigh": 7.1, "criticalHigh": 7.1}},
        ("spec.thresholds.criticalHigh", "thresholds.warningHigh must be less than thresholds.criticalHigh"),
    ),
    Rejection(
        "binding-critical-low-above-warning-low",
        "SensorBinding",
        {"thresholds": {"warningLow": 1, "criticalLow": 2}},
        ("spec.thresholds.criticalLow", "thresholds.criticalLow must be less than thresholds.warningLow"),
    ),
    Rejection(
        "binding-critical-high-outside-valid-range",
        "SensorBinding",
        {"thresholds": {"criticalHigh": 80}},
        ("spec.thresholds.criticalHigh", "thresholds.criticalHigh must be within validRange"),
    ),
    Rejection(
        "binding-valid-range-min-not-below-max",
        "SensorBinding",
        {"validRange": {"min": 50, "max": 50}, "thresholds": None},
        ("spec.validRange.min", "validRange.min must be less than validRange.max"),
    ),
    Rejection(
        "binding-payload-format-xml",
        "SensorBinding",
        {"payloadFormat": "xml"},
        ('spec.payloadFormat: Unsupported value: "xml"', 'supported values: "json", "senml", "sparkplugb"'),
    ),
    Rejection(
        "binding-unknown-unit",
        "SensorBinding",
        {"unit": "furlong/fortnight"},
        ('spec.unit: Unsupported value: "furlong/fortnight"', "supported values:", '"mm/s"', '"degC"'),
    ),
    Rejection(
        "binding-topic-wildcard-hash",
        "SensorBinding",
        {"topic": "sites/hq/pump-1/#"},
        ("spec.topic", WILDCARDS, "give the exact topic the device publishes on"),
    ),
    Rejection(
        "binding-topic-wildcard-plus", "SensorBinding", {"topic": "sites/hq/+/telemetry"}, ("spec.topic", WILDCARDS)
    ),
    Rejection(
        "binding-asset-ref-immutable",
        "SensorBinding",
        {"assetRef": "pump-2"},
        (
            "spec.assetRef",
            "Asset reference is immutable",
            "delete and re-create the object to point it at another Asset",
        ),
        update=True,
    ),
    # ---- Asset
    Rejection(
        "asset-unknown-kind",
        "Asset",
        {"kind": "Toaster"},
        ('spec.kind: Unsupported value: "Toaster"', 'supported values: "AHU"', '"CoolingTower"'),
    ),
    Rejection(
        "asset-site-ref-immutable",
        "Asset",
        {"siteRef": "plant"},
        ("spec.siteRef", "Site reference is immutable", "delete and re-create the object to point it at another Site"),
        update=True,
    ),
    # ---- Site
    Rejection(
        "site-bridge-min-replicas-above-max",
        "Site",
        {"bridge": {"minReplicas": 5, "maxReplicas": 2}},
        ("spec.bridge.minReplicas", "bridge.minReplicas must be less than or equal to bridge.maxReplicas"),
    ),
    Rejection(
        "site-negative-retention-days",
        "Site",
        {"storage": {"retentionDays": -1}},
        ("spec.storage.retentionDays", "should be greater than or equal to 1"),
    ),
    Rejection(
        "site-compress-after-not-before-retention",
        "Site",
        {"storage": {"retentionDays": 30, "compressAfterDays": 30}},
        ("spec.storage.compressAfterDays", "storage.compressAfterDays must be less than storage.retentionDays"),
    ),
    Rejection(
        "site-invalid-timezone",
        "Site",
        {"location": {"timezone": "Paris"}},
        ("spec.location.timezone", "must be an IANA time zone name such as Europe/Paris"),
    ),
    Rejection(
        "site-latitude-91",
        "Site",
        {"location": {"latitude": 91}},
        ("spec.location.latitude", "should be less than or equal to 90"),
    ),
    Rejection(
        "site-two-floors-same-level",
        "Site",
        {"layout": {"floors": [{"name": "l1", "level": 1}, {"name": "mezzanine", "level": 1}]}},
        ("spec.layout.floors", "two floors have the same level; give each floor its own level"),
    ),
    Rejection(
        "site-topic-prefix-wildcard",
        "Site",
        {"mqtt": {"topicPrefix": "sites/#"}},
        ("spec.mqtt.topicPrefix", "must not contain the MQTT wildcards"),
    ),
    Rejection(
        "site-storage-database-immutable",
        "Site",
        {"storage": {"database": "archive"}},
        ("spec.storage.database", "storage.database is immutable", "create a new Site to move a site's data"),
        update=True,
    ),
    Rejection(
        "site-name-too-long",
        "Site",
        {},
        ("metadata.name of a Site must be at most 39 characters",),
        name="headquarters-building-north-campus-lyon2",  # 40: one too many for the StatefulSet
    ),
    # ---- ModelDeployment
    Rejection(
        "model-canary-version-equals-model-version",
        "ModelDeployment",
        {"canary": {"version": "1.0.0"}},
        ("spec.canary.version", "canary.version must differ from model.version"),
    ),
    Rejection(
        "model-serving-min-replicas-above-max",
        "ModelDeployment",
        {"serving": {"minReplicas": 4, "maxReplicas": 2}},
        ("spec.serving.minReplicas", "serving.minReplicas must be less than or equal to serving.maxReplicas"),
    ),
    Rejection(
        "model-serving-min-replicas-zero",
        "ModelDeployment",
        {"serving": {"minReplicas": 0}},
        ("spec.serving.minReplicas", "should be greater than or equal to 1"),
    ),
    Rejection(
        "model-unknown-task",
        "ModelDeployment",
        {"task": "forecast"},
        ("spec.task", '"anomaly", "failure", "rul", "energy"'),
    ),
    Rejection(
        "model-canary-version-latest",
        "ModelDeployment",
        {"canary": {"version": "latest"}},
        ("spec.canary.version", "canary.version must name an explicit version, not 'latest'"),
    ),
    Rejection(
        "model-canary-min-calls-zero",
        "ModelDeployment",
        {"canary": {"version": "1.1.0", "minCalls": 0}},
        ("spec.canary.minCalls", "should be greater than or equal to 1"),
    ),
    Rejection(
        "model-canary-score-drift-above-one",
        "ModelDeployment",
        {"canary": {"version": "1.1.0", "maxScoreDrift": 1.5}},
        ("spec.canary.maxScoreDrift", "should be less than or equal to 1"),
    ),
    Rejection(
        "model-canary-version-to-model-version-on-update",
        "ModelDeployment",
        {"canary": {"version": "1.0.0", "trafficPercent": 20}},
        ("spec.canary.version", "canary.version must differ from model.version"),
        update=True,
    ),
    Rejection(
        "model-name-too-long",
        "ModelDeployment",
        {},
        ("metadata.name of a ModelDeployment must be at most 40 characters", "dtwin-train-<name>"),
        name="failure-prediction-rotating-equipment-hq1",  # 41: one too many for the CronJob
    ),
]


class Objects:
    """Create/patch/get dtwin objects through the custom objects API."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = client.CustomObjectsApi(api)

    @staticmethod
    def body(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}

    def create(self, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
        plural = BY_KIND[doc["kind"]].plural
        return self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc)

    def patch_spec(self, kind: str, namespace: str, name: str, change: dict[str, Any]) -> dict[str, Any]:
        return self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            BY_KIND[kind].plural,
            name,
            {"spec": change},
            _content_type="application/merge-patch+json",
        )

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, BY_KIND[kind].plural, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise


@pytest.fixture(scope="module")
def objects(kube_client: client.ApiClient, crds_installed: list[str]) -> Objects:
    return Objects(kube_client)


def rejection(call: Callable[[], Any]) -> tuple[int, str]:
    """Run a write that must fail; returns (HTTP status, the API server's message)."""
    with pytest.raises(ApiException) as caught:
        call()
    err = caught.value
    try:
        message = json.loads(err.body)["message"]
    except (TypeError, ValueError, KeyError):
        message = str(err.body)
    return err.status, message


def test_rejection_cases_are_many_and_distinct() -> None:
    assert len(REJECTIONS) >= 10
    assert len({r.id for r in REJECTIONS}) == len(REJECTIONS)
    assert len({json.dumps([r.kind, r.change, r.name], sort_keys=True) for r in REJECTIONS}) == len(REJECTIONS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_object_is_accepted(objects: Objects, namespace: str, kind: str) -> None:
    """The baseline of the rejection cases is itself valid (so each case fails for its own reason)."""
    name, spec = VALID[kind]
    SPEC_MODELS[kind].model_validate(spec)
    created = objects.create(namespace, Objects.body(kind, name, spec))
    assert created["metadata"]["uid"]
    assert _subset(spec, created["spec"]), f"the server changed a field we set: {created['spec']}"


def _subset(part: Any, whole: Any) -> bool:
    """Every value in `part` is in `whole` (which may have more keys, e.g. defaults), lists item by item."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and _subset(v, whole[k]) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and len(part) == len(whole) and all(map(_subset, part, whole))
    return bool(part == whole)


@pytest.mark.parametrize("case", [r.param() for r in REJECTIONS])
def test_invalid_object_is_rejected_at_admission(objects: Objects, namespace: str, case: Rejection) -> None:
    valid_name, valid_spec = VALID[case.kind]
    name = case.name or valid_name
    if case.update:
        before = objects.create(namespace, Objects.body(case.kind, name, valid_spec))
        status, message = rejection(lambda: objects.patch_spec(case.kind, namespace, name, case.change))
    else:
        doc = Objects.body(case.kind, name, merged(valid_spec, case.change))
        status, message = rejection(lambda: objects.create(namespace, doc))
    assert status == 422, message
    missing = [s for s in case.expect if s not in message]
    assert not missing, f"message lacks {missing}:\n{message}"
    stored = objects.get(case.kind, namespace, name)
    if case.update:
        assert stored is not None
        assert stored["spec"] == before["spec"], "a rejected update changed the object"
        assert stored["metadata"]["generation"] == before["metadata"]["generation"]
    else:
        assert stored is None, "a rejected object was stored"


def _without_empty(value: Any) -> Any:
    """Drop empty lists/maps: the API server leaves out what pydantic dumps as [] or {}."""
    if isinstance(value, dict):
        out = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


MINIMAL: dict[str, tuple[str, dict[str, Any]]] = {
    "Site": ("minimal", {}),
    "Asset": ("pump-9", {"siteRef": "minimal", "kind": "Pump", "location": {"floor": "l1"}}),
    "SensorBinding": (
        "pump-9-flow",
        {"assetRef": "pump-9", "metric": "flow", "topic": "sites/minimal/pump-9", "unit": "m3/h"},
    ),
    "ModelDeployment": ("anomaly", {"task": "anomaly", "model": {"name": "anomaly-iforest"}}),
}


def test_minimal_site_gets_its_defaults_from_the_api_server(objects: Objects, namespace: str) -> None:
    created = objects.create(namespace, Objects.body("Site", "minimal", {}))
    spec = created["spec"]
    assert spec["storage"]["retentionDays"] == 365
    assert spec["storage"]["compressAfterDays"] == 7
    assert spec["storage"]["database"] == "dtwin"
    assert spec["storage"]["deletionPolicy"] == "Retain"
    assert spec["bridge"]["minReplicas"] == 1
    assert spec["bridge"]["maxReplicas"] == 3
    assert spec["location"]["timezone"] == "UTC"
    assert spec["mqtt"]["port"] == 1883
    stored = objects.get("Site", namespace, "minimal")
    assert stored is not None
    assert stored["spec"] == spec, "defaults are persisted, not only returned"


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_api_server_defaults_match_the_models(objects: Objects, namespace: str, kind: str) -> None:
    """What the API server fills in is what the operator's pydantic models assume."""
    name, spec = MINIMAL[kind]
    created = objects.create(namespace, Objects.body(kind, name, spec))
    expected = SPEC_MODELS[kind].model_validate(spec).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert _without_empty(created["spec"]) == _without_empty(expected)


def kubectl(plane: ControlPlane, kubeconfig: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plane.kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir), *args],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
        check=False,
    )


def test_kubectl_explain_shows_field_descriptions(
    control_plane: ControlPlane, kubeconfig: Path, crds_installed: list[str], tmp_path: Path
) -> None:
    def explained() -> str | None:
        # A fresh discovery cache each try: the CRDs' OpenAPI appears shortly after they are Established.
        out = kubectl(control_plane, kubeconfig, tmp_path / "cache", "explain", "site.spec.storage")
        if out.returncode != 0 or "retentionDays" not in out.stdout:
            return None
        return " ".join(out.stdout.split())

    text = wait_until(explained, timeout=OPENAPI_TIMEOUT, what="kubectl explain site.spec.storage")
    assert "KIND: Site" in text
    assert f"GROUP: {GROUP}" in text
    assert "Database, partitioning, compression and retention of telemetry." in text  # the field's own
    for field, description in [
        ("retentionDays", "Raw readings older than this many days are dropped."),
        ("compressAfterDays", "Chunks older than this many days are compressed"),
        ("database", "PostgreSQL/TimescaleDB database holding the site schema"),
        ("deletionPolicy", "What happens to the site schema when the Site is deleted"),
    ]:
        assert field in text
        assert description in text, f"{field}: {description!r} not in:\n{text}"


def test_examples_are_admitted_and_listed_by_the_dtwin_category(
    control_plane: ControlPlane, kubeconfig: Path, objects: Objects, namespace: str, tmp_path: Path
) -> None:
    docs = [
        d
        for p in sorted((ROOT / "examples").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d and d["kind"] in SPEC_MODELS
    ]
    for doc in docs:
        body = {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "namespace"}}
        objects.create(namespace, body)
    expected = {f"{d['kind'].lower()}.{GROUP}/{d['metadata']['name']}" for d in docs}
    assert {name.split(".")[0] for name in expected} == {"site", "asset", "sensorbinding", "modeldeployment"}

    out = kubectl(control_plane, kubeconfig, tmp_path / "cache", "get", "dtwin", "-n", namespace, "-o", "name")
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert listed == expected

    table = kubectl(control_plane, kubeconfig, tmp_path / "cache", "get", "dtwin", "-n", namespace)
    assert table.returncode == 0, table.stderr
    for column in ("SITE", "KIND", "FLOOR", "METRIC", "UNIT", "TASK", "ACTIVE", "CANARY", "READY"):
        assert column in table.stdout, f"printer column {column} missing"
    assert "site.dtwin.io/hq" in table.stdout
    assert "modeldeployment.dtwin.io/anomaly-hvac" in table.stdout
