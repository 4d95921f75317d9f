"""The committed crds/*.yaml are exactly what the API models generate, and every field teaches `kubectl explain`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dtwin_operator.api.crds import BY_KIND, KINDS, crd, render_yaml
from dtwin_operator.api.schema import walk

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_committed_crd_is_up_to_date(kind) -> None:  # type: ignore[no-untyped-def]
    committed = (CRDS / f"{kind.crd_name}.yaml").read_text()
    assert committed == render_yaml(kind), "run `make crds` and commit crds/"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_spec_and_status_field_is_typed_and_described(kind) -> None:  # type: ignore[no-untyped-def]
    root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, node in walk(root["properties"][part], part):
            assert "type" in node, path
            if path.endswith("[]") and node["type"] != "object":
                continue  # scalar list items are explained by their list
            assert node.get("description"), f"{kind.kind}.{path} has no description"
            assert "$ref" not in node and "anyOf" not in node, path


def test_names_categories_and_columns() -> None:
    for kind in KINDS:
        doc = crd(kind)
        names = doc["spec"]["names"]
        assert names["categories"] == ["dtwin"]
        assert names["shortNames"]
        version = doc["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        cols = [c["name"] for c in version["additionalPrinterColumns"]]
        assert "Ready" in cols and cols[-1] == "Age"
    assert BY_KIND["Site"].crd_name == "sites.dtwin.io"


def test_generated_yaml_parses_back() -> None:
    for kind in KINDS:
        assert yaml.safe_load(render_yaml(kind)) == crd(kind)
