"""Labels the operator puts on what it creates, and the selectors built from them."""

from __future__ import annotations

MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "dtwin-operator"
SITE = "dtwin.io/site"
MODEL = "dtwin.io/model"  # same key as dtwin_core.model_calls.MODEL_LABEL
MODEL_VERSION = "dtwin.io/model-version"
TRACK = "dtwin.io/track"  # stable | canary
GRAFANA_DASHBOARD = "grafana_dashboard"


def common(site: str, component: str) -> dict[str, str]:
    """Labels on every object rendered for a site (Kubernetes recommended labels + the site)."""
    return {
        "app.kubernetes.io/name": f"dtwin-{component}",
        "app.kubernetes.io/instance": site,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "dtwin",
        MANAGED_BY: OPERATOR,
        SITE: site,
    }


def selector(site: str, component: str) -> dict[str, str]:
    """The immutable subset used in StatefulSet/Service selectors."""
    return {"app.kubernetes.io/name": f"dtwin-{component}", "app.kubernetes.io/instance": site}


def model(name: str, component: str) -> dict[str, str]:
    """Labels on every object rendered for a ModelDeployment (no dtwin.io/site: a model may span sites)."""
    return {
        "app.kubernetes.io/name": f"dtwin-{component}",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "dtwin",
        MANAGED_BY: OPERATOR,
        MODEL: name,
    }


def model_selector(name: str, track: str) -> dict[str, str]:
    """The immutable subset a serving Deployment and its Service select pods of one track by."""
    return {"app.kubernetes.io/name": "dtwin-model", "app.kubernetes.io/instance": name, TRACK: track}


def model_workload_selector(name: str, component: str) -> dict[str, str]:
    """The immutable subset a ModelDeployment's single-track workload (the scorer) selects its pods by."""
    return {"app.kubernetes.io/name": f"dtwin-{component}", "app.kubernetes.io/instance": name}
