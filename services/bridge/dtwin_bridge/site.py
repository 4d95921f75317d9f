"""What one bridge process needs from the operator's routing.json besides the routes themselves.

`SiteConfig` is the whole file parsed once: the `RoutingTable` the parser looks topics up in, and the
process-level settings around it: which schema and database to write to, which broker to dial, which
shared-subscription group to join (or none) and with which topic filters, and how big and how old a batch may get.
It is pure and frozen; `load` reads the file and refuses a bad one whole (a hot reload then keeps the old
table), and `signature` is the stat triple the reloader compares to notice that the ConfigMap changed
(kubelet swaps a symlink, so the inode changes even when the mtime granularity hides the edit).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtwin_bridge.model import RoutingTable


@dataclass(frozen=True)
class SiteConfig:
    table: RoutingTable
    site: str
    schema: str
    database: str
    broker_host: str
    broker_port: int
    broker_tls: bool
    shared_group: str
    subscriptions: tuple[str, ...]
    exclusive: bool
    batch_size: int
    flush_interval_s: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SiteConfig:
        """Raises KeyError/ValueError on a malformed table."""
        broker = d.get("broker") or {}
        batch = d.get("batch") or {}
        table = RoutingTable.from_dict(d)
        return cls(
            table=table,
            site=str(d["site"]),
            schema=str(d["schema"]),
            database=str(d["database"]),
            broker_host=str(broker.get("host", "127.0.0.1")),
            broker_port=int(broker.get("port", 1883)),
            broker_tls=bool(broker.get("tls", False)),
            shared_group=str(d["sharedGroup"]),
            subscriptions=tuple(str(s) for s in d["subscriptions"]),
            exclusive=d.get("subscriptionMode", "shared") == "exclusive",
            batch_size=int(batch.get("size", 5000)),
            flush_interval_s=int(batch.get("flushIntervalMs", 200)) / 1000,
        )

    def filters(self) -> tuple[str, ...]:
        """What to subscribe to: MQTT v5 shared filters, so the replicas of one site split the load, or the plain
        filters of a one-replica site (`subscriptionMode: exclusive`, which survives a Mosquitto restart)."""
        if self.exclusive:
            return self.subscriptions
        return tuple(f"$share/{self.shared_group}/{f}" for f in self.subscriptions)


def load(path: Path) -> SiteConfig:
    return SiteConfig.from_dict(json.loads(path.read_text()))


def signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # follows the ConfigMap's ..data symlink
    return (st.st_mtime_ns, st.st_ino, st.st_size)
