"""A small synchronous client for dtwin objects on a cluster: install CRDs, apply YAML, read readiness.

Shared by `make up` (which prints what is Ready) and the operator's integration
tests, so both look at the cluster the same way. Writes use server-side apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from dtwin_localcp.kubeapi import wait_until

API_VERSION = "dtwin.io/v1alpha1"
KINDS = ("Site", "Asset", "SensorBinding", "ModelDeployment")


def load_yaml(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every document of the given files, in file-name order."""
    docs: list[dict[str, Any]] = []
    for path in sorted(paths):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@dataclass(frozen=True)
class Readiness:
    kind: str
    name: str
    ready: bool
    reason: str
    message: str
    current: bool  # status.observedGeneration == metadata.generation


class Twin:
    def __init__(
        self, kubeconfig: Path, field_manager: str = "dtwin-cli", database_per_namespace: bool = False
    ) -> None:
        """`database_per_namespace` (for tests that apply the same Site name in many namespaces): a Site moved
        into a namespace gets `spec.storage.database` named after it, so their schemas never collide."""
        self.api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        self.dynamic = DynamicClient(self.api)
        self.field_manager = field_manager
        self.database_per_namespace = database_per_namespace

    def resource(self, kind: str, api_version: str = API_VERSION) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, doc: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply one document, optionally moved into `namespace`."""
        body = dict(doc)
        if namespace is not None and doc["kind"] != "Namespace":
            body["metadata"] = {**doc["metadata"], "namespace": namespace}
        if namespace is not None and doc["kind"] == "Site" and self.database_per_namespace:
            storage = {**doc["spec"].get("storage", {}), "database": namespace.replace("-", "_")}
            body["spec"] = {**doc["spec"], "storage": storage}
        res = self.resource(body["kind"], body["apiVersion"])
        out = self.dynamic.server_side_apply(
            res,
            body=body,
            namespace=body["metadata"].get("namespace"),
            field_manager=self.field_manager,
            force_conflicts=True,
        )
        return out.to_dict()

    def install_crds(self, crd_dir: Path, timeout: float = 60) -> None:
        """Apply crds/*.yaml and wait until each is Established (so its kind can be used)."""
        docs = load_yaml(crd_dir.glob("*.yaml"))
        for doc in docs:
            self.apply(doc)
        res = self.resource("CustomResourceDefinition", "apiextensions.k8s.io/v1")

        def established() -> bool:
            for doc in docs:
                conds = res.get(name=doc["metadata"]["name"]).to_dict().get("status", {}).get("conditions") or []
                if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                    return False
            return True

        wait_until(established, timeout, "CRDs to become Established")
        self.dynamic.resources.invalidate_cache()  # discover the new kinds

    def get(self, kind: str, namespace: str, name: str, api_version: str = API_VERSION) -> dict[str, Any] | None:
        try:
            return self.resource(kind, api_version).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def items(
        self, kind: str, namespace: str, api_version: str = API_VERSION, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        items = self.resource(kind, api_version).get(namespace=namespace, label_selector=label_selector)
        return list(items.to_dict()["items"])

    def readiness(self, namespace: str) -> list[Readiness]:
        rows = []
        for kind in KINDS:
            for obj in self.items(kind, namespace):
                status = obj.get("status") or {}
                ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
                rows.append(
                    Readiness(
                        kind,
                        obj["metadata"]["name"],
                        ready.get("status") == "True",
                        ready.get("reason", "Pending"),
                        ready.get("message", ""),
                        status.get("observedGeneration") == obj["metadata"].get("generation"),
                    )
                )
        return rows

    def wait_all_ready(self, namespace: str, expected: int, timeout: float) -> list[Readiness]:
        """Wait until `expected` dtwin objects exist and each is Ready for its current generation."""

        def done() -> list[Readiness] | None:
            rows = self.readiness(namespace)
            return rows if len(rows) == expected and all(r.ready and r.current for r in rows) else None

        def why() -> str:
            return "\n".join(
                f"  {r.kind}/{r.name}: {r.reason} {r.message}"
                for r in self.readiness(namespace)
                if not (r.ready and r.current)
            )

        return wait_until(
            done, timeout, f"{expected} dtwin objects in {namespace} to be Ready", interval=0.5, on_timeout=why
        )


def summary(rows: list[Readiness]) -> str:
    """A short table for people: counts per kind and any object that is not Ready, with why."""
    lines = []
    for kind in KINDS:
        of_kind = [r for r in rows if r.kind == kind]
        ready = sum(r.ready for r in of_kind)
        lines.append(f"  {kind:<16} {ready:>3}/{len(of_kind):<3} Ready")
    lines += [f"  ! {r.kind}/{r.name}: {r.reason}: {r.message}" for r in rows if not r.ready]
    return "\n".join(lines)


def wait_deleted(
    twin: Twin, kind: str, namespace: str, name: str, timeout: float, api_version: str = API_VERSION
) -> None:
    wait_until(
        lambda: twin.get(kind, namespace, name, api_version) is None,
        timeout,
        f"{kind} {namespace}/{name} to be deleted",
    )
