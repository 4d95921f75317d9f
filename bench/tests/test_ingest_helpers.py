"""The ingest benchmark's pure helpers: rates, loss, the RESULT line, the table, and the messages it sends."""

from __future__ import annotations

import json
import struct
import time
from datetime import UTC, datetime

import pytest

from dtwin_bench import report, workload
from dtwin_bench.cases import rejected
from dtwin_bench.site import render_table
from dtwin_bridge.site import SiteConfig


def test_rate_is_count_over_interval_and_zero_when_empty() -> None:
    assert report.rate(10_000, 100.0, 102.5) == 4000
    assert report.rate(10, 5.0, 5.0) == 0.0
    assert report.rate(10, 6.0, 5.0) == 0.0


def test_ratio_and_loss() -> None:
    assert report.ratio(30.0, 10.0) == 3.0
    assert report.ratio(None, 10.0) is None
    assert report.ratio(1.0, 0.0) is None
    assert report.lost(100, 97) == 3
    assert report.lost(100, 101) == 0  # a surplus is not loss


def test_other_cpu_is_what_our_processes_do_not_explain() -> None:
    assert report.other_cpu(10.0, {"bridge": 4.0, "postgres": 1.5}) == 4.5
    assert report.other_cpu(1.0, {"bridge": 2.0}) == 0.0
    assert report.utilisation({"bridge": 3.0}, 2.0) == {"bridge": 1.5}


def test_result_line_puts_required_keys_last_in_order() -> None:
    values = {"lost": 0, "copy_ceiling_rows_s": 46443.4, "batched_msg_s": 7193.2, "naive_msg_s": 1555.0,
              "packed_readings_s": 40000.6, "single_msg_s": 15000.49}  # fmt: skip
    line = report.result_line(values, {"bridges": 2, "p99_ms": 12.345, "senml_readings_s": None})
    assert line == (
        "RESULT bridges=2 p99_ms=12.3 senml_readings_s=na single_msg_s=15000 packed_readings_s=40001 "
        "naive_msg_s=1555 batched_msg_s=7193 copy_ceiling_rows_s=46443 lost=0"
    )
    assert line.split()[-1] == "lost=0"


def test_result_line_refuses_a_missing_required_key() -> None:
    with pytest.raises(KeyError):
        report.result_line({"single_msg_s": 1})


def test_table_has_ratios_against_ceiling_and_anchors() -> None:
    rows = [
        report.Row("copy", None, 1000, None, 50_000.0, 0, {"postgres": 0.9}),
        report.Row("dtwin", 1000, 1000, 10_000.0, 10_000.0, 0, {"bridge": 1.2}),
    ]
    text = report.table(rows, ceiling=50_000.0, naive=1_000.0, batched=5_000.0)
    head, rule, copy, dtwin = text.splitlines()
    assert head.startswith("case") and set(rule) == {"-"}
    assert "0.20" in dtwin and "10.00" in dtwin and "2.00" in dtwin and "1.20" in dtwin
    assert len(copy) == len(dtwin)


def test_timestamps_end_before_now_and_keys_never_repeat() -> None:
    now = 1_796_000_000.7
    t0 = workload.ts_start(now, 100_000, 1000)
    assert t0 == int(t0) and t0 + workload.rounds(100_000, 1000) <= now - 60
    batches = workload.copy_batches("s", workload.SINGLE, 2500, 1000, t0)
    assert [len(b.readings) for b in batches] == [1000, 1000, 500]
    keys = {(r.sensor, r.ts) for b in batches for r in b.readings}
    assert len(keys) == 2500


def test_frames_are_length_prefixed() -> None:
    blob = workload.frames([("a/b", b"xyz"), ("c", b"")])
    first = struct.pack(">H", 3) + b"a/b" + struct.pack(">I", 3) + b"xyz"
    assert blob == first + struct.pack(">H", 1) + b"c" + struct.pack(">I", 0)


@pytest.mark.parametrize("shape", [workload.SINGLE, workload.SENML, workload.SPARKPLUG])
def test_routing_has_one_binding_per_reading_plus_the_probe(shape: workload.Shape) -> None:
    table = render_table("bench-x", shape, 1883, "db")
    assert len(table["routes"]) == shape.devices * shape.readings + 1
    assert table["subscriptions"] == ["sites/bench-x/#"]


def test_the_bridge_stores_every_sparkplug_reading_the_benchmark_sends() -> None:
    config = SiteConfig.from_dict(render_table("bench-x", workload.SPARKPLUG, 1883, "db"))
    t0 = workload.ts_start(time.time(), 10, workload.SPARKPLUG.devices)
    sample = list(workload.sparkplug_messages("bench-x", workload.SPARKPLUG, 3, t0))
    assert rejected(config.table, workload.SPARKPLUG, sample) == []


def test_json_and_senml_as_mqttload_builds_them_are_accepted() -> None:
    # The Go publisher's shapes (tools/mqttload/main.go), written out here.
    ts = f"{datetime.now(UTC).timestamp() - 10:.6f}"
    single = render_table("bench-x", workload.SINGLE, 1883, "db")
    body = f'{{"ts":{ts},"v":21.50}}'.encode()
    assert rejected(SiteConfig.from_dict(single).table, workload.SINGLE, [("sites/bench-x/d7/json", body)]) == []
    pack = [{"bn": "urn:dev:dtwin:d3:", "bt": float(ts), "n": "f00", "u": "Cel", "v": 15.0}]
    pack += [{"n": f"f{j:02d}", "u": "Cel", "v": 20.0 + j} for j in range(1, 20)]
    senml = SiteConfig.from_dict(render_table("bench-x", workload.SENML, 1883, "db")).table
    assert rejected(senml, workload.SENML, [("sites/bench-x/d3/senml", json.dumps(pack).encode())]) == []
    assert rejected(senml, workload.SENML, [("sites/bench-x/d3/senml", b"[]")]) != []
