"""Edge packages: a bundle's estimator as ONNX plus a JSON sidecar, and the runtime that scores from them offline.

What becomes ONNX and what does not (honestly):
- failure: the pooled `RandomForestClassifier` (inside `FailureModel`) is converted by skl2onnx to `model.onnx`,
  with float32 inputs, the precision scikit-learn's trees compare in, so the probabilities agree to float32
  rounding. The forest is pooled over assets with different sensors, so it is trained with NaN inputs (a feature
  kind an asset lacks) and learns per split where NaN goes; skl2onnx 1.20 drops that (every NaN would take the
  "false" branch), so `_missing_directions` writes scikit-learn's `missing_go_to_left` into the ONNX node
  attribute `nodes_missing_value_tracks_true` (true branch = x <= threshold = left). The health inputs it reads
  (`failure.health_inputs`: per-asset robust-z summaries) are numpy, computed in Python from the sidecar's
  per-asset parameters.
- energy: the pooled `HistGradientBoostingRegressor` compares float64 inputs with float64 thresholds, and the
  calendar inputs sit closer to some thresholds than float32 can tell apart (cos of an hour: -0.4999999999999998
  against a split at -0.5000000000000001). skl2onnx 1.20 writes this model for ai.onnx.ml opset 1 (float32
  thresholds), so `_double_thresholds` rewrites the tree node to opset 3 with the regressor's own float64
  thresholds (`nodes_values_as_tensor`) and a float64 input; onnxruntime then takes every branch scikit-learn
  takes, and only the leaf sum is float32 (forecasts agree to ~1e-7 relative). The day-ahead inputs
  (`energy.day_ahead_inputs`) stay Python.
- rul: the `RandomForestRegressor` inside `RulModel` is converted like the failure forest (float32, NaN directions
  copied); the prediction is clipped to [0, cap] afterwards, as `RulModel.predict` does. Its inputs are the
  failure task's health inputs (site histories) or `rul.unit_features` plus the age (run-to-failure units).
- anomaly: there is no estimator: `AnomalyModel` is robust-z arithmetic (median, MAD, top-k mean, one exp). Its
  parameters go into the sidecar and the edge runs the same numpy code from them (`AnomalyModel` rebuilt from
  floats, never unpickled); no `model.onnx` is written.
Features are always computed by `dtwin_ml.features` in Python (each asset's `Profile` and `FeatureConfig` are in
the sidecar): ONNX has no rolling windows or calendar, and re-implementing them would be a second truth to keep in
step. Known gap: `dtwin_ml.failure`, `dtwin_ml.rul` and `dtwin_ml.energy` import scikit-learn at module import, so
the edge for those tasks needs it installed (no estimator of it is ever called there).

The sidecar `model.json` (format 1): task, tag, versions, threshold, debounce, lookback, per-asset state
(`assets[key]`: profile, feature config, robust-z parameters), the estimator's input names and output, and for
energy the per-series scales and time zones. NaN in a profile is written as JSON `NaN` (Python's json reads it).
Nothing here imports bentoml or the model store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dtwin_ml import features
from dtwin_ml.anomaly import AnomalyModel

FORMAT = 1
ONNX = "model.onnx"
SIDECAR = "model.json"


class ExportError(ValueError):
    """A bundle this module cannot export (an unknown task or estimator)."""


def _scaler(m: AnomalyModel) -> dict[str, Any]:
    return {
        "top": m.top,
        "select": m.select,
        "calibration": m.calibration,
        "clip": m.clip,
        "columns": list(m.columns),
        "center": [float(v) for v in np.asarray(m.center, dtype=float)],
        "scale": [float(v) for v in np.asarray(m.scale, dtype=float)],
        "raw_ref": float(m.raw_ref),
    }


def scaler_of(d: dict[str, Any]) -> AnomalyModel:
    return AnomalyModel(
        top=int(d["top"]),
        select=str(d["select"]),
        calibration=float(d["calibration"]),
        clip=float(d["clip"]),
        columns=list(d["columns"]),
        center=np.asarray(d["center"], dtype=float),
        scale=np.asarray(d["scale"], dtype=float),
        raw_ref=float(d["raw_ref"]),
    )


def _config_of(d: dict[str, Any]) -> features.FeatureConfig:
    def tup(v: Any) -> Any:
        return tuple(tup(x) for x in v) if isinstance(v, list) else v

    return features.FeatureConfig(**{k: tup(v) for k, v in d.items()})


def _state(state: Any) -> dict[str, Any]:
    return {
        "profile": dataclasses.asdict(state.profile),
        "config": dataclasses.asdict(state.config),
        "scaler": _scaler(state.model),
    }


def _missing_directions(onx: Any, forest: Any) -> None:
    """Copy each split's NaN direction from the scikit-learn trees into the ONNX tree ensemble (see above)."""
    for node in onx.graph.node:
        if node.op_type not in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            continue
        att = {a.name: a for a in node.attribute}
        trees, ids, modes = att["nodes_treeids"].ints, att["nodes_nodeids"].ints, att["nodes_modes"].strings
        left = [forest.estimators_[t].tree_.missing_go_to_left for t in range(len(forest.estimators_))]
        track = [int(m != b"LEAF" and bool(left[t][n])) for t, n, m in zip(trees, ids, modes, strict=True)]
        del att["nodes_missing_value_tracks_true"].ints[:]
        att["nodes_missing_value_tracks_true"].ints.extend(track)


@contextlib.contextmanager
def _int_missing_flags() -> Iterator[None]:
    """skl2onnx 1.20 passes a Python `False` as a leaf's `nodes_missing_value_tracks_true` for histogram gradient
    boosting, which onnx's protobuf (7.x) refuses in an INTS attribute ("Expected an int, got a boolean"); cast it
    to int for the duration of one conversion."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _double_thresholds(onx: Any, hgb: Any) -> None:
    """Give the ONNX tree ensemble of a histogram gradient boosting regressor its float64 thresholds (see above)."""
    from onnx import TensorProto, helper, numpy_helper

    for node in onx.graph.node:
        if node.op_type != "TreeEnsembleRegressor":
            continue
        att = {a.name: a for a in node.attribute}
        trees, ids, modes = att["nodes_treeids"].ints, att["nodes_nodeids"].ints, att["nodes_modes"].strings
        nodes = [predictors[0].nodes for predictors in hgb._predictors]
        values = [
            float(nodes[t][n]["num_threshold"]) if m != b"LEAF" else 0.0
            for t, n, m in zip(trees, ids, modes, strict=True)
        ]
        keep = [a for a in node.attribute if a.name != "nodes_values"]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.append(
            helper.make_attribute("nodes_values_as_tensor", numpy_helper.from_array(np.asarray(values, np.float64)))
        )
    for opset in onx.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, 3)
    onx.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE


def _onnx_bytes(estimator: Any, n_inputs: int, dtype: type) -> bytes:
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_inputs), dtype=np.float32)  # converted as float32, then rewritten for float64 below
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    with _int_missing_flags():
        onx = to_onnx(estimator, sample, options=options)
    if hasattr(estimator, "estimators_") and hasattr(estimator.estimators_[0], "tree_"):  # a forest of trees
        _missing_directions(onx, estimator)
    if hasattr(estimator, "_predictors") and dtype == np.float64:  # histogram gradient boosting
        _double_thresholds(onx, estimator)
    return bytes(onx.SerializeToString())


def export(bundle: Any, out: str | Path, *, tag: str = "") -> list[Path]:
    """Write `model.json` (and `model.onnx` when the task has an estimator) into `out`; the paths written."""
    import sklearn

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = str(getattr(bundle, "task", ""))
    side: dict[str, Any] = {
        "format": FORMAT,
        "task": task,
        "tag": tag,
        "feature_version": int(bundle.feature_version),
        "sklearn_version": sklearn.__version__,
        "lookback_steps": int(bundle.lookback_steps),
    }
    written = []
    if task in ("anomaly", "failure"):
        side |= {
            "threshold": float(bundle.threshold),
            "persist": int(bundle.persist),
            "score_key": bundle.score_key,
            "assets": {k: _state(s) for k, s in sorted(bundle.assets.items())},
        }
        if task == "anomaly":
            side["top"] = int(bundle.top)
        else:
            clf = bundle.classifier
            side |= {"inputs": list(clf.columns), "horizon_h": float(bundle.horizon_h), "dtype": "float32"}
            (out / ONNX).write_bytes(_onnx_bytes(clf.model, len(clf.columns), np.float32))
            written.append(out / ONNX)
    elif task == "rul":
        reg = bundle.model
        side |= {
            "threshold": float(bundle.threshold),
            "score_key": "rul",
            "time_unit": bundle.time_unit,
            "cap": float(reg.cap),
            "inputs": list(reg.columns),
            "sensors": list(bundle.sensors),
            "windows": list(bundle.windows),
            "assets": {k: _state(st) for k, st in sorted(bundle.assets.items())},
            "dtype": "float32",
        }
        (out / ONNX).write_bytes(_onnx_bytes(reg.model, len(reg.columns), np.float32))
        written.append(out / ONNX)
    elif task == "energy":
        fc = bundle.forecaster
        if fc.model is None:
            raise ExportError("the energy forecaster was never fitted")
        side |= {
            "inputs": list(fc.columns),
            "scales": dict(fc.scales),
            "timezones": dict(bundle.timezones),
            "metrics": list(bundle.metrics),
            "dtype": "float64",
        }
        (out / ONNX).write_bytes(_onnx_bytes(fc.model, len(fc.columns), np.float64))
        written.append(out / ONNX)
    else:
        raise ExportError(f"cannot export a bundle of task {task!r} (anomaly, failure, rul and energy can be)")
    (out / SIDECAR).write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    return [*written, out / SIDECAR]


@dataclasses.dataclass
class EdgeState:
    profile: features.Profile
    config: features.FeatureConfig
    scaler: AnomalyModel

    def features(self, frame: pd.DataFrame, stats: pd.DataFrame | None) -> pd.DataFrame:
        return features.build(frame, self.config, self.profile, stats)


class EdgeModel:
    """An exported package, scored with onnxruntime and numpy: `predict_frame` as the bundle's, same columns."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        try:
            self.side: dict[str, Any] = json.loads((folder / SIDECAR).read_text())
        except FileNotFoundError:
            raise ExportError(f"{folder}: no {SIDECAR} (write one with `dtwin model export`)") from None
        if self.side.get("format") != FORMAT:
            raise ExportError(f"{folder / SIDECAR}: format {self.side.get('format')!r}, this runtime reads {FORMAT}")
        if self.side.get("feature_version") != features.FEATURE_VERSION:
            raise ExportError(
                f"{folder}: exported with features version {self.side.get('feature_version')}, this dtwin_ml "
                f"computes {features.FEATURE_VERSION}"
            )
        self.task: str = self.side["task"]
        self.lookback_steps = int(self.side["lookback_steps"])
        self.score_key: str = self.side.get("score_key", "kwh")
        self.threshold = float(self.side.get("threshold", np.inf))
        self.persist = int(self.side.get("persist", 1))
        self.assets = {
            k: EdgeState(features.Profile(**v["profile"]), _config_of(v["config"]), scaler_of(v["scaler"]))
            for k, v in self.side.get("assets", {}).items()
        }
        self.session: Any = None
        if (folder / ONNX).exists():
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(folder / ONNX), providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
        elif self.task != "anomaly":
            raise ExportError(f"{folder}: no {ONNX} for a {self.task} model")

    @property
    def asset_keys(self) -> list[str]:
        if self.task == "energy":
            return sorted({k.rpartition("/")[0] for k in self.side["scales"]})
        return sorted(self.assets)

    @property
    def per_asset(self) -> bool:
        """rul: scored per known asset (health inputs), not per run-to-failure unit."""
        return self.task != "rul" or bool(self.assets)

    @property
    def metrics(self) -> list[str]:
        return list(self.side.get("metrics", ()))

    def run(self, x: np.ndarray) -> np.ndarray:
        """The estimator's output on input rows (columns in `side["inputs"]` order)."""
        dtype = np.float32 if self.side.get("dtype") == "float32" else np.float64
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=dtype)})
        if self.task == "failure":
            return np.asarray(outputs[1], dtype=float)[:, 1]  # (label, probabilities) with zipmap off
        return np.asarray(outputs[0], dtype=float).ravel()

    def scores(self, state: EdgeState, feats: pd.DataFrame) -> np.ndarray:
        if self.task == "anomaly":
            return state.scaler.score(feats)
        from dtwin_ml.failure import health_inputs  # numpy; the module also holds the (unused) sklearn estimator

        x = health_inputs(state.scaler, feats).reindex(columns=self.side["inputs"])
        return self.run(x.to_numpy(dtype=float))

    def predict_frame(self, asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None = None) -> pd.DataFrame:
        """anomaly/failure: every row's score and debounced alert (as `bundle.predict_frame`, without `top`);
        energy: the hourly day-ahead forecast per metric and summed as `kwh` (`stats` is then the time zone)."""
        if self.task == "energy":
            return self._energy(asset, frame, stats if isinstance(stats, str) else None)
        if self.task == "rul":
            return self._rul(asset, frame, stats)
        from dtwin_ml.bundle import debounce

        state = self.assets[asset]
        feats = state.features(frame, stats)
        score = self.scores(state, feats)
        alert = debounce(score >= self.threshold, self.persist)
        return pd.DataFrame({self.score_key: score, "alert": alert}, index=feats.index)

    def _rul(self, asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None) -> pd.DataFrame:
        """As `RulBundle.predict_frame`, without `top`: `rul` (and `rul_hours` when the unit is hours), `alert`."""
        if self.per_asset:
            from dtwin_ml.failure import health_inputs

            state = self.assets[asset]
            x = health_inputs(state.scaler, state.features(frame, stats))
        else:
            from dtwin_ml import rul

            x = rul.unit_features(frame.reindex(columns=self.side["sensors"]), tuple(self.side["windows"]))
            x[rul.AGE] = np.asarray(frame.index, dtype=float)
        x = x.reindex(columns=self.side["inputs"])
        pred = np.clip(self.run(x.to_numpy(dtype=float)), 0.0, float(self.side["cap"])) if len(x) else np.zeros(0)
        out = pd.DataFrame({"rul": pred, "alert": pred <= self.threshold}, index=x.index)
        if self.side["time_unit"] == "hours":
            out["rul_hours"] = pred
        return out

    def forecast(self, key: str, y: pd.Series, timezone: str) -> pd.Series:
        from dtwin_ml.energy import day_ahead_inputs

        scale = self.side["scales"].get(key) or float(max(y.mean(), 1e-6))
        x = day_ahead_inputs(y, scale, timezone)
        pred = pd.Series(self.run(x[self.side["inputs"]].to_numpy(dtype=float)) * scale, index=y.index)
        return pred.where(x["lag_24"].notna())

    def _energy(self, asset: str, frame: pd.DataFrame, timezone: str | None) -> pd.DataFrame:
        from dtwin_ml.energy import hourly_energy

        tz = timezone or self.side["timezones"].get(asset, "UTC")
        cols = {m: self.forecast(f"{asset}/{m}", hourly_energy(frame[m]), tz) for m in self.metrics if m in frame}
        out = pd.DataFrame(cols)
        out["kwh"] = out.sum(axis=1, min_count=len(cols)) if cols else np.nan
        return out


def load(folder: str | Path) -> EdgeModel:
    return EdgeModel(folder)
