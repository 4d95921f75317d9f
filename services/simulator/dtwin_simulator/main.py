"""The CLI: `python -m dtwin_simulator run --examples examples/ --seed 7 --speed 60 --duration 1h ...`.

`run` builds the fleet from the YAML, resolves the faults against the run's start, writes the ground truth,
then streams: to the broker (QoS 0/1, PUBACKs counted) or, with `--dry-run`, to stdout. The start defaults to
now for a real-time run and to now minus the duration for a faster one, so replayed timestamps end at the
present and never run ahead of the bridge's clock (it refuses readings over 5 min in the future or older than
7 days). `fleet` lists every sensor with the role and value model the simulator picked for it. The summary
line at the end (`RESULT sent=… acked=… refused=…`) is machine-readable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from dtwin_core import tracing
from dtwin_simulator import faults, fleet, prefetch, publish, stream, times
from dtwin_simulator.settings import SimulatorSettings
from dtwin_simulator.signals import catalog, roles

app = typer.Typer(add_completion=False, no_args_is_help=True, help="dtwin device fleet simulator.")
Examples = Annotated[list[Path], typer.Option("--examples", "-f", help="YAML files or directories of them.")]
Only = Annotated[list[str], typer.Option(help="Only these assets (repeatable).")]
Sites = Annotated[list[str], typer.Option("--site", help="Only these sites (repeatable).")]


def _speed(text: str) -> float:
    if text in ("0", "max", "inf"):
        return float("inf")
    value = float(text)
    if value <= 0:
        raise typer.BadParameter("speed must be > 0, or 0/max for as fast as possible")
    return value


def _load(examples: list[Path], sites: list[str], assets: list[str]) -> fleet.Fleet:
    built = fleet.build(fleet.read_docs(examples or [Path("examples")]))
    for warning in built.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return built.select(sites=sites, assets=assets)


def _faults(files: list[Path], flags: list[str]) -> list[faults.FaultSpec]:
    specs = [s for f in files for s in faults.read_specs(f.read_text())]
    return specs + [faults.parse_flag(flag) for flag in flags]


@app.command()
def run(
    examples: Examples = [],  # noqa: B006 - typer reads list defaults, never mutates them
    seed: Annotated[int, typer.Option(help="Same seed and config → byte-identical stream.")] = 7,
    start: Annotated[
        str | None,
        typer.Option(help="ISO 8601 instant, now or -2d (default: now at speed 1, else now minus the duration)."),
    ] = None,
    duration: Annotated[str, typer.Option(help="Simulated time span, e.g. 90m, 1h, 3d.")] = "1h",
    speed: Annotated[str, typer.Option(help="1 = real time, N = Nx faster, 0 or max = as fast as possible.")] = "1",
    rate: Annotated[float | None, typer.Option(help="At most this many messages per wall second.")] = None,
    host: Annotated[str | None, typer.Option(help="Broker host [DTWIN_SIMULATOR_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Broker port [DTWIN_SIMULATOR_PORT].")] = None,
    qos: Annotated[int | None, typer.Option(min=0, max=1, help="0 or 1 [DTWIN_SIMULATOR_QOS].")] = None,
    fault_files: Annotated[list[Path], typer.Option("--faults", help="YAML/JSON fault list (repeatable).")] = [],  # noqa: B006
    fault_flags: Annotated[list[str], typer.Option("--fault", help="kind=…,asset=…,start=+1h,duration=2h")] = [],  # noqa: B006
    truth: Annotated[Path | None, typer.Option(help="Write the ground truth of every fault here (JSONL).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print messages to stdout, no broker.")] = False,
    site: Sites = [],  # noqa: B006
    asset: Only = [],  # noqa: B006
    use_prefetch: Annotated[
        bool | None,
        typer.Option(
            "--prefetch/--no-prefetch", help="Compute the stream in a second process (default: at max speed)."
        ),
    ] = None,
) -> None:
    """Simulate the fleet and publish its telemetry."""
    settings = SimulatorSettings()
    host, port = host or settings.host, port or settings.port
    qos = settings.qos if qos is None else qos
    pace = _speed(speed)
    now = int(time.time()) * 1000
    try:
        span = times.parse_duration_ms(duration)
        start_ms = times.parse_instant_ms(start, now) if start else (now if pace == 1.0 else now - span)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--start/--duration") from err
    sim = _load(examples, site, asset)
    try:
        resolved = faults.resolve(_faults(fault_files, fault_flags), sim, start_ms)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--faults/--fault") from err
    if truth is not None:
        truth.write_text("".join(json.dumps(r) + "\n" for r in faults.truth(resolved)))
    typer.echo(
        f"simulating {len(sim.sensors)} sensors on {len(sim.assets)} assets from {times.iso(start_ms)} "
        f"for {duration} at speed {speed}, {len(resolved)} faults",
        err=True,
    )
    generate = (
        prefetch.messages if (pace == float("inf") if use_prefetch is None else use_prefetch) else stream.messages
    )
    msgs = generate(sim, resolved, seed=seed, start_ms=start_ms, end_ms=start_ms + span)
    provider = tracing.setup("dtwin-simulator") if settings.trace_every and not dry_run else None
    sink = _sink(dry_run, settings, host, port, qos)
    began = time.monotonic()
    try:
        counts = publish.run(
            msgs, sink, publish.Pacer(start_ms, pace, rate), publish.Progress(sys.stderr, settings.progress_seconds)
        )
    except KeyboardInterrupt:
        sink.finish(10.0)
        counts = sink.counts
    took = time.monotonic() - began
    if provider is not None:
        provider.shutdown()  # exports the last spans
    typer.echo(
        f"RESULT sent={counts.sent} acked={counts.acked} refused={counts.refused} "
        f"reconnects={counts.reconnects} seconds={took:.2f} msg_s={counts.sent / max(took, 1e-9):.0f}",
        err=True,
    )


def _sink(dry_run: bool, settings: SimulatorSettings, host: str, port: int, qos: int) -> publish.Sink:
    if dry_run:
        return publish.DryRunSink(sys.stdout)
    sink = publish.MqttSink(
        host, port, qos=qos, client_id=settings.client_id, window=settings.window, trace_every=settings.trace_every
    )
    try:
        sink.connect()
    except (OSError, ConnectionError) as err:
        typer.echo(f"error: cannot connect to the broker at {host}:{port}: {err}", err=True)
        raise typer.Exit(1) from err
    return sink


@app.command("fleet")
def show_fleet(examples: Examples = [], site: Sites = [], asset: Only = []) -> None:  # noqa: B006
    """List every sensor with its device, format, interval and the role the simulator models."""
    sim = _load(examples, site, asset)
    kinds = {a.name: a.kind for a in sim.assets}
    for s in sim.sensors:
        role = catalog.simulated_role(kinds[s.asset], roles.classify(s.metric, s.unit))
        typer.echo(f"{s.name:36} {kinds[s.asset]:12} {role:14} {s.unit:9} {s.format:10} {s.interval_s:>5}s {s.topic}")
