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
                             ("machine", {"python_version": "3.0.1"}, "another machine .python_version")):
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


def _move_to_machine(folder, hostname):
    """A shard folder as another machine would have written it: its manifest and every point's run.json."""
    m = json.loads((folder / "sweep.json").read_text())
    m["machine"]["hostname"] = hostname
    for machine in m["machines"]:
        machine["hostname"] = hostname
    (folder / "sweep.json").write_text(json.dumps(m))
    for run in folder.glob("*/run.json"):
        meta = json.loads(run.read_text())
        meta["environment"]["hostname"] = hostname
        run.write_text(json.dumps(meta))


def test_merge_accepts_shards_from_two_machines_and_records_each_points_machine(spec, tmp_path):
    import shutil

    from gcbench.sweep import read_manifest

    quiet = lambda m: None  # noqa: E731
    a, b = tmp_path / "a", tmp_path / "b"
    run_sweep(spec, a, (0, 2), log=quiet)
    run_sweep(spec, b, (1, 2), log=quiet)
    assert read_manifest(a)["point_machines"] == {"h0-light": 0, "h5000-light": 0}  # a sweep names them too
    _move_to_machine(b, "ci-runner-2")
    merged = tmp_path / "merged"
    lines = []
    assert merge(merged, [a, b], log=lines.append) == 4
    m = read_manifest(merged)
    hosts = [x["hostname"] for x in m["machines"]]
    assert len(hosts) == 2 and "ci-runner-2" in hosts
    assert {p: hosts[i] for p, i in m["point_machines"].items()} == {
        "h0-light": hosts[1 - hosts.index("ci-runner-2")], "h5000-light": hosts[1 - hosts.index("ci-runner-2")],
        "h0-cyclic": "ci-runner-2", "h5000-cyclic": "ci-runner-2"}
    assert all(set(x) == {"hostname", "cpu_model", "cpu_count", "machine"} for x in m["machines"])
    assert "measured on 2 machines" in lines[-1]

    # the same point measured on two machines: refused in one line, before anything is copied
    c = tmp_path / "c"
    c.mkdir()
    shutil.copy(a / "sweep.json", c / "sweep.json")
    shutil.copytree(a / "h0-light", c / "h0-light")
    _move_to_machine(c, "ci-runner-3")
    target = tmp_path / "m2"
    with pytest.raises(GcbenchError, match=r"point h0-light was also measured on another machine") as e:
        merge(target, [a, c], log=quiet)
    assert "\n" not in str(e.value) and "ci-runner-3" in str(e.value)
    assert not [p for p in target.iterdir() if p.is_dir()]
    # and into a merged folder that already holds it from another machine
    with pytest.raises(GcbenchError, match="measured on another machine"):
        merge(merged, [c], log=quiet)
    # the same point from the same machine twice: the first is kept, as before
    assert merge(tmp_path / "m3", [a, a], log=lines.append) == 2 and "kept the first one" in lines[-2]
