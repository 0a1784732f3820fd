"""Faults of the result store (issue 16): `-o` over devices, FIFOs and symlinks; a full disk; a kill between
a cell's writes; two sweeps in one folder; a merge killed mid-copy; damaged sweep metadata; the text report
of a cut-short run.

The disk-full tests mount a small tmpfs (root only; skipped where mounting is not allowed).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import gcbench
from gcbench.errors import GcbenchError
from gcbench.report import build, export, report_document

from .conftest import REPO
from .faultkit import FAULT_SCENARIO, LiveGcbench, assert_no_orphans, new_marker, only_run_folder, run_gcbench
from .synthetic import constant_cell, write_run

OUTPUT_FAULT_SERVER = Path(__file__).resolve().parent / "fault_servers" / "output_fault_server.py"
DATA = Path(__file__).resolve().parent / "data"
MIB = 1 << 20


def output_fault_cmd(mode: str, k: int = 0) -> str:
    return shlex.join([sys.executable, str(OUTPUT_FAULT_SERVER), mode, str(k)])


@pytest.fixture
def scenario(tmp_path) -> Path:
    p = tmp_path / "faults.toml"
    p.write_text(FAULT_SCENARIO)  # 3 chains x 5 calls, no warm-up
    return p


@pytest.fixture
def synthetic_run(tmp_path) -> Path:
    return write_run(tmp_path / "runs", [constant_cell("python", "default", 2_000_000)])


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [ln for ln in stderr.splitlines() if ln.startswith("ERROR:")]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if re.search(r"\.tmp\d+$|\.merging-", p.name)]


def execute_in_process(scenario: Path, out: Path, server_cmd: str | None = None, backends=("python",), **kw):
    from gcbench.backends import select_backends
    from gcbench.gcmode import parse_gc_modes
    from gcbench.runner import RunConfig, execute
    from gcbench.scenario import load_scenario

    config = RunConfig(scenario=load_scenario(str(scenario)), gc_modes=parse_gc_modes("default"), out_dir=out,
                       backends=select_backends(list(backends) or None, server_cmd or "", "work", None))
    return execute(config, log=lambda m: None, **kw)


# ---------------------------------------------------------------------------------------------- 1. -o PATH


def test_report_to_a_symlink_writes_its_target_and_keeps_the_link(synthetic_run, tmp_path):
    target = tmp_path / "reports" / "real.txt"
    target.parent.mkdir()
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "latest.txt"
    link.symlink_to(target)
    doc = export(report_document(build(synthetic_run), "text"), "text", link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == doc and "dead/chain" in doc
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file keeps its permissions


def test_report_to_a_fifo_is_written_through(synthetic_run, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there: the writer's open does not block
    got = bytearray()

    def read() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if chunk:
                got.extend(chunk)
            elif got:
                return  # EOF after data: the writer closed
            else:
                time.sleep(0.01)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        doc = export(report_document(build(synthetic_run), "md"), "md", fifo)
    finally:
        reader.join()
        os.close(fd)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    assert got.decode() == doc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "runs"]  # no figure files next to a FIFO


def test_report_to_a_character_device_is_written_through(synthetic_run, tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("cannot create a device node here (not root)")
    try:
        export(report_document(build(synthetic_run), "text"), "text", dev)
    except GcbenchError as e:
        if "Permission denied" in str(e):
            pytest.skip("devices cannot be opened on this file system (nodev)")
        raise
    st_ = os.lstat(dev)
    assert stat.S_ISCHR(st_.st_mode) and st_.st_rdev == os.makedev(1, 3)


def test_report_to_a_full_device_is_one_error_line(synthetic_run, tmp_path):
    dev = tmp_path / "full"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is: every write is ENOSPC
    except PermissionError:
        pytest.skip("cannot create a device node here (not root)")
    proc = run_gcbench(["report", str(synthetic_run), "-o", str(dev)], new_marker())
    if "Permission denied" in proc.stderr:
        pytest.skip("devices cannot be opened on this file system (nodev)")
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_report_to_dev_stdout_appends_to_what_the_shell_opened(synthetic_run, tmp_path):
    """`gcbench report RUN -o LINK >> log`, LINK -> /proc/self/fd/1 (what /dev/stdout is): the report is
    appended to the log through gcbench's own stdout; the link and the log's earlier content stay."""
    link = tmp_path / "stdout-link"
    link.symlink_to("/proc/self/fd/1")
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    with open(log, "a") as out:
        proc = subprocess.run([sys.executable, "-m", "gcbench", "report", str(synthetic_run), "-o", str(link)],
                              stdout=out, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink()
    text = log.read_text()
    assert text.startswith("earlier line\n") and "dead/chain" in text


def test_out_help_says_what_happens_to_the_path():
    from click.testing import CliRunner

    from gcbench.cli import main

    for cmd in ("report", "study"):
        text = " ".join(CliRunner().invoke(main, [cmd, "--help"]).output.split())
        assert "symlink is followed" in text and "character device or FIFO" in text, text


# ---------------------------------------------------------------------------------------------- 3. disk full


@pytest.fixture
def small_disk(tmp_path):
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"disk{len(mounts)}"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_a_full_disk_at_the_start_is_one_error_line(small_disk, scenario):
    disk = small_disk("1m")
    fill(disk)
    marker = new_marker()
    proc = run_gcbench(["run", "-s", str(scenario), "-b", "python", "-g", "default", "-o", str(disk / "runs")],
                       marker)
    assert_no_orphans(marker)
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(disk / "runs") in lines[0] and "No space left on device" in lines[0]
    assert not temp_files(disk)
    assert not (disk / "runs").exists() or list((disk / "runs").iterdir()) == []  # no half-made run folder


def test_a_disk_that_fills_mid_run_keeps_earlier_cells(small_disk, scenario):
    """The second cell's server floods stderr until the disk is full: one ERROR line, exit 2, the first cell
    intact and loadable, no temp file left."""
    disk = small_disk("1m")
    marker = new_marker()
    proc = run_gcbench(["run", "-s", str(scenario), "-b", "python", "--server-cmd", output_fault_cmd("stderr-flood"),
                        "-g", "default", "-o", str(disk / "runs")], marker, FLOOD_BYTES=str(MIB))
    assert_no_orphans(marker)
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    assert not temp_files(disk)
    run = gcbench.load(only_run_folder(disk / "runs"))
    assert [(c["backend"], c["status"]) for c in run.meta["cells"]] == [("python", "ok")]
    assert len(run.calls) == 15 and set(run.calls["backend"]) == {"python"}
    assert run.meta["status"] in ("running", "aborted")  # aborted when run.json still fitted


def test_a_write_error_marks_the_run_aborted_where_it_can(tmp_path, scenario, monkeypatch):
    """The tables of the second cell hit ENOSPC but run.json still fits: the run is marked aborted with the
    reason, the first cell is intact and no temp file is left."""
    import pandas as pd

    real = pd.DataFrame.to_parquet
    armed = []

    def to_parquet(self, path, *a, **kw):
        if armed:
            Path(path).write_bytes(b"PAR1 half")  # what the failed write leaves in its temp file
            raise OSError(f"[Errno {errno.ENOSPC}] Error writing bytes to file. Detail: [errno {errno.ENOSPC}] "
                          f"No space left on device")  # how pyarrow says it: no errno attribute
        return real(self, path, *a, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    with pytest.raises(GcbenchError, match=r"calls\.parquet: cannot write: No space left on device"):
        execute_in_process(scenario, tmp_path / "runs", backends=("python", "inproc"), on_cell=armed.append)
    monkeypatch.undo()
    run = gcbench.load(only_run_folder(tmp_path / "runs"))
    assert run.meta["status"] == "aborted" and "No space left on device" in run.meta["error"]
    assert [c["backend"] for c in run.meta["cells"]] == ["python"] and len(run.calls) == 15
    assert not temp_files(tmp_path)


SWEEP = """
name = "disk-sweep"
[chain]
calls = 3
chains = 2
warmup_calls = 1
[work]
alloc_objects = 100
[sweep]
backends = ["python"]
heap_objects = [0, 1000]
reps = 1
[sweep.gc_modes]
python = ["default"]
"""


def test_a_sweep_stopped_by_a_full_disk_resumes_once_space_is_freed(small_disk, write_scenario):
    from gcbench.sweep import load_sweep, read_manifest, run_sweep

    spec = load_sweep(write_scenario(SWEEP, "sweep.toml"))
    disk = small_disk("2m")
    folder = disk / "sweep"
    filler = []

    def log(msg: str) -> None:
        if msg.startswith("point 2/2") and not filler:
            filler.append(fill(disk))  # the first point is complete; the second finds no space

    with pytest.raises(GcbenchError, match="No space left on device"):
        run_sweep(spec, folder, log=log)
    assert not temp_files(disk) and read_manifest(folder)["name"] == "disk-sweep"
    filler[0].unlink()
    said = []
    run_sweep(spec, folder, log=said.append)
    assert any("1 already measured, 1 to run" in m for m in said), said
    for point in ("h0-base", "h1000-base"):
        assert gcbench.load(folder / point).meta["status"] == "complete"


# ---------------------------------------------------------------------------------------------- 4. commit order


KILL_BETWEEN_WRITES = """
import os, sys
import pandas as pd
from gcbench import store
from tests.synthetic import constant_cell, _cell_frames
w = store.RunWriter(__import__("pathlib").Path(sys.argv[1]), "cut", {"scenario": {}, "config": {}, "environment": {}})
for rep in (0, 1):
    calls, events, _ = _cell_frames(constant_cell("python", "default", 1000, pauses=[]), 10**9 * (rep + 1))
    if rep == 1:  # killed after this cell's tables are written, before its run.json
        store.atomic_write_json = lambda path, doc: os._exit(9)
    w.add_cell({"backend": "python", "gc_mode": "default", "rep": rep, "status": "ok"}, calls.assign(rep=rep),
               pd.DataFrame({"backend": ["python"], "gc_mode": ["default"], "rep": [rep], "source": ["server"],
                             "type": ["gc"], "runtime": ["python"], "kind": ["gen0"], "generation": [0],
                             "start_ns": [1], "end_ns": [2], "duration_ns": [1], "collected": [0],
                             "measured": [True]}))
"""


def test_a_kill_between_a_cells_tables_and_run_json_leaves_no_unlisted_rows(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN_WRITES, str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    folder = tmp_path / "cut"
    on_disk = __import__("pandas").read_parquet(folder / "calls.parquet")
    assert set(on_disk["rep"]) == {0, 1}  # the fault really struck between the writes
    run = gcbench.load(folder)
    assert [c["rep"] for c in run.meta["cells"]] == [0]
    assert set(run.calls["rep"]) == {0} and set(run.gc_events["rep"]) == {0}
    assert run.meta["uncommitted_rows"] == {"calls.parquet": 20, "gc_events.parquet": 1}


# ---------------------------------------------------------------------------------------------- 5. sweep lock


def test_a_second_sweep_into_a_live_sweep_folder_is_refused(tmp_path, write_scenario):
    sweep = write_scenario(SWEEP.replace("warmup_calls = 1", "warmup_calls = 1\nthink_ms = 400"), "slow.toml")
    folder = tmp_path / "sweep"
    marker = new_marker()
    first = LiveGcbench(["sweep", str(sweep), "-o", str(folder)], marker)
    try:
        first.wait_for("point 1/2")
        second = run_gcbench(["sweep", str(sweep), "-o", str(folder)], marker)
        lines = error_lines(second.stderr)
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"another gcbench (pid {first.proc.pid}) is writing into this sweep folder" in lines[0]
    finally:
        assert first.finish(60) == 0, first.stderr
    assert_no_orphans(marker)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == \
        ["h0-base", "h1000-base", "sweep.json"]
    for point in ("h0-base", "h1000-base"):
        assert gcbench.load(folder / point).meta["status"] == "complete"


# ---------------------------------------------------------------------------------------------- 6. merge


KILL_MID_COPY = """
import os, shutil, sys
from pathlib import Path
from gcbench.sweep import merge
copied = []
real = shutil.copyfile
def copyfile(src, dst, **kw):
    if len(copied) == 2:
        os._exit(9)
    copied.append(src)
    return real(src, dst, **kw)
shutil.copyfile = copyfile
merge(Path(sys.argv[1]), [Path(sys.argv[2])], log=lambda m: None)
"""


def test_a_merge_killed_mid_copy_leaves_no_partial_point(tmp_path):
    from gcbench.sweep import merge

    shard = tmp_path / "shard"
    shutil.copytree(DATA / "sweep-format-1", shard)
    out = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "-c", KILL_MID_COPY, str(out), str(shard)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert not (out / "h0-base").exists()
    assert merge(out, [shard], log=lambda m: None) == 1
    assert not temp_files(out)
    merged, original = gcbench.load(out / "h0-base"), gcbench.load(shard / "h0-base")
    assert merged.calls.equals(original.calls) and merged.meta == original.meta


# ---------------------------------------------------------------------------------------------- 13. damaged


@pytest.fixture(scope="module")
def measured_sweep(tmp_path_factory):
    from gcbench.sweep import load_sweep, run_sweep

    root = tmp_path_factory.mktemp("measured")
    (root / "sweep.toml").write_text(SWEEP)
    run_sweep(load_sweep(root / "sweep.toml"), root / "sweep", log=lambda m: None)
    return root


MANIFEST_DAMAGE = {
    "no-grid-hash": ('{"kind": "gcbench-sweep", "schema_version": 1, "name": "x"}', r"field 'grid_hash' is missing"),
    "wrong-types": ('{"kind": "gcbench-sweep", "schema_version": 1, "name": "x", "grid_hash": 5, "grid": {}, '
                    '"gcbench_version": "1", "machine": []}', r"field 'grid_hash' should be a string, not a number"),
}


@pytest.mark.parametrize("damage", [*MANIFEST_DAMAGE, "point-run-json"])
@pytest.mark.parametrize("command", ["study", "sweep", "merge"])
def test_damaged_sweep_metadata_is_one_error_line(measured_sweep, tmp_path, damage, command):
    folder = tmp_path / "sweep"
    shutil.copytree(measured_sweep / "sweep", folder)
    if damage == "point-run-json":
        (folder / "h0-base" / "run.json").write_text("[1]")
        expected = r"h0-base/run\.json: not a gcbench run\.json"
    else:
        (folder / "sweep.json").write_text(MANIFEST_DAMAGE[damage][0])
        expected = MANIFEST_DAMAGE[damage][1]
    args = {"study": ["study", str(folder)], "sweep": ["sweep", str(measured_sweep / "sweep.toml"), "-o", str(folder)],
            "merge": ["merge", str(tmp_path / "merged"), str(folder)]}[command]
    proc = run_gcbench(args, new_marker())
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert re.search(expected, lines[0]), lines[0]


# ---------------------------------------------------------------------------------------------- 16. text report


def test_the_text_report_of_a_run_cut_short_says_it_is_incomplete(synthetic_run):
    assert "INCOMPLETE" not in export(report_document(build(synthetic_run), "text"), "text")
    meta = json.loads((synthetic_run / "run.json").read_text())
    meta["status"] = "running"  # what a SIGKILL leaves
    (synthetic_run / "run.json").write_text(json.dumps(meta))
    text = export(report_document(build(synthetic_run), "text"), "text")
    assert text.startswith("INCOMPLETE RUN: run.json still says 'running': gcbench was killed")
