"""The energy bento: `bentoml serve service:EnergyService` here, with DTWIN_MODEL_TAG=<name>:<version>.

Everything but the task lives in `dtwin_ml.serving` (model checks and loading, batching, the HTTP contract).
"""

import bentoml

from dtwin_ml.serving import SERVICE, BundleService


@bentoml.service(**SERVICE)
class EnergyService(BundleService):
    """Day-ahead hourly kWh for the 24 whole hours after each window's last step."""

    task = "energy"
