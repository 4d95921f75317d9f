"""Every name the operator derives from a resource, in one place.

Children of a Site are named `dtwin-bridge-<site>` etc.; the Site CRD limits
site names to `MAX_SITE_NAME` DNS-1035 characters so every derived name stays a
valid Service/label value (<= 63). Children of a ModelDeployment are named
`dtwin-model-<name>[-canary]`, `dtwin-scorer-<name>`, `dtwin-train-<name>` and `dtwin-recs-<name>`, within
`MAX_MODEL_NAME`.
"""

from __future__ import annotations

FIELD_MANAGER = "dtwin-operator"
ANNOTATION_PREFIX = "dtwin.io"
CONFIG_HASH_ANNOTATION = "dtwin.io/config-hash"
ROUTING_KEY = "routing.json"
# The bridge StatefulSet `dtwin-bridge-<site>` (13 + 39 = 52) labels its pods `controller-revision-hash:
# <statefulset>-<hash of up to 10 characters>`, a label value of at most 63: one more character and the
# StatefulSet controller cannot create a single pod (https://github.com/kubernetes/kubernetes/issues/64023).
MAX_SITE_NAME = 39
# A CronJob name is at most 52 characters (its Jobs append an 11-character suffix): dtwin-train-<name> (12 + 40),
# dtwin-recs-<name> (11 + 40).
MAX_MODEL_NAME = 40
MODEL_PORT = 3000
SCORER_METRICS_PORT = 9466  # dtwin_scorer's default
SCORER_ROUTING_DIR = "/etc/dtwin/models"  # dtwin_scorer's default: one `<model>.json` per ModelDeployment


def bridge(site: str) -> str:
    """StatefulSet, Service, HorizontalPodAutoscaler, ServiceAccount, Role and RoleBinding of a site's bridge."""
    return f"dtwin-bridge-{site}"


def routing_configmap(site: str) -> str:
    return f"dtwin-bridge-{site}-routing"


def dashboard_configmap(site: str) -> str:
    return f"dtwin-dashboard-{site}"


def dashboard_file(site: str) -> str:
    return f"dtwin-site-{site}.json"


def schema(site: str) -> str:
    """PostgreSQL schema holding a site's telemetry."""
    return "site_" + site.replace("-", "_")


def topic_prefix(site: str, configured: str | None) -> str:
    return configured or f"sites/{site}"


def shared_group(namespace: str, site: str) -> str:
    """MQTT v5 shared-subscription group the bridge replicas of one site join."""
    return f"dtwin-{namespace}-{site}"


def model(name: str, canary: bool = False) -> str:
    """Deployment, Service and HorizontalPodAutoscaler serving one track of a ModelDeployment."""
    return f"dtwin-model-{name}-canary" if canary else f"dtwin-model-{name}"


def model_routing_configmap(name: str) -> str:
    return f"dtwin-model-{name}-routing"


def training_cronjob(name: str) -> str:
    return f"dtwin-train-{name}"


def scorer(name: str) -> str:
    """Deployment, ServiceAccount, Role and RoleBinding of a ModelDeployment's online scorer."""
    return f"dtwin-scorer-{name}"


def recommend_cronjob(name: str) -> str:
    """The energy recommendations CronJob (`dtwin-recommend-<name>` would not fit in 52 characters)."""
    return f"dtwin-recs-{name}"


def model_url(namespace: str, name: str, canary: bool = False) -> str:
    """In-cluster URL of a track's Service."""
    return f"http://{model(name, canary)}.{namespace}.svc:{MODEL_PORT}"
