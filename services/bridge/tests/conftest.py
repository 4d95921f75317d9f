"""Fixture of the bridge's pure tests: the routing tables the operator renders for the demo campus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dtwin_bridge.model import RoutingTable
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render import routing
from dtwin_operator.render.context import AssetView, BindingView, SiteContext

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _docs(kind: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind]
    return docs


def demo_routing_json() -> dict[str, dict[str, Any]]:
    """routing.json of every demo site, exactly as the operator renders and serializes it."""
    assets = [AssetView(d["metadata"]["name"], AssetSpec.model_validate(d["spec"])) for d in _docs("Asset")]
    bindings = [
        BindingView(d["metadata"]["name"], SensorBindingSpec.model_validate(d["spec"])) for d in _docs("SensorBinding")
    ]
    out = {}
    for site in _docs("Site"):
        name = site["metadata"]["name"]
        mine = tuple(sorted((a for a in assets if a.spec.site_ref == name), key=lambda a: a.name))
        names = {a.name for a in mine}
        bound = tuple(sorted((b for b in bindings if b.spec.asset_ref in names), key=lambda b: b.name))
        ctx = SiteContext("dtwin-demo", name, "uid", SiteSpec.model_validate(site["spec"]), mine, bound)
        out[name] = json.loads(routing.serialize(routing.table(ctx)))
    return out


@pytest.fixture(scope="session")
def demo_tables() -> dict[str, RoutingTable]:
    return {site: RoutingTable.from_dict(tbl) for site, tbl in demo_routing_json().items()}
