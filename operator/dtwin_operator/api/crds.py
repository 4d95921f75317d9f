"""The four CustomResourceDefinitions, generated from the pydantic models.

`python -m dtwin_operator.api.crds [DIR]` writes `crds/<plural>.dtwin.io.yaml`;
a unit test fails when the committed YAML differs from what this module
generates, so the models stay the single source of truth.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonDict

from dtwin_operator import names
from dtwin_operator.api import yaml11
from dtwin_operator.api.asset import AssetSpec, AssetStatus
from dtwin_operator.api.common import GROUP, VERSION, cel
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from dtwin_operator.api.schema import structural
from dtwin_operator.api.sensorbinding import SensorBindingSpec, SensorBindingStatus
from dtwin_operator.api.site import SiteSpec, SiteStatus

CATEGORY = "dtwin"
READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath) before Ready and Age
    rules: tuple[JsonDict, ...] = ()  # CEL rules on the whole object (e.g. on metadata.name)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS: tuple[Kind, ...] = (
    Kind(
        "Site",
        "sites",
        ("dsite",),
        "A building, campus or plant: the unit of tenancy, sharding and autoscaling.",
        SiteSpec,
        SiteStatus,
        (
            ("Assets", "integer", ".status.assets"),
            ("Sensors", "integer", ".status.sensors"),
            ("Bridge", "integer", ".status.bridge.readyReplicas"),
            ("Live", "integer", ".status.bridge.liveReplicas"),
        ),
        # The name becomes the bridge's Service and StatefulSet names (DNS-1035; see names.MAX_SITE_NAME for
        # the length) and a schema name.
        (
            cel(
                f"self.metadata.name.size() <= {names.MAX_SITE_NAME} && "
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                f"metadata.name of a Site must be at most {names.MAX_SITE_NAME} characters of lowercase letters, "
                "digits and '-', starting with a letter (it names the site's bridge StatefulSet and Service and "
                "its database schema)",
            ),
        ),
    ),
    Kind(
        "Asset",
        "assets",
        ("dasset",),
        "One physical asset (AHU, chiller, pump, ...) at a site, placed in its building.",
        AssetSpec,
        AssetStatus,
        (
            ("Site", "string", ".spec.siteRef"),
            ("Kind", "string", ".spec.kind"),
            ("Floor", "string", ".spec.location.floor"),
            ("Sensors", "integer", ".status.sensors"),
            ("State", "string", ".status.state"),
            ("Health", "integer", ".status.healthScore"),
            ("LastSeen", "date", ".status.lastSeen"),
        ),
    ),
    Kind(
        "SensorBinding",
        "sensorbindings",
        ("sb", "sensor"),
        "One sensor point bound to an asset metric: topic, payload, unit, valid range and thresholds.",
        SensorBindingSpec,
        SensorBindingStatus,
        (
            ("Asset", "string", ".spec.assetRef"),
            ("Metric", "string", ".spec.metric"),
            ("Unit", "string", ".spec.unit"),
            ("Topic", "string", ".spec.topic"),
            ("State", "string", ".status.state"),
            ("LastSeen", "date", ".status.lastSeen"),
        ),
    ),
    Kind(
        "ModelDeployment",
        "modeldeployments",
        ("mdep",),
        "One ML task (anomaly, failure, rul, energy) served for a selection of assets.",
        ModelDeploymentSpec,
        ModelDeploymentStatus,
        (
            ("Task", "string", ".spec.task"),
            ("Active", "string", ".status.activeVersion"),
            ("Canary", "string", ".status.canaryVersion"),
            ("CanaryState", "string", ".status.canaryState"),
            ("Replicas", "integer", ".status.readyReplicas"),
            ("Assets", "integer", ".status.selectedAssets"),
        ),
        # The name becomes the retraining CronJob's name dtwin-train-<name>, which Kubernetes limits to 52.
        (
            cel(
                f"self.metadata.name.size() <= {names.MAX_MODEL_NAME}",
                f"metadata.name of a ModelDeployment must be at most {names.MAX_MODEL_NAME} characters (it names "
                "its retraining CronJob dtwin-train-<name>, which Kubernetes limits to 52 characters)",
            ),
        ),
    ),
)
BY_KIND = {k.kind: k for k in KINDS}


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition manifest for one kind."""
    spec = structural(kind.spec)
    spec["description"] = f"Desired state of the {kind.kind}."
    status = structural(kind.status)
    status["description"] = f"Observed state of the {kind.kind}, written by the dtwin operator."
    columns: list[dict[str, Any]] = [{"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns]
    columns += [
        {"name": "Ready", "type": "string", "jsonPath": READY},
        {
            "name": "Reason",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "dtwin.io/v1alpha1"},
            "kind": {"type": "string", "description": kind.kind},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if kind.rules:
        schema["x-kubernetes-validations"] = list(kind.rules)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "dtwin"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def render_yaml(kind: Kind) -> str:
    header = "# Generated by `python -m dtwin_operator.api.crds` from operator/dtwin_operator/api. Do not edit.\n"
    return header + yaml11.dump(crd(kind), sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = directory / f"{kind.crd_name}.yaml"
        path.write_text(render_yaml(kind))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(p)
