"""A user's unmodified JVM MCP server under --server-cmd: the collector and the pause log through JAVA_TOOL_OPTIONS,
pauses from the JVM's own unified log (tests/fixtures/java_mcp_server, compiled with the machine's javac)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gcbench.backends.custom import java as java_outside
from gcbench.errors import CellError
from gcbench.gcmode import GcMode, parse_gc_mode
from gcbench.scenario import load_scenario

from .conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "java_mcp_server" / "UsersServer.java"


def test_tool_options_keep_the_users_own_and_quote_the_log_word(tmp_path):
    log = tmp_path / "a b" / "c.jvm.%p.log"
    opts = java_outside.tool_options(parse_gc_mode("zgc:256"), load_scenario("default"), log, own="-Dmine=1")
    assert opts.startswith("-Dmine=1 -Xlog:disable ")
    assert f"'-Xlog:safepoint=info,gc=info,gc+phases=info:file=\"{log}\":" in opts
    assert "-XX:+UseZGC -Xms256m -Xmx256m -XX:+AlwaysPreTouch" in opts and "-XX:+DisplayVMOutputToStderr" in opts
    eps = java_outside.tool_options(GcMode("epsilon"), load_scenario("default"), log)
    assert "-XX:+UseEpsilonGC" in eps and "-XX:+ExitOnOutOfMemoryError" in eps and " -Xmx" in eps
    with pytest.raises(CellError, match="quote"):
        java_outside.tool_options(GcMode("g1"), load_scenario("default"), tmp_path / "it's" / "x.log")


def test_a_collector_the_jvm_did_not_run_fails_the_cell(tmp_path):
    events = tmp_path / "cell.events.jsonl"
    pattern = java_outside.log_pattern(events)
    (tmp_path / "cell.jvm.4242.log").write_text("[4040937973615ns][5715878ns][29938][info][gc] Using G1\n")
    with pytest.raises(CellError, match="ran g1"):
        java_outside.after_exit(GcMode("zgc"), pattern, events)
    assert java_outside.after_exit(GcMode("default"), pattern, events)["jvm_collectors"] == ["g1"]
    (tmp_path / "cell.jvm.4242.log").unlink()
    with pytest.raises(CellError, match="no JVM of the server wrote the log"):
        java_outside.after_exit(GcMode("g1"), pattern, events)


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    javac = shutil.which("javac")
    if javac is None or shutil.which("java") is None:
        pytest.skip("no JDK")
    out = tmp_path_factory.mktemp("java")
    subprocess.run([javac, "--release", "17", "-d", str(out), str(FIXTURE)], check=True, timeout=120,
                   capture_output=True)
    return out


@pytest.mark.slow
def test_unmodified_java_server_under_g1_zgc_and_epsilon(tmp_path, java_classes):
    import gcbench as g

    proc = subprocess.run(
        [sys.executable, "-m", "gcbench", "run", "--server-cmd", f"java -cp {java_classes} UsersServer",
         "--tool", "alloc", "--tool-args", '{"n": 30000, "keep": 1000}', "--chains", "3", "--calls", "40",
         "-g", "g1:96,zgc:96,epsilon:512,disabled", "-o", str(tmp_path / "runs"), "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "gcbench: detected runtime java" in proc.stderr and "JAVA_TOOL_OPTIONS" in proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert cells["disabled"]["status"] == "skipped" and "epsilon" in cells["disabled"]["reason"]
    for mode, collector in (("g1:96", "g1"), ("zgc:96", "zgc"), ("epsilon:512", "epsilon")):
        assert cells[mode]["status"] == "ok"
        assert cells[mode]["stats"]["jvm_collector"] == collector  # what the JVM's own log says ran
    ev = run.gc_events[(run.gc_events["source"] == "server") & (run.gc_events["type"] == "gc")]
    kinds = {m: set(ev[ev["gc_mode"] == m]["kind"]) for m in ("g1:96", "zgc:96")}
    assert "young" in kinds["g1:96"]
    assert kinds["zgc:96"] & {"mark-start", "mark-end", "relocate-start"}
    # epsilon: the same JVM with no collection at all
    assert cells["epsilon:512"]["stats"]["num_gc"] == 0 and (ev["gc_mode"] == "epsilon:512").sum() == 0
    assert cells["g1:96"]["stats"]["num_gc"] > 0 and cells["zgc:96"]["stats"]["num_gc"] > 0
