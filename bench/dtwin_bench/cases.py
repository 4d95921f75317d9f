"""The ingest benchmark's cases, each on an empty table: the COPY ceiling, the anchors' bridges, dtwin's bridge.

Every end-to-end case runs the same way: start the bridge(s) and wait until they consume, snapshot CPU,
publish with tools/mqttload at QoS 1 (it counts PUBACKs), poll the table until it holds every acknowledged
reading (or stops growing), snapshot CPU again, then read from PostgreSQL how many rows there are and when the
last one committed. Rate = rows / (last commit - first publish). Each case returns one plain dict (its JSON
record); `Case.row()` makes its table line.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from dtwin_bench import procs, report, workload
from dtwin_bench.site import BenchSite
from dtwin_bench.stack import ANCHOR_DB, DTWIN_DB, CpuMeter, Snapshot, Stack
from dtwin_bridge.db import Writer
from dtwin_bridge.model import Reading, RoutingTable
from dtwin_bridge.parse import parse

ANCHOR_FILES = ("common.py", "bridge_naive.py", "bridge_good.py")
ANCHOR_ARGS = {
    "naive": ("bridge_naive.py", []),
    "batched": ("bridge_good.py", ["--batch", "5000", "--max-age-ms", "100"]),
}


@dataclass
class Settings:
    bridges: int
    batch_size: int | None
    flush_ms: int | None
    window: int
    conns: int
    stall_s: float
    copy_batch: int


def wait_stored(count: Callable[[], int], expected: int, stall_s: float, hard_s: float = 900) -> int:
    """Poll until `expected` rows are there, or the count stops moving for `stall_s` (then report what is)."""
    last, moved, start = -1, time.monotonic(), time.monotonic()
    while time.monotonic() - start < hard_s:
        n = count()
        if n >= expected:
            return n
        if n != last:
            last, moved = n, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            return n
        time.sleep(0.2)
    return count()


def record(case: str, label: str, pub: dict[str, Any], readings_per_msg: int, rows: int, last_commit: float | None,
           cpu: dict[str, float], **extra: Any) -> dict[str, Any]:  # fmt: skip
    """One case's JSON record: counts, loss, rates, CPU seconds and cores."""
    expected = int(pub["acked"]) * readings_per_msg
    t_end = last_commit or pub["t_first_pub"]
    ours = {k: cpu.get(k, 0.0) for k in ("bridge", "mosquitto", "postgres", "orchestrator")}
    ours["publisher"] = float(pub.get("cpu_s", 0.0))
    cpu_roles = {**ours, "other": report.other_cpu(cpu["box"], ours)}
    duration = t_end - pub["t_first_pub"]
    return {
        "case": case,
        "label": label,
        "messages_sent": pub["sent"],
        "messages_acked": pub["acked"],
        "publish_errors": pub.get("errors", 0),
        "readings_per_message": readings_per_msg,
        "readings_expected": expected,
        "rows": rows,
        "lost": report.lost(expected, rows),
        "surplus": max(0, rows - expected),
        "t_first_pub": pub["t_first_pub"],
        "t_last_commit": last_commit,
        "duration_s": duration,
        "msg_s": report.rate(pub["acked"], pub["t_first_pub"], t_end),
        "readings_s": report.rate(rows, pub["t_first_pub"], t_end),
        "publisher": pub,
        "cpu_s": cpu_roles,
        "window_s": cpu["wall"],
        "steal_s": cpu.get("steal", 0.0),
        "cores": report.utilisation({k: v for k, v in cpu_roles.items() if k != "orchestrator"}, cpu["wall"]),
        **extra,
    }


def row(rec: dict[str, Any]) -> report.Row:
    copy = rec["case"] == "copy"
    messages = None if copy else rec["messages_acked"]
    return report.Row(rec["label"], messages, rec["rows"], rec["msg_s"], rec["readings_s"], rec["lost"], rec["cores"])


def copy_ceiling(stack: Stack, run_dir: Path, rows: int, s: Settings) -> dict[str, Any]:
    """(a) dtwin's own `Writer` fed pre-built batches: the bridge's exact SQL with no MQTT in front of it."""
    site = BenchSite("copy", workload.SINGLE, stack.dsn(DTWIN_DB), stack.mqtt.port, run_dir, None, None)
    t0 = workload.ts_start(time.time(), rows, workload.SINGLE.devices)
    batches = workload.copy_batches(site.name, workload.SINGLE, rows, s.copy_batch, t0)

    async def write() -> tuple[float, float, Snapshot, Snapshot]:
        writer = await Writer.open(site.dsn, site.schema, size=1)
        meter = CpuMeter(stack)
        try:
            a, start = meter.snap(), time.time()
            for b in batches:
                await asyncio.wait_for(writer.write(b), 120)
            end = time.time()
            return start, end, a, meter.snap()
        finally:
            await writer.close()

    start, end, a, b = asyncio.run(write())
    cpu = CpuMeter.delta(a, b)
    cpu["bridge"], cpu["orchestrator"] = cpu.pop("orchestrator"), 0.0  # the Writer ran in this process
    stored = site.stored()
    pub = {"sent": rows, "acked": rows, "t_first_pub": start, "cpu_s": 0.0}
    rec = record("copy", f"(a) COPY ceiling, Writer, {s.copy_batch}/batch", pub, 1, stored.rows, end, cpu,
                 batch=s.copy_batch, site=site.name)  # fmt: skip
    rec["msg_s"] = None
    return rec


def load_anchor_common(anchor_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("anchor_common", anchor_dir / "common.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def copy_anchors(src: Path, run_dir: Path) -> Path:
    dst = run_dir / "anchors"
    dst.mkdir()
    for f in ANCHOR_FILES:
        shutil.copy2(src / f, dst / f)
    return dst


def anchor(kind: str, stack: Stack, anchor_dir: Path, mqttload: Path, n: int, s: Settings) -> dict[str, Any]:
    """(b) the anchors' naive or batched bridge, on their own table (common.DDL) in database `bench`."""
    common = load_anchor_common(anchor_dir)
    dsn = stack.dsn(ANCHOR_DB)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(common.DDL)
        conn.execute("CHECKPOINT")
    frames = anchor_dir / f"frames-{n}.bin"
    if not frames.exists():
        frames.write_bytes(workload.frames(workload.anchor_messages(common.payload, n)))
    script, extra = ANCHOR_ARGS[kind]
    env = {"ANCHOR_MQTT_PORT": str(stack.mqtt.port), "ANCHOR_PG_PORT": str(stack.pg.port)}
    args = ["--expect", str(n), "--idle", "5", "--max-seconds", "900", *extra]
    bridge = procs.AnchorBridge(anchor_dir, script, args, env, anchor_dir / f"{kind}.log")

    def count() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM telemetry").fetchone()[0])  # type: ignore[index]

    try:
        bridge.wait_for("READY", 30)
        meter = CpuMeter(stack, [bridge.proc.pid])
        a = meter.snap()
        pub = procs.publish(mqttload, [*base_args(stack, f"anchor-{kind}", n, s), "-format", "frames", "-frames",
                                       str(frames)], timeout=900)  # fmt: skip
        wait_stored(count, int(pub["acked"]), s.stall_s)
        cpu = CpuMeter.delta(a, meter.snap())
        own = bridge.finish(60)
    finally:
        bridge.kill()
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows, last = conn.execute(
            "SELECT count(*), extract(epoch FROM max(pg_xact_commit_timestamp(xmin)))::float8 FROM telemetry"
        ).fetchone()  # type: ignore[misc]
    label = f"(b) anchor {kind} ({script})"
    return record(kind, label, pub, 1, int(rows), last, cpu, bridge_result=own)


def base_args(stack: Stack, client: str, n: int, s: Settings) -> list[str]:
    return ["-broker", f"tcp://127.0.0.1:{stack.mqtt.port}", "-qos", "1", "-n", str(n), "-window", str(s.window),
            "-conns", str(s.conns), "-client-id", f"bench-pub-{client}", "-max-seconds", "900"]  # fmt: skip


def generated_args(site: BenchSite, shape: workload.Shape, t0: float) -> list[str]:
    """mqttload flags that make it build the shape's JSON or SenML messages itself (t0 = 0: live timestamps)."""
    args = ["-format", shape.fmt, "-topics", str(shape.devices), "-topic", shape.topic_template(site.name),
            "-ts-start", repr(t0), "-ts-step", "1"]  # fmt: skip
    if shape.fmt == "senml":
        args += ["-readings", str(shape.readings), "-senml-bn", "urn:dev:dtwin:d%d:", "-field", "f%02d",
                 "-senml-unit", workload.SENML_UNIT]  # fmt: skip
    return args


def rejected(table: RoutingTable, shape: workload.Shape, sample: list[tuple[str, bytes]]) -> list[str]:
    """What the bridge's own parser would not store of `sample` (each message must give `readings` readings)."""
    now = datetime.now(UTC)
    problems = []
    for topic, payload in sample:
        items = parse(topic, payload, table, now)
        bad = [i for i in items if not isinstance(i, Reading)]
        if bad or len(items) != shape.readings:
            problems.append(f"{payload[:200]!r} on {topic}: {len(items)} items, rejects {bad}")
    return problems


def preflight(site: BenchSite, sample: list[tuple[str, bytes]]) -> None:
    if problems := rejected(site.config.table, site.shape, sample):
        raise RuntimeError(f"{site.shape.key}: the bridge would not store what the publisher sends: {problems}")


def dtwin(key: str, label: str, shape: workload.Shape, stack: Stack, run_dir: Path, mqttload: Path, n: int,
          s: Settings, rate: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """(c)/(d)/(e): dtwin's bridge processes on a Site of `shape`; `rate` > 0 paces the publisher and stamps
    each message with its send time, and the record then carries the commit latency percentiles."""
    site = BenchSite(key, shape, stack.dsn(DTWIN_DB), stack.mqtt.port, run_dir, s.batch_size, s.flush_ms)
    live = rate > 0
    t0 = 0.0 if live else workload.ts_start(time.time(), n, shape.devices)
    args = base_args(stack, key, n, s)
    if shape.fmt == "sparkplugb":
        messages = list(workload.sparkplug_messages(site.name, shape, n, t0))
        (site.dir / "frames.bin").write_bytes(workload.frames(messages))
        sample = messages[:3]
        args += ["-format", "frames", "-frames", str(site.dir / "frames.bin")]
    else:
        sample = procs.dump(mqttload, [*args, *generated_args(site, shape, t0 or time.time())])
        args += generated_args(site, shape, t0)
    if live:
        args += ["-rate", f"{rate:.0f}"]
    preflight(site, sample)
    bridges = procs.DtwinBridges(site, s.bridges)
    bridges.start()
    try:
        bridges.wait_ready(stack.mqtt.port)
        meter = CpuMeter(stack, bridges.pids)
        a = meter.snap()
        pub = procs.publish(mqttload, args, timeout=900)
        wait_stored(site.count, int(pub["acked"]) * shape.readings, s.stall_s)
        cpu = CpuMeter.delta(a, meter.snap())
        bridges.check_alive()
        stored = site.stored()
        extra: dict[str, Any] = {"site": site.name, "bridges": s.bridges, "batch_size": site.batch_size,
                                 "flush_ms": site.flush_ms, "dead_letters": stored.dead_letters}  # fmt: skip
        if stored.dead_letters:
            extra["dead_letter_reasons"] = site.dead_letter_reasons()
        if live:
            extra["latency"] = site.latency_ms()
            extra["target_rate"] = rate
    finally:
        codes = bridges.stop(stack.mqtt.port)
    return record(key, label, pub, shape.readings, stored.rows, stored.last_commit, cpu, bridge_exit_codes=codes,
                  **extra)  # fmt: skip
