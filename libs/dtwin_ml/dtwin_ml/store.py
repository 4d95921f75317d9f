"""Bundles in the BentoML model store: save with the metadata a deployment needs, load with a version check.

A bundle is pickled into `bundle.pkl` inside a BentoML 1.4 model (`bentoml.models.create`), labelled
`task=<task>` and described by metadata: the task, its holdout metrics, the training window, the feature names, a
sha256 of the training frames, the scikit-learn and feature versions. The store is `$BENTOML_HOME/models` (default
`~/bentoml`), or the one under `home` when given. Loading checks the scikit-learn version BEFORE unpickling: a
forest pickled by another release may load and silently predict differently, or fail deep inside scikit-learn.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import sklearn

from dtwin_ml import features
from dtwin_ml.bundle import Bundle

FILE = "bundle.pkl"


class ModelVersionMismatch(RuntimeError):  # noqa: N818 - the name other components catch (issue 4)
    """The model was trained with another scikit-learn than the one installed."""


def _store(home: str | Path | None) -> Any:
    if home is None:
        return None
    from bentoml._internal.models.model import ModelStore  # the only way to pick a store per call in 1.4

    path = Path(home) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return ModelStore(str(path))


def _kw(home: str | Path | None) -> dict[str, Any]:
    store = _store(home)
    return {} if store is None else {"_model_store": store}


def plain(value: Any) -> Any:
    """Metadata BentoML accepts: no None (dropped), no NaN (dropped), numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None and plain(v) is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value if v is not None]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def data_hash(frames: Iterable[pd.DataFrame]) -> str:
    """sha256 over the training frames (index, columns and values, in the order given)."""
    h = hashlib.sha256()
    for f in frames:
        h.update(",".join(map(str, f.columns)).encode())
        h.update(pd.util.hash_pandas_object(f, index=True).to_numpy().tobytes())
    return h.hexdigest()


def save(
    bundle: Bundle,
    name: str,
    *,
    metrics: dict[str, Any],
    train_start: pd.Timestamp,
    train_end: pd.Timestamp,
    data_sha256: str,
    extra: dict[str, Any] | None = None,
    home: str | Path | None = None,
    attach: Callable[[str, Path], None] | None = None,
    version: str | None = None,
) -> str:
    """Save `bundle` as a new version of model `name`; returns its tag ("name:version").

    `version` names the version (e.g. the `1.0.0` a ModelDeployment asks for); default: a fresh unique one.

    `attach(tag, folder)` may write more files (a report, a plot) into the model's folder before it is stored."""
    import bentoml

    metadata: dict[str, Any] = {
        "task": bundle.task,
        "metrics": metrics,
        "train_start": pd.Timestamp(train_start).isoformat(),
        "train_end": pd.Timestamp(train_end).isoformat(),
        "feature_names": list(bundle.feature_names),
        "data_sha256": data_sha256,
        "sklearn_version": sklearn.__version__,
        "feature_version": features.FEATURE_VERSION,
        "lookback_steps": int(bundle.lookback_steps),
        **(extra or {}),
    }
    metadata = plain(metadata)
    with bentoml.models.create(
        f"{name}:{version}" if version else name, labels={"task": bundle.task}, metadata=metadata, **_kw(home)
    ) as model:
        with open(model.path_of(FILE), "wb") as f:
            pickle.dump(bundle, f, protocol=pickle.HIGHEST_PROTOCOL)
        if attach is not None:
            attach(str(model.tag), Path(model.path))
    return str(model.tag)


def check(metadata: dict[str, Any], tag: str) -> None:
    """Raise `ModelVersionMismatch` unless the model's scikit-learn and feature versions are the installed ones."""
    trained = str(metadata.get("sklearn_version", "unknown"))
    if trained != sklearn.__version__:
        raise ModelVersionMismatch(
            f"model {tag} was trained with scikit-learn {trained}, but scikit-learn {sklearn.__version__} is "
            f"installed: retrain it with this version (python -m dtwin_trainer train ...), or install "
            f"scikit-learn=={trained} to serve it as is"
        )
    fv = metadata.get("feature_version")
    if fv != features.FEATURE_VERSION:
        raise ModelVersionMismatch(
            f"model {tag} was trained on dtwin_ml features version {fv}, this dtwin_ml computes version "
            f"{features.FEATURE_VERSION}: retrain it, or serve it with the dtwin_ml release it was trained with"
        )


def from_model(model: Any) -> Bundle:
    """The bundle inside a BentoML model object (what `bentoml.models.get` returns), after the version check."""
    check(dict(model.info.metadata), str(model.tag))
    with open(model.path_of(FILE), "rb") as f:
        bundle: Bundle = pickle.load(f)
    return bundle


def load(tag: str, home: str | Path | None = None) -> Bundle:
    """Load the bundle of `tag` ("name", "name:latest" or "name:version") from the store."""
    import bentoml

    return from_model(bentoml.models.get(tag, **_kw(home)))


def info(tag: str, home: str | Path | None = None) -> dict[str, Any]:
    """Tag, labels and metadata of a stored model, without unpickling it."""
    import bentoml

    model = bentoml.models.get(tag, **_kw(home))
    return {
        "tag": str(model.tag),
        "path": str(model.path),
        "labels": dict(model.info.labels),
        "metadata": dict(model.info.metadata),
    }
