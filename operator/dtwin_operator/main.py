"""Entry point: `kopf run -m dtwin_operator.main --all-namespaces`.

Reads the settings once and registers every index and handler on Kopf's
default registry; nothing else happens at import.
"""

from __future__ import annotations

import kopf

from dtwin_operator import indexes
from dtwin_operator.handlers import asset, health, lease, modeldeployment, owned, sensorbinding, site, startup
from dtwin_operator.settings import OperatorSettings


def register_all(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    indexes.register(registry)
    for module in (startup, site, asset, sensorbinding, modeldeployment, owned, health, lease):
        module.register(registry, cfg)


register_all(kopf.get_default_registry(), OperatorSettings())
