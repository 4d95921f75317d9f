"""The anomaly bento: `bentoml serve service:AnomalyService` here, with DTWIN_MODEL_TAG=<name>:<version>.

Everything but the task lives in `dtwin_ml.serving` (model checks and loading, batching, the HTTP contract).
"""

import bentoml

from dtwin_ml.serving import SERVICE, BundleService


@bentoml.service(**SERVICE)
class AnomalyService(BundleService):
    """Anomaly score in [0, 1), debounced alert and top features at each window's last step."""

    task = "anomaly"
