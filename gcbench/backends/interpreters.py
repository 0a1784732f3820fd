"""The CPython interpreters of this machine, so the Python backends can run under each (`python@3.12`).

Found in four places: interpreters given with `--python PATH`, the harness's own, pyenv's versions
($PYENV_ROOT or ~/.pyenv, versions/*/bin/python3), and `python`, `python3`, `python3.N` on PATH (pyenv's
shims are skipped: they run one of pyenv's versions). `python@3.12` selects one given with --python if one
is 3.12, else the newest 3.12 release found; on a tie, the earlier place in that list.
Each is asked once, in a subprocess, what it is: exact version, build (free-threaded or not) and the GC
thresholds a fresh process starts with, i.e. what the server will see.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from gcbench.errors import GcbenchError

# What the built-in server and the GC probe need, checked on this machine's pyenv versions (2.7 to 3.13):
# 3.7.16 runs both (stdio and HTTP, every GC mode); 3.6.15 stops at `from __future__ import annotations`
# (SyntaxError), and it has no time.monotonic_ns or gc.freeze either.
SERVER_MIN_VERSION = (3, 7)
PROBE_TIMEOUT_S = 15.0

SOURCE_ORDER = ("--python", "harness", "pyenv", "PATH")  # preference among interpreters of one version
_PATH_NAME = re.compile(r"^python(3(\.\d+t?)?)?$")
_SPEC = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(t?)$")

# Runs under any CPython from 2.7 on (to say what an old one is) and prints one JSON line.
_PROBE_SCRIPT = r"""
import gc, json, platform, sys, sysconfig
impl = getattr(sys, "implementation", None)
gil = getattr(sys, "_is_gil_enabled", None)
print(json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "version": platform.python_version(),
    "version_info": list(sys.version_info[:3]) + [sys.version_info[3], sys.version_info[4]],
    "full_version": sys.version,
    "implementation": impl.name if impl else platform.python_implementation().lower(),
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "gil_enabled_at_start": gil() if gil else True,
    "gc_thresholds": list(gc.get_threshold()),
    "gc_freeze_count_at_start": gc.get_freeze_count() if hasattr(gc, "get_freeze_count") else None,
}))
"""

_RELEASE_ORDER = {"alpha": 0, "beta": 1, "candidate": 2, "final": 3}


@dataclass(frozen=True)
class Interpreter:
    """One CPython installation, as it describes itself."""

    executable: str  # what it reports as sys.executable: the path the server is started with
    source: str  # one of SOURCE_ORDER
    prefix: str
    version: str  # exact, e.g. "3.12.1" or "3.14.0rc1"
    version_info: tuple  # (major, minor, micro, releaselevel, serial)
    full_version: str
    implementation: str
    gil_disabled: bool  # a free-threaded build (sysconfig Py_GIL_DISABLED)
    gil_enabled_at_start: bool  # a free-threaded build can still run with the GIL (PYTHON_GIL=1)
    gc_thresholds: tuple
    gc_freeze_count_at_start: int | None

    @property
    def minor(self) -> tuple[int, int]:
        return (self.version_info[0], self.version_info[1])

    @property
    def short_name(self) -> str:
        """The version part of a backend name that selects this build: 3.12, or 3.13t when free-threaded."""
        return f"{self.version_info[0]}.{self.version_info[1]}" + ("t" if self.gil_disabled else "")

    @property
    def label(self) -> str:
        """The runtime version string of reports: `cpython 3.12.1`, `cpython 3.13.0 free-threaded`."""
        return f"{self.implementation} {self.version}" + (" free-threaded" if self.gil_disabled else "")

    def sort_key(self) -> tuple:
        major, minor, micro, level, serial = self.version_info
        return (major, minor, micro, _RELEASE_ORDER.get(level, -1), serial)

    def too_old_reason(self) -> str | None:
        if self.implementation != "cpython":
            return (f"{self.executable} is {self.implementation} {self.version}, not CPython: the GC probe needs "
                    "CPython's gc.callbacks")
        if self.minor < SERVER_MIN_VERSION:
            need = ".".join(map(str, SERVER_MIN_VERSION))
            return (f"CPython {self.version} ({self.executable}) is too old: the server and its GC probe need "
                    f"{need}+ (from __future__ import annotations, time.monotonic_ns, gc.freeze)")
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version_info"] = list(self.version_info)
        d["gc_thresholds"] = list(self.gc_thresholds)
        return d


@dataclass(frozen=True)
class VersionSpec:
    """The part after `@` in a backend name: 3.12, 3.12.1, 3.13t."""

    major: int
    minor: int
    micro: int | None
    free_threaded: bool
    text: str

    def matches(self, it: Interpreter) -> bool:
        return (it.minor == (self.major, self.minor) and it.gil_disabled == self.free_threaded
                and (self.micro is None or it.version_info[2] == self.micro))


def parse_spec(text: str, backend: str = "python") -> VersionSpec:
    m = _SPEC.match(text)
    if not m:
        raise GcbenchError(f"backend {backend}@{text}: expected a CPython version after '@', like {backend}@3.12, "
                           f"{backend}@3.12.1 or {backend}@3.13t (free-threaded)")
    major, minor, micro, t = m.groups()
    return VersionSpec(int(major), int(minor), int(micro) if micro else None, bool(t), text)


def probe(path: str, source: str) -> Interpreter:
    """Ask one interpreter what it is (raises GcbenchError naming the path when it cannot say)."""
    try:
        proc = subprocess.run([path, "-c", _PROBE_SCRIPT], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              cwd="/", stdin=subprocess.DEVNULL)  # cwd /: no local module shadows the stdlib
    except FileNotFoundError:
        raise GcbenchError(f"{path}: no such file") from None
    except PermissionError:
        raise GcbenchError(f"{path}: not executable") from None
    except OSError as e:
        raise GcbenchError(f"{path}: cannot run it ({e.strerror or e})") from None
    except subprocess.TimeoutExpired:
        raise GcbenchError(f"{path}: did not answer within {PROBE_TIMEOUT_S:g} s") from None
    lines = proc.stdout.strip().splitlines()
    try:
        if proc.returncode != 0:
            raise ValueError
        d = json.loads(lines[-1])
    except (ValueError, IndexError):
        detail = (proc.stderr.strip().splitlines() or [proc.stdout.strip()[:80]])[-1]
        raise GcbenchError(f"{path}: not a Python interpreter gcbench can ask its version "
                           f"(exit code {proc.returncode}: {detail})") from None
    return Interpreter(
        executable=os.path.abspath(d["executable"] or path), source=source, prefix=d["prefix"],
        version=d["version"], version_info=tuple(d["version_info"]), full_version=d["full_version"],
        implementation=d["implementation"], gil_disabled=d["gil_disabled"],
        gil_enabled_at_start=d["gil_enabled_at_start"], gc_thresholds=tuple(d["gc_thresholds"]),
        gc_freeze_count_at_start=d["gc_freeze_count_at_start"],
    )


def pyenv_root(environ=os.environ) -> Path:
    return Path(environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"))


def candidates(extra: tuple[str, ...] = (), environ=os.environ) -> list[tuple[str, str]]:
    """(path, source) of every interpreter to ask, most preferred first, one per file."""
    out: list[tuple[str, str]] = [(p, "--python") for p in extra]
    out.append((sys.executable, "harness"))
    root = pyenv_root(environ)
    for exe in sorted((root / "versions").glob("*/bin/python3")):
        out.append((str(exe), "pyenv"))
    shims = os.path.realpath(root / "shims")
    for folder in environ.get("PATH", "").split(os.pathsep):
        if not folder or os.path.realpath(folder) == shims:
            continue
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if _PATH_NAME.match(name) and os.path.isfile(path) and os.access(path, os.X_OK):
                out.append((path, "PATH"))
    seen: set[tuple[str, str]] = set()
    unique = []
    for path, source in out:
        key = _installation_key(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, source))
    return unique


def _installation_key(path: str) -> tuple[str, str]:
    """python, python3 and python3.12 of one folder are one interpreter; a venv's python (a link to its
    base interpreter) is another installation, told apart as Python itself does: by a pyvenv.cfg beside it."""
    folder = os.path.dirname(os.path.abspath(path))
    venv = next((d for d in (folder, os.path.dirname(folder)) if os.path.isfile(os.path.join(d, "pyvenv.cfg"))), "")
    return (os.path.realpath(path), os.path.realpath(venv) if venv else "")


def discover(extra: tuple[str, ...] = (), environ=os.environ) -> list[Interpreter]:
    """Every interpreter found, one per installation (prefix + executable), most preferred first.

    An interpreter given with --python that cannot be asked is an error; a discovered one is left out.
    """
    found = candidates(tuple(extra), environ)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: _try_probe(*c), found))
    interpreters: list[Interpreter] = []
    keys: set[tuple[str, str]] = set()
    for (_, source), res in zip(found, results, strict=True):
        if isinstance(res, GcbenchError):
            if source == "--python":
                raise GcbenchError(f"--python {res}")
            continue
        key = (os.path.realpath(res.prefix), os.path.realpath(res.executable))
        if key not in keys:
            keys.add(key)
            interpreters.append(res)
    return interpreters


def _try_probe(path: str, source: str) -> Interpreter | GcbenchError:
    try:
        return probe(path, source)
    except GcbenchError as e:
        return e


_cache: dict[tuple[str, ...], list[Interpreter]] = {}


def discovered(extra: tuple[str, ...] = ()) -> list[Interpreter]:
    """discover(), asked once per process for each set of --python paths."""
    key = tuple(extra)
    if key not in _cache:
        _cache[key] = discover(key)
    return _cache[key]


def choose(spec: VersionSpec, interpreters: list[Interpreter]) -> Interpreter | None:
    """The interpreter a version spec selects: one given with --python if any matches, else the newest release
    that matches; on a tie, the preferred source (SOURCE_ORDER)."""
    matching = [it for it in interpreters if spec.matches(it)]
    if not matching:
        return None
    return max(matching, key=lambda it: (it.source == "--python", it.sort_key(), -SOURCE_ORDER.index(it.source)))


def find(backend: str, spec: VersionSpec, interpreters: list[Interpreter]) -> Interpreter:
    chosen = choose(spec, interpreters)
    if chosen is not None:
        return chosen
    build = "free-threaded CPython" if spec.free_threaded else "CPython"
    seen = ", ".join(f"{it.version}{'t' if it.gil_disabled else ''} ({it.source})"
                     for it in sorted(interpreters, key=Interpreter.sort_key)) or "none"
    raise GcbenchError(f"backend {backend}@{spec.text}: no {build} {spec.text.rstrip('t')} found on PATH, in "
                       f"{pyenv_root()}/versions or given with --python (found: {seen}); "
                       f"add one with --python PATH")


def selecting_names(interpreters: list[Interpreter]) -> list[tuple[str, Interpreter]]:
    """For a listing: each interpreter with the shortest version name that selects it (3.12, else 3.12.1)."""
    out = []
    for it in sorted(interpreters, key=lambda i: (i.sort_key(), i.gil_disabled)):
        t = "t" if it.gil_disabled else ""
        short = it.short_name
        if choose(parse_spec(short), interpreters) == it:
            out.append((short, it))
            continue
        exact = f"{it.version_info[0]}.{it.version_info[1]}.{it.version_info[2]}{t}"
        if choose(parse_spec(exact), interpreters) == it:
            out.append((exact, it))
        else:
            out.append(("", it))  # same version as a preferred one: reachable only by giving it first
    return out


_harness: list[Interpreter | GcbenchError] = []


def harness() -> Interpreter | GcbenchError:
    """The harness's own interpreter as a fresh process of it starts (asked once per process)."""
    if not _harness:
        _harness.append(_try_probe(sys.executable, "harness"))
    return _harness[0]
