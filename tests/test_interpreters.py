"""The interpreter matrix: finding CPythons (pyenv, PATH, --python), `python@3.12` names, run.json records."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from gcbench.backends import get_backend, interpreter_backends, split_name
from gcbench.backends import interpreters as interp
from gcbench.backends.python_sdk import sdk_env
from gcbench.errors import GcbenchError

from .conftest import run_cli


def fake_python(path: Path, version: str = "3.98.1", gil_disabled: bool = False, impl: str = "cpython",
                counter: Path | None = None) -> Path:
    """A tiny stand-in interpreter: a shell script that answers the probe with fixed facts (and counts calls)."""
    major, minor, micro = (int(p) for p in version.split("."))
    info = {"executable": str(path), "prefix": str(path.parent.parent), "version": version,
            "version_info": [major, minor, micro, "final", 0], "full_version": f"{version} (fake)",
            "implementation": impl, "gil_disabled": gil_disabled, "gil_enabled_at_start": not gil_disabled,
            "gc_thresholds": [2000 if minor >= 13 else 700, 10, 10], "gc_freeze_count_at_start": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    count = f"echo x >> '{counter}'\n" if counter else ""
    path.write_text(f"#!/bin/sh\n{count}cat <<'EOF'\n{json.dumps(info)}\nEOF\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def machine(tmp_path):
    """A fake pyenv root (two versions, a shim) and a PATH folder (one interpreter under two names)."""
    root = tmp_path / "pyenv"
    counter = tmp_path / "asked"
    fake_python(root / "versions" / "3.98.1" / "bin" / "python3")
    fake_python(root / "versions" / "3.98.2" / "bin" / "python3", version="3.98.2")
    fake_python(root / "versions" / "3.6.15" / "bin" / "python3", version="3.6.15")
    fake_python(root / "shims" / "python3", version="3.97.0")  # a shim runs one of the versions: skipped
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir / "python3.96", version="3.96.0", counter=counter)
    (bin_dir / "python3").symlink_to(bin_dir / "python3.96")
    (bin_dir / "python3-config").write_text("#!/bin/sh\nexit 1\n")  # not an interpreter name
    (bin_dir / "python3-config").chmod(0o755)
    env = {"PYENV_ROOT": str(root), "PATH": os.pathsep.join([str(root / "shims"), str(bin_dir)])}
    return {"root": root, "bin": bin_dir, "env": env, "counter": counter, "tmp": tmp_path}


def test_discovery_finds_pyenv_versions_path_and_the_harness_but_not_shims(machine):
    found = interp.discover((), machine["env"])
    by_version = {it.version: it for it in found}
    assert {"3.98.1", "3.98.2", "3.6.15", "3.96.0"} <= set(by_version)
    assert "3.97.0" not in by_version  # the pyenv shim
    assert by_version["3.98.1"].source == "pyenv" and by_version["3.96.0"].source == "PATH"
    harness = [it for it in found if it.source == "harness"]
    assert len(harness) == 1 and harness[0].version == platform.python_version()
    assert by_version["3.98.2"].gc_thresholds == (2000, 10, 10)  # what it said it starts with
    # python3 and python3.96 are one file: asked once, listed once
    assert machine["counter"].read_text().count("x") == 1
    assert sum(it.version == "3.96.0" for it in found) == 1


def test_a_venv_python_is_its_own_installation_though_it_links_to_its_base(machine):
    base = machine["root"] / "versions" / "3.98.1" / "bin" / "python3"
    venv = machine["tmp"] / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = x\n")
    (venv / "bin" / "python").symlink_to(base)
    keys = {interp._installation_key(str(base)), interp._installation_key(str(venv / "bin" / "python"))}
    assert len(keys) == 2


def test_a_python_option_that_cannot_be_asked_is_a_one_line_error(machine):
    with pytest.raises(GcbenchError, match="--python .*/nope: no such file"):
        interp.discover((str(machine["tmp"] / "nope"),), machine["env"])
    liar = machine["tmp"] / "liar"
    liar.write_text("#!/bin/sh\necho hello\n")
    liar.chmod(0o755)
    with pytest.raises(GcbenchError, match="not a Python interpreter"):
        interp.discover((str(liar),), machine["env"])


def test_version_names_parse_and_bad_ones_say_what_is_expected():
    assert split_name("python@3.12") == ("python", "3.12")
    assert split_name("go") == ("go", None)
    spec = interp.parse_spec("3.13t")
    assert (spec.major, spec.minor, spec.micro, spec.free_threaded) == (3, 13, None, True)
    assert interp.parse_spec("3.12.1").micro == 1
    for bad in ("3", "3.x", "latest", "3.12.1.4", "3.12tt"):
        with pytest.raises(GcbenchError, match="expected a CPython version after '@'"):
            interp.parse_spec(bad)
    with pytest.raises(GcbenchError, match="go takes no @version"):
        get_backend("go@1.22")


def test_choice_prefers_python_option_then_newest_release_and_keeps_free_threaded_apart(machine):
    given = fake_python(machine["tmp"] / "given" / "bin" / "python3", version="3.98.1")
    ft = fake_python(machine["tmp"] / "ft" / "bin" / "python3", version="3.98.0", gil_disabled=True)
    found = interp.discover((), machine["env"])
    assert interp.choose(interp.parse_spec("3.98"), found).version == "3.98.2"  # the newest release
    assert interp.choose(interp.parse_spec("3.98.1"), found).version == "3.98.1"
    with_given = interp.discover((str(given), str(ft)), machine["env"])
    chosen = interp.choose(interp.parse_spec("3.98"), with_given)
    assert chosen.executable == str(given) and chosen.source == "--python"
    assert interp.choose(interp.parse_spec("3.98t"), with_given).executable == str(ft)
    assert interp.choose(interp.parse_spec("3.98t"), found) is None
    names = dict((n, it.version) for n, it in interp.selecting_names(found))
    assert names["3.98"] == "3.98.2" and names["3.98.1"] == "3.98.1"  # the shortest name that selects each


def test_unknown_version_names_what_was_found(machine):
    found = interp.discover((), machine["env"])
    with pytest.raises(GcbenchError) as e:
        interp.find("python", interp.parse_spec("3.99"), found)
    msg = str(e.value)
    assert "backend python@3.99: no CPython 3.99 found" in msg
    assert "3.98.2 (pyenv)" in msg and "3.96.0 (PATH)" in msg and "--python PATH" in msg


def test_python_at_version_launches_that_interpreter_and_old_ones_are_refused(machine):
    given = fake_python(machine["tmp"] / "given" / "bin" / "python3", version="3.95.4")
    backend = get_backend("python@3.95", (str(given),))
    assert backend.name == "python@3.95"
    assert backend.availability().version == "cpython 3.95.4"
    assert backend.launch_spec(None, None, None).argv[0] == str(given)
    assert backend.runtime_metadata()["interpreter"]["version"] == "3.95.4"
    old = fake_python(machine["tmp"] / "old" / "bin" / "python3", version="3.6.15")
    with pytest.raises(GcbenchError, match=r"python@3.6 is not available: CPython 3.6.15 .* too old: .* need 3.7\+"):
        get_backend("python@3.6", (str(old),))
    pypy = fake_python(machine["tmp"] / "pypy" / "bin" / "python3", version="3.94.0", impl="pypy")
    with pytest.raises(GcbenchError, match="pypy 3.94.0, not CPython"):
        get_backend("python@3.94", (str(pypy),))


def test_requires_python_check():
    assert sdk_env.version_satisfies((3, 10, 13), ">=3.10") is True
    assert sdk_env.version_satisfies((3, 9, 18), ">=3.10") is False
    assert sdk_env.version_satisfies((3, 9, 1), ">=3.9, !=3.9.0, !=3.9.1") is False
    assert sdk_env.version_satisfies((3, 6, 15), "!=3.0.*,!=3.6.*,>=2.7") is False
    assert sdk_env.version_satisfies((3, 11, 0), " >= 3.10") is True
    assert sdk_env.version_satisfies((3, 11, 0), ">=3.10; weird") is None


def _mcp():
    if sdk_env.sdk_pin() is None:
        pytest.skip("the MCP Python SDK is not installed in this environment")


def test_python_sdk_refuses_an_interpreter_the_sdk_does_not_support(machine):
    _mcp()
    old = fake_python(machine["tmp"] / "old" / "bin" / "python3", version="3.9.18")
    needs = sdk_env.sdk_requires_python()
    with pytest.raises(GcbenchError, match=rf"python-sdk@3.9 is not available: mcp .* requires Python {needs}"):
        get_backend("python-sdk@3.9", (str(old),))


def test_sdk_pins_follow_requested_extras_and_leave_out_what_the_interpreter_cannot_install(monkeypatch):
    _mcp()
    # mcp asks for pyjwt[crypto]: cryptography is installed for it and must be pinned too
    assert "cryptography" in sdk_env.pinned_closure()
    monkeypatch.setattr(sdk_env, "pinned_closure", lambda: {"mcp": "2.3.0", "starlette": "1.10.0", "idna": "3.20"})
    needs = {"mcp": ">=3.10", "starlette": ">=3.11", "idna": ">=3.9"}
    monkeypatch.setattr(sdk_env.importlib.metadata, "metadata", lambda name: {"Requires-Python": needs[name]})
    it310 = interp.Interpreter("/x/python3", "pyenv", "/x", "3.10.13", (3, 10, 13, "final", 0), "3.10.13", "cpython",
                               False, True, (700, 10, 10), 0)
    pins, dropped = sdk_env.pins_for(it310)
    assert pins == {"mcp": "2.3.0", "idna": "3.20"}
    assert dropped == {"starlette": "1.10.0 requires Python >=3.11"}


def test_python_sdk_under_the_harness_interpreter_uses_gcbench_own_environment():
    _mcp()
    harness = interp.harness()
    backend = get_backend(f"python-sdk@{harness.short_name}")
    if backend.interpreter.executable != harness.executable:
        pytest.skip(f"python-sdk@{harness.short_name} selects a newer {backend.interpreter.version} here")
    assert backend._own_env()  # no venv to build: the same interpreter and environment as `python-sdk`
    assert backend.launch_spec(None, None, None).argv[0] == sys.executable
    assert backend.runtime_metadata()["environment"] == "gcbench's own"


def test_backends_listing_names_every_interpreter_found(machine):
    given = fake_python(machine["tmp"] / "given" / "bin" / "python3", version="3.93.0")
    names = {b.name: b for b in interpreter_backends((str(given),))}
    assert "python@3.93" in names and "python-sdk@3.93" in names
    proc = run_cli("backends", "--python", str(given), timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("python@3.93 "))
    assert "available  cpython 3.93.0" in line and str(given) in line


def test_cli_unknown_version_is_one_line_exit_2(tmp_path):
    proc = run_cli("run", "-b", "python@3.99", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: backend python@3.99: no CPython 3.99 found")
    assert "found: " in lines[0] and "Traceback" not in proc.stderr


def _another_python() -> interp.Interpreter:
    """A real CPython of another minor version than the harness's, that the server supports."""
    mine = sys.version_info[:2]
    others = [it for it in interp.discovered() if it.minor != mine and not it.gil_disabled
              and it.too_old_reason() is None]
    if not others:
        pytest.skip("no other CPython found on PATH or in pyenv")
    return max(others, key=interp.Interpreter.sort_key)


def test_real_run_under_another_cpython_records_each_interpreter(tiny_scenario, tmp_path):
    other = _another_python()
    name = f"python@{other.short_name}"
    proc = run_cli("run", "-s", str(tiny_scenario), "-b", f"{name},python", "-g", "default", "--out", str(tmp_path),
                   "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert {r["backend"] for r in info["summary"]} == {name, "python"}
    meta = json.loads((Path(info["run"]) / "run.json").read_text())
    env = meta["environment"]
    assert env["backend_versions"][name] == f"cpython {other.version}"
    mine = env["backend_runtimes"]["python"]["interpreter"]
    theirs = env["backend_runtimes"][name]["interpreter"]
    assert theirs["version"] == other.version and theirs["executable"] == other.executable
    assert mine["version"] == platform.python_version() and mine["source"] == "harness"
    for rec in (mine, theirs):
        assert rec["gil_disabled"] in (True, False) and len(rec["gc_thresholds"]) == 3
    # the server really ran under it: its own probe says so
    by_backend = {c["backend"]: c for c in meta["cells"]}
    assert by_backend[name]["stats"]["python_version"] == other.version
    assert by_backend[name]["server_info"]["version"] == other.version
    assert by_backend["python"]["stats"]["python_version"] == platform.python_version()
    assert by_backend[name]["stats"]["gc_thresholds"] == theirs["gc_thresholds"]


@pytest.mark.slow
def test_python_sdk_venv_is_built_once_and_reused(tiny_scenario, tmp_path):
    """Installs the SDK with pip from the package registry the first time (about 20 s); set
    GCBENCH_TEST_OFFLINE=1 to skip it on a machine without one."""
    _mcp()
    if os.environ.get("GCBENCH_TEST_OFFLINE"):
        pytest.skip("GCBENCH_TEST_OFFLINE is set")
    supported = [it for it in interp.discovered() if it.minor != sys.version_info[:2] and not it.gil_disabled
                 and sdk_env.version_satisfies(tuple(it.version_info[:3]), sdk_env.sdk_requires_python())]
    if not supported:
        pytest.skip("no other CPython the SDK supports")
    other = max(supported, key=interp.Interpreter.sort_key)
    backend = get_backend(f"python-sdk@{other.short_name}")
    said: list[str] = []
    backend.prepare(said.append)
    folder = sdk_env.env_dir(backend.interpreter)
    marker = sdk_env.read_marker(folder)
    assert marker["packages"]["mcp"] == sdk_env.sdk_pin()
    said.clear()
    backend.prepare(said.append)
    assert said == []  # the second time: nothing to install
    proc = run_cli("run", "-s", str(tiny_scenario), "-b", backend.name, "-g", "default", "--out", str(tmp_path),
                   "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr
    meta = json.loads((Path(json.loads(proc.stdout)["run"]) / "run.json").read_text())
    rt = meta["environment"]["backend_runtimes"][backend.name]
    assert rt["interpreter"]["version"] == other.version and rt["environment"] == str(folder)
    assert rt["packages"]["mcp"] == sdk_env.sdk_pin()
    assert meta["cells"][0]["stats"]["python_version"] == other.version


def test_hiccup_meter_drains_under_a_cpython_older_than_3_10():
    """zip(strict=True) is 3.10+: under python@3.9 every --hiccup-us cell failed at its flush."""
    old = [it for it in interp.discovered() if (3, 7) <= it.minor < (3, 10)]
    if not old:
        pytest.skip("no CPython 3.7-3.9 found")
    probes = Path(interp.__file__).resolve().parent.parent / "probes"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from python_gc import HiccupMeter; "
            "m = HiccupMeter(1000); m._buf.extend((1, 2, 3, 4, 5)); print(m.drain(), list(m._buf))")
    out = subprocess.run([old[0].executable, "-c", code, str(probes)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[(1, 2), (3, 4)] [5]"  # pairs out, the unpaired half stays for the next drain
