"""Backends declared as data: GC modes, toolchain probes, the cache installer, discovery by entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcbench.backends import all_backends
from gcbench.backends.node import NodeBackend
from gcbench.errors import GcbenchError
from gcbench.gcmode import MODES, GcMode

REPO = Path(__file__).resolve().parents[1]


def test_node_skips_epsilon_with_a_reason():
    """Node answered None for epsilon (a JVM mode), so the cell ran and server.js failed it with
    "unknown GC mode": it must be skipped with a reason instead."""
    reason = NodeBackend().unsupported_reason(GcMode("epsilon"))
    assert reason and "not a Node GC setting" in reason and "semi:N" in reason


@pytest.mark.parametrize("backend", all_backends(), ids=lambda b: b.name)
def test_every_mode_is_declared_or_refused(backend):
    """A mode a backend does not declare is refused with a reason, never run: the declared tuple is the rule."""
    assert backend.gc_modes is not None and "default" in backend.gc_modes
    for name in MODES:
        if name in backend.gc_modes:
            continue
        assert backend.unsupported_reason(GcMode(name)), f"{backend.name} would run {name}"


def _plugin(tmp_path, body: str, entry: str = "toy = toyplug:ToyBackend"):
    """An installed package on a path: toyplug/ and its dist-info declaring one gcbench.backends entry point."""
    (tmp_path / "toyplug").mkdir(parents=True)
    (tmp_path / "toyplug" / "__init__.py").write_text(body)
    info = tmp_path / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gcbench.backends]\n{entry}\n")
    return tmp_path


TOY = '''
from gcbench.backends.python import PythonBackend


class ToyBackend(PythonBackend):
    """The built-in Python server under another name: what a user's package would declare."""
    name = "toy"
    description = "a backend from a user's package"
    takes_interpreter = False
    gc_modes = ("default", "disabled")
'''


def _gcbench(tmp_path, *args: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(path or tmp_path), str(REPO),
                                                                   os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "gcbench", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)


def test_a_package_adds_a_backend_through_the_entry_point_group(tmp_path):
    """A package that declares `toy` in the gcbench.backends group: listed by `gcbench backends`, run by name,
    and its declared GC modes are the ones it runs."""
    plug = _plugin(tmp_path / "site", TOY)
    listed = _gcbench(tmp_path, "backends", path=plug)
    assert listed.returncode == 0, listed.stderr
    toy = [ln for ln in listed.stdout.splitlines() if ln.startswith("toy ")]
    assert toy and "available" in toy[0] and "a backend from a user's package" in toy[0]
    out = tmp_path / "runs"
    run = _gcbench(tmp_path, "run", "-b", "toy", "-g", "default,freeze", "--chains", "1", "--calls", "5",
                   "--out", str(out), "--json", path=plug)
    assert run.returncode == 0, run.stderr
    meta = json.loads((Path(json.loads(run.stdout)["run"]) / "run.json").read_text())
    cells = {(c["backend"], c["gc_mode"]): c["status"] for c in meta["cells"]}
    assert cells[("toy", "default")] == "ok"
    assert cells[("toy", "freeze")] == "skipped"  # not declared by the toy backend


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path):
    plug = _plugin(tmp_path / "site", "raise ImportError('no such thing')\n")
    proc = _gcbench(tmp_path, "backends", path=plug)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "toy = toyplug:ToyBackend" in proc.stderr and "toyplug" in proc.stderr and "no such thing" in proc.stderr


def test_an_entry_point_cannot_take_a_builtin_name(tmp_path, monkeypatch):
    import importlib.metadata

    from gcbench.backends import get_backend

    fake = [importlib.metadata.EntryPoint(name="go", value="toyplug:ToyBackend", group="gcbench.backends")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: fake)
    with pytest.raises(GcbenchError, match="'go' is a built-in backend"):
        get_backend("python")


def _script(path: Path, body: str) -> str:
    path.write_text("#!" + sys.executable + "\n" + body)
    path.chmod(0o755)
    return str(path)


def test_every_toolchain_failure_is_one_reason_with_the_fix(tmp_path):
    from gcbench.backends.toolchain import probe

    pattern, hint = r"tool (\d+)\.(\d+)", "install tool 2.1+"
    say = lambda name, body: _script(tmp_path / name, body)  # noqa: E731
    ok = probe(say("ok", "print('tool 2.3.1 linux')"), [], pattern, (2, 1), hint=hint)
    assert ok.ok and ok.version == "tool 2.3"
    old = probe(say("old", "print('tool 2.0.9')"), [], pattern, (2, 1), hint=hint)
    assert not old.ok and old.reason == "tool 2.0 is too old (needs 2.1+); install tool 2.1+"
    broken = probe(say("broken", "import sys; sys.exit('cannot start: no license')"), ["--version"], pattern,
                   (2, 1), hint=hint)
    assert not broken.ok and "did not say its version (exit code 1: cannot start: no license)" in broken.reason
    mute = probe(say("mute", "print('hello')"), [], pattern, hint=hint)
    assert not mute.ok and mute.reason.endswith("; install tool 2.1+")
    gone = probe("no-such-tool-gcbench", [], pattern, hint=hint, what="tool toolchain")
    assert gone.reason == "no tool toolchain on PATH; install tool 2.1+"
    stderr = probe(say("err", "import sys; print('tool 3.0', file=sys.stderr)"), [], pattern, (2, 1), hint=hint)
    assert stderr.ok and stderr.version == "tool 3.0"  # java -version writes to stderr


_PDEATHSIG = "import ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s), 0, 0, 0); "


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_build_step_dies_with_gcbench(tmp_path, monkeypatch):
    """Build steps (compilers, npm ci, pip) ran without PR_SET_PDEATHSIG: a killed gcbench left them running."""
    from gcbench.backends.build import cached_build

    monkeypatch.setenv("GCBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "main.txt"
    src.write_text("x")
    code = _PDEATHSIG + "import sys, os; open(sys.argv[1], 'w').write(str(s.value)); os.chmod(sys.argv[1], 0o755)"
    built = cached_build("probe", [src], "v1", lambda work, out: [sys.executable, "-c", code, str(out)], lambda m: None)
    assert built.read_text() == "9"  # SIGKILL


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_hiccup_control_process_dies_with_gcbench(tmp_path):
    """The control process was started without PR_SET_PDEATHSIG (the servers had it): a SIGKILLed gcbench left it."""
    from gcbench.hiccup import ControlProcess

    fake = _script(tmp_path / "control", _PDEATHSIG + "import sys; print('pdeathsig', s.value, file=sys.stderr, "
                                                      "flush=True); sys.stdin.read()")
    ctl = ControlProcess(Path(fake), tmp_path / "c.jsonl", tmp_path / "c.err", hiccup_us=1000)
    assert ctl.stop() == 0
    assert (tmp_path / "c.err").read_text().split() == ["pdeathsig", "9"]


def test_the_cache_installer_puts_a_folder_in_place_whole_or_not_at_all(tmp_path):
    from gcbench.backends.build import install_into_cache

    target = tmp_path / "cache" / "thing"

    def failing(work: Path) -> None:
        (work / "half").write_text("x")
        raise GcbenchError("npm ci failed")

    with pytest.raises(GcbenchError):
        install_into_cache(target, failing, lambda t: (t / "done").is_file())
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half folder, no temporary left

    def racing(work: Path) -> None:  # another run finishes first, while this one fills its own copy
        (work / "done").write_text("mine")
        target.mkdir()
        (target / "done").write_text("theirs")

    assert install_into_cache(target, racing, lambda t: (t / "done").is_file()) == target
    assert (target / "done").read_text() == "theirs" and [p.name for p in target.parent.iterdir()] == ["thing"]
