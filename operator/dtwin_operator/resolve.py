"""Pure decisions: which conditions each object has, given what the indexes hold.

Every reason here is one CamelCase word and every message says what is wrong
and what to do, because a person reads them in `kubectl describe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.modeldeployment import AssetSelector
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.indexes import Obj
from dtwin_operator.status import Cond


def site_missing(namespace: str, site: str) -> Cond:
    return Cond(
        "SiteResolved",
        False,
        "SiteNotFound",
        f"Site {site!r} does not exist in namespace {namespace!r}; create it or fix spec.siteRef. "
        "The object becomes Ready by itself once the Site exists.",
    )


def asset_missing(namespace: str, asset: str) -> Cond:
    return Cond(
        "AssetResolved",
        False,
        "AssetNotFound",
        f"Asset {asset!r} does not exist in namespace {namespace!r}; create it or fix spec.assetRef. "
        "The binding becomes Ready by itself once the Asset exists.",
    )


def placement(asset: AssetSpec, site_name: str, site: SiteSpec) -> Cond:
    """Whether the asset's floor and zone exist in its Site's layout."""
    floors = {f.name: f for f in site.layout.floors}
    where = asset.location
    if where.floor not in floors:
        known = ", ".join(sorted(floors)) or "none declared"
        return Cond(
            "Placed",
            False,
            "UnknownFloor",
            f"spec.location.floor {where.floor!r} is not a floor of Site {site_name!r} (floors: {known}); "
            "add it to the Site's spec.layout.floors or fix the Asset.",
        )
    zones = {z.name for z in floors[where.floor].zones}
    if where.zone is not None and where.zone not in zones:
        known = ", ".join(sorted(zones)) or "none declared"
        return Cond(
            "Placed",
            False,
            "UnknownZone",
            f"spec.location.zone {where.zone!r} is not a zone of floor {where.floor!r} at Site "
            f"{site_name!r} (zones: {known}); add it to the floor's zones or fix the Asset.",
        )
    zone = f", zone {where.zone}" if where.zone else ""
    return Cond("Placed", True, "Placed", f"floor {where.floor}{zone}")


def bridge_available(deployment_name: str, dep_status: Mapping[str, Any] | None) -> Cond:
    """From the bridge Deployment's own Available condition."""
    if dep_status is None:
        return Cond("BridgeAvailable", False, "BridgeMissing", f"Deployment {deployment_name} does not exist yet.")
    available = next((c for c in dep_status.get("conditions") or [] if c.get("type") == "Available"), None)
    ready = dep_status.get("ready_replicas") or dep_status.get("readyReplicas") or 0
    want = dep_status.get("replicas") or 0
    if available and available.get("status") == "True":
        return Cond("BridgeAvailable", True, "Available", f"{ready}/{want} bridge replicas ready")
    why = (available or {}).get("message") or "no replica is ready yet"
    return Cond(
        "BridgeAvailable",
        False,
        "BridgeUnavailable",
        f"Deployment {deployment_name}: {ready}/{want} replicas ready ({why}); see its pods' events.",
    )


def selected(selector: AssetSelector, assets: Iterable[Obj]) -> list[Obj]:
    """Assets a ModelDeployment's selector matches (all given criteria must hold)."""
    out = []
    for a in assets:
        if selector.site and a.spec.get("siteRef") != selector.site:
            continue
        if selector.kinds and a.spec.get("kind") not in selector.kinds:
            continue
        if any(a.labels.get(k) != v for k, v in selector.match_labels.items()):
            continue
        out.append(a)
    return sorted(out, key=lambda o: o.name)


def selection(count: int) -> Cond:
    if count == 0:
        return Cond(
            "AssetsSelected",
            False,
            "NoAssetsSelected",
            "spec.selector matches no Asset in this namespace; widen the selector or create the Assets.",
        )
    return Cond("AssetsSelected", True, "Selected", f"{count} assets selected")
