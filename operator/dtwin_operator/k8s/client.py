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
from dtwin_operator.labels import MODEL_VERSION as MODEL_VERSION_LABEL

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

    def deployment_state(self, namespace: str, name: str) -> dict[str, Any] | None:
        """What `dtwin_operator.serving` reads of a Deployment, or None if it does not exist.

        generation, spec.replicas (which the HPA sets), the template's dtwin.io/model-version label and the status.
        """
        try:
            dep = self._resource("apps/v1", "Deployment").get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        spec = dep.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        return {
            "generation": dep["metadata"].get("generation") or 0,
            "replicas": spec.get("replicas", 1),
            "version": template_labels.get(MODEL_VERSION_LABEL),
            "status": dep.get("status") or {},
        }

    def leases(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The metadata of every Lease in `namespace` that matches `label_selector`."""
        leases = self._resource("coordination.k8s.io/v1", "Lease").get(
            namespace=namespace, label_selector=label_selector
        )
        return [item["metadata"] for item in leases.to_dict()["items"]]

    def delete_lease(self, namespace: str, name: str) -> bool:
        """Delete a Lease; False if it was already gone."""
        try:
            self._resource("coordination.k8s.io/v1", "Lease").delete(name=name, namespace=namespace)
        except NotFoundError:
            return False
        return True

    def add_owner(self, namespace: str, name: str, owners: list[dict[str, Any]]) -> bool:
        """Set a Lease's ownerReferences (a merge patch: its writer's server-side apply leaves the field alone, and
        a Lease deleted meanwhile is not recreated); False if it was already gone."""
        try:
            self._resource("coordination.k8s.io/v1", "Lease").patch(
                name=name,
                namespace=namespace,
                body={"metadata": {"ownerReferences": owners}},
                content_type="application/merge-patch+json",
            )
        except NotFoundError:
            return False
        return True

    def prune(
        self,
        namespace: str,
        label_selector: str,
        owner_uid: str,
        keep: set[tuple[str, str]],
        kinds: tuple[tuple[str, str], ...],
    ) -> list[tuple[str, str]]:
        """Delete the objects of `kinds` that match the selector and are controlled by `owner_uid`, except `keep`.

        This is how a child the owner no longer renders goes (garbage collection only acts when the owner
        goes). Returns the (kind, name) deleted; one already gone counts as deleted by someone else.
        """
        deleted = []
        for api_version, kind in kinds:
            res = self._resource(api_version, kind)
            for item in res.get(namespace=namespace, label_selector=label_selector).to_dict()["items"]:
                meta = item["metadata"]
                controlled = any(
                    r.get("uid") == owner_uid and r.get("controller") for r in meta.get("ownerReferences") or []
                )
                if not controlled or (kind, meta["name"]) in keep:
                    continue
                try:
                    res.delete(name=meta["name"], namespace=namespace, body={"propagationPolicy": "Background"})
                except NotFoundError:
                    continue
                deleted.append((kind, meta["name"]))
        return deleted
