"""`gcbench advise`: the decision rule on deterministic fake runs, its Markdown, the CLI's errors, one real run."""

import json

import numpy as np
import pandas as pd
import pytest

from gcbench.advise import (
    MEMORY,
    NO_CHANGE,
    NO_CUT,
    NOISE,
    OFF_GROWS,
    OFF_UNKNOWN,
    RECOMMENDED,
    SMALL,
    Rule,
    advise,
    candidate_modes,
    document,
    headline,
)
from gcbench.errors import GcbenchError
from gcbench.report import export

from .conftest import run_cli

T0 = 7_123_456_789_013  # an odd clock origin: nothing may rely on time starting at zero
MIB = 1024 * 1024


def fake_run(modes: dict[str, dict], reps: int = 3, chains: int = 40, calls: int = 5, backend: str = "python"):
    """calls + cells of a run: per mode, GC dead time per chain drawn from N(dead_ms, sd_ms) (seeded, >= 0) and
    put on each chain's first call; every call takes 1 ms plus its dead time; memory as given (MiB, growth)."""
    rows, cells = [], []
    t = T0
    for i, (mode, spec) in enumerate(modes.items()):
        rng = np.random.default_rng(100 + i)
        for rep in range(reps):
            dead = np.clip(rng.normal(spec["dead_ms"], spec.get("sd_ms", 0.5), chains), 0, None) * 1e6
            for chain in range(chains):
                for call in range(calls):
                    overlap = int(dead[chain]) if call == 0 else 0
                    lat = 1_000_000 + overlap
                    rows.append({"backend": backend, "gc_mode": mode, "rep": rep, "chain": chain, "call": call,
                                 "t_send_ns": t, "t_recv_ns": t + lat, "latency_ns": lat, "ok": True,
                                 "gc_overlap_ns": overlap})
                    t += lat + 1000
            rss = spec.get("rss_mib", 100.0) * MIB
            growth = spec.get("growth", 0.0)
            mem = {"peak_rss_bytes": int(rss)}
            if growth is not None:
                mem.update(rss_measure_start_bytes=int(rss / (1 + growth)), rss_measure_end_bytes=int(rss))
            cells.append({"backend": backend, "runtime": "python", "gc_mode": mode, "rep": rep, "status": "ok",
                          "memory": mem})
    return pd.DataFrame(rows), cells


def _one(calls, cells, rule=None):
    (b,) = advise(calls, cells, rule or Rule()).backends
    return b


def test_a_clear_cut_is_recommended_with_its_interval():
    b = _one(*fake_run({"default": {"dead_ms": 5.0}, "thresholds:10000,20,20": {"dead_ms": 1.0},
                        "freeze": {"dead_ms": 3.0}}))
    assert b.recommended == "thresholds:10000,20,20"
    r = b.result("thresholds:10000,20,20")
    assert r.verdict == RECOMMENDED and b.result("freeze").verdict != RECOMMENDED  # the largest cut wins
    assert 3.6 < r.cut_ms < 4.4 and 0 < r.cut_lo_ms < r.cut_ms < r.cut_hi_ms
    assert 0.7 < r.cut_share < 0.9 and r.cut_share_lo < r.cut_share < r.cut_share_hi
    assert 0 < r.throughput_lo < r.throughput_change < r.throughput_hi  # 1 ms calls without 4 ms of GC each
    assert b.result("freeze").why.endswith("thresholds:10000,20,20 cuts more")
    h = headline(b)
    assert "use gc mode thresholds:10000,20,20" in h and "95% CI [" in h and "at peak RSS 0% (100.0 MiB)" in h


def test_noise_only_gives_no_change_worth_making():
    b = _one(*fake_run({"default": {"dead_ms": 2.0, "sd_ms": 1.0}, "freeze": {"dead_ms": 2.0, "sd_ms": 1.0},
                        "oob": {"dead_ms": 2.05, "sd_ms": 1.0}}))
    assert b.recommended is None
    assert {b.result(m).verdict for m in ("freeze", "oob")} <= {NOISE, NO_CUT}
    assert NO_CHANGE in headline(b)
    assert b.result("freeze").cut_lo_ms < 0 < b.result("freeze").cut_hi_ms or b.result("freeze").cut_ms <= 0


def test_a_significant_but_small_cut_is_not_worth_a_change():
    # 4% less dead time, tight noise: the interval excludes zero, the practical threshold (10%) does not pass
    b = _one(*fake_run({"default": {"dead_ms": 5.0, "sd_ms": 0.05}, "freeze": {"dead_ms": 4.8, "sd_ms": 0.05}}))
    r = b.result("freeze")
    assert r.cut_lo_ms > 0 and r.verdict == SMALL and b.recommended is None
    # and the ms threshold alone blocks a 50% cut of a tiny dead time
    b = _one(*fake_run({"default": {"dead_ms": 0.1, "sd_ms": 0.01}, "freeze": {"dead_ms": 0.05, "sd_ms": 0.01}}))
    assert b.result("freeze").verdict == SMALL and b.recommended is None


def test_a_memory_heavy_mode_is_flagged_and_the_next_best_recommended():
    b = _one(*fake_run({"default": {"dead_ms": 5.0, "rss_mib": 100}, "thresholds:10000,20,20":
                        {"dead_ms": 0.5, "rss_mib": 180}, "freeze": {"dead_ms": 2.0, "rss_mib": 104}}))
    heavy = b.result("thresholds:10000,20,20")
    assert heavy.memory_flag and heavy.verdict == MEMORY and abs(heavy.rss_increase - 0.8) < 0.01
    assert b.recommended == "freeze"
    text = export(document(advise(*fake_run({"default": {"dead_ms": 5.0, "rss_mib": 100},
                                              "thresholds:10000,20,20": {"dead_ms": 0.5, "rss_mib": 180}}))), "text")
    assert "+80% FLAG" in text and NO_CHANGE in text
    # a looser limit lets it through
    b = _one(*fake_run({"default": {"dead_ms": 5.0, "rss_mib": 100}, "thresholds:10000,20,20":
                        {"dead_ms": 0.5, "rss_mib": 180}}), Rule(max_rss_increase=1.0))
    assert b.recommended == "thresholds:10000,20,20"


@pytest.mark.parametrize("growth, verdict", [(0.3, OFF_GROWS), (None, OFF_UNKNOWN), (0.02, RECOMMENDED)])
def test_gc_off_is_recommended_only_when_its_rss_stays_flat(growth, verdict):
    b = _one(*fake_run({"default": {"dead_ms": 5.0, "rss_mib": 100},
                        "disabled": {"dead_ms": 0.0, "sd_ms": 0.0, "rss_mib": 120, "growth": growth}}))
    off = b.result("disabled")
    assert off.is_off and off.verdict == verdict
    assert (b.recommended == "disabled") == (verdict == RECOMMENDED)
    if verdict == RECOMMENDED:
        assert any("shorter than a server's life" in n for n in b.notes)


def test_gc_off_over_the_memory_limit_is_flagged_first():
    b = _one(*fake_run({"default": {"dead_ms": 5.0, "rss_mib": 100},
                        "disabled": {"dead_ms": 0.0, "sd_ms": 0.0, "rss_mib": 300, "growth": 0.0}}))
    assert b.result("disabled").verdict == MEMORY and b.recommended is None


def test_the_markdown_is_a_pr_comment_with_the_headline_table_and_rule():
    md = export(document(advise(*fake_run({"default": {"dead_ms": 5.0}, "freeze": {"dead_ms": 1.0}}), run="r1")),
                "md")
    lines = md.splitlines()
    assert lines[0] == "### gcbench advise"
    assert any(ln.startswith("**python: use gc mode freeze: it cuts GC dead time per chain by") for ln in lines)
    header = next(ln for ln in lines if ln.startswith("| GC mode |"))
    assert "cut 95% CI ms" in header and "peak RSS MiB" in header and "calls/s" in header
    assert any(ln.startswith("| freeze |") and "recommended" in ln for ln in lines)
    assert "Rule: a mode is recommended" in md and "_run folder: r1_" in md
    calls, cells = fake_run({"default": {"dead_ms": 5.0}, "freeze": {"dead_ms": 1.0}})
    cells.append({"backend": "python", "gc_mode": "oob", "rep": 0, "status": "skipped", "reason": "no hook"})
    md = export(document(advise(calls, cells)), "md")
    assert "- oob: not measured: no hook" in md
    data = json.loads(export(document(advise(*fake_run({"default": {"dead_ms": 5.0}, "freeze": {"dead_ms": 5.0}}))),
                             "json"))
    assert data["backends"][0]["recommendation"] == NO_CHANGE


def test_a_users_server_is_named_by_its_command():
    from gcbench.advise import server_commands

    meta = {"environment": {"backend_runtimes": {"custom": {"command": "uvx mcp-server-time"}, "python": {}}}}
    assert server_commands(meta) == {"custom": "uvx mcp-server-time"}
    calls, cells = fake_run({"default": {"dead_ms": 5.0}, "freeze": {"dead_ms": 1.0}}, backend="custom")
    md = export(document(advise(calls, cells, commands=server_commands(meta))), "md")
    assert "server command: uvx mcp-server-time" in md and "**custom: use gc mode freeze" in md


def test_a_run_without_a_default_cell_is_refused():
    calls, cells = fake_run({"freeze": {"dead_ms": 1.0}})
    with pytest.raises(GcbenchError, match="default"):
        advise(calls, cells)


def test_candidate_modes_are_those_the_backend_can_apply():
    from gcbench.backends.custom import CustomBackend

    python_modes, _ = candidate_modes(CustomBackend("python3 -c pass"))
    assert [str(m) for m in python_modes] == ["default", "freeze", "thresholds:10000,20,20", "disabled"]
    # a user's Python server has no oob: it is left out with the backend's reason
    assert "oob" in candidate_modes(CustomBackend("python3 -c pass"))[1]


# ---------------------------------------------------------------------------------------------- the CLI


def _one_error_line(proc):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, says", [
    ((), "give the server to advise on"),
    (("-b", ","), "--backend: no backend named"),
    (("--server-cmd", " "), "--server-cmd: empty command"),
    (("-b", "python", "-g", "bogus"), "unknown --gc-mode"),
    (("-b", "rust"), "nothing to advise"),
    (("-b", "python", "--tool-args", "[1]"), "--tool-args: must be a JSON object"),
    (("--run", "/nonexistent/run"), "not a run folder"),
    (("--run", "/tmp", "-b", "python"), "--run: decides from a measured run"),
    (("-b", "python", "-o", "x.html"), "not 'html'"),
])
def test_bad_input_gets_one_line_and_exit_2(args, says, tmp_path):
    line = _one_error_line(run_cli("advise", *args, "--runs-dir", str(tmp_path), timeout=60))
    assert says in line
    assert not any(tmp_path.iterdir())  # refused before any run folder was made


@pytest.mark.slow
def test_advise_on_the_python_backend_end_to_end(tmp_path):
    out = tmp_path / "advice.md"
    proc = run_cli("advise", "-b", "python", "-g", "thresholds:10000,20,20,disabled", "--chains", "6",
                   "--reps", "2", "--calls", "30", "--runs-dir", str(tmp_path / "runs"), "-o", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    # the runner's progress line per cell (the last is rep 1's last mode: repetitions rotate the modes)
    assert "[6/6] python gc=default rep=1" in proc.stderr
    md = out.read_text()
    assert "| thresholds:10000,20,20 |" in md and "| disabled (GC off) |" in md
    assert "**python: " in md  # a headline: a recommendation or "no change worth making"
    (run,) = (tmp_path / "runs").iterdir()
    again = run_cli("advise", "--run", str(run), "--format", "json")
    assert again.returncode == 0, again.stderr
    modes = {m["gc_mode"]: m for m in json.loads(again.stdout)["backends"][0]["modes"]}
    assert modes["disabled"]["dead_mean_ms"] == 0 and modes["default"]["dead_mean_ms"] > 0
    assert modes["default"]["peak_rss_mib"] > 0 and modes["disabled"]["calls_per_s"] > 0
