"""`make bench-api`'s pure helpers: percentiles, latencies from what the clients received, queries, RESULT line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from dtwin_bench import api_measure as m


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert m.percentile(values, 50) == 50
    assert m.percentile(values, 99) == 99
    assert m.percentile(values, 100) == 100
    assert m.percentile([7.0], 99) == 7.0
    assert m.percentile([], 50) is None
    assert m.summary([])["p99_ms"] is None


def test_broker_latencies_skip_probe_and_garbage() -> None:
    lines = [
        '1000.250000000 sites/s/d1/json {"ts":1000.0,"v":1}',
        '1000.500000000 sites/s/probe/json {"ts":900.0,"v":1}',
        "1000.6 sites/s/d2/json not-json",
        "",
    ]
    assert m.broker_latencies_ms(lines, "sites/s/probe/json") == [250.0]


def test_ws_latencies_only_live_telemetry_without_probe() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    frame = {
        "type": "telemetry",
        "readings": [{"sensor": "a", "ts": ts.isoformat()}, {"sensor": "p", "ts": ts.isoformat()}],
    }
    got = m.ws_latencies_ms(frame, ts.timestamp() + 0.125, "p")
    assert got == [125.0]
    assert m.ws_latencies_ms(frame | {"replay": True}, ts.timestamp(), "p") == []
    assert m.ws_latencies_ms({"type": "heartbeat"}, 0.0, "p") == []


def test_ingest_capacity_reads_newest_report_else_fallback(tmp_path: Path) -> None:
    assert m.ingest_capacity(tmp_path) == (m.FALLBACK_INGEST_MSG_S, "fallback constant")
    (tmp_path / "ingest-20260101-000000.json").write_text(json.dumps({"result": {"single_msg_s": 1000.0}}))
    (tmp_path / "ingest-20260102-000000.json").write_text(json.dumps({"result": {"single_msg_s": None}}))
    assert m.ingest_capacity(tmp_path) == (1000.0, "ingest-20260101-000000.json")


def test_queries_ranges_and_result_line() -> None:
    lo, hi = m.day_range(datetime(2026, 3, 31, 15, 30, tzinfo=UTC), 30)
    assert hi == datetime(2026, 3, 31, tzinfo=UTC) and (hi - lo).days == 30
    assert [q.bucket for q in m.dashboard_queries(30)] == ["1h", "1d"]
    assert "date_bin('1 hour'" in m.raw_grouped_sql("site_x", "1h") and '"site_x"."telemetry"' in m.raw_grouped_sql(
        "site_x", "1h"
    )
    assert m.chunks([str(i) for i in range(45)], 20)[-1] == [str(i) for i in range(40, 45)]
    assert m.speedup(10.0, 0.5) == 20.0 and m.speedup(None, 1.0) is None and m.speedup(1.0, 0.0) is None
    line = m.result_line({"p50_ms": 120.04, "p99_ms": 310.0}, {"p99_ms": 4.26}, 35.55)
    assert line == "RESULT ws_p50_ms=120.0 ws_p99_ms=310.0 broker_p99_ms=4.3 aggregate_speedup=35.5"
    assert m.result_line({}, {}, None) == "RESULT ws_p50_ms=na ws_p99_ms=na broker_p99_ms=na aggregate_speedup=na"
