"""Call statistics for the canary verdict: one Lease per model and reporter, server-side-applied after each pass.

The body is `dtwin_core.model_calls.lease_body` (the operator reads it with `decode` from the same module). The
synchronous `kubernetes` client runs in a thread with a request timeout; a failure is logged and counted, and the
next pass applies the whole Lease again (counters are cumulative, so nothing is lost by a missed renewal).
"""

from __future__ import annotations

import os
from typing import Any

import kubernetes
import structlog
from kubernetes.client import ApiClient, CoordinationV1Api

from dtwin_core.model_calls import CallStats, lease_body

log = structlog.get_logger(__name__)
APPLY = "application/apply-patch+yaml"
FIELD_MANAGER = "dtwin-scorer"


def connect() -> ApiClient | None:
    """A client from the in-cluster ServiceAccount, else $KUBECONFIG / ~/.kube/config; None if neither works."""
    cfg = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=cfg)
    except kubernetes.config.ConfigException:
        try:
            kubeconfig = os.environ.get("KUBECONFIG") or None  # read now, not when `kubernetes` was imported
            kubernetes.config.load_kube_config(kubeconfig, client_configuration=cfg, persist_config=False)
        except Exception as err:  # missing or empty file, no context, bad YAML: all mean "no cluster"
            log.info("call statistics not reported: no in-cluster ServiceAccount, no usable kubeconfig", error=str(err))
            return None
    return ApiClient(cfg)


class Reporter:
    def __init__(self, api: ApiClient, reporter: str, timeout_s: float) -> None:
        self.api = CoordinationV1Api(api)
        self.reporter, self.timeout_s = reporter, timeout_s

    def report(self, namespace: str, model: str, stable: CallStats | None, canary: CallStats | None) -> Any:
        """Apply the Lease (creating or renewing it); synchronous, run it in a thread."""
        body = lease_body(namespace, model, self.reporter, stable, canary)
        return self.api.patch_namespaced_lease(
            body["metadata"]["name"],
            namespace,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY,
            _request_timeout=self.timeout_s,
        )
