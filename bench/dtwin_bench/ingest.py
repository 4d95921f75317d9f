"""`make bench-ingest`: MQTT -> PostgreSQL ingest throughput, loss and latency of dtwin's bridge, in one run.

Starts its own PostgreSQL and Mosquitto (free ports, a temp run dir) and measures, each case on an empty table:
(a) the idempotent COPY ceiling: the bridge's `Writer` fed pre-built batches; (b) the anchors' naive and batched
bridges (../shared/anchors); (c) dtwin's bridge, N processes on one shared subscription, single-reading JSON;
(d) the same with packs of 20 readings, SenML and Sparkplug B; (e) publish -> commit latency at half of (c)'s
rate. All publishing is QoS 1 by tools/mqttload; zero loss is checked by count in every case. Prints progress,
a table, saves `.bench/ingest-<time>.json` and `.png`, and ends with the `RESULT ...` line.

    python -m dtwin_bench.ingest [--quick] [--n 100000] [--bridges 2] [--cases single,latency] ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dtwin_bench import cases, plot, report, workload
from dtwin_bench.stack import Stack, box_info, busy_cores
from dtwin_localcp.mosquitto import MosquittoError, find_binary
from dtwin_localcp.postgres import PostgresError, find_bin_dir

ROOT = Path(__file__).resolve().parents[2]
ALL_CASES = ("copy", "naive", "batched", "single", "senml", "sparkplug", "latency")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="dtwin_bench.ingest", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="single-reading messages for (c) and the batched anchor")
    ap.add_argument("--packed-n", type=int, help="packed messages for (d) (default n/10, i.e. 20x as many readings)")
    ap.add_argument("--naive-n", type=int, help="messages for the naive anchor (default n/4; it does ~1.5k msg/s)")
    ap.add_argument("--copy-rows", type=int, help="rows for the COPY ceiling (default: packed readings)")
    ap.add_argument("--copy-batch", type=int, default=5000, help="rows per batch for the COPY ceiling")
    ap.add_argument("--bridges", type=int, default=2, help="dtwin bridge processes on the shared subscription")
    ap.add_argument("--batch-size", type=int, help="Site spec.bridge.batchSize (default: the Site's default)")
    ap.add_argument("--flush-ms", type=int, help="Site spec.bridge.flushIntervalMs (default: the Site's default)")
    ap.add_argument("--latency-seconds", type=float, default=20.0, help="length of the paced latency run (e)")
    ap.add_argument("--latency-rate", type=float, help="msg/s for (e) (default: half of (c)'s measured rate)")
    ap.add_argument("--window", type=int, default=2000, help="publisher: un-acked QoS 1 messages per connection")
    ap.add_argument("--conns", type=int, default=1, help="publisher connections")
    ap.add_argument("--stall", type=float, default=30.0, help="give up waiting once rows stop growing this long")
    ap.add_argument("--cases", default=",".join(ALL_CASES), help=f"subset of {','.join(ALL_CASES)}")
    ap.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "anchors", help="the anchors' scripts")
    ap.add_argument("--out-dir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--keep", action="store_true", help="keep the run dir (servers' data and logs)")
    ap.add_argument("--quick", action="store_true", help="a fast smoke: n=10,000 and a 5 s latency run")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.latency_seconds = min(a.n, 10_000), min(a.latency_seconds, 5.0)
    a.packed_n = a.packed_n or max(1, a.n // 10)
    a.naive_n = a.naive_n or max(1, a.n // 4)
    a.copy_rows = a.copy_rows or a.packed_n * workload.SENML.readings
    a.cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if unknown := set(a.cases) - set(ALL_CASES):
        ap.error(f"unknown cases {sorted(unknown)}")
    return a


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_services() -> None:
    """Install PostgreSQL/Mosquitto if missing; a concurrent install (apt lock) is waited for, not fought."""
    for attempt in range(30):
        try:
            find_bin_dir()
            find_binary()
            return
        except (PostgresError, MosquittoError):
            say(f"services missing; running hack/install-services.sh (attempt {attempt + 1})")
            if subprocess.run([str(ROOT / "hack/install-services.sh")], check=False).returncode != 0:
                time.sleep(20)  # most likely another apt run holds the lock
    raise SystemExit("PostgreSQL / Mosquitto could not be installed")


def build_mqttload() -> Path:
    out = subprocess.run([str(ROOT / "hack/build-mqttload.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def describe(rec: dict[str, Any]) -> str:
    cores = " ".join(f"{k} {v:.2f}" for k, v in rec["cores"].items())
    sent = "written" if rec["case"] == "copy" else f"from {rec['messages_acked']:,} msgs acked"
    text = f"{rec['label']}: {rec['rows']:,} rows {sent} in {rec['duration_s']:.1f} s"
    text += f" = {rec['readings_s']:,.0f} rows/s; lost={rec['lost']}; cores: {cores}"
    if rec.get("msg_s") is not None and rec["case"] != "copy":
        text += f"; {rec['msg_s']:,.0f} msg/s"
    if lat := rec.get("latency"):
        text += "; latency ms p50 {p50_ms:.1f} p95 {p95_ms:.1f} p99 {p99_ms:.1f} max {max_ms:.1f}".format(**lat)
    if rec.get("dead_letters"):
        text += f"; DEAD LETTERS {rec['dead_letter_reasons']}"
    if rec.get("surplus"):
        text += f"; SURPLUS {rec['surplus']} rows"
    if rec.get("publish_errors"):
        text += f"; PUBLISH ERRORS {rec['publish_errors']} ({rec['publisher'].get('first_error')})"
    if any(c != 0 for c in rec.get("bridge_exit_codes", [])):
        text += f"; BRIDGE EXIT CODES {rec['bridge_exit_codes']}"
    return text


def run_cases(a: argparse.Namespace, stack: Stack, run_dir: Path, mqttload: Path) -> dict[str, dict[str, Any]]:
    s = cases.Settings(a.bridges, a.batch_size, a.flush_ms, a.window, a.conns, a.stall, a.copy_batch)
    anchor_dir = cases.copy_anchors(a.anchors, run_dir) if {"naive", "batched"} & set(a.cases) else None
    plural = "s" if a.bridges > 1 else ""
    done: dict[str, dict[str, Any]] = {}

    def latency() -> dict[str, Any]:
        single = done.get("single", {}).get("msg_s")
        rate = a.latency_rate or (single / 2 if single else None)
        if not rate:
            raise RuntimeError("no rate for the latency run: run `single` too, or pass --latency-rate")
        return cases.dtwin("latency", f"(e) dtwin latency, paced at {rate:,.0f} msg/s", workload.SINGLE, stack,
                           run_dir, mqttload, max(1, round(rate * a.latency_seconds)), s, rate=rate)  # fmt: skip

    def anchor(kind: str, n: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            assert anchor_dir is not None
            return cases.anchor(kind, stack, anchor_dir, mqttload, n, s)

        return run

    def dtwin(key: str, what: str, shape: workload.Shape, n: int) -> Callable[[], dict[str, Any]]:
        label = f"{what}, {a.bridges} bridge{plural}"
        return lambda: cases.dtwin(key, label, shape, stack, run_dir, mqttload, n, s)

    plan: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
        "copy": (f"(a) COPY ceiling, {a.copy_rows:,} rows", lambda: cases.copy_ceiling(stack, run_dir, a.copy_rows, s)),
        "naive": (f"(b) naive anchor, {a.naive_n:,} msgs", anchor("naive", a.naive_n)),
        "batched": (f"(b) batched anchor, {a.n:,} msgs", anchor("batched", a.n)),
        "single": (
            f"(c) dtwin single JSON, {a.n:,} msgs",
            dtwin("single", "(c) dtwin single JSON", workload.SINGLE, a.n),
        ),
        "senml": (
            f"(d) SenML x20, {a.packed_n:,} msgs",
            dtwin("senml", "(d) dtwin SenML x20", workload.SENML, a.packed_n),
        ),
        "sparkplug": (
            f"(d) Sparkplug B x20, {a.packed_n:,} msgs",
            dtwin("sparkplug", "(d) dtwin Sparkplug B x20", workload.SPARKPLUG, a.packed_n),
        ),
        "latency": (f"(e) latency at half load for {a.latency_seconds:.0f} s", latency),
    }
    for key in [c for c in ALL_CASES if c in a.cases]:
        title, fn = plan[key]
        busy = busy_cores()
        say(f"{title} ... (box busy before it: {busy:.2f} of 2 cores)")
        try:
            done[key] = fn()
            done[key]["box_busy_before"] = busy
            say("  " + describe(done[key]))
        except Exception as err:  # a broken case must not hide the others' numbers
            say(f"  FAILED: {err!r}")
            traceback.print_exc(file=sys.stdout)
            done[key] = {"case": key, "label": title, "error": repr(err)}
    return done


def summarise(a: argparse.Namespace, done: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    def get(key: str, field: str) -> float | None:
        v = done.get(key, {}).get(field)
        return float(v) if v is not None else None

    packed = [v for v in (get("senml", "readings_s"), get("sparkplug", "readings_s")) if v is not None]
    values = {
        "single_msg_s": get("single", "msg_s"),
        "packed_readings_s": min(packed) if packed else None,  # both formats must meet the target
        "naive_msg_s": get("naive", "msg_s"),
        "batched_msg_s": get("batched", "msg_s"),
        "copy_ceiling_rows_s": get("copy", "readings_s"),
        "lost": sum(int(r.get("lost", 0)) for r in done.values() if "error" not in r),
    }
    lat = done.get("latency", {}).get("latency") or {}
    extras: dict[str, Any] = {
        "bridges": a.bridges,
        "senml_readings_s": get("senml", "readings_s"),
        "sparkplug_readings_s": get("sparkplug", "readings_s"),
        "latency_rate_msg_s": get("latency", "target_rate"),
        "p99_ms": lat.get("p99_ms"),
    }
    if failed := [k for k, r in done.items() if "error" in r]:
        extras["failed"] = ",".join(failed)
    return values, extras


def verdicts(values: dict[str, Any]) -> list[str]:
    """The issue's targets next to what was measured."""
    single, packed, ceiling = values["single_msg_s"], values["packed_readings_s"], values["copy_ceiling_rows_s"]
    naive, batched = values["naive_msg_s"], values["batched_msg_s"]

    def check(name: str, got: float | None, want: float, unit: str) -> str:
        if got is None:
            return f"  {name}: not measured (target {want:,.2f}{unit})"
        return f"  {name}: {got:,.2f}{unit} (target >= {want:,.2f}{unit}) {'met' if got >= want else 'MISSED'}"

    return [
        "targets (issue 3):",
        check("single-reading msg/s", single, 15_000, ""),
        check("single / batched anchor", report.ratio(single, batched), 2, "x"),
        check("single / naive anchor", report.ratio(single, naive), 10, "x"),
        check("packed readings/s (lower of SenML, Sparkplug B)", packed, 40_000, ""),
        check("packed / COPY ceiling", report.ratio(packed, ceiling), 0.85, "x"),
    ]


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    say(f"bench-ingest: box {box_info()}; cases {','.join(a.cases)}; bridges {a.bridges}")
    ensure_services()
    mqttload = build_mqttload()
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-bench-", dir="/tmp"))
    stack = Stack(run_dir)
    say(f"starting PostgreSQL and Mosquitto in {run_dir}")
    stack.start()
    say(f"PostgreSQL on :{stack.pg.port} (track_commit_timestamp on), Mosquitto on :{stack.mqtt.port}")
    try:
        done = run_cases(a, stack, run_dir, mqttload)
    finally:
        stack.stop()
    values, extras = summarise(a, done)
    records = [r for r in done.values() if "error" not in r]
    a.out_dir.mkdir(parents=True, exist_ok=True)
    out_json, out_png = a.out_dir / f"ingest-{stamp}.json", a.out_dir / f"ingest-{stamp}.png"
    doc = {
        "started": stamp,
        "args": {k: str(v) for k, v in vars(a).items()},
        "box": box_info(),
        "elapsed_s": time.monotonic() - t_start,
        "result": values,
        "extras": extras,
        "cases": list(done.values()),
    }
    out_json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    if records:
        plot.chart(records, out_png, f"dtwin bench-ingest {stamp} ({a.bridges} bridges; 2-core box, shared)")
    print()
    print(report.table([cases.row(r) for r in records], values["copy_ceiling_rows_s"], values["naive_msg_s"],
                       values["batched_msg_s"]))  # fmt: skip
    print("ratios compare readings (rows) per second; cores = CPU seconds / case window (box has 2)")
    print("\n".join(verdicts(values)))
    print(f"saved {out_json.relative_to(ROOT) if out_json.is_relative_to(ROOT) else out_json}"
          f"{' and ' + out_png.name if records else ''}; took {time.monotonic() - t_start:.0f} s")  # fmt: skip
    if a.keep or "failed" in extras:
        print(f"run dir kept: {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(report.result_line(values, extras), flush=True)
    return 1 if "failed" in extras else 0


if __name__ == "__main__":
    sys.exit(main())
