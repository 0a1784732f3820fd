"""RunConfig.from_options (gcbench/config.py): the options of `run` and `advise` checked once, each problem one
line naming its option; the config is frozen."""

import dataclasses
from pathlib import Path

import pytest

from gcbench.config import RunConfig
from gcbench.errors import GcbenchError

from .conftest import run_cli

OK = {"backends": "python", "gc_modes": "default"}


@pytest.mark.parametrize("options, option", [
    ({"backends": ","}, "--backend"),
    ({"server_cmd": "  "}, "--server-cmd"),
    ({"tool_args": "[1]"}, "--tool-args"),
    ({"tool_args": "{"}, "--tool-args"),
    ({"tool_args": "[" * 10_000 + "]" * 10_000}, "--tool-args"),
    ({"call_timeout": float("nan")}, "--call-timeout"),
    ({"call_timeout": 0.0}, "--call-timeout"),
    ({"start_timeout": 1e308}, "--start-timeout"),
    ({"max_server_memory": "lots"}, "--max-server-memory"),
    ({"url": "http://127.0.0.1:1/mcp"}, "--url"),  # with stdio
    ({"transport": "pigeon"}, "--transport"),
    ({"reps": 0}, "--reps"),
    ({"reps": 1001}, "--reps"),
    ({"hiccup_us": -1}, "--hiccup-us"),
    ({"hiccup_floor_us": -5}, "--hiccup-floor-us"),
    ({"gc_modes": "bogus"}, "--gc-mode"),
    ({"trace_file": Path("t.jsonl"), "tool": "x"}, "--trace"),
    ({"backends": "no-such-backend"}, "unknown backend"),
])
def test_bad_option_is_one_line_naming_it(options, option):
    with pytest.raises(GcbenchError) as e:
        RunConfig.from_options(**{**OK, **options})
    line = str(e.value)
    assert "\n" not in line and option in line, line


def test_advise_needs_a_server_named():
    with pytest.raises(GcbenchError, match="^advise: give the server to advise on"):
        RunConfig.from_options(gc_modes=None, require_server="advise")


def test_a_config_from_options_is_frozen_and_complete(tmp_path):
    config = RunConfig.from_options(**OK, reps=3, out_dir=tmp_path, chains=2, calls=7, meter_overhead=True,
                                    call_timeout=5, max_server_memory="off")
    assert [b.name for b in config.backends] == ["python"] and [str(m) for m in config.gc_modes] == ["default"]
    assert (config.reps, config.out_dir, config.call_timeout_s, config.max_server_memory_bytes) == (3, tmp_path, 5.0,
                                                                                                   None)
    assert (config.scenario.chain.chains, config.scenario.chain.calls) == (2, 7)
    assert config.hiccup_us == 1000  # --meter-overhead implies the meter
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.reps = 4
    assert "notes" not in config.to_dict()  # what the user is told is not part of what run.json records


def test_cli_bad_option_exits_2_with_one_line_and_no_run_folder(tmp_path):
    proc = run_cli("run", "-b", "python", "--call-timeout", "nan", "-o", str(tmp_path / "runs"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["ERROR: --call-timeout: expected seconds from 0.001 to 86400, got nan"]
    assert not (tmp_path / "runs").exists()
