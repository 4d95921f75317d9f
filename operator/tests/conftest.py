"""Fixtures for tests against the local control plane (a real kube-apiserver).

`kubeconfig` (session) comes from `dtwin_localcp.pytest_plugin`, loaded by the
root conftest. On top of it:

- `kube_client` (module): a `kubernetes` ApiClient for that kubeconfig;
- `crds_installed` (module): `crds/*.yaml` applied with server-side apply, returned
  once every CRD reports `Established=True`;
- `namespace` (function): a fresh namespace `t-<random>`, deleted afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from dtwin_localcp.kubeapi import wait_until

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
FIELD_MANAGER = "dtwin-tests"
ESTABLISH_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def kube_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An API client for the local control plane's admin kubeconfig."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


def _established(crd: client.V1CustomResourceDefinition) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="module")
def crds_installed(kube_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Server-side-applies every CRD in crds/ and waits until all are Established; returns their names."""
    paths = sorted(CRD_DIR.glob("*.yaml"))
    assert paths, f"no CRDs in {CRD_DIR}"
    # Its discovery cache goes to the test's temp dir, not to a shared file in /tmp.
    cache = tmp_path_factory.mktemp("discovery") / "cache.json"
    dynamic = DynamicClient(kube_client, cache_file=str(cache))
    crd_resource = dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    names = []
    for path in paths:
        body = yaml.safe_load(path.read_text())
        try:
            dynamic.server_side_apply(crd_resource, body=body, field_manager=FIELD_MANAGER, force_conflicts=True)
        except ApiException as err:  # e.g. a CEL rule the API server refuses (cost, syntax)
            pytest.fail(f"the API server rejected {path.name}: {err.status} {err.body}", pytrace=False)
        names.append(body["metadata"]["name"])

    extensions = client.ApiextensionsV1Api(kube_client)

    def pending() -> list[str]:
        return [n for n in names if not _established(extensions.read_custom_resource_definition(n))]

    wait_until(
        lambda: not pending(),
        timeout=ESTABLISH_TIMEOUT,
        what="the dtwin CRDs to become Established",
        on_timeout=lambda: f"not Established: {', '.join(pending())}",
    )
    return names


@pytest.fixture
def namespace(kube_client: client.ApiClient) -> Iterator[str]:
    """A new, uniquely named namespace; deleted (without waiting for it to go) after the test."""
    core = client.CoreV1Api(kube_client)
    name = f"t-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"dtwin.io/test": "true"})))
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise
