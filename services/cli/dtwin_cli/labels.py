"""Labels written in the readings CSV (`--label-column`) -> the events file the trainer reads (`asset,start,end,kind`).

A label cell is "on" when it is a non-zero number or true/yes/fault/failure (case-insensitive); empty, 0, false,
no and normal are "off". Each run of consecutive "on" rows of an asset becomes one event from its first timestamp
to one 10-minute step after its last. For the anomaly task the kind is `fault` (the window is the anomaly); for the
failure and rul tasks it is `failure`: the trainer reads such a row as the degradation window that ends in a failure at
`end`, so label the rows that lead up to each failure. Pure.
"""

from __future__ import annotations

import pandas as pd

OFF = {"", "0", "0.0", "false", "no", "normal", "ok", "none"}
STEP = pd.Timedelta(minutes=10)


def is_on(cell: object) -> bool:
    text = str(cell).strip().lower()
    if text in OFF or text == "nan":
        return False
    try:
        return float(text) != 0.0
    except ValueError:
        return True


def events(extras: pd.DataFrame, column: str, kind: str) -> pd.DataFrame:
    """`asset,start,end,kind` rows from `extras` (`timestamp`, `asset` and the label column, one row per CSV row;
    a wide file's rows are repeated for the asset(s) the label is about by the caller, see `model._label_events`)."""
    rows = []
    for asset, part in extras.groupby("asset", sort=True):
        per_ts = part.assign(on=part[column].map(is_on)).groupby("timestamp")["on"].any().sort_index()
        start = None
        prev = None
        for ts, on in per_ts.items():
            if on and start is None:
                start = ts
            if not on and start is not None:
                rows.append((asset, start, prev + STEP, kind))
                start = None
            prev = ts
        if start is not None and prev is not None:
            rows.append((asset, start, prev + STEP, kind))
    return pd.DataFrame(rows, columns=["asset", "start", "end", "kind"])


def write(ev: pd.DataFrame, path: object) -> None:
    out = ev.copy()
    for c in ("start", "end"):
        out[c] = pd.DatetimeIndex(out[c]).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
