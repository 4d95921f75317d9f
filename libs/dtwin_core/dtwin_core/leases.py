"""Bridge heartbeats as coordination.k8s.io/v1 Leases: names, labels, the Lease body, and the liveness rule.

Every bridge replica keeps one Lease `dtwin-bridge-<site>-<replica>` renewed in its namespace; the operator
reads them for the Site's `BridgeReady` condition. Both sides import this module, so the body the bridge
writes and the rule the operator applies to it cannot drift apart. The rule is the one Kubernetes uses for
node and leader-election leases: a Lease is live until `renewTime + leaseDurationSeconds`. It compares the
bridge's clock (renewTime) with the reader's, so it assumes clocks agree to well under the duration — as
they do inside one cluster or on one machine. A small health summary rides along as annotations; it is
informational (the operator may show it) and never part of the rule. Pure: no client, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

API_VERSION = "coordination.k8s.io/v1"
NAME_LABEL = "app.kubernetes.io/name"
BRIDGE = "dtwin-bridge"  # the value of NAME_LABEL on bridge heartbeats (and on the bridge's pods)
SITE_LABEL = "dtwin.io/site"  # same key as dtwin_operator.labels.SITE; a test keeps them equal
FIELD_MANAGER = "dtwin-bridge"
CONNECTED = "dtwin.io/broker-connected"  # "true" | "false"
LAST_COMMIT = "dtwin.io/last-commit"  # RFC 3339, the last committed batch
ROWS_COMMITTED = "dtwin.io/rows-committed"  # rows this replica committed since it started

_MAX_NAME = 253  # a Lease name is a DNS subdomain
_NOT_DNS = re.compile(r"[^a-z0-9.-]+")


@dataclass(frozen=True)
class Health:
    """What a replica says about itself in its Lease; None = unknown (the annotation is left out)."""

    connected: bool | None = None
    last_commit: datetime | None = None
    rows_committed: int | None = None


@dataclass(frozen=True)
class Heartbeat:
    """What a reader keeps of one bridge Lease."""

    namespace: str
    name: str
    site: str
    holder: str
    renew_time: datetime | None
    duration_s: int | None
    health: Health = Health()


def lease_name(site: str, replica: str) -> str:
    """`dtwin-bridge-<site>-<replica>`, made a valid DNS subdomain if it is not one already."""
    raw = f"{BRIDGE}-{site}-{replica}"
    name = _NOT_DNS.sub("-", raw.lower()).strip("-.")
    if name == raw and len(name) <= _MAX_NAME:
        return name
    # Rewritten or cut: a hash of the original keeps replicas "A" and "a" (or two long names) apart.
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9].rstrip('-.')}-{digest}"


def labels(site: str) -> dict[str, str]:
    """The labels a reader selects bridge heartbeats by (`app.kubernetes.io/name=dtwin-bridge`) plus the site."""
    return {
        NAME_LABEL: BRIDGE,
        "app.kubernetes.io/instance": site,
        "app.kubernetes.io/part-of": "dtwin",
        SITE_LABEL: site,
    }


def selector() -> str:
    """Label selector of every bridge heartbeat (of any site)."""
    return f"{NAME_LABEL}={BRIDGE},{SITE_LABEL}"


def micro_time(t: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    """A Time/MicroTime as the API returns it (string) or as the Python client does (datetime); None if absent."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)  # 3.11+: "Z" and up to nanoseconds (truncated to micro)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def health_annotations(health: Health) -> dict[str, str]:
    out: dict[str, str] = {}
    if health.connected is not None:
        out[CONNECTED] = "true" if health.connected else "false"
    if health.last_commit is not None:
        out[LAST_COMMIT] = micro_time(health.last_commit)
    if health.rows_committed is not None:
        out[ROWS_COMMITTED] = str(health.rows_committed)
    return out


def lease_body(
    site: str,
    replica: str,
    namespace: str,
    duration_s: int,
    now: datetime,
    health: Health = Health(),
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole Lease as the replica server-side-applies it on every renewal.

    `owner` (a Pod's name and uid) makes the Pod its owner, so garbage collection removes the Lease of a
    replica that died without deleting it. Not `blockOwnerDeletion`: that would need rights on the Pod.
    """
    meta: dict[str, Any] = {
        "name": lease_name(site, replica),
        "namespace": namespace,
        "labels": labels(site),
        "annotations": health_annotations(health),
    }
    if owner and owner.get("name") and owner.get("uid"):
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner["name"], "uid": owner["uid"]}]
    return {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": replica, "leaseDurationSeconds": duration_s, "renewTime": micro_time(now)},
    }


def heartbeat_of(lease: Mapping[str, Any]) -> Heartbeat | None:
    """A Lease (as a dict in API field names) read back; None if it is not a bridge heartbeat."""
    meta = lease.get("metadata") or {}
    lbls = meta.get("labels") or {}
    site = lbls.get(SITE_LABEL)
    if lbls.get(NAME_LABEL) != BRIDGE or not site:
        return None
    spec = lease.get("spec") or {}
    ann = meta.get("annotations") or {}
    rows = ann.get(ROWS_COMMITTED)
    duration = spec.get("leaseDurationSeconds")
    health = Health(
        connected={"true": True, "false": False}.get(ann.get(CONNECTED, "")),
        last_commit=parse_time(ann.get(LAST_COMMIT)),
        rows_committed=int(rows) if isinstance(rows, str) and rows.isdigit() else None,
    )
    return Heartbeat(
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        site=site,
        holder=spec.get("holderIdentity") or meta.get("name") or "",
        renew_time=parse_time(spec.get("renewTime")),
        duration_s=duration if isinstance(duration, int) else None,
        health=health,
    )


def expires_at(hb: Heartbeat) -> datetime | None:
    """When the Lease stops counting as live; None if it never did (no renewTime or no duration)."""
    if hb.renew_time is None or not hb.duration_s or hb.duration_s <= 0:
        return None
    return hb.renew_time + timedelta(seconds=hb.duration_s)


def is_live(hb: Heartbeat, now: datetime) -> bool:
    """Live while `now < renewTime + leaseDurationSeconds`."""
    end = expires_at(hb)
    return end is not None and now < end


def live(heartbeats: Iterable[Heartbeat], now: datetime) -> list[Heartbeat]:
    """The live ones, by holder (stable order for messages)."""
    return sorted((h for h in heartbeats if is_live(h, now)), key=lambda h: (h.holder, h.name))


def next_expiry(heartbeats: Iterable[Heartbeat], now: datetime) -> datetime | None:
    """The soonest moment after `now` at which one of them stops being live (when to look again)."""
    ends = [e for h in heartbeats if (e := expires_at(h)) is not None and e > now]
    return min(ends, default=None)
