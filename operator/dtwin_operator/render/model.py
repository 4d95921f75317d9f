"""Everything a ModelDeployment becomes in Kubernetes: serving tracks, routing for its callers, retraining.

Per ModelDeployment `<name>`: the stable track (Deployment, Service and HorizontalPodAutoscaler
`dtwin-model-<name>`) running BentoML on the task's bento, the same trio `dtwin-model-<name>-canary` while a
canary is on, the routing ConfigMap `dtwin-model-<name>-routing` (`routing.json`, read by the scorer: which
URL serves which version and which share of the calls), the retraining CronJob `dtwin-train-<name>`, for the
energy task the recommendations CronJob `dtwin-recs-<name>`, and the scorer that calls the model servers
(`render.scorer`: Deployment, ServiceAccount, Role and RoleBinding `dtwin-scorer-<name>`).

`model_children(ctx)` is pure: the same context always gives the same manifests in the same order. Whether the
canary track is rendered (`ctx.canary`) is decided by the reconcile from the call statistics; owner references
are added by the reconciler.
"""

from __future__ import annotations

import json
from typing import Any

from dtwin_operator import labels, names
from dtwin_operator.render.context import ModelContext
from dtwin_operator.render.scorer import SCORER_IMAGE, scorer_children

SERVICE_CLASS = {
    "anomaly": "AnomalyService",
    "failure": "FailureService",
    "rul": "RulService",
    "energy": "EnergyService",
}
BENTOS_DIR = "/app/bentos"
MODEL_STORE = "/models"
TARGET_CPU_UTILIZATION = 70
ROUTING_VERSION = 1
# Daily, well after midnight UTC: the recommendations cover whole UTC days before today's midnight, so any hour
# of the day gives the same period; this one stays clear of the retraining's default (03:00 on Sundays).
RECOMMEND_SCHEDULE = "30 5 * * *"
RECOMMEND_DAYS = 7


def _meta(ctx: ModelContext, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": ctx.namespace, "labels": {**labels.model(ctx.name, component), **extra_labels}}


def _track(canary: bool) -> str:
    return "canary" if canary else "stable"


def version_of(ctx: ModelContext, canary: bool) -> str:
    if canary:
        if ctx.spec.canary is None:
            raise ValueError("no canary in the spec")
        return ctx.spec.canary.version
    return ctx.spec.model.version


def _store_volume(ctx: ModelContext) -> dict[str, Any]:
    if ctx.model_store_claim:
        return {"name": "models", "persistentVolumeClaim": {"claimName": ctx.model_store_claim}}
    return {"name": "models", "emptyDir": {}}


def _security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def serving_container(ctx: ModelContext, canary: bool) -> dict[str, Any]:
    s, task = ctx.spec.serving, ctx.spec.task
    return {
        "name": "bento",
        "image": ctx.images.model,
        "command": ["bentoml", "serve", f"service:{SERVICE_CLASS[task]}", "--port", str(names.MODEL_PORT)],
        "workingDir": f"{BENTOS_DIR}/{task}",
        "env": [
            {"name": "DTWIN_MODEL_TAG", "value": f"{ctx.spec.model.name}:{version_of(ctx, canary)}"},
            {"name": "BENTOML_HOME", "value": MODEL_STORE},
            {"name": "DTWIN_MAX_BATCH_SIZE", "value": str(s.max_batch_size)},
            {"name": "DTWIN_MAX_LATENCY_MS", "value": str(s.max_latency_ms)},
        ],
        "ports": [{"name": "http", "containerPort": names.MODEL_PORT, "protocol": "TCP"}],
        # BentoML answers /readyz only once the model is loaded: no call reaches a replica still loading.
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": names.MODEL_PORT}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": names.MODEL_PORT},
            "periodSeconds": 10,
            "initialDelaySeconds": 30,
        },
        # The CPU request is what the HPA's 70 % target is a percentage of.
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [{"name": "models", "mountPath": MODEL_STORE}],
        "securityContext": _security(),
    }


def serving_deployment(ctx: ModelContext, canary: bool = False) -> dict[str, Any]:
    """One track's BentoML Deployment. `replicas` is left out: the HPA owns it (server-side apply would fight)."""
    track, version = _track(canary), version_of(ctx, canary)
    pod_labels = {**labels.model(ctx.name, "model"), labels.TRACK: track, labels.MODEL_VERSION: version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ctx, names.model(ctx.name, canary), "model", **{labels.TRACK: track}),
        "spec": {
            # Without the version: a selector is immutable, and a new version must roll the same Deployment.
            "selector": {"matchLabels": labels.model_selector(ctx.name, track)},
            # A new version starts beside the old one and the old goes only once the new is ready:
            # the track never serves with fewer replicas than it had.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,  # a model server never calls the API server
                    "containers": [serving_container(ctx, canary)],
                    "volumes": [_store_volume(ctx)],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def serving_service(ctx: ModelContext, canary: bool = False) -> dict[str, Any]:
    track = _track(canary)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ctx, names.model(ctx.name, canary), "model", **{labels.TRACK: track}),
        "spec": {
            "selector": labels.model_selector(ctx.name, track),
            "ports": [{"name": "http", "port": names.MODEL_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def serving_hpa(ctx: ModelContext, canary: bool = False) -> dict[str, Any]:
    s, name = ctx.spec.serving, names.model(ctx.name, canary)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(ctx, name, "model", **{labels.TRACK: _track(canary)}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": s.min_replicas,
            "maxReplicas": s.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": TARGET_CPU_UTILIZATION},
                    },
                }
            ],
        },
    }


def routing(ctx: ModelContext) -> dict[str, Any]:
    """What the scorer reads: which URL serves which version, the canary's share, the assets to score."""
    spec = ctx.spec
    canary = None
    if ctx.canary and spec.canary is not None:
        canary = {
            "version": spec.canary.version,
            "url": names.model_url(ctx.namespace, ctx.name, canary=True),
            "percent": spec.canary.traffic_percent,
        }
    return {
        "version": ROUTING_VERSION,
        "name": ctx.name,
        "namespace": ctx.namespace,
        "task": spec.task,
        "model": spec.model.name,
        "threshold": spec.serving.alert_threshold,
        "horizonHours": spec.training.horizon_hours,
        "maxBatchSize": spec.serving.max_batch_size,
        "maxLatencyMs": spec.serving.max_latency_ms,
        "stable": {"version": spec.model.version, "url": names.model_url(ctx.namespace, ctx.name)},
        "canary": canary,
        "assets": sorted(ctx.assets),
        "schemas": [names.schema(site) for site in ctx.sites],  # where the assets' telemetry lives
    }


def routing_configmap(ctx: ModelContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(ctx, names.model_routing_configmap(ctx.name), "model"),
        "data": {names.ROUTING_KEY: json.dumps(routing(ctx), sort_keys=True, indent=1)},
    }


def training_args(ctx: ModelContext) -> list[str]:
    """`dtwin_trainer train` over the selection's site schemas (one `--schema` per Site).

    `--namespace` makes the trainer's asset keys `<namespace>/<asset>`, as in routing.json.
    """
    spec = ctx.spec
    schemas = [a for site in ctx.sites for a in ("--schema", names.schema(site))]
    task = ["--task", spec.task, "--name", spec.model.name, "--source", "db", "--namespace", ctx.namespace]
    return ["python", "-m", "dtwin_trainer", "train", *task, *schemas, "--days", str(spec.training.window_days)]


def training_cronjob(ctx: ModelContext) -> dict[str, Any]:
    """The retraining CronJob; suspended while the selection has no Site (there is nothing to train on)."""
    pod_labels = labels.model(ctx.name, "trainer")
    container = {
        "name": "trainer",
        "image": ctx.images.trainer,
        "command": training_args(ctx),
        "env": [
            {"name": "BENTOML_HOME", "value": MODEL_STORE},
            # The database DSN stays in a Secret of the namespace (key `dsn`), never in the CronJob's spec.
            {
                "name": "DTWIN_TRAINER_DSN",
                "valueFrom": {"secretKeyRef": {"name": ctx.trainer_secret, "key": "dsn", "optional": True}},
            },
        ],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "models", "mountPath": MODEL_STORE}],
        "securityContext": _security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(ctx, names.training_cronjob(ctx.name), "trainer"),
        "spec": {
            "schedule": ctx.spec.training.schedule,
            # A run that outlasts the schedule must not start a second one writing the same model.
            "concurrencyPolicy": "Forbid",
            "suspend": not ctx.sites,
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "ttlSecondsAfterFinished": 7 * 24 * 3600,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "containers": [container],
                            "volumes": [_store_volume(ctx)],
                        },
                    },
                }
            },
        },
    }


def recommend_args(ctx: ModelContext) -> list[str]:
    """`dtwin_trainer recommend` over the selection's site schemas: one `--schema` per Site, `SCHEMA=TIMEZONE`
    for a Site outside UTC, since occupied hours are the site's local hours."""

    def arg(site: str) -> str:
        tz = dict(ctx.timezones).get(site, "UTC")
        return names.schema(site) if tz == "UTC" else f"{names.schema(site)}={tz}"

    schemas = [a for site in ctx.sites for a in ("--schema", arg(site))]
    return ["python", "-m", "dtwin_trainer", "recommend", *schemas, "--days", str(RECOMMEND_DAYS)]


def recommend_cronjob(ctx: ModelContext) -> dict[str, Any]:
    """The energy recommendations CronJob (energy task only); suspended while the selection has no Site.

    A second run on the same day inserts nothing new (`dtwin_trainer.recommend`), so a retried Job is harmless;
    Forbid only keeps a slow run from overlapping the next.
    """
    container = {
        "name": "recommend",
        "image": ctx.images.trainer,
        "command": recommend_args(ctx),
        "env": [
            # As for the retraining: the DSN stays in the namespace's Secret (key `dsn`).
            {
                "name": "DTWIN_TRAINER_DSN",
                "valueFrom": {"secretKeyRef": {"name": ctx.trainer_secret, "key": "dsn", "optional": True}},
            },
        ],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": _security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(ctx, names.recommend_cronjob(ctx.name), "recommend"),
        "spec": {
            "schedule": RECOMMEND_SCHEDULE,
            "concurrencyPolicy": "Forbid",
            "suspend": not ctx.sites,
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "ttlSecondsAfterFinished": 7 * 24 * 3600,
                    "template": {
                        "metadata": {"labels": labels.model(ctx.name, "recommend")},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "containers": [container],
                        },
                    },
                }
            },
        },
    }


def model_children(ctx: ModelContext, scorer_image: str = SCORER_IMAGE) -> list[dict[str, Any]]:
    """All objects owned by the ModelDeployment, in apply order.

    The routing ConfigMap comes after the serving tracks, so callers are only pointed at a canary whose
    Service exists; when the canary goes, the routing drops it first and the reconcile prunes it after.
    The scorer comes after the routing ConfigMap it mounts.
    """
    tracks = [False, True] if ctx.canary else [False]
    serving = [m for c in tracks for m in (serving_service(ctx, c), serving_deployment(ctx, c), serving_hpa(ctx, c))]
    recommend = [recommend_cronjob(ctx)] if ctx.spec.task == "energy" else []
    return [*serving, routing_configmap(ctx), training_cronjob(ctx), *recommend, *scorer_children(ctx, scorer_image)]


# The kinds a ModelDeployment may stop rendering, which the reconcile prunes: the canary trio, and the
# recommendations CronJob when the task changes from energy to another.
PRUNABLE = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "CronJob"),
)
