"""The study's real-server section (gcbench study --real): registry servers' runs set against their own default."""

import pytest

from gcbench.errors import GcbenchError
from gcbench.report.study_real import build_real, section

from .synthetic import Pause, constant_cell, write_run

MIB = 1024 * 1024


def _cell(mode: str, pause_ms: float, rss_mib: float):
    pauses = [Pause(rep, chain, 1, 100, int(pause_ms * 1e6)) for rep in range(2) for chain in range(6)] \
        if pause_ms else []
    c = constant_cell("real-git", mode, 2_000_000, reps=2, chains=6, calls=4, pauses=pauses)
    c.info = {"memory": {"peak_rss_bytes": int(rss_mib * MIB), "rss_measure_start_bytes": int(rss_mib * MIB),
                         "rss_measure_end_bytes": int(rss_mib * MIB * (3 if mode == "disabled" else 1))}}
    return c


def test_a_real_servers_run_gives_its_best_setting_cut_and_memory_cost(tmp_path):
    """default loses 4 ms per chain, freeze 1 ms (peak RSS -10%), disabled none (RSS x3): freeze is the best
    GC-on setting with a 3 ms cut and advise recommends it; GC off removes all 4 ms."""
    write_run(tmp_path / "runs", [_cell("default", 4.0, 100), _cell("freeze", 1.0, 90), _cell("disabled", 0, 300)],
              scenario_name="real-git", run_id="r1", scenario_extra={"server": {"real": "git"}})
    write_run(tmp_path / "runs", [_cell("default", 4.0, 100)], run_id="not-real")  # a synthetic run: left out
    (server,) = build_real(tmp_path / "runs")
    assert server.scenario == "real-git" and server.default.dead_mean_ms == pytest.approx(4.0, rel=1e-3)
    best = server.best()
    assert best.gc_mode == "freeze" and best.cut_ms == pytest.approx(3.0, rel=1e-3)
    assert best.rss_increase == pytest.approx(-0.10, abs=1e-6)
    assert server.off().cut_ms == pytest.approx(4.0, rel=1e-3) and server.advice.recommended == "freeze"
    sec = section([server], "12")
    (table,) = [i for i in sec.items if getattr(i, "key", "") == "real-servers"]
    (row,) = table.rows
    assert row[5] == "freeze" and row[6].startswith("+3") and row[7] == "-10%" and row[-1] == "use freeze"
    assert sec.number == "12" and "real-git (freeze)" in sec.items[0].text
    assert "real-git, 4 ms" in sec.items[0].text  # the intro stays whatever the rule says


def test_a_folder_without_a_real_servers_run_is_one_line(tmp_path):
    write_run(tmp_path / "runs", [_cell("default", 4.0, 100)], run_id="not-real")
    with pytest.raises(GcbenchError, match=r"--real .*: no run folder of a real-\* scenario"):
        build_real(tmp_path / "runs")
