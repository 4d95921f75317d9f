"""The only code that talks to the Kubernetes API server (besides Kopf itself).

The official client is synchronous, so every call here is a plain function the
async reconcilers run through `asyncio.to_thread`; nothing blocks the event
loop. Objects are written with server-side apply under the field manager
`dtwin-operator`, forcing ownership of the fields the operator renders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from dtwin_operator import names
from dtwin_operator.api.common import GROUP, VERSION

log = logging.getLogger(__name__)


def connect() -> ApiClient:
    """A client for the cluster the operator runs against: in-cluster, else $KUBECONFIG."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return ApiClient()


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    action: str  # "created", "updated" or "unchanged"


class Kube:
    """Synchronous API adapter; one per operator process, built at startup."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.dynamic = DynamicClient(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, manifest: dict[str, Any], owner: dict[str, Any] | None = None) -> Applied:
        """Server-side apply `manifest` (adopting it under `owner`) and say whether anything changed."""
        body = dict(manifest)
        if owner is not None:
            body["metadata"] = {**manifest["metadata"], "ownerReferences": [owner]}
        meta = body["metadata"]
        res = self._resource(body["apiVersion"], body["kind"])
        try:
            before = res.get(name=meta["name"], namespace=meta.get("namespace")).metadata.resourceVersion
        except NotFoundError:
            before = None
        after = self.dynamic.server_side_apply(
            res,
            body=body,
            namespace=meta.get("namespace"),
            field_manager=names.FIELD_MANAGER,
            force_conflicts=True,
        ).metadata.resourceVersion
        action = "created" if before is None else ("unchanged" if before == after else "updated")
        return Applied(body["kind"], meta["name"], action)

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge-patch the status subresource; False if the object is gone."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, {"status": status}
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def statefulset_state(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A StatefulSet's spec.replicas and status, or None if it does not exist.

        Not the status alone: a StatefulSet's status has no Available condition and no desired count.
        """
        try:
            sts = self._resource("apps/v1", "StatefulSet").get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        spec = sts.get("spec") or {}
        return {"spec": {"replicas": spec["replicas"]} if "replicas" in spec else {}, "status": sts.get("status") or {}}
