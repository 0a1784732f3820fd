"""Sweep machinery on tiny grids: expansion, resume, shards and the merge refusal rules."""

import json
import re

import pytest

from gcbench.errors import GcbenchError
from gcbench.sweep import expand, load_sweep, merge, parse_shard, point_status, run_sweep

SWEEP = """
name = "tiny-sweep"
[chain]
calls = 4
chains = 2
warmup_calls = 1
[work]
alloc_objects = 300
[sweep]
backends = ["python"]
heap_objects = [0, 5000]
reps = 1
[sweep.gc_modes]
python = ["default", "disabled"]
[sweep.profiles.light]
alloc_objects = 100
[sweep.profiles.cyclic]
alloc_objects = 400
cyclic_fraction = 1.0
"""


@pytest.fixture
def spec(write_scenario):
    return load_sweep(write_scenario(SWEEP, "sweep.toml"))


def test_grid_expansion(spec):
    points = expand(spec)
    assert [p.id for p in points] == ["h0-light", "h0-cyclic", "h5000-light", "h5000-cyclic"]
    p = points[3]
    assert p.scenario.server.heap_objects == 5000
    assert p.scenario.work.alloc_objects == 400 and p.scenario.work.cyclic_fraction == 1.0
    assert points[0].scenario.work.cyclic_fraction == 0.0  # base value where a profile says nothing
    assert [str(m) for m in spec.gc_modes["python"]] == ["default", "disabled"]


@pytest.mark.parametrize("body, field", [
    ("[sweep]\nbackends = []\n", "sweep.backends"),
    ("[sweep]\nbackends = [\"python\"]\nheap_objects = [-1]\n", "sweep.heap_objects[0]"),
    ("[sweep]\nbackends = [\"python\"]\n[sweep.gc_modes]\npython = [\"sometimes\"]\n", "sweep.gc_modes.python"),
    ("[sweep]\nbackends = [\"python\"]\n[sweep.gc_modes]\ngo = [\"default\"]\n", "sweep.gc_modes.go"),
    ("[sweep]\nbackends = [\"python\"]\n[sweep.profiles.x]\nalloc_objects = \"many\"\n", "work.alloc_objects"),
    ("[chain]\ncalls = 3\n", "sweep"),
])
def test_bad_sweep_files_name_the_field(write_scenario, body, field):
    with pytest.raises(GcbenchError, match=re.escape(f"'{field}'")):
        load_sweep(write_scenario(body, "bad.toml"))


def test_shard_parsing():
    assert parse_shard("2/4") == (1, 4) and parse_shard(None) == (0, 1)
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(GcbenchError):
            parse_shard(bad)


def test_run_resume_shard_and_merge(spec, tmp_path):
    quiet = lambda m: None  # noqa: E731
    a, b = tmp_path / "a", tmp_path / "b"
    got_a = run_sweep(spec, a, (0, 2), log=quiet)
    got_b = run_sweep(spec, b, (1, 2), log=quiet)
    assert [p.name for p in got_a] == ["h0-light", "h5000-light"]
    assert [p.name for p in got_b] == ["h0-cyclic", "h5000-cyclic"]
    assert all(point_status(p) == "complete" for p in got_a + got_b)

    # resume: nothing measured twice; an interrupted point is kept aside and measured again
    before = (a / "h0-light" / "run.json").stat().st_mtime_ns
    meta = json.loads((a / "h5000-light" / "run.json").read_text())
    meta["status"] = "interrupted"
    (a / "h5000-light" / "run.json").write_text(json.dumps(meta))
    lines = []
    run_sweep(spec, a, (0, 2), log=lines.append)
    assert (a / "h0-light" / "run.json").stat().st_mtime_ns == before
    assert point_status(a / "h5000-light") == "complete"
    assert any("did not finish" in line for line in lines)
    assert any(p.name.startswith(".h5000-light.incomplete") for p in a.iterdir())

    merged = tmp_path / "merged"
    assert merge(merged, [a, b], log=quiet) == 4
    assert sorted(p.name for p in merged.iterdir() if p.is_dir()) == [
        "h0-cyclic", "h0-light", "h5000-cyclic", "h5000-light"]


def test_merge_refuses_other_grids_versions_and_machines(spec, tmp_path, write_scenario):
    quiet = lambda m: None  # noqa: E731
    a = tmp_path / "a"
    run_sweep(spec, a, (0, 4), log=quiet)
    other = load_sweep(write_scenario(SWEEP.replace("heap_objects = [0, 5000]", "heap_objects = [0]"), "o.toml"))
    b = tmp_path / "b"
    run_sweep(other, b, (0, 4), log=quiet)
    with pytest.raises(GcbenchError, match="different sweep grid"):
        merge(tmp_path / "m1", [a, b], log=quiet)
    for key, value, word in (("gcbench_version", "0.0.1", "gcbench_version"),
                             ("machine", {"hostname": "elsewhere"}, "another machine")):
        c = tmp_path / f"c-{key}"
        c.mkdir()
        m = json.loads((a / "sweep.json").read_text())
        m[key] = {**m["machine"], **value} if key == "machine" else value
        (c / "sweep.json").write_text(json.dumps(m))
        with pytest.raises(GcbenchError, match=word):
            merge(tmp_path / f"m-{key}", [a, c], log=quiet)
    # a sweep folder refuses a different grid run into it
    with pytest.raises(GcbenchError, match="another sweep"):
        run_sweep(other, a, (0, 1), log=quiet)
