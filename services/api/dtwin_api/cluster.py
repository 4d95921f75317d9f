"""The only code of the API that talks to the Kubernetes API server: readiness probe and ModelDeployments.

The official `kubernetes` client is synchronous, so every call here is a plain blocking function and the
async callers run it with `asyncio.to_thread` (`Cluster.call`): the event loop never waits on the network.
Configuration: in-cluster (service account) when running in a pod, else the kubeconfig of the settings
(or $KUBECONFIG / ~/.kube/config). Each request carries a timeout so a hung API server cannot pin a thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from dtwin_core import model_calls

GROUP, VERSION, PLURAL = "dtwin.io", "v1alpha1", "modeldeployments"
CALLS_SELECTOR = f"{model_calls.COMPONENT_LABEL}={model_calls.COMPONENT}"
T = TypeVar("T")


class ClusterUnavailableError(Exception):
    """The API server could not be reached or refused the request."""


def _api_client(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config(config_file=kubeconfig)


class Cluster:
    """One ApiClient (its urllib3 pool is thread-safe) for the process; closed in the lifespan."""

    def __init__(self, kubeconfig: str | None, timeout_s: float) -> None:
        self.api = _api_client(kubeconfig)
        self.timeout = timeout_s

    def close(self) -> None:
        self.api.close()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking method of this adapter in a worker thread; errors become ClusterUnavailableError."""
        try:
            return await asyncio.to_thread(fn, *args)
        except (ApiException, HTTPError, OSError) as err:
            reason = f"{err.status} {err.reason}" if isinstance(err, ApiException) else type(err).__name__
            raise ClusterUnavailableError(reason) from err

    def ping(self) -> str:
        """The API server's version (any authenticated answer proves it is reachable and serving)."""
        info = client.VersionApi(self.api).get_code(_request_timeout=self.timeout)
        return str(info.git_version)

    def model_deployments(self, namespace: str) -> list[dict[str, Any]]:
        """Every ModelDeployment of the namespace, as plain dicts (spec and status in camelCase)."""
        objects = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _request_timeout=self.timeout
        )
        items = objects.get("items", []) if isinstance(objects, dict) else []
        return [i for i in items if isinstance(i, dict)]

    def model_call_leases(self, namespace: str) -> list[dict[str, Any]]:
        """The calls Leases of every model of the namespace (`dtwin_core.model_calls`), as plain dicts."""
        leases = client.CoordinationV1Api(self.api).list_namespaced_lease(
            namespace, label_selector=CALLS_SELECTOR, _request_timeout=self.timeout
        )
        out: list[dict[str, Any]] = []
        for lease in leases.items:
            meta = lease.metadata or client.V1ObjectMeta()
            out.append({"metadata": {"labels": meta.labels or {}, "annotations": meta.annotations or {}}})
        return out
