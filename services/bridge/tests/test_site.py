"""SiteConfig: what the bridge process reads from the operator's routing.json besides the routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dtwin_bridge import site


def table(**over: Any) -> dict[str, Any]:
    t = {
        "version": 1,
        "site": "hq",
        "schema": "site_hq",
        "database": "dtwin",
        "broker": {"host": "127.0.0.1", "port": 1884, "tls": False},
        "sharedGroup": "dtwin-demo-hq",
        "subscriptions": ["sites/hq/#", "legacy/ahu-9"],
        "batch": {"size": 250, "flushIntervalMs": 150},
        "routes": [
            {"sensor": "s1", "asset": "a", "metric": "m", "topic": "sites/hq/a", "format": "json", "unit": "degC"}
        ],
    }
    return {**t, **over}


def test_from_dict_reads_process_settings() -> None:
    cfg = site.SiteConfig.from_dict(table())
    assert (cfg.site, cfg.schema, cfg.database) == ("hq", "site_hq", "dtwin")
    assert (cfg.broker_host, cfg.broker_port, cfg.broker_tls) == ("127.0.0.1", 1884, False)
    assert (cfg.batch_size, cfg.flush_interval_s) == (250, 0.15)
    assert cfg.filters() == ("$share/dtwin-demo-hq/sites/hq/#", "$share/dtwin-demo-hq/legacy/ahu-9")
    assert [r.sensor for r in cfg.table.on_topic("sites/hq/a")] == ["s1"]


def test_exclusive_mode_subscribes_without_a_share_group() -> None:
    cfg = site.SiteConfig.from_dict(table(subscriptionMode="exclusive"))
    assert cfg.filters() == ("sites/hq/#", "legacy/ahu-9")


def test_bad_table_is_refused_whole() -> None:
    with pytest.raises(KeyError):
        site.SiteConfig.from_dict({k: v for k, v in table().items() if k != "schema"})
    with pytest.raises(ValueError, match="version"):
        site.SiteConfig.from_dict(table(version=2))


def test_signature_changes_when_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(table()))
    before = site.signature(path)
    new = tmp_path / "new.json"
    new.write_text(json.dumps(table(batch={"size": 1, "flushIntervalMs": 1})))
    new.replace(path)  # what kubelet's atomic ConfigMap update amounts to
    assert site.signature(path) != before
    assert site.load(path).batch_size == 1
