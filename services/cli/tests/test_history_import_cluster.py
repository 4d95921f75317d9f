"""`dtwin history import` reading its Site from the local control plane: the Site resource and the routing
ConfigMap `dtwin-bridge-<site>-routing`, as the operator leaves them.

The ConfigMap is written here with the operator's own renderer (`dtwin_operator.render.routing.table`) rather
than by running the operator, which would also need the database and the whole reconcile: what is under test is
the CLI's read path, and the table is what the operator writes. Dry runs: the database path has its own tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from dtwin_cli import sitecfg
from dtwin_cli.main import app
from dtwin_localcp.twin import Twin
from dtwin_operator import names
from dtwin_operator.render import routing

pytestmark = pytest.mark.cluster
DATA = Path(__file__).parent / "data"
CRDS = Path(__file__).resolve().parents[3] / "crds"
runner = CliRunner()


@pytest.fixture
def site_namespace(kubeconfig: Path) -> Iterator[str]:
    """A fresh namespace holding Site `works` (from data/site.yaml) and its routing ConfigMap."""
    twin = Twin(kubeconfig)
    twin.install_crds(CRDS)
    core = client.CoreV1Api(twin.api)
    ns = f"t-cli-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        site = next(d for d in yaml.safe_load_all((DATA / "site.yaml").read_text()) if d and d["kind"] == "Site")
        twin.apply(site, namespace=ns)
        ctx = replace(sitecfg.context(DATA, "acme", "works"), namespace=ns)
        cm = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=names.routing_configmap("works")),
            data={names.ROUTING_KEY: routing.serialize(routing.table(ctx))},
        )
        core.create_namespaced_config_map(ns, cm)
        yield ns
    finally:
        core.delete_namespace(ns)
        twin.api.close()


def test_history_import_reads_site_from_cluster(site_namespace: str, kubeconfig: Path) -> None:
    csv = str(DATA / "pump_history.csv")
    args = ["history", "import", csv, "--site", f"{site_namespace}/works", "--kubeconfig", str(kubeconfig)]
    result = runner.invoke(app, [*args, "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{site_namespace}/works (site_works)" in result.stdout
    assert "readings valid     4320" in result.stdout


def test_history_import_unknown_site_in_cluster(site_namespace: str, kubeconfig: Path) -> None:
    csv = str(DATA / "pump_history.csv")
    args = ["history", "import", csv, "--site", f"{site_namespace}/elsewhere", "--kubeconfig", str(kubeconfig)]
    result = runner.invoke(app, [*args, "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: unknown site {site_namespace}/elsewhere: no Site 'elsewhere' in namespace '{site_namespace}'"
    )
