"""Unit tests of the ModelDeployment renderers: serving tracks, routing.json, retraining and recommendations
CronJobs, determinism (the scorer's manifests: test_render_scorer.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from dtwin_operator import labels, names
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.render.context import Images, ModelContext
from dtwin_operator.render.model import (
    PRUNABLE,
    model_children,
    recommend_args,
    recommend_cronjob,
    routing,
    serving_deployment,
    serving_hpa,
    serving_service,
    training_cronjob,
)

IMAGES = Images(bridge="b", model="ghcr.io/dtwin/bentos:test", trainer="ghcr.io/dtwin/trainer:test")


def context(canary: bool = False, sites: tuple[str, ...] = ("hq",), **spec: Any) -> ModelContext:
    base: dict[str, Any] = {
        "task": "failure",
        "model": {"name": "failure-rf", "version": "1.0"},
        "training": {"schedule": "0 3 * * 0", "windowDays": 60, "horizonHours": 72},
        "serving": {"minReplicas": 2, "maxReplicas": 4, "maxBatchSize": 32, "maxLatencyMs": 20, "alertThreshold": 0.7},
        "canary": {"version": "1.1", "trafficPercent": 20},
    }
    return ModelContext(
        namespace="demo",
        name="pumps",
        spec=ModelDeploymentSpec.model_validate({**base, **spec}),
        assets=("demo/pump-2", "demo/pump-1"),
        sites=sites,
        canary=canary,
        images=IMAGES,
    )


def by_name(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def env(dep: dict[str, Any]) -> dict[str, str]:
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_stable_only_renders_the_serving_trio_routing_cronjob_and_scorer() -> None:
    got = by_name(model_children(context()))
    assert sorted(got) == [
        ("ConfigMap", "dtwin-model-pumps-routing"),
        ("CronJob", "dtwin-train-pumps"),  # no recommendations: not the energy task
        ("Deployment", "dtwin-model-pumps"),
        ("Deployment", "dtwin-scorer-pumps"),
        ("HorizontalPodAutoscaler", "dtwin-model-pumps"),
        ("Role", "dtwin-scorer-pumps"),
        ("RoleBinding", "dtwin-scorer-pumps"),
        ("Service", "dtwin-model-pumps"),
        ("ServiceAccount", "dtwin-scorer-pumps"),
    ]
    for m in got.values():
        assert m["metadata"]["namespace"] == "demo"
        assert m["metadata"]["labels"][labels.MODEL] == "pumps"
        assert m["metadata"]["labels"][labels.MANAGED_BY] == "dtwin-operator"
        assert labels.SITE not in m["metadata"]["labels"]  # the Site's owned-object watch must not take it
        # `kubectl get deploy,cronjob -l app.kubernetes.io/instance=pumps` lists every workload of the model.
        assert m["metadata"]["labels"]["app.kubernetes.io/instance"] == "pumps"


def test_canary_adds_the_same_trio_and_routing_percent() -> None:
    manifests = model_children(context(canary=True))
    got = by_name(manifests)
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler"):
        assert (kind, "dtwin-model-pumps-canary") in got
    # The routing ConfigMap comes after both tracks: callers never get a URL whose Service does not exist yet.
    kinds = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert kinds.index(("ConfigMap", "dtwin-model-pumps-routing")) > kinds.index(
        ("Service", "dtwin-model-pumps-canary")
    )
    table = json.loads(got[("ConfigMap", "dtwin-model-pumps-routing")]["data"]["routing.json"])
    assert table["canary"] == {"version": "1.1", "url": "http://dtwin-model-pumps-canary.demo.svc:3000", "percent": 20}
    # What the reconcile prunes: the canary trio, and the recommendations CronJob (the task may change).
    assert {(api, kind) for api, kind in PRUNABLE} == {
        (m["apiVersion"], m["kind"]) for m in manifests if m["metadata"]["name"] == "dtwin-model-pumps-canary"
    } | {("batch/v1", "CronJob")}


def test_serving_deployment_runs_the_tasks_bento_at_its_version() -> None:
    ctx = context(canary=True)
    stable, canary = serving_deployment(ctx), serving_deployment(ctx, canary=True)
    (c,) = stable["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["bentoml", "serve", "service:FailureService", "--port", "3000"]
    assert c["workingDir"] == "/app/bentos/failure"
    assert c["image"] == "ghcr.io/dtwin/bentos:test"
    assert env(stable) == {
        "DTWIN_MODEL_TAG": "failure-rf:1.0",
        "BENTOML_HOME": "/models",
        "DTWIN_MAX_BATCH_SIZE": "32",
        "DTWIN_MAX_LATENCY_MS": "20",
    }
    assert env(canary)["DTWIN_MODEL_TAG"] == "failure-rf:1.1"
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 3000}
    assert c["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    pod = stable["spec"]["template"]["metadata"]["labels"]
    assert (pod[labels.MODEL], pod[labels.MODEL_VERSION], pod[labels.TRACK]) == ("pumps", "1.0", "stable")
    assert canary["spec"]["template"]["metadata"]["labels"][labels.TRACK] == "canary"
    # The selector never holds the version (it is immutable and a new version rolls the same Deployment),
    # and the pods carry every label it selects on.
    for dep in (stable, canary):
        sel = dep["spec"]["selector"]["matchLabels"]
        assert labels.MODEL_VERSION not in sel
        assert sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert "replicas" not in stable["spec"], "the HPA owns replicas"
    assert stable["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.parametrize(
    ("task", "cls"),
    [("anomaly", "AnomalyService"), ("failure", "FailureService"), ("rul", "RulService"), ("energy", "EnergyService")],
)
def test_each_task_serves_its_class(task: str, cls: str) -> None:
    (c,) = serving_deployment(context(task=task))["spec"]["template"]["spec"]["containers"]
    assert c["command"][2] == f"service:{cls}" and c["workingDir"] == f"/app/bentos/{task}"


def test_service_selects_only_its_tracks_pods_and_hpa_scales_its_deployment() -> None:
    ctx = context(canary=True)
    for canary in (False, True):
        svc, dep, hpa = serving_service(ctx, canary), serving_deployment(ctx, canary), serving_hpa(ctx, canary)
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert svc["spec"]["ports"] == [{"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": names.model("pumps", canary),
        }
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
        assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert serving_service(ctx)["spec"]["selector"] != serving_service(ctx, True)["spec"]["selector"]


def test_routing_json_schema() -> None:
    assert routing(context(canary=False)) == {
        "version": 1,
        "name": "pumps",
        "namespace": "demo",
        "task": "failure",
        "model": "failure-rf",
        "threshold": 0.7,
        "horizonHours": 72,
        "maxBatchSize": 32,
        "maxLatencyMs": 20,
        "stable": {"version": "1.0", "url": "http://dtwin-model-pumps.demo.svc:3000"},
        "canary": None,  # the spec has a canary, but the reconcile decided it is off (rolled back)
        "assets": ["demo/pump-1", "demo/pump-2"],
        "schemas": ["site_hq"],  # the Sites' schemas: where the scorer reads the assets' telemetry
    }
    assert routing(context(sites=("hq", "plant-2")))["schemas"] == ["site_hq", "site_plant_2"]


def test_training_cronjob() -> None:
    cj = training_cronjob(context(sites=("hq", "plant-2")))
    spec = cj["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"], spec["suspend"]) == ("0 3 * * 0", "Forbid", False)
    (c,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["command"] == [
        "python", "-m", "dtwin_trainer", "train", "--task", "failure", "--name", "failure-rf", "--source", "db",
        "--namespace", "demo", "--schema", "site_hq", "--schema", "site_plant_2", "--days", "60",
    ]  # fmt: skip
    assert c["image"] == "ghcr.io/dtwin/trainer:test"
    dsn = next(e for e in c["env"] if e["name"] == "DTWIN_TRAINER_DSN")
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "dtwin-trainer", "key": "dsn", "optional": True}
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # No Site to read history from: the CronJob exists but does not run.
    assert training_cronjob(context(sites=()))["spec"]["suspend"] is True


def test_energy_models_get_a_daily_recommendations_cronjob() -> None:
    ctx = context(task="energy", sites=("hq", "plant-2"))
    manifests = model_children(ctx)
    cj = by_name(manifests)[("CronJob", "dtwin-recs-pumps")]
    assert cj == recommend_cronjob(ctx)
    spec = cj["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"], spec["suspend"]) == ("30 5 * * *", "Forbid", False)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == [
        "python", "-m", "dtwin_trainer", "recommend", "--schema", "site_hq", "--schema", "site_plant_2", "--days", "7",
    ]  # fmt: skip
    assert c["image"] == "ghcr.io/dtwin/trainer:test"
    assert c["env"] == [
        {
            "name": "DTWIN_TRAINER_DSN",
            "valueFrom": {"secretKeyRef": {"name": "dtwin-trainer", "key": "dsn", "optional": True}},
        }
    ]
    assert "volumeMounts" not in c and "volumes" not in pod  # no model store: it reads the history only
    assert (pod["restartPolicy"], pod["automountServiceAccountToken"]) == ("Never", False)
    assert c["securityContext"]["runAsNonRoot"] is True
    assert cj["metadata"]["labels"]["app.kubernetes.io/component"] == "recommend"
    # After the retraining CronJob, like the other CronJob; before the scorer.
    kinds = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert kinds.index(("CronJob", "dtwin-recs-pumps")) == kinds.index(("CronJob", "dtwin-train-pumps")) + 1
    # Occupied hours are local: a Site outside UTC passes its time zone along (a UTC one needs none).
    zoned = replace(ctx, timezones=(("hq", "UTC"), ("plant-2", "Europe/Paris")))
    assert recommend_args(zoned)[4:8] == ["--schema", "site_hq", "--schema", "site_plant_2=Europe/Paris"]
    # No Site: nothing to read, so it does not run.
    assert recommend_cronjob(context(task="energy", sites=()))["spec"]["suspend"] is True


@pytest.mark.parametrize("task", ["anomaly", "failure", "rul"])
def test_other_tasks_get_no_recommendations(task: str) -> None:
    assert [m for m in model_children(context(task=task)) if "dtwin-recs" in m["metadata"]["name"]] == []


def test_model_store_volume_is_the_claim_when_configured() -> None:
    ctx = context()
    assert serving_deployment(ctx)["spec"]["template"]["spec"]["volumes"] == [{"name": "models", "emptyDir": {}}]
    claimed = ModelContext(ctx.namespace, ctx.name, ctx.spec, images=IMAGES, model_store_claim="models")
    for pod in (
        serving_deployment(claimed)["spec"]["template"]["spec"],
        training_cronjob(claimed)["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ):
        assert pod["volumes"] == [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}]


def test_rendering_is_deterministic_and_names_fit() -> None:
    ctx = context(canary=True)
    assert json.dumps(model_children(ctx)) == json.dumps(model_children(ctx))
    spec = ctx.spec.model_copy(update={"task": "energy"})
    longest = ModelContext("demo", "m" * names.MAX_MODEL_NAME, spec, ("demo/a",), ("hq",), True, IMAGES)
    assert {m["kind"] for m in model_children(longest)} >= {"CronJob", "Deployment", "Role"}
    for m in model_children(longest):
        limit = 52 if m["kind"] == "CronJob" else 63
        assert len(m["metadata"]["name"]) <= limit, m["metadata"]["name"]
