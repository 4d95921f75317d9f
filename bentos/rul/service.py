"""The rul bento: `bentoml serve service:RulService` here, with DTWIN_MODEL_TAG=<name>:<version>.

Everything but the task lives in `dtwin_ml.serving` (model checks and loading, batching, the HTTP contract).
"""

import bentoml

from dtwin_ml.serving import SERVICE, BundleService


@bentoml.service(**SERVICE)
class RulService(BundleService):
    """Remaining useful life in hours at each window's last step."""

    task = "rul"
