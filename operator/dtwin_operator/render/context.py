"""What the renderers read: a Site with the Assets and SensorBindings resolved to it, or a ModelDeployment
with its asset selection and canary decision.

Built by the reconciler from Kopf's indexes; plain frozen data, so every
renderer is a pure function of it (no client, no clock, stable order).
"""

from __future__ import annotations

from dataclasses import dataclass

from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec


@dataclass(frozen=True)
class AssetView:
    name: str
    spec: AssetSpec


@dataclass(frozen=True)
class BindingView:
    name: str
    spec: SensorBindingSpec


@dataclass(frozen=True)
class Images:
    """Container images of the workloads the operator renders (named as the Helm chart names them)."""

    bridge: str = "dtwin/bridge:0.1.0"
    model: str = "dtwin/model:0.1.0"  # every bento, one folder per task under /app/bentos
    trainer: str = "dtwin/trainer:0.1.0"


@dataclass(frozen=True)
class SiteContext:
    namespace: str
    name: str
    uid: str
    spec: SiteSpec
    assets: tuple[AssetView, ...] = ()  # sorted by name
    bindings: tuple[BindingView, ...] = ()  # sorted by name; only bindings whose asset is in `assets`
    images: Images = Images()

    def bindings_of(self, asset: str) -> tuple[BindingView, ...]:
        return tuple(b for b in self.bindings if b.spec.asset_ref == asset)


@dataclass(frozen=True)
class ModelContext:
    namespace: str
    name: str
    spec: ModelDeploymentSpec
    assets: tuple[str, ...] = ()  # the selection as "namespace/asset", sorted
    sites: tuple[str, ...] = ()  # Sites of the selection (or spec.selector.site), sorted: the schemas to train on
    canary: bool = False  # render the canary track: spec.canary is set and its version was not rolled back
    images: Images = Images()
    model_store_claim: str | None = None  # PersistentVolumeClaim holding the BentoML model store; None: emptyDir
    trainer_secret: str = "dtwin-trainer"  # Secret (key `dsn`) with the trainers' database DSN
    timezones: tuple[tuple[str, str], ...] = ()  # (site, its location.timezone) for the Sites that exist
