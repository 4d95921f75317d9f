"""What every handler needs, built once at startup and handed down through Kopf's `memo`."""

from __future__ import annotations

from dataclasses import dataclass, field

import kopf

from dtwin_operator.coalesce import Coalescer
from dtwin_operator.db.storage import Storage
from dtwin_operator.indexes import Indexes
from dtwin_operator.k8s.client import Kube
from dtwin_operator.reconcile.modeldeployment import ModelConfig, Rollbacks, reconcile_model
from dtwin_operator.reconcile.site import reconcile_site
from dtwin_operator.render.context import Images
from dtwin_operator.settings import OperatorSettings


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    images: Images
    storage: Storage | None = None
    coalescer: Coalescer = field(default_factory=Coalescer)
    rollbacks: Rollbacks = field(default_factory=dict)

    async def site(self, idx: Indexes, namespace: str, name: str) -> None:
        """Reconcile a Site, coalesced with concurrent requests for the same Site."""
        await self.coalescer.run(
            ("Site", namespace, name),
            lambda: reconcile_site(self.kube, idx, namespace, name, self.images, self.storage),
        )

    async def model(self, idx: Indexes, namespace: str, name: str) -> None:
        """Reconcile a ModelDeployment, coalesced with concurrent requests for the same one."""
        s = self.settings
        cfg = ModelConfig(self.images, s.model_store_claim, s.retry_delay, s.trainer_secret, s.scorer_image)
        await self.coalescer.run(
            ("ModelDeployment", namespace, name),
            lambda: reconcile_model(self.kube, idx, namespace, name, cfg, self.rollbacks),
        )


def of(memo: kopf.Memo) -> Runtime:
    rt = memo.get("runtime")
    if not isinstance(rt, Runtime):
        raise kopf.PermanentError("operator runtime missing: the startup handler did not run")
    return rt
