"""Inference benchmark (`make bench-inference`): windows/s of the anomaly bento over HTTP next to the same bundle's
`predict` called in this process, and the bento's per-request latency.

The model is the trainer's anomaly bundle on the quick `sim` source (the plant site), trained once into
`.bench/cache/bentoml-inference` and reused while it loads (same scikit-learn and feature versions). Windows are cut
from that simulated history the way a live scorer cuts them (`dtwin_ml.window.tail`), JSON round-tripped, and
grouped into requests of `--batch` windows. The same requests are then
 - scored in process: `bundle.predict(request)` one after another, on one core (the bundle is single-threaded);
 - sent to a real `bentoml serve service:AnomalyService` (`dtwin_ml.serving.BentoProcess`, the operator's command
   and environment: one worker, adaptive batching up to `--max-batch-size` windows, `--max-latency-ms`) by
   `--clients` threads at once, each posting its next request as soon as the previous one answered.
Throughput is windows / wall time from the first request to the last answer; latency is per request (client side).
Every bento answer is compared with the in-process one. ratio = bento / in-process windows/s (target >= 0.5:
serving may cost at most half of the throughput). The box is shared, so wall-clock rates move with its load; the
table also shows windows per CPU-second of the bento's processes and of in-process scoring, which does not.

Prints progress and a table, saves `.bench/inference-<time>.json` and `.png`, last line
`RESULT bento_rps=<n> inproc_rps=<n> ratio=<x> p99_ms=<n>` (rps = windows per second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from dtwin_bench.ingest import say
from dtwin_bench.stack import box_info
from dtwin_ml import serving, store
from dtwin_ml.bundle import AnomalyBundle
from dtwin_ml.window import tail
from dtwin_trainer import train

ROOT = Path(__file__).resolve().parents[2]
MODEL = "bench-anomaly"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="dtwin_bench.inference", description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=512, help="windows scored each way")
    ap.add_argument("--batch", type=int, default=8, help="windows per request")
    ap.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    ap.add_argument("--max-batch-size", type=int, default=64, help="the bento's DTWIN_MAX_BATCH_SIZE")
    ap.add_argument("--max-latency-ms", type=int, default=5000, help="the bento's DTWIN_MAX_LATENCY_MS")
    ap.add_argument("--warmup", type=int, default=12, help="requests sent before the clock starts")
    ap.add_argument("--home", type=Path, default=ROOT / ".bench" / "cache" / "bentoml-inference", help="model store")
    ap.add_argument("--retrain", action="store_true", help="train a new model even if the cached one loads")
    ap.add_argument("--out-dir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--keep", action="store_true", help="keep the run dir (the bento's log)")
    ap.add_argument("--quick", action="store_true", help="smoke: 128 windows, 6 warm-up requests")
    a = ap.parse_args(argv)
    if a.quick:
        a.windows, a.warmup = min(a.windows, 128), min(a.warmup, 6)
    return a


def quiet(_: str) -> None:
    pass


def model(home: Path, retrain: bool) -> tuple[str, AnomalyBundle]:
    """The cached benchmark model if it still loads here, else a newly trained one."""
    if not retrain:
        try:
            tag = store.info(MODEL, home)["tag"]
            bundle = store.load(tag, home)
            if isinstance(bundle, AnomalyBundle):
                say(f"reusing {tag} from {home}")
                return tag, bundle
        except Exception as e:  # not there, or from another scikit-learn / feature version
            say(f"no usable cached model ({type(e).__name__}); training one")
    t = time.monotonic()
    result = train.train("anomaly", "sim", name=MODEL, home=home, progress=quiet)
    say(f"trained {result.tag} in {time.monotonic() - t:.0f} s")
    loaded = store.load(result.tag, home)
    assert isinstance(loaded, AnomalyBundle)
    return result.tag, loaded


def windows(bundle: AnomalyBundle, n: int) -> list[dict[str, Any]]:
    """`n` windows over every asset and the whole history, round-robin, as JSON would deliver them."""
    run = train.runs_of("sim", train.SourceArgs(), quiet)[0][0]
    keys = sorted(bundle.assets)
    per = -(-n // len(keys))
    out: list[dict[str, Any]] = []
    for key in keys:
        asset = key.split("/", 1)[1]
        frame, stats = run.frames[asset], run.stats[asset]
        lo = bundle.lookback_steps - 1
        ends = [lo + (len(frame) - 1 - lo) * i // max(per - 1, 1) for i in range(per)]
        out.extend(tail(key, frame, stats, e, bundle.lookback_steps) for e in ends)
    ordered = [out[i * per + j] for j in range(per) for i in range(len(keys))]  # interleave the assets
    return json.loads(json.dumps(ordered[:n]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def in_process(bundle: AnomalyBundle, requests: list[list[dict[str, Any]]]) -> dict[str, Any]:
    bundle.predict(requests[0])  # warm caches (first pandas calls, lazy imports)
    results, latencies = [], []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for r in requests:
        t = time.perf_counter()
        results.append(bundle.predict(r))
        latencies.append((time.perf_counter() - t) * 1000)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = sum(len(r) for r in requests)
    return {"windows": n, "wall_s": wall, "rps": n / wall, "cpu_s": cpu, "windows_per_cpu_s": n / cpu,
            "latencies_ms": latencies, "results": results}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the bento's server and worker)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def over_http(bento: serving.BentoProcess, requests: list[list[dict[str, Any]]], clients: int,
              warmup: int) -> dict[str, Any]:  # fmt: skip
    bodies = [json.dumps({"windows": r}).encode() for r in requests]  # encoded before the clock starts
    url, headers = f"{bento.url}/predict", {"content-type": "application/json"}
    with httpx.Client(timeout=300) as c:
        for body in bodies[:warmup]:  # BentoML's batcher learns its cost model on the first requests
            c.post(url, content=body, headers=headers).raise_for_status()
    results: list[list[dict[str, Any]] | None] = [None] * len(bodies)
    latencies: list[float] = [0.0] * len(bodies)
    failures: list[str] = []
    lock, cursor = threading.Lock(), iter(range(len(bodies)))

    def client() -> None:
        with httpx.Client(timeout=300) as c:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                t = time.perf_counter()
                r = c.post(url, content=bodies[i], headers=headers)
                latencies[i] = (time.perf_counter() - t) * 1000
                if r.status_code == 200:
                    results[i] = r.json()
                else:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, name=f"client-{k}") for k in range(clients)]
    cpu0 = cpu_seconds(bento.proc.pid)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(bento.proc.pid) - cpu0
    n = sum(len(r) for r, got in zip(requests, results, strict=True) if got is not None)
    return {"windows": n, "wall_s": wall, "rps": n / wall, "cpu_s": cpu, "windows_per_cpu_s": n / cpu if cpu else 0.0,
            "bento_cores": cpu / wall, "latencies_ms": latencies, "results": results, "failures": failures}  # fmt: skip


def same(bento: list[list[dict[str, Any]] | None], inproc: list[list[dict[str, Any]]]) -> int:
    """Windows whose bento answer differs from the in-process one (model and version stamps aside)."""
    bad = 0
    for got, want in zip(bento, inproc, strict=True):
        if got is None:
            continue
        bare = [{k: v for k, v in g.items() if k not in ("model", "version")} for g in got]
        bad += sum(1 for g, w in zip(bare, want, strict=True) if g != w)
    return bad


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
    }


def table(inproc: dict[str, Any], http: dict[str, Any], a: argparse.Namespace) -> str:
    rows = [("in-process bundle.predict", inproc, "1 caller"), ("bento over HTTP", http, f"{a.clients} clients")]
    head = (f"{'path':<28}{'callers':>11}{'windows':>9}{'windows/s':>11}{'win/CPU-s':>11}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for name, r, who in rows:
        s = summary(r["latencies_ms"])
        lines.append(f"{name:<28}{who:>11}{r['windows']:>9}{r['rps']:>11.1f}{r['windows_per_cpu_s']:>11.1f}"
                     f"{s['p50_ms']:>9.0f}{s['p99_ms']:>9.0f}{s['max_ms']:>9.0f}")  # fmt: skip
    return "\n".join(lines)


def chart(inproc: dict[str, Any], http: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names, rates = ["in process", "bento (HTTP)"], [inproc["rps"], http["rps"]]
    left.bar(names, rates, color=["#888", "#2a7"])
    for i, v in enumerate(rates):
        left.text(i, v, f"{v:,.1f}", ha="center", va="bottom")
    left.set_ylabel("windows scored per second")
    left.set_title(f"throughput (ratio {http['rps'] / inproc['rps']:.2f})")
    for name, r in (("in process (per call)", inproc), ("bento (per request)", http)):
        ordered = sorted(r["latencies_ms"])
        right.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
    right.set_xlabel("latency of a request, ms")
    right.set_ylabel("fraction of requests")
    right.set_title("latency")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    say(f"bench-inference: box {box_info()}")
    a.home.mkdir(parents=True, exist_ok=True)
    tag, bundle = model(a.home, a.retrain)
    ws = windows(bundle, a.windows)
    requests = [ws[i : i + a.batch] for i in range(0, len(ws), a.batch)]
    say(f"{len(ws)} windows of {bundle.lookback_steps} steps ({len(json.dumps(ws[0])) / 1000:.0f} kB of JSON each) "
        f"in {len(requests)} requests of {a.batch}")  # fmt: skip
    inproc = in_process(bundle, requests)
    say(f"in process: {inproc['rps']:.1f} windows/s ({inproc['wall_s']:.1f} s)")
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-bench-inference-", dir="/tmp"))
    failed = False
    bento = serving.BentoProcess("anomaly", tag, a.home, run_dir / "bento.log", max_batch_size=a.max_batch_size,
                                 max_latency_ms=a.max_latency_ms)  # fmt: skip
    try:
        t = time.monotonic()
        bento.wait_ready(180)
        say(f"bento ready in {time.monotonic() - t:.1f} s on :{bento.port} (max batch {a.max_batch_size} windows, "
            f"max latency {a.max_latency_ms} ms); {a.clients} clients")  # fmt: skip
        http = over_http(bento, requests, a.clients, min(a.warmup, len(requests)))
    except Exception:
        failed = True
        print(f"--- bento log tail ---\n{bento.tail()}", file=sys.stderr)
        raise
    finally:
        bento.stop()
        if a.keep or failed:
            print(f"run dir kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    mismatches = same(http["results"], inproc["results"])
    say(f"bento: {http['rps']:.1f} windows/s ({http['wall_s']:.1f} s, {http['bento_cores']:.2f} cores), "
        f"{len(http['failures'])} failed requests, {mismatches} answers differing from in process")  # fmt: skip
    ratio = http["rps"] / inproc["rps"]
    # On a shared box the wall-clock ratio also measures how the scheduler split the cores between processes (the
    # bento's worker and this process's clients are two); CPU per window is what serving itself costs.
    cpu_ratio = http["windows_per_cpu_s"] / inproc["windows_per_cpu_s"]
    say(f"windows per CPU-second: bento {http['windows_per_cpu_s']:.1f} (server and worker), in process "
        f"{inproc['windows_per_cpu_s']:.1f}: ratio {cpu_ratio:.2f}; box load {os.getloadavg()[0]:.1f}")  # fmt: skip
    p99 = summary(http["latencies_ms"])["p99_ms"]
    a.out_dir.mkdir(parents=True, exist_ok=True)
    out_json, out_png = a.out_dir / f"inference-{stamp}.json", a.out_dir / f"inference-{stamp}.png"
    doc = {
        "started": stamp,
        "args": {k: str(v) for k, v in vars(a).items()},
        "box": box_info(),
        "model": tag,
        "lookback_steps": bundle.lookback_steps,
        "requests": len(requests),
        "in_process": {k: v for k, v in inproc.items() if k != "results"} | summary(inproc["latencies_ms"]),
        "bento": {k: v for k, v in http.items() if k != "results"} | summary(http["latencies_ms"]),
        "mismatches": mismatches,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "elapsed_s": time.monotonic() - t_start,
    }
    out_json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    chart(inproc, http, out_png, f"dtwin bench-inference {stamp}: anomaly bento vs bundle.predict (2-core box)")
    print()
    print(table(inproc, http, a))
    print(f"saved {out_json.relative_to(ROOT) if out_json.is_relative_to(ROOT) else out_json} and {out_png.name}; "
          f"took {time.monotonic() - t_start:.0f} s")  # fmt: skip
    if http["failures"] or mismatches:
        print(f"warning: {len(http['failures'])} failed requests (first: {http['failures'][:1]}), "
              f"{mismatches} differing answers", file=sys.stderr)  # fmt: skip
    print(f"RESULT bento_rps={http['rps']:.1f} inproc_rps={inproc['rps']:.1f} ratio={ratio:.2f} p99_ms={p99:.0f}",
          flush=True)  # fmt: skip
    return 1 if http["failures"] or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
