"""`dtwin edge ...`: score with an exported package (`dtwin model export`) offline: no model store, no bentoml.

`score` scores a CSV as `dtwin model score` does, through `dtwin_ml.onnx_export.EdgeModel` (onnxruntime for the
estimator, numpy for the robust-z part, `dtwin_ml.features` for the features). `mqtt` subscribes to a local
broker (paho-mqtt 2.x), keeps each asset's recent 10-minute buckets (`dtwin_cli.stream`) and, each time a bucket
completes, prints its score as a JSON line on stdout and publishes it (QoS 1) to `--publish` with `{asset}` and
`{task}` filled in.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from dtwin_cli import readings, scoring, stream
from dtwin_cli.errors import CliError, reported
from dtwin_cli.layout import pairs

app = typer.Typer(
    help="Score with an exported ONNX package, offline (files or a local MQTT stream).", no_args_is_help=True
)
DirOpt = Annotated[Path, typer.Option("--dir", help="Folder written by `dtwin model export`.", show_default=False)]


def _load(folder: Path) -> Any:
    from dtwin_ml import onnx_export

    try:
        return onnx_export.load(folder)
    except onnx_export.ExportError as err:
        raise CliError(str(err)) from None


@app.command()
@reported
def score(
    folder: DirOpt,
    csv: Annotated[Path, typer.Option(help="History CSV (wide or long).", show_default=False)],
    out: Annotated[Path, typer.Option(help="Scores CSV to write.", show_default=False)],
    asset: Annotated[str | None, typer.Option(help="Score only this asset of the CSV.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of the CSV's assets in the model.")] = None,
    unit_column: Annotated[str | None, typer.Option(help="rul (run-to-failure units): the unit id column.")] = None,
    format_: Annotated[str, typer.Option("--format", help="wide or long.")] = "wide",
    time_column: Annotated[str, typer.Option(help="Header of the timestamp column.")] = "timestamp",
    timezone: Annotated[str, typer.Option(help="Zone of timestamps written without a UTC offset.")] = "UTC",
    map_: Annotated[list[str] | None, typer.Option("--map", help="COL=ASSET.METRIC.")] = None,
    skip: Annotated[list[str] | None, typer.Option(help="A column that is not a reading.")] = None,
) -> None:
    """Score every 10-minute row of CSV with the package in DIR (same columns as `dtwin model score`)."""
    model = _load(folder)
    if unit_column is not None or not model.per_asset:
        if unit_column is None:
            raise CliError("this rul package scores run-to-failure units: pass --unit-column (and --time-column)")
        result = scoring.score_units(model, csv, unit_column, time_column, only=asset)
    else:
        long, _ = readings.read(csv, readings.Options(format_, time_column, timezone, map_ or (), skip or ()))
        result = scoring.score(
            model, scoring.grids(long), namespace=namespace, only=asset, warn=lambda m: typer.echo(m, err=True)
        )
    scoring.write(result, out)
    typer.echo(f"{len(result)} rows -> {out}", err=True)


@app.command()
@reported
def mqtt(
    folder: DirOpt,
    topic: Annotated[str, typer.Option(help="Subscription; a + level names the asset.")] = "sites/+/+/telemetry",
    host: Annotated[str, typer.Option(help="Broker host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Broker port.")] = 1883,
    publish: Annotated[str, typer.Option(help="Topic for scores ('' = do not publish).")] = "dtwin/edge/{asset}/{task}",
    namespace: Annotated[str | None, typer.Option(help="Namespace of the stream's assets in the model.")] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="FIELD=METRIC (nested fields: a.b).")] = None,
    timezone: Annotated[str, typer.Option(help="Zone of timestamps without a UTC offset.")] = "UTC",
    max_scores: Annotated[int, typer.Option(min=0, help="Exit after this many scores (0: run until stopped).")] = 0,
    client_id: Annotated[str, typer.Option(help="MQTT client id ('' = random).")] = "",
) -> None:
    """Score a live stream of JSON readings from a local broker, one score per completed 10-minute bucket."""
    import paho.mqtt.client as paho

    from dtwin_cli.readings import zone_of

    model = _load(folder)
    if model.task not in ("anomaly", "failure") and not (model.task == "rul" and model.per_asset):
        raise CliError(f"edge mqtt scores anomaly, failure and (per-asset) rul packages; this one is {model.task} "
                       "(use edge score)")  # fmt: skip
    if "+" not in topic.split("/"):
        raise CliError(f"--topic {topic!r} has no + level for the asset")
    maps = pairs(map_ or (), "--map")
    zone = zone_of(timezone)
    live = stream.Stream(model, _KeyMap(scoring.known_keys(model), namespace))
    sent = 0
    pending: list[paho.MQTTMessageInfo] = []  # QoS 1 publishes not yet acknowledged by the broker
    finished = threading.Event()
    refused: list[str] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)

    def on_connect(c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            finished.set()
            return
        c.subscribe(topic, qos=1)

    def on_subscribe(_c: paho.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        typer.echo(f"subscribed to {topic} on {host}:{port}", err=True)

    def on_message(c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        nonlocal sent, pending
        if finished.is_set():
            return
        try:
            asset, ts, values = stream.parse_message(msg.payload, msg.topic, topic, maps, zone)
            scores = live.add(asset, ts, values)
        except (ValueError, CliError) as err:  # one bad message (or an ambiguous asset) must not stop the stream
            typer.echo(f"skipped a message on {msg.topic}: {err}", err=True)
            return
        for s in scores:
            line = json.dumps({"asset": s.asset, "timestamp": s.timestamp, model.score_key: s.value,
                               "alert": s.alert, "task": model.task})  # fmt: skip
            typer.echo(line)
            sys.stdout.flush()
            if publish:
                pending = [p for p in pending if not p.is_published()]
                pending.append(c.publish(publish.format(asset=s.asset, task=model.task), line, qos=1))
            sent += 1
            if max_scores and sent >= max_scores:
                finished.set()
                return

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port)
    except OSError as err:
        raise CliError(f"cannot reach the broker at {host}:{port} ({err})") from None
    client.loop_start()
    try:
        while not finished.wait(1.0):
            pass
        # Publishing happens on the network thread; wait for the broker's acknowledgements before leaving, or
        # the scores still queued behind the in-flight window would be lost.
        for info in pending:
            info.wait_for_publish(10)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    if refused:
        raise CliError(f"the broker at {host}:{port} refused the connection: {refused[0]}")
    if live.unknown:
        typer.echo(f"assets the model does not know (ignored): {', '.join(sorted(live.unknown))}", err=True)
    if live.late:
        typer.echo(f"{live.late} late reading(s) dropped", err=True)


class _KeyMap(dict[str, str]):
    """asset -> the model's key, resolved on first sight (None when the model does not know it)."""

    def __init__(self, known: list[str], namespace: str | None) -> None:
        super().__init__()
        self.known, self.namespace = known, namespace

    def get(self, asset: str, default: Any = None) -> Any:
        if asset not in self:
            key = scoring.key_of(asset, self.known, self.namespace)
            if key is None:
                return default
            self[asset] = key
        return self[asset]
