"""One scoring pass, and the loop that runs one per interval.

A pass, for every routing file, concurrently per model: size the windows from the model servers' `/info`
(`lookback_steps`, the larger of stable's and canary's), read the assets' buckets from each site schema, cut one
window per asset ending at the last complete bucket, split the windows between stable and canary
(`split.CanarySplit`), call `/predict` in batches of `maxBatchSize`, and write predictions and alert changes per
schema. A window the canary failed is sent to stable as well, so a broken canary costs no prediction (its
failure still counts against it). A bucket already written for an asset is not scored again until the next one
completes; one that failed to score or to be written is retried by the next pass.

Nothing here can block ingestion: the scorer is its own process, only reads telemetry, and bounds every model
call by a timeout and a per-endpoint backoff (`client`). A failing model, endpoint or schema is logged and counted
(`dtwin_scorer_errors_total`) and the pass goes on with the rest. After each pass the call statistics are applied
to each model's Lease (`lease`) when a cluster is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pandas as pd
import structlog
from opentelemetry import trace

from dtwin_scorer import client, db, windows
from dtwin_scorer.calls import ModelCalls
from dtwin_scorer.client import Backoff, CallError
from dtwin_scorer.lease import Reporter
from dtwin_scorer.metrics import Metrics
from dtwin_scorer.results import AlertChange, PredictionRow, interpret, is_error
from dtwin_scorer.routing import Routing, RoutingDir, Track
from dtwin_scorer.settings import Settings
from dtwin_scorer.split import CanarySplit, batches

log = structlog.get_logger("dtwin_scorer")
tracer = trace.get_tracer("dtwin_scorer")


@dataclass
class Item:
    schema: str
    window: dict[str, Any]


@dataclass
class ModelState:
    """What the scorer remembers of one model across passes."""

    split: CanarySplit = field(default_factory=CanarySplit)
    calls: ModelCalls = field(default_factory=ModelCalls)
    backoff: dict[str, Backoff] = field(default_factory=dict)  # per URL
    lookback: dict[tuple[str, str], int] = field(default_factory=dict)  # (url, version) -> lookback_steps
    scored: dict[str, str] = field(default_factory=dict)  # asset key -> last bucket written


@dataclass
class ModelReport:
    model: str
    windows: int = 0
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # track -> windows sent
    versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # version answered -> results
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # reason -> count
    predictions: int = 0
    alerts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "windows": self.windows,
            "calls": dict(self.calls),
            "versions": dict(self.versions),
            "errors": dict(self.errors),
            "predictions": self.predictions,
            "alerts": dict(self.alerts),
        }


class Scorer:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        http: httpx.AsyncClient,
        metrics: Metrics | None = None,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.pool, self.http, self.reporter, self.clock = settings, pool, http, reporter, clock
        self.metrics = metrics or Metrics()
        self.routing_dir = RoutingDir(Path(settings.routing_dir))
        self.states: dict[tuple[str, str], ModelState] = {}
        self.stream_clock = False  # this pass ends windows at each site's newest reading (Settings.clock)

    def _state(self, r: Routing) -> ModelState:
        return self.states.setdefault((r.namespace, r.name), ModelState())

    def _backoff(self, st: ModelState, url: str) -> Backoff:
        s = self.settings
        return st.backoff.setdefault(url, Backoff(s.backoff_initial_s, s.backoff_max_s, self.clock))

    def _failed(self, st: ModelState, r: Routing, track: Track, name: str, err: CallError, what: str) -> None:
        wait = self._backoff(st, track.url).failed()
        log.warning(
            "model call failed", model=f"{r.namespace}/{r.name}", track=name, version=track.version, call=what,
            reason=err.reason, detail=err.detail, backoff_s=wait,
        )  # fmt: skip

    async def pass_once(self, at: datetime | pd.Timestamp | None = None) -> list[ModelReport]:
        """Score every model once, as of `at` (default: now); then report the call statistics."""
        end = windows.window_end(pd.Timestamp.now(tz="UTC") if at is None else at)
        self.stream_clock = at is None and self.settings.clock == "stream"
        routings = list(self.routing_dir.load().values())
        for path, err in self.routing_dir.errors.items():
            self.metrics.error(path.stem, "-", "routing")
            log.error("routing file invalid", file=str(path), error=err)
        keep = {(r.namespace, r.name) for r in routings}
        for gone in set(self.states) - keep:
            del self.states[gone]
        reports = await asyncio.gather(*(self.score_model(r, end) for r in routings))
        await self.report_calls(routings)
        self.metrics.last_pass.set(time.time())
        return list(reports)

    async def report_calls(self, routings: list[Routing]) -> None:
        if self.reporter is None:
            return
        for r in routings:
            stable, canary = self._state(r).calls.pair()
            if stable is None and canary is None:
                continue
            try:
                await asyncio.to_thread(self.reporter.report, r.namespace, r.name, stable, canary)
            except Exception as err:  # the next pass applies the whole Lease again
                self.metrics.error(f"{r.namespace}/{r.name}", "-", "lease")
                log.warning("call statistics not reported", model=f"{r.namespace}/{r.name}", error=repr(err)[:300])

    async def _lookback(self, r: Routing, st: ModelState, tracks: dict[str, Track], rep: ModelReport) -> int | None:
        steps = []
        for name, track in tracks.items():
            key = (track.url, track.version)
            if key not in st.lookback:
                if not self._backoff(st, track.url).ready():
                    continue
                try:
                    with tracer.start_as_current_span("scorer.info", attributes={"url": track.url}):
                        got = await client.info(self.http, track.url, self.settings.request_timeout_s)
                except CallError as err:
                    self._failed(st, r, track, name, err, "info")
                    self.metrics.error(rep.model, name, "info")
                    rep.errors["info"] += 1
                    continue
                st.lookback = {k: v for k, v in st.lookback.items() if k[0] != track.url}
                st.lookback[key] = int(got["lookback_steps"])
            steps.append(st.lookback[key])
        return max(steps) if steps else None

    async def _end(self, schema: str, end: pd.Timestamp) -> pd.Timestamp | None:
        """The window end of `schema`: `end`, or with the stream clock the bucket of its newest reading (None: no
        reading yet), never later than `end`."""
        if not self.stream_clock:
            return end
        newest = await db.stream_time(self.pool, schema)
        return None if newest is None else min(end, windows.window_end(newest))

    async def _read(self, r: Routing, end: pd.Timestamp, steps: int, rep: ModelReport) -> list[Item]:
        plain = r.plain_assets()
        items: list[Item] = []
        for schema in r.schemas:
            attrs: dict[str, str | int] = {"db.schema": schema, "dtwin.model": rep.model, "dtwin.steps": steps}
            with tracer.start_as_current_span("scorer.db_read", attributes=attrs):
                try:
                    schema_end = await self._end(schema, end)
                    if schema_end is None:
                        continue
                    start, _ = windows.span(schema_end, steps)
                    rows = await db.read_buckets(self.pool, schema, list(plain), start, schema_end)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                    self.metrics.error(rep.model, "-", "db_read")
                    rep.errors["db_read"] += 1
                    log.warning("telemetry not read", model=rep.model, schema=schema, error=repr(err)[:300])
                    continue
            built = await asyncio.to_thread(windows.build, rows, plain, schema_end, steps)  # pandas: off the loop
            items += [Item(schema, w) for w in built]
        return items

    async def _call(
        self, r: Routing, st: ModelState, name: str, track: Track, items: list[Item], rep: ModelReport
    ) -> list[tuple[Item, dict[str, Any] | None]]:
        """(item, result) per item, result None when the window was not scored (failed call or result)."""
        out: list[tuple[Item, dict[str, Any] | None]] = []
        backoff = self._backoff(st, track.url)
        for batch in batches(items, r.max_batch_size):
            if not backoff.ready():  # down: not called at all this pass
                self.metrics.error(rep.model, name, "backoff", len(batch))
                rep.errors["backoff"] += len(batch)
                if name == "canary":  # calls it could not take: the evidence its rollback is judged on
                    st.calls.add(name, track.version, calls=len(batch), errors=len(batch))
                out += [(it, None) for it in batch]
                continue
            self.metrics.windows.labels(rep.model, name).inc(len(batch))
            rep.calls[name] += len(batch)
            attrs: dict[str, str | int] = {
                "url": track.url,
                "dtwin.track": name,
                "dtwin.version": track.version,
                "dtwin.windows": len(batch),
            }
            t0 = time.perf_counter()
            with tracer.start_as_current_span("scorer.predict", attributes=attrs) as span:
                try:
                    results = await client.predict(
                        self.http, track.url, [it.window for it in batch], self.settings.request_timeout_s
                    )
                except CallError as err:
                    span.set_status(trace.StatusCode.ERROR, err.reason)
                    self._failed(st, r, track, name, err, "predict")
                    self.metrics.error(rep.model, name, err.reason, len(batch))
                    rep.errors[err.reason] += len(batch)
                    st.calls.add(name, track.version, calls=len(batch), errors=len(batch))
                    out += [(it, None) for it in batch]
                    continue
                finally:
                    self.metrics.duration.labels(rep.model, name).observe(time.perf_counter() - t0)
            backoff.ok()
            for it, res in zip(batch, results, strict=True):
                if is_error(res):
                    self.metrics.error(rep.model, name, "window")
                    rep.errors["window"] += 1
                    st.calls.add(name, track.version, calls=1, errors=1)
                    log.info("window not scored", model=rep.model, asset=it.window["asset"], error=str(res)[:300])
                    out.append((it, None))
                else:
                    out.append((it, res))
        return out

    async def score_model(self, r: Routing, end: pd.Timestamp) -> ModelReport:
        rep = ModelReport(f"{r.namespace}/{r.name}")
        try:
            await self._score(r, end, rep)
        except Exception as err:  # one model's bug must not stop the others
            self.metrics.error(rep.model, "-", "internal")
            rep.errors["internal"] += 1
            log.exception("model pass failed", model=rep.model, error=repr(err)[:300])
        return rep

    async def _score(self, r: Routing, end: pd.Timestamp, rep: ModelReport) -> None:
        st = self._state(r)
        tracks = {"stable": r.stable}
        if r.canary is not None and r.canary.percent > 0:
            tracks["canary"] = r.canary
        else:
            st.calls.forget("canary")
        steps = await self._lookback(r, st, tracks, rep)
        if steps is None:
            return
        items = [
            it
            for it in await self._read(r, end, steps, rep)
            if st.scored.get(it.window["asset"]) != it.window["timestamps"][-1]
        ]
        rep.windows = len(items)
        if not items:
            return
        canary = tracks.get("canary")
        parts: dict[str, list[Item]] = {"stable": [], "canary": []}
        for it in items:
            # The canary keeps its share even while it is down: those windows count against it (a canary that
            # cannot serve is the plainest broken canary) and stable scores them.
            parts["canary" if canary and st.split.canary(canary.percent) else "stable"].append(it)
        calls = [self._call(r, st, "stable", r.stable, parts["stable"], rep)]
        if canary is not None and parts["canary"]:
            calls.append(self._call(r, st, "canary", canary, parts["canary"], rep))
        done = await asyncio.gather(*calls)
        answered: list[tuple[Item, dict[str, Any], str]] = [(it, res, "stable") for it, res in done[0] if res]
        if len(done) > 1:
            answered += [(it, res, "canary") for it, res in done[1] if res]
            retry = [it for it, res in done[1] if res is None]
            if retry:  # the canary failed these: stable answers them, the failure is still the canary's
                answered += [
                    (it, res, "stable") for it, res in await self._call(r, st, "stable", r.stable, retry, rep) if res
                ]
        await self._write(r, st, answered, rep)

    async def _write(
        self, r: Routing, st: ModelState, answered: list[tuple[Item, dict[str, Any], str]], rep: ModelReport
    ) -> None:
        rows: dict[str, list[PredictionRow]] = defaultdict(list)
        changes: dict[str, list[AlertChange]] = defaultdict(list)
        done: dict[str, list[tuple[str, str]]] = defaultdict(list)  # schema -> (asset, bucket) once written
        for it, res, name in answered:
            track = r.canary if name == "canary" and r.canary else r.stable
            score, row, change = interpret(r, it.window, res, track.version)
            if score is None or row is None:  # an asset the model does not know: no evidence, no row
                st.scored[it.window["asset"]] = it.window["timestamps"][-1]  # and no need to ask again
                continue
            st.calls.add(name, track.version, calls=1, score_sum=score)
            rep.versions[row.version] += 1
            rows[it.schema].append(row)
            if change is not None:
                changes[it.schema].append(change)
            done[it.schema].append((it.window["asset"], it.window["timestamps"][-1]))
        for schema in sorted(rows):
            attrs: dict[str, str | int] = {
                "db.schema": schema,
                "dtwin.model": rep.model,
                "dtwin.rows": len(rows[schema]),
            }
            with tracer.start_as_current_span("scorer.db_write", attributes=attrs):
                try:
                    counts = await db.write(self.pool, schema, rows[schema], changes[schema])
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                    self.metrics.error(rep.model, "-", "db_write")
                    rep.errors["db_write"] += 1
                    log.warning("predictions not written", model=rep.model, schema=schema, error=repr(err)[:300])
                    continue
            self.metrics.predictions.labels(rep.model).inc(len(rows[schema]))
            rep.predictions += len(rows[schema])
            for transition, n in counts.items():
                if n:
                    self.metrics.alerts.labels(rep.model, transition).inc(n)
                    rep.alerts[transition] += n
            st.scored.update(done[schema])
        log.info("model scored", **rep.summary())


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


async def run(
    settings: Settings, stop: asyncio.Event | None = None, passes: int | None = None, at: pd.Timestamp | None = None
) -> list[ModelReport]:
    """Score every `interval_s` until `stop` is set (or after `passes` passes, the first as of `at`); returns the
    last pass's reports."""
    from dtwin_scorer import lease

    stop = stop or asyncio.Event()
    metrics = Metrics()
    metrics.serve(settings.metrics_host, settings.metrics_port)
    api = await asyncio.to_thread(lease.connect) if settings.kube_enabled else None
    reporter = Reporter(api, settings.reporter, settings.kube_timeout_s) if api is not None else None
    # min_size 0: a database that is down at start delays nothing; each pass tries again.
    pool = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=settings.db_pool_size)
    reports: list[ModelReport] = []
    try:
        async with httpx.AsyncClient() as http:
            scorer = Scorer(settings, pool, http, metrics, reporter)
            n = 0
            while not stop.is_set():
                t0 = time.monotonic()
                reports = await scorer.pass_once(at if n == 0 else None)
                n += 1
                if passes is not None and n >= passes:
                    break
                await _sleep_or_stop(stop, settings.interval_s - (time.monotonic() - t0))
    finally:
        await pool.close()
        if api is not None:
            api.close()
    return reports
