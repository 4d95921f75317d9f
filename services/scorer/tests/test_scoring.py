"""Scoring passes against real PostgreSQL and real HTTP model servers implementing the contract (`FakeModel`).

What is asserted from the outside: the windows the servers received, the rows and alerts in the site schema, the
call statistics the Lease would carry, the Prometheus counters; and that a model outage costs only its own
predictions, never the pass, the other models, or a concurrent telemetry insert.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from dtwin_scorer.scorer import Scorer
from dtwin_scorer.settings import Settings

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TEMPS = {f"pump-{i}": 10.0 * i for i in range(10)}  # pump-8 and pump-9 are at 80 % and 90 %: alerts
ASSETS = [f"demo/{a}" for a in TEMPS]


def settings(tmp_path: Path, dsn: str, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": dsn, "routing_dir": tmp_path, "kube_enabled": False, "metrics_port": 0,
        "request_timeout_s": 2.0, "backoff_initial_s": 30.0,
    } | over  # fmt: skip
    return Settings(**values)


async def scoring(s: Settings, body: Callable[[Scorer], Any]) -> Any:
    pool = await asyncpg.create_pool(s.database_url, min_size=0, max_size=2)
    try:
        async with httpx.AsyncClient() as http:
            return await body(Scorer(s, pool, http))
    finally:
        await pool.close()


def test_passes_write_predictions_and_alerts_and_split_20_percent_to_the_canary(
    tmp_path: Path, site: Any, fake_model: Any, routing_writer: Any, ends: Any
) -> None:
    async def main() -> None:
        await site.create({**TEMPS, "pump-bad": 0.0}, T0 - timedelta(hours=3), T0 + timedelta(hours=4))
        async with fake_model("1.0") as stable, fake_model("1.1") as canary:
            routing_writer(tmp_path, "pumps", stable, canary, percent=20, assets=[*ASSETS, "demo/pump-bad"])

            async def passes(scorer: Scorer) -> list[Any]:
                out = [await scorer.pass_once(at) for at in ends(T0 + timedelta(minutes=5), 20)]
                again = await scorer.pass_once(T0 + timedelta(minutes=195))  # that bucket is written already...
                assert again[0].windows == 1  # ... but for pump-bad's: a window not scored is tried again
                return [out, scorer]

            reports, scorer = await scoring(settings(tmp_path, site.dsn), passes)
            # 11 assets x 20 bucket ends = 220 windows, 20 % of them to the canary, counted at the servers.
            bad_canary = sum(w["asset"] == "demo/pump-bad" for w in canary.windows)
            # (the canary's error windows are sent to stable as well: a failed canary costs no prediction)
            assert len(canary.windows) + len(stable.windows) == 220 + bad_canary + 1  # + the last pass's pump-bad
            assert abs(len(canary.windows) - 44) <= 2, (len(canary.windows), len(stable.windows))
            n_canary = len(canary.windows) - bad_canary  # the windows that score (pump-bad's get an error result)
            assert max(stable.requests + canary.requests) <= 8  # maxBatchSize
            per_asset = {a: sum(w["asset"] == a for w in canary.windows) for a in ASSETS}
            assert all(1 <= n <= 7 for n in per_asset.values()), per_asset  # every asset meets the canary
            w = stable.windows[0]
            assert len(w["timestamps"]) == 12 and w["asset"].startswith("demo/pump-")
            assert {r[0].windows for r in reports} == {11}
            assert sum(r[0].errors["window"] for r in reports) == 20 + bad_canary

            rows = await site.fetch("SELECT asset, model, version, ts, score, horizon_hours, task FROM {s}.predictions")
            assert len(rows) == 200 and {r["task"] for r in rows} == {"failure"}
            assert sum(r["version"] == "1.1" for r in rows) == n_canary  # the version the server answered with
            assert {r["horizon_hours"] for r in rows} == {72}
            assert {r["ts"] for r in rows} == {T0 + timedelta(minutes=10 * k) for k in range(-1, 19)}
            assert {(r["asset"], r["score"]) for r in rows} == {(a, t / 100) for a, t in TEMPS.items()}

            alerts = await site.fetch("SELECT * FROM {s}.alerts ORDER BY asset")
            assert [(a["asset"], a["kind"], a["state"], a["severity"]) for a in alerts] == [
                ("pump-7", "predictive", "open", "warning"),
                ("pump-8", "predictive", "open", "warning"),
                ("pump-9", "predictive", "open", "critical"),
            ]  # one per asset and model however many passes predicted it
            a9 = alerts[2]
            assert a9["dedup_key"] == "predictive:pump-failure:pump-9" and a9["last_value"] == 0.9
            assert a9["message"] == "pump-9: 90% probability of failure within 72 h (temp slope 36)"
            details = json.loads(a9["details"])
            assert details["probability"] == 0.9 and details["horizon_hours"] == 72
            assert details["model"] == "pump-failure" and details["version"] in ("1.0", "1.1") and details["top"]

            # The call statistics the Lease reports: what the servers saw, errors for the bad asset's windows.
            st_stable, st_canary = scorer.states[("demo", "pumps")].calls.pair()
            assert st_canary is not None and st_stable is not None
            st = ("stable", "canary")
            assert st_canary.calls == n_canary + bad_canary and st_canary.errors == bad_canary
            scores = [r["score"] for r in rows if r["version"] == "1.1"]
            assert st_canary.score_sum == pytest.approx(sum(scores))
            m = scorer.metrics
            assert m.value("dtwin_scorer_windows_total", model="demo/pumps", track="canary") == n_canary + bad_canary
            assert m.value("dtwin_scorer_alerts_total", model="demo/pumps", transition="opened") == 3
            errors = [m.value("dtwin_scorer_errors_total", model="demo/pumps", track=t, reason="window") for t in st]
            assert sum(errors) == 20 + bad_canary + 1 == st_stable.errors + st_canary.errors

            # pump-9 cools down: its alert resolves; pump-8 stays open (refreshed, not duplicated).
            conn = await asyncpg.connect(site.dsn)
            await conn.execute(
                "UPDATE site_hq.telemetry SET value = 20 WHERE sensor = 'pump-9-temp' AND ts >= $1",
                T0 + timedelta(hours=3),
            )
            await conn.close()
            await scoring(settings(tmp_path, site.dsn), lambda s: s.pass_once(T0 + timedelta(hours=3, minutes=15)))
            states = {a["asset"]: a["state"] for a in await site.fetch("SELECT asset, state FROM {s}.alerts")}
            assert states == {"pump-7": "open", "pump-8": "open", "pump-9": "resolved"}

    asyncio.run(main())


def test_a_model_outage_costs_only_its_own_predictions(
    tmp_path: Path, site: Any, fake_model: Any, routing_writer: Any, closed_port_url: str
) -> None:
    """Model `down` refuses connections, model `slow` times out, model `pumps` has a canary answering 503: the
    pass finishes in about one timeout, `pumps` loses no prediction (stable answers what the canary failed),
    telemetry inserts while models hang, and the next pass does not call the failed endpoints (backoff)."""

    async def main() -> None:
        await site.create(TEMPS, T0 - timedelta(hours=3), T0 + timedelta(hours=1))
        async with (
            fake_model("1.0") as stable,
            fake_model("1.1", status=503) as canary,
            fake_model("1.0", delay_s=5.0) as slow,
        ):
            routing_writer(tmp_path, "pumps", stable, canary, percent=50, assets=ASSETS)
            routing_writer(tmp_path, "down", closed_port_url, assets=ASSETS, model="down")
            routing_writer(tmp_path, "slow", slow, assets=ASSETS, model="slow")
            slow.lookback_steps = 12
            s = settings(tmp_path, site.dsn, request_timeout_s=1.0)

            async def body(scorer: Scorer) -> Any:
                t0 = time.monotonic()
                task = asyncio.create_task(scorer.pass_once(T0 + timedelta(minutes=30)))
                async with asyncio.timeout(5):  # until the slow model holds a request
                    await slow.received.wait()
                # Ingestion meanwhile: an insert into the telemetry commits at once (the scorer holds no lock).
                conn = await asyncpg.connect(site.dsn)
                t_ins = time.monotonic()
                await conn.execute(
                    "INSERT INTO site_hq.telemetry (sensor, ts, value) VALUES ('pump-1-temp', $1, 1)",
                    T0 + timedelta(hours=2),
                )
                insert_s = time.monotonic() - t_ins
                await conn.close()
                first = {r.model: r for r in await task}
                first_s = time.monotonic() - t0
                t1 = time.monotonic()
                second = {r.model: r for r in await scorer.pass_once(T0 + timedelta(minutes=40))}
                return first, first_s, second, time.monotonic() - t1, insert_s, scorer

            first, first_s, second, second_s, insert_s, scorer = await scoring(s, body)
            assert insert_s < 0.5
            assert first_s < 4.0, first_s  # bounded by the 1 s timeout (info ok, predict times out), not by 5 s
            assert first["demo/down"].errors == {"info": 1} and first["demo/down"].predictions == 0
            # One batch (8 windows) timed out; the endpoint is then in backoff, so its second batch is not sent.
            assert first["demo/slow"].errors == {"timeout": 8, "backoff": 2} and first["demo/slow"].predictions == 0
            p = first["demo/pumps"]
            assert p.predictions == 10 and p.errors["http_5xx"] == p.calls["canary"] > 0
            assert p.calls == {"stable": 10, "canary": 5}  # stable: its 5 windows and the canary's 5 again
            assert len(canary.windows) == 0 and len(stable.windows) == 10 + 10  # both passes
            _, st_canary = scorer.states[("demo", "pumps")].calls.pair()
            # Both passes count against the canary: the failed calls, then the windows it could not take in backoff.
            canary_backoff = second["demo/pumps"].errors["backoff"]
            assert canary_backoff > 0
            assert st_canary is not None and st_canary.calls == st_canary.errors == p.calls["canary"] + canary_backoff
            m = scorer.metrics
            assert m.value("dtwin_scorer_errors_total", model="demo/slow", track="stable", reason="timeout") == 8
            assert m.value("dtwin_scorer_errors_total", model="demo/down", track="stable", reason="info") == 1

            # Second pass: the failed endpoints are in backoff, not called; pumps scores all on stable (the canary's
            # share too, counted above as the canary's errors).
            assert second_s < 1.0, second_s
            assert second["demo/down"].errors == {} and second["demo/down"].windows == 0  # no /info to size windows
            assert second["demo/slow"].errors == {"backoff": 10} and second["demo/slow"].calls == {}
            assert second["demo/pumps"].calls == {"stable": 10} and second["demo/pumps"].predictions == 10
            rows = await site.fetch("SELECT model, count(*) AS n FROM {s}.predictions GROUP BY model")
            assert {r["model"]: r["n"] for r in rows} == {"pump-failure": 20}

    asyncio.run(main())


def test_the_stream_clock_scores_a_replayed_history(
    tmp_path: Path, site: Any, fake_model: Any, routing_writer: Any
) -> None:
    """January's history is silent by the wall clock; in stream time its newest complete bucket is scored."""

    async def main() -> None:
        await site.create(TEMPS, T0 - timedelta(hours=3), T0 + timedelta(hours=4))
        async with fake_model("1.0") as stable:
            routing_writer(tmp_path, "pumps", stable, assets=ASSETS)
            wall = await scoring(settings(tmp_path, site.dsn), lambda s: s.pass_once())
            assert wall[0].windows == 0 and stable.windows == []
            stream = await scoring(settings(tmp_path, site.dsn, clock="stream"), lambda s: s.pass_once())
            assert stream[0].windows == len(ASSETS)
            newest = (await site.fetch("SELECT max(ts) AS ts FROM {s}.telemetry"))[0]["ts"]
            last_complete = datetime.fromtimestamp(newest.timestamp() // 600 * 600, UTC) - timedelta(minutes=10)
            rows = await site.fetch("SELECT DISTINCT ts FROM {s}.predictions")
            assert [r["ts"] for r in rows] == [last_complete]

    asyncio.run(main())
