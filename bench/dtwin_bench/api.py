"""API benchmark (issue 5, `make bench-api`): publish -> WebSocket delivery latency next to the broker's own
publish -> subscribe latency, and the dashboard's queries from the rollups vs from raw readings.

Live part: our own PostgreSQL + Mosquitto (`Stack`), a Site of 100 single-reading JSON devices (schema by
`dtwin_core.migrate`, routing table by the operator's renderer, `BenchSite`), the real bridge processes
(`DtwinBridges`, 2 replicas as in bench-ingest), the API as a subprocess (`python -m dtwin_api serve`, MQTT on)
and, on the same messages: `mosquitto_sub` (C, stamps each message on receipt: the broker's publish -> subscribe
latency) and a `websockets` client subscribed to the Site (publish -> bridge commit -> bridge event -> API ->
WebSocket). `tools/mqttload` paces QoS 1 messages at half of the ingest capacity (half of the newest
`.bench/ingest-*.json` single-reading msg/s, else 20,000/2), each stamped with its send time.

Query part: a second Site's telemetry gets `--days` x 100 sensors of 1-minute readings (server-side INSERT ...
SELECT generate_series, one statement per day, partitions made first), then its 1m/1h/1d rollups are built
set-based with `refresh_rollups()`' definitions and the trigger's queue cleared (see `load_history` for why not
`refresh_rollups()` itself on a backfill this size). Each dashboard query (the whole range
hourly and daily, every sensor, 20 sensors per request as the API allows) is timed three ways: the API's telemetry
route (HTTP, bucket=1h/1d), the route's own SQL (`dtwin_api.repo.telemetry`) and the same answer computed from
raw readings (GROUP BY date_bin). aggregate_speedup = raw SQL / rollup SQL (both warm, median of `--reps`).

Prints a table, saves `.bench/api-<time>.json` and `.png`, last line
`RESULT ws_p50_ms=<n> ws_p99_ms=<n> broker_p99_ms=<n> aggregate_speedup=<x>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets

from dtwin_api import migrations, repo
from dtwin_api.authz import Role
from dtwin_api.security import TokenSigner
from dtwin_bench import api_measure as m
from dtwin_bench import workload
from dtwin_bench.ingest import build_mqttload, ensure_services, say
from dtwin_bench.procs import DtwinBridges
from dtwin_bench.site import BenchSite
from dtwin_bench.stack import DTWIN_DB, Stack, box_info
from dtwin_localcp import ports

ROOT = Path(__file__).resolve().parents[2]
SHAPE = workload.Shape("api", "json", devices=100, readings=1)  # 100 sensors, one topic each
SENSORS_PER_REQUEST = 20  # DTWIN_API_TELEMETRY_MAX_SENSORS' default
CLAIMS = """CREATE TABLE IF NOT EXISTS public.dtwin_schema_owners (
  schema_name text PRIMARY KEY, namespace text NOT NULL, site text NOT NULL, claimed_at timestamptz DEFAULT now())"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="dtwin_bench.api", description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, help="msg/s of the live run (default: half of the ingest capacity)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the paced live run")
    ap.add_argument("--bridges", type=int, default=2, help="bridge processes on the Site")
    ap.add_argument("--days", type=int, default=30, help="days of 1-minute history for the query part")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per query (median; after a warm-up)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--keep", action="store_true", help="keep the run dir (servers' data and logs)")
    ap.add_argument("--quick", action="store_true", help="smoke: 5 s live run, 2 days of history, 1 rep")
    a = ap.parse_args(argv)
    if a.quick:
        a.seconds, a.days, a.reps = min(a.seconds, 5.0), min(a.days, 2), 1
    return a


# --- the API process ---------------------------------------------------------------------------------------


class ApiProcess:
    def __init__(self, stack: Stack, run_dir: Path) -> None:
        self.port = ports.free_port()
        self.secret = secrets.token_hex(32)
        self.log = run_dir / "api.log"
        self.dsn = stack.dsn(DTWIN_DB)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("services/api", "libs/dtwin_core")),
            "DTWIN_API_DATABASE_URL": self.dsn,
            "DTWIN_API_JWT_SECRET": self.secret,
            "DTWIN_API_HOST": "127.0.0.1",
            "DTWIN_API_PORT": str(self.port),
            "DTWIN_API_MQTT_PORT": str(stack.mqtt.port),
            "DTWIN_API_RATE_LIMIT_PER_IP": "100000/minute",
            "DTWIN_API_RATE_LIMIT_PER_USER": "100000/minute",
            "DTWIN_API_LOG_LEVEL": "WARNING",
            "DTWIN_API_KUBE_ENABLED": "false",  # no cluster here: /ready would wait for one
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "dtwin_api", "serve"], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /ready says the database answers and the MQTT subscription is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.get(f"{self.base}/ready", timeout=2)
                if r.status_code == 200 and r.json().get("checks", {}).get("broker") == "ok":
                    return
            time.sleep(0.2)
        raise RuntimeError(f"API not ready after {timeout:.0f} s:\n{self.tail()}")

    def token(self, user_id: int) -> str:
        signer = TokenSigner(self.secret, "dtwin-api", "dtwin", timedelta(hours=1))
        return signer.issue(str(user_id), datetime.now(UTC))[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def run_async(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())  # type: ignore[arg-type]


async def _admin(dsn: str, sites: list[tuple[str, str]]) -> int:
    """Claims for the Sites (as the operator records them) and a global admin; returns the admin's id."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.apply(conn)  # `serve` would apply them too; the user must exist before the token
        await repo.init_connection(conn)
        await conn.execute(CLAIMS)
        for site, schema in sites:
            await conn.execute(
                "INSERT INTO public.dtwin_schema_owners (schema_name, namespace, site) VALUES ($1, 'bench', $2) "
                "ON CONFLICT DO NOTHING",
                schema,
                site,
            )
        user_id = await repo.create_user(conn, f"bench-admin-{secrets.token_hex(3)}", None)
        await repo.set_grant(conn, user_id, "*", Role.admin)
        return int(user_id)
    finally:
        await conn.close()


# --- live part ---------------------------------------------------------------------------------------------


class WsClient:
    """A websockets client in a thread of its own, collecting per-reading latencies of live frames."""

    def __init__(self, url: str, site: str, skip_sensor: str) -> None:
        self.url, self.site, self.skip = url, site, skip_sensor
        self.latencies: list[float] = []
        self.frames = 0
        self.subscribed = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ws-client", daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.subscribed.wait(20):
            raise RuntimeError(f"WebSocket client not subscribed: {self.error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self.error = e
            self.subscribed.set()

    async def _main(self) -> None:
        async with websockets.connect(self.url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "site": self.site, "alerts": False}))
            first = json.loads(await ws.recv())
            if first.get("type") != "subscribed":
                raise RuntimeError(f"subscribe refused: {first}")
            self.subscribed.set()
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                at = time.time()
                self.frames += 1
                self.latencies.extend(m.ws_latencies_ms(json.loads(raw), at, self.skip))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)


def live(a: argparse.Namespace, stack: Stack, run_dir: Path, api: ApiProcess, site: BenchSite, token: str,
         mqttload: Path, rate: float) -> dict[str, Any]:  # fmt: skip
    n = max(1, round(rate * a.seconds))
    probe_topic, probe_sensor = workload.probe_topic(site.name), workload.probe_sensor(site.name)
    bridges = DtwinBridges(site, a.bridges)
    bridges.start()
    sub_log = run_dir / "mosquitto_sub.txt"
    try:
        bridges.wait_ready(stack.mqtt.port)
        with sub_log.open("wb") as out:
            sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(stack.mqtt.port), "-q", "0",
                                    "-t", f"sites/{site.name}/+/json", "-F", "%U %t %p", "-C", str(n),
                                    "-i", f"bench-sub-{secrets.token_hex(3)}"], stdout=out)  # fmt: skip
        ws = WsClient(f"ws://127.0.0.1:{api.port}/api/v1/ws?token={token}", site.name, probe_sensor)
        ws.start()
        time.sleep(1.0)  # mosquitto_sub's subscription is in place
        say(f"publishing {n:,} messages at {rate:,.0f} msg/s over {SHAPE.devices} sensors")
        args = ["-broker", f"tcp://127.0.0.1:{stack.mqtt.port}", "-qos", "1", "-n", str(n), "-window", "2000",
                "-client-id", f"bench-api-pub-{secrets.token_hex(3)}", "-max-seconds", str(a.seconds * 4 + 60),
                "-format", "json", "-topics", str(SHAPE.devices), "-topic", SHAPE.topic_template(site.name),
                "-ts-start", "0", "-rate", f"{rate:.0f}"]  # fmt: skip
        done = subprocess.run([str(mqttload), *args], capture_output=True, timeout=a.seconds * 4 + 120, check=True)
        pub = json.loads(done.stdout.decode().strip().splitlines()[-1])
        # Wait for the WebSocket to get every reading (or stop growing for 5 s).
        last, since = -1, time.monotonic()
        while len(ws.latencies) < n and time.monotonic() - since < 5:
            if len(ws.latencies) != last:
                last, since = len(ws.latencies), time.monotonic()
            time.sleep(0.1)
        ws.finish()
        try:
            sub.wait(10)
        except subprocess.TimeoutExpired:
            sub.terminate()
            sub.wait(10)
        bridges.check_alive()
    finally:
        bridges.stop(stack.mqtt.port)
    broker = m.broker_latencies_ms(sub_log.read_text(errors="replace").splitlines(), probe_topic)
    return {
        "rate_msg_s": rate,
        "messages": n,
        "publisher": pub,
        "ws": m.summary(ws.latencies),
        "broker": m.summary(broker),
        "ws_frames": ws.frames,
        "ws_readings": len(ws.latencies),
        "broker_messages": len(broker),
        "ws_samples": ws.latencies[:: max(1, len(ws.latencies) // 5000)],
        "broker_samples": broker[:: max(1, len(broker) // 5000)],
    }


# --- query part --------------------------------------------------------------------------------------------


async def load_history(dsn: str, schema: str, sensors: list[str], start: datetime, days: int) -> dict[str, float]:
    """`days` x sensors of 1-minute readings into telemetry, then the rollups refreshed; seconds per step."""
    conn = await asyncpg.connect(dsn)
    times: dict[str, float] = {}
    try:
        t = time.monotonic()
        await conn.execute(
            f'SELECT * FROM "{schema}"."ensure_partitions"($1, $2, interval \'24 hours\', $3)',
            start,
            start + timedelta(days=days + 1),
            start - timedelta(days=1),
        )
        times["partitions_s"] = time.monotonic() - t
        t = time.monotonic()
        for d in range(days):
            await conn.execute(
                f'INSERT INTO "{schema}"."telemetry" (sensor, ts, value) '
                "SELECT s, $2::timestamptz + make_interval(mins => g), 20 + 5 * sin(g / 60.0 + i) + (g % 7) / 10.0 "
                "FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i), generate_series(0, 1439) g",
                sensors,
                start + timedelta(days=d),
            )
        times["insert_s"] = time.monotonic() - t
        # The rollups of the backfill, built set-based with refresh_rollups()' own definitions (1m from raw, 1h from
        # 1m, 1d from 1h; UTC site), then the trigger's queue cleared. refresh_rollups() itself is not used for the
        # backfill: on this many queued buckets its range joins are planned as hash joins on `sensor` alone (every
        # key against every row of its sensor) and 2 days x 100 sensors did not finish in minutes (see README).
        t = time.monotonic()
        async with conn.transaction():
            for sql in m.backfill_rollups_sql(schema):
                await conn.execute(sql)
            await conn.execute(f'TRUNCATE "{schema}"."rollup_dirty"')
        times["build_rollups_s"] = time.monotonic() - t
        t = time.monotonic()
        await conn.execute(f'SELECT "{schema}"."refresh_rollups"()')  # the queue is empty: nothing left to redo
        times["refresh_rollups_s"] = time.monotonic() - t
        t = time.monotonic()
        await conn.execute(f'ANALYZE "{schema}"."telemetry", "{schema}"."telemetry_1h", "{schema}"."telemetry_1d"')
        times["analyze_s"] = time.monotonic() - t
        times["rows"] = float(await conn.fetchval(f'SELECT count(*) FROM "{schema}"."telemetry"'))
    finally:
        await conn.close()
    return times


async def time_sql(dsn: str, schema: str, sensors: list[str], lo: datetime, hi: datetime, bucket: str,
                   raw: bool, reps: int) -> tuple[float, int]:  # fmt: skip
    """Median seconds (after one warm-up) to fetch the whole query, 20 sensors per statement; rows returned."""
    conn = await asyncpg.connect(dsn)
    try:
        await repo.init_connection(conn)

        async def once() -> int:
            rows = 0
            for group in m.chunks(sensors, SENSORS_PER_REQUEST):
                if raw:
                    rows += len(await conn.fetch(m.raw_grouped_sql(schema, bucket), group, lo, hi))
                else:
                    rows += len(await repo.telemetry(conn, schema, group, lo, hi, bucket, 1_000_000))
            return rows

        rows = await once()
        samples = []
        for _ in range(reps):
            t = time.perf_counter()
            await once()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples), rows
    finally:
        await conn.close()


def time_api(api: ApiProcess, token: str, site: str, sensors: list[str], lo: datetime, hi: datetime, bucket: str,
             reps: int) -> tuple[float, int, list[int]]:  # fmt: skip
    """Median seconds to get the query through the API's telemetry route; points; status codes seen."""
    statuses: list[int] = []
    with httpx.Client(base_url=api.base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:

        def once() -> int:
            points = 0
            for group in m.chunks(sensors, SENSORS_PER_REQUEST):
                params: list[tuple[str, str | int | float | bool | None]] = [("sensor", s) for s in group]
                params += [("from", lo.isoformat()), ("to", hi.isoformat()), ("bucket", bucket)]
                r = client.get(f"/api/v1/sites/{site}/telemetry", params=params)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    points += _points(r.json())
            return points

        t = time.perf_counter()
        points = once()
        samples = [time.perf_counter() - t]  # the warm-up counts only when no repetition is asked for
        for i in range(reps):
            t = time.perf_counter()
            once()
            samples = samples[1:] if i == 0 else samples
            samples.append(time.perf_counter() - t)
    return statistics.median(samples), points, sorted(set(statuses))


def _points(doc: Any) -> int:
    """Rows of the telemetry route's JSON answer `{"bucket", "rows": [...]}`."""
    return len(doc.get("rows", ())) if isinstance(doc, dict) else 0


def queries(a: argparse.Namespace, api: ApiProcess, token: str, site: BenchSite) -> dict[str, Any]:
    sensors = [SHAPE.sensor(site.name, k, 0) for k in range(SHAPE.devices)]
    lo, hi = m.day_range(datetime.now(UTC), a.days)
    say(f"loading {a.days} days x {len(sensors)} sensors of 1-minute readings ({a.days * 1440 * len(sensors):,} rows)")
    load = run_async(lambda: load_history(site.dsn, site.schema, sensors, lo, a.days))
    say("load: " + ", ".join(f"{k} {v:,.1f}" for k, v in load.items()))
    out: dict[str, Any] = {"load": load, "range": [lo.isoformat(), hi.isoformat()], "queries": []}
    for q in m.dashboard_queries(a.days):
        agg_s, agg_rows = asyncio.run(time_sql(site.dsn, site.schema, sensors, lo, hi, q.bucket, False, a.reps))
        raw_s, raw_rows = asyncio.run(time_sql(site.dsn, site.schema, sensors, lo, hi, q.bucket, True, a.reps))
        api_s, api_points, api_status = time_api(api, token, site.name, sensors, lo, hi, q.bucket, a.reps)
        rec: dict[str, Any] = {"name": q.name, "bucket": q.bucket, "rollup_sql_s": agg_s, "rollup_rows": agg_rows,
                               "raw_sql_s": raw_s, "raw_rows": raw_rows, "api_s": api_s, "api_points": api_points,
                               "api_status": api_status, "speedup": m.speedup(raw_s, agg_s)}  # fmt: skip
        say(f"{q.name}: rollup SQL {agg_s * 1000:,.1f} ms ({agg_rows:,} rows), raw SQL {raw_s * 1000:,.1f} ms "
            f"({raw_rows:,} rows), API {api_s * 1000:,.1f} ms {api_status}; x{m.fmt(rec['speedup'])}")  # fmt: skip
        if not agg_rows == raw_rows == api_points:
            rec["mismatch"] = True
            say(f"{q.name}: MISMATCH rollup rows {agg_rows}, raw-grouped rows {raw_rows}, API points {api_points}")
        out["queries"].append(rec)
    # The raw route itself: a 30-day raw series of 20 sensors is far beyond TELEMETRY_MAX_POINTS, so it is refused.
    _, _, raw_route = time_api(api, token, site.name, sensors[:SENSORS_PER_REQUEST], lo, hi, "raw", 0)
    out["raw_route_status"] = raw_route
    total_raw = sum(q["raw_sql_s"] for q in out["queries"])
    total_agg = sum(q["rollup_sql_s"] for q in out["queries"])
    out["aggregate_speedup"] = m.speedup(total_raw, total_agg)
    return out


# --- report ------------------------------------------------------------------------------------------------


def table(lv: dict[str, Any], qs: dict[str, Any]) -> str:
    ws, br = lv["ws"], lv["broker"]
    lines = [
        f"live: {lv['messages']:,} msgs at {lv['rate_msg_s']:,.0f} msg/s; WebSocket got {lv['ws_readings']:,} "
        f"readings in {lv['ws_frames']:,} frames, mosquitto_sub {lv['broker_messages']:,} messages",
        f"{'path':<40}{'n':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for name, s in (("publish -> WebSocket (via bridge+API)", ws), ("publish -> subscribe (broker)", br)):
        lines.append(f"{name:<40}{s['n']:>9,}{m.fmt(s['p50_ms']):>10}{m.fmt(s['p95_ms']):>10}"
                     f"{m.fmt(s['p99_ms']):>10}{m.fmt(s['max_ms']):>10}")  # fmt: skip
    ratio = m.speedup(ws["p99_ms"], br["p99_ms"])
    lines.append(f"WebSocket p99 / broker p99 = {m.fmt(ratio)}x (goal <= 10x): {_verdict(ratio, 10, below=True)}")
    lines.append("")
    lines.append(f"{'query (100 sensors)':<20}{'rollup SQL ms':>15}{'raw SQL ms':>13}{'API ms':>10}{'speedup':>10}"
                 f"{'rows':>10}")  # fmt: skip
    for q in qs["queries"]:
        lines.append(f"{q['name']:<20}{q['rollup_sql_s'] * 1000:>15,.1f}{q['raw_sql_s'] * 1000:>13,.1f}"
                     f"{q['api_s'] * 1000:>10,.1f}{m.fmt(q['speedup']):>9}x{q['rollup_rows']:>10,}")  # fmt: skip
    sp = qs["aggregate_speedup"]
    lines.append(f"aggregate speedup (sum raw / sum rollup SQL) = {m.fmt(sp)}x (goal >= 20x): "
                 f"{_verdict(sp, 20, below=False)}; raw route, same range: HTTP {qs['raw_route_status']}")  # fmt: skip
    return "\n".join(lines)


def _verdict(value: float | None, goal: float, below: bool) -> str:
    if value is None:
        return "na"
    return "met" if (value <= goal if below else value >= goal) else "NOT met"


def chart(lv: dict[str, Any], qs: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, values in (("publish -> WebSocket", lv["ws_samples"]), ("publish -> subscribe (broker)",
                                                                       lv["broker_samples"])):  # fmt: skip
        if values:
            ordered = sorted(values)
            left.plot(ordered, [i / len(ordered) for i in range(len(ordered))], label=name)
    left.set_xscale("log")
    left.set_xlabel("latency, ms (log)")
    left.set_ylabel("fraction of readings")
    left.set_title(f"delivery latency at {lv['rate_msg_s']:,.0f} msg/s")
    left.legend(fontsize=8)
    names = [q["name"] for q in qs["queries"]]
    y = range(len(names))
    right.barh([i - 0.2 for i in y], [q["raw_sql_s"] * 1000 for q in qs["queries"]], 0.4, label="raw SQL")
    right.barh([i + 0.2 for i in y], [q["rollup_sql_s"] * 1000 for q in qs["queries"]], 0.4, label="rollup SQL")
    right.set_yticks(list(y), names)
    right.set_xscale("log")
    right.set_xlabel("ms (log), 100 sensors")
    right.set_title("dashboard queries")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    capacity, source = m.ingest_capacity(a.out_dir)
    rate = a.rate or capacity / 2
    if a.quick and not a.rate:
        rate = min(rate, 2000.0)
    say(f"bench-api: box {box_info()}; rate {rate:,.0f} msg/s (ingest capacity {capacity:,.0f} msg/s from {source})")
    ensure_services()
    if shutil.which("mosquitto_sub") is None:
        raise SystemExit("mosquitto_sub not found (mosquitto-clients)")
    mqttload = build_mqttload()
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-bench-api-", dir="/tmp"))
    stack = Stack(run_dir)
    say(f"starting PostgreSQL and Mosquitto in {run_dir}")
    stack.start()
    api: ApiProcess | None = None
    failed = False
    try:
        live_site = BenchSite("live", SHAPE, stack.dsn(DTWIN_DB), stack.mqtt.port, run_dir, None, None)
        query_site = BenchSite("query", SHAPE, stack.dsn(DTWIN_DB), stack.mqtt.port, run_dir, None, None)
        admin = run_async(lambda: _admin(stack.dsn(DTWIN_DB), [(s.name, s.schema) for s in (live_site, query_site)]))
        api = ApiProcess(stack, run_dir)
        api.wait_ready()
        token = api.token(admin)
        say(f"API on :{api.port} (MQTT subscribed); bridges x{a.bridges} on {live_site.name}")
        lv = live(a, stack, run_dir, api, live_site, token, mqttload, rate)
        say(f"live: ws p50 {m.fmt(lv['ws']['p50_ms'])} ms p99 {m.fmt(lv['ws']['p99_ms'])} ms; broker p99 "
            f"{m.fmt(lv['broker']['p99_ms'])} ms")  # fmt: skip
        qs = queries(a, api, token, query_site)
    except Exception:
        failed = True
        if api is not None:
            print(f"--- API log tail ---\n{api.tail()}", file=sys.stderr)
        raise
    finally:
        if api is not None:
            api.stop()
        stack.stop()
        if a.keep or failed:
            print(f"run dir kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    out_json, out_png = a.out_dir / f"api-{stamp}.json", a.out_dir / f"api-{stamp}.png"
    doc = {"started": stamp, "args": {k: str(v) for k, v in vars(a).items()}, "box": box_info(),
           "ingest_capacity_msg_s": capacity, "ingest_capacity_source": source,
           "elapsed_s": time.monotonic() - t_start, "live": lv, "queries": qs}  # fmt: skip
    out_json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    chart(lv, qs, out_png, f"dtwin bench-api {stamp} (2-core box, shared)")
    print()
    print(table(lv, qs))
    print(f"saved {out_json.relative_to(ROOT) if out_json.is_relative_to(ROOT) else out_json} and {out_png.name}; "
          f"took {time.monotonic() - t_start:.0f} s")  # fmt: skip
    print(m.result_line(lv["ws"], lv["broker"], qs["aggregate_speedup"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
