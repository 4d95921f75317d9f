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


def bridge_available(name: str, sts: Mapping[str, Any] | None) -> Cond:
    """From the bridge StatefulSet's spec and status (a StatefulSet has no Available condition).

    Available when every replica the StatefulSet should run (spec.replicas, which the HPA sets) is
    available. A rolling update replaces one pod at a time under its old name, so while one rolls, one
    replica short still counts, as long as one is up.
    """
    if sts is None:
        return Cond("BridgeAvailable", False, "BridgeMissing", f"StatefulSet {name} does not exist yet.")
    spec, st = sts.get("spec") or {}, sts.get("status") or {}
    want = spec.get("replicas", 1)  # the API server's default when nobody set it
    up = st.get("availableReplicas", st.get("readyReplicas")) or 0
    if want == 0:
        return Cond(
            "BridgeAvailable",
            False,
            "ScaledToZero",
            f"StatefulSet {name} is scaled to 0 replicas, so nothing ingests the site's telemetry, and the "
            f"HorizontalPodAutoscaler does not scale up from 0: kubectl scale statefulset {name} --replicas=1",
        )
    rolling = _rollout(sts)
    counted = f"{up}/{want} bridge replicas available"
    if up >= want:
        return Cond("BridgeAvailable", True, "Available", counted + (f"; {rolling}" if rolling else ""))
    if rolling and up >= max(want - 1, 1):
        return Cond("BridgeAvailable", True, "RollingUpdate", f"{counted}; {rolling}")
    return Cond(
        "BridgeAvailable",
        False,
        "BridgeUnavailable",
        f"StatefulSet {name}: {counted}" + (f", {rolling}" if rolling else "") + "; the broker keeps a "
        f"missing replica's messages until its pod {name}-<ordinal> is back. See kubectl describe "
        f"statefulset {name} and its pods' events.",
    )


def _rollout(sts: Mapping[str, Any]) -> str:
    """What a rolling update in progress has done so far, or "" when none is."""
    st = sts.get("status") or {}
    target = st.get("updateRevision")
    if not target or target == st.get("currentRevision"):
        return ""
    return f"rolling out revision {target} ({st.get('updatedReplicas') or 0} updated so far)"


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
