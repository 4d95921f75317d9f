"""The CLI: a dry run is deterministic and complete, faults come from flags or files, errors say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dtwin_simulator import faults, times
from dtwin_simulator.main import app

RUN = ["run", "--dry-run", "--speed", "max", "--start", "2026-01-05T08:00:00Z"]


def _run(sim, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*RUN, "--examples", str(sim.examples), *args])
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_is_deterministic_and_complete(sim) -> None:
    code, out, err = _run(sim, "--duration", "10m", "--seed", "3")
    assert code == 0, err
    assert _run(sim, "--duration", "10m", "--seed", "3")[1] == out
    lines = out.splitlines()
    assert len(lines) == 360  # 17 devices over 10 minutes
    assert "RESULT sent=360 acked=360 refused=0" in err
    stamp, topic, body = lines[0].split(" ", 2)
    assert times.parse_instant_ms(stamp, 0) >= times.parse_instant_ms("2026-01-05T08:00:00Z", 0)
    assert topic.startswith("sites/") and (body[0] in "[{" or body.startswith("b64:"))


def test_faults_from_flags_and_files_with_truth(sim, tmp_path: Path) -> None:
    spec = tmp_path / "faults.yaml"
    spec.write_text("faults:\n  - {kind: offline_device, asset: ahu-1, start: +0s, duration: 1h}\n")
    truth = tmp_path / "truth.jsonl"
    flag = "kind=stuck_sensor,asset=ahu-2,sensor=supply_air_temp,start=+1m,duration=5m"
    code, out, err = _run(sim, "--duration", "10m", "--faults", str(spec), "--fault", flag, "--truth", str(truth))
    assert code == 0, err
    assert "sites/hq/ahu-1/" not in out
    records = [json.loads(line) for line in truth.read_text().splitlines()]
    assert [(r["kind"], r["asset"]) for r in records] == [("offline_device", "ahu-1"), ("stuck_sensor", "ahu-2")]
    assert records[1]["start"] == "2026-01-05T08:01:00.000Z"


def test_only_some_assets(sim) -> None:
    code, out, _ = _run(sim, "--duration", "5m", "--asset", "chiller-1", "--asset", "ct-1")
    assert code == 0
    assert {line.split(" ")[1] for line in out.splitlines()} == {
        "sites/plant/chiller-1/telemetry",
        "sites/plant/ct-1/telemetry",
    }


def test_bad_fault_is_refused(sim) -> None:
    code, _, err = _run(sim, "--fault", "kind=filter_clogging,asset=hwp-1,start=+1h,duration=1d")
    assert code == 2
    assert "filter_clogging applies to AHU, Fan; hwp-1 is a Pump" in err


def test_fleet_lists_every_sensor(sim) -> None:
    result = CliRunner().invoke(app, ["fleet", "--examples", str(sim.examples)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 71
    assert any("ahu-1-filter-dp" in line and "filter_dp" in line for line in lines)


def test_the_demo_fault_file_runs(sim, tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    demo_faults = sim.examples.parent / "services" / "simulator" / "faults-demo.yaml"
    code, _, err = _run(sim, "--duration", "1m", "--faults", str(demo_faults), "--truth", str(truth))
    assert code == 0, err
    kinds = {json.loads(line)["kind"] for line in truth.read_text().splitlines()}
    assert kinds == {"failure"} | set(faults.PHYSICAL) | {
        "spiking_sensor",
        "stuck_sensor",
        "dropped_sensor",
        "offline_device",
    }


def test_bad_duration_and_unreachable_broker(sim) -> None:
    code, _, err = _run(sim, "--duration", "soon")
    assert code == 2 and "'soon' is not a duration" in err
    result = CliRunner().invoke(app, ["run", "--examples", str(sim.examples), "--port", "1", "--duration", "1m"])
    assert result.exit_code == 1 and "cannot connect to the broker at 127.0.0.1:1" in result.stderr
