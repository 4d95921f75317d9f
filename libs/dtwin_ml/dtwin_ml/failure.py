"""Failure prediction: the probability that an asset fails within a horizon, from asset-agnostic health inputs.

Every feature of an asset is turned into a robust z-score against that asset's own normal history, and the z-scores
are then summarised per feature type (the largest and the smallest z of all `...:std_36`, of all `...:resid`, ...),
so a pump with four sensors and a chiller with five feed the same columns and one classifier learns from every
asset. Labels come from failure events: a row is positive when a failure of its asset follows within the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from dtwin_ml.anomaly import AnomalyModel


def health_inputs(scaler: AnomalyModel, features: pd.DataFrame) -> pd.DataFrame:
    """Per row: max and min z per feature type, plus the anomaly score of the row."""
    z = scaler.z(features)
    kinds: dict[str, list[int]] = {}
    for j, col in enumerate(scaler.columns):
        kinds.setdefault("delta" if ":delta" in col else col.split(":")[-1], []).append(j)
    out = {}
    for kind, idx in sorted(kinds.items()):
        out[f"zmax:{kind}"] = z[:, idx].max(axis=1)
        out[f"zmin:{kind}"] = z[:, idx].min(axis=1)
    out["anomaly_score"] = scaler.score(features)
    return pd.DataFrame(out, index=features.index)


def labels(index: pd.DatetimeIndex, failures: Sequence[pd.Timestamp], horizon: pd.Timedelta) -> np.ndarray:
    """1 where a failure of the asset happens within (t, t + horizon], else 0."""
    y = np.zeros(len(index), dtype=int)
    for f in failures:
        y[(index < f) & (index >= f - horizon)] = 1
    return y


class FailureModel:
    """A random forest over `health_inputs` (missing kinds are NaN, which scikit-learn's trees handle).

    Random forest rather than gradient boosting: a close event F1 on the evaluation and several times faster to
    fit on two cores (see services/trainer/README.md).
    """

    def __init__(self, n_estimators: int = 150) -> None:
        self.columns: list[str] = []
        self.model = RandomForestClassifier(
            n_estimators=n_estimators,
            min_samples_leaf=5,
            class_weight="balanced_subsample",
            n_jobs=1,
            random_state=0,
        )

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> FailureModel:
        self.columns = list(x.columns)
        self.model.fit(x[self.columns], y)
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(x.reindex(columns=self.columns))[:, 1])
