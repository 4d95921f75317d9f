"""The failure bento: `bentoml serve service:FailureService` here, with DTWIN_MODEL_TAG=<name>:<version>.

Everything but the task lives in `dtwin_ml.serving` (model checks and loading, batching, the HTTP contract).
"""

import bentoml

from dtwin_ml.serving import SERVICE, BundleService


@bentoml.service(**SERVICE)
class FailureService(BundleService):
    """P(failure within the model's horizon), alert and top features at each window's last step."""

    task = "failure"
