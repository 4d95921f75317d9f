"""Every name the operator derives from a resource, in one place.

Children of a Site are named `dtwin-bridge-<site>` etc.; the Site CRD limits
site names to 40 DNS-1035 characters so every derived name stays a valid
Service/label value (<= 63).
"""

from __future__ import annotations

FIELD_MANAGER = "dtwin-operator"
ANNOTATION_PREFIX = "dtwin.io"
CONFIG_HASH_ANNOTATION = "dtwin.io/config-hash"
ROUTING_KEY = "routing.json"


def bridge(site: str) -> str:
    """Deployment, Service, HorizontalPodAutoscaler, ServiceAccount, Role and RoleBinding of a site's bridge."""
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
