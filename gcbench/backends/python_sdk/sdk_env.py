"""The MCP Python SDK (`mcp`) for another CPython: a venv built once with pip into the gcbench cache.

The SDK version is the one installed in gcbench's own environment, and every package of its dependency
tree that is installed there is pinned to the same version (a pip constraints file), so `python-sdk@3.12`
and `python-sdk` run the same SDK code and differ in the interpreter. What pip picks for the rest (a
backport an older Python needs) is recorded with the venv. The folder is
<cache>/python-sdk/<version>-<hash of interpreter, SDK pin and constraints>/, moved into place complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from pathlib import Path

from gcbench.backends.build import cache_dir, install_into_cache, run_install_step
from gcbench.backends.interpreters import Interpreter

SDK_DIST = "mcp"
DONE_MARKER = "gcbench-sdk.json"  # written last: a folder with it is complete
PIP_TIMEOUT_S = 900
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")  # name[extra,...]
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<|~=)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\s*$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sdk_pin() -> str | None:
    """The SDK version of gcbench's own environment (None: not installed there)."""
    try:
        return importlib.metadata.version(SDK_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None


def sdk_requires_python() -> str:
    try:
        return importlib.metadata.metadata(SDK_DIST).get("Requires-Python") or ""
    except importlib.metadata.PackageNotFoundError:
        return ""


def version_satisfies(version: tuple[int, ...], spec: str) -> bool | None:
    """Whether a Python version meets a Requires-Python such as '>=3.10' or '>=3.9,!=3.9.0' (None: cannot tell).

    Small on purpose (gcbench does not depend on `packaging`); pip has the last word when it installs.
    """
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = _CLAUSE.match(clause)
        if not m:
            return None
        op, text, star = m.groups()
        want = tuple(int(p) for p in text.split("."))
        have = tuple(version[: len(want)]) if star or op in ("==", "!=") else tuple(version)
        ok = {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want, "==": have == want,
              "!=": have != want, "~=": have >= want and have[: len(want) - 1] == want[:-1]}[op]
        if not ok:
            return False
    return True


def pinned_closure() -> dict[str, str]:
    """Name -> version of the SDK and every installed package its requirements reach, with the extras they
    ask for (mcp needs pyjwt[crypto]: cryptography is pinned too); other extras are left out."""
    pins: dict[str, str] = {}
    extras_done: set[tuple[str, str]] = set()
    todo: list[tuple[str, frozenset]] = [(SDK_DIST, frozenset())]
    while todo:
        raw, extras = todo.pop()
        name = _canonical(raw)
        if name in pins and all((name, e) in extras_done for e in extras):
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # needed only on another platform or Python: pip picks it for the venv
        pins[name] = dist.version
        extras_done.update((name, e) for e in extras)
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            m = _REQUIREMENT.match(spec)
            wanted = set(_EXTRA_MARKER.findall(marker))  # `extra == "crypto"`: only when that extra is asked
            if m and (not wanted or wanted & extras):
                todo.append((m.group(1), frozenset(e.strip() for e in (m.group(2) or "").split(",") if e.strip())))
    return dict(sorted(pins.items()))


def pins_for(interpreter: Interpreter) -> tuple[dict[str, str], dict[str, str]]:
    """(pins, left out): the harness's versions that this interpreter can install; those whose Requires-Python
    excludes it (starlette 1.10.0 needs 3.11: a 3.10 venv gets an older one) are left to pip and recorded."""
    pins, dropped = {}, {}
    version = tuple(interpreter.version_info[:3])
    for name, v in pinned_closure().items():
        try:
            needs = importlib.metadata.metadata(name).get("Requires-Python") or ""
        except importlib.metadata.PackageNotFoundError:
            needs = ""
        if name != SDK_DIST and needs and version_satisfies(version, needs) is False:
            dropped[name] = f"{v} requires Python {needs.strip()}"
        else:
            pins[name] = v
    return pins, dropped


def env_dir(interpreter: Interpreter, pins: dict[str, str] | None = None) -> Path:
    """The venv folder of this interpreter and these pins (default: pins_for it)."""
    if pins is None:
        pins = pins_for(interpreter)[0]
    h = hashlib.sha256(json.dumps([os.path.realpath(interpreter.executable), interpreter.prefix,
                                   interpreter.full_version, interpreter.gil_disabled, pins]).encode())
    return cache_dir() / "python-sdk" / f"{interpreter.version}{'t' if interpreter.gil_disabled else ''}-{h.hexdigest()[:12]}"


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _run(argv: list[str], what: str, cwd: Path) -> str:
    return run_install_step(argv, what, cwd, PIP_TIMEOUT_S)


def ensure_env(interpreter: Interpreter, log) -> Path:
    """Build the venv of this interpreter and SDK pin once; return its folder."""
    pins, dropped = pins_for(interpreter)
    target = env_dir(interpreter, pins)
    if read_marker(target) is not None:
        return target
    log(f"gcbench: installing {SDK_DIST} {pins.get(SDK_DIST)} for CPython {interpreter.version} with pip into "
        f"{target} (once; needs the package registry)")

    def fill(work: Path) -> None:
        what = f"building the python-sdk venv for {interpreter.executable}"
        _run([interpreter.executable, "-m", "venv", str(work)], f"{what}: python -m venv", work)
        constraints = work / "gcbench-constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        py = str(venv_python(work))
        _run([py, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--no-warn-script-location",
              "-c", str(constraints), f"{SDK_DIST}=={pins[SDK_DIST]}"], f"{what}: pip install", work)
        frozen = _run([py, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                      f"{what}: pip list", work)
        packages = {_canonical(p["name"]): p["version"] for p in json.loads(frozen)}
        marker = {"sdk": SDK_DIST, "sdk_version": pins[SDK_DIST], "interpreter": interpreter.executable,
                  "interpreter_version": interpreter.version, "pinned_from_harness": pins,
                  "not_pinned": dropped,
                  "packages": dict(sorted(packages.items()))}
        (work / DONE_MARKER).write_text(json.dumps(marker, indent=1) + "\n")

    # a venv may move in one rename: its python finds pyvenv.cfg beside itself
    install_into_cache(target, fill, lambda t: read_marker(t) is not None)
    return target
