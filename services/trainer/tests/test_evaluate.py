"""`python -m dtwin_trainer.evaluate --quick` end to end: the RESULT line is the last line and the report is written."""

from __future__ import annotations

import json
import re

from dtwin_trainer import evaluate

RESULT = re.compile(
    r"^RESULT anomaly_f1=(\d+\.\d{3}) failure_f1=(\d+\.\d{3}) lead_time_h=(\d+\.\d) "
    r"energy_mape=(\d+\.\d{2}) baselines_beaten=(\d)/3$"
)


def test_quick_eval_prints_the_result_line_and_writes_the_report(tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    assert evaluate.main(["--quick", "--no-cache", "--workers", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    m = RESULT.match(lines[-1])
    assert m, lines[-1]
    assert 0.0 <= float(m.group(1)) <= 1.0 and 0.0 <= float(m.group(2)) <= 1.0
    report = json.loads((out / "report.json").read_text())
    assert f"{report['anomaly']['model']['f1']:.3f}" == m.group(1)
    assert report["energy"]["model"]["mape"] > 0
    for name in ("pr_curve.png", "lead_time_hist.png", "energy_forecast.png"):
        assert (out / name).stat().st_size > 1000
