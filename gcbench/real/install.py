"""A real server's pinned package, installed once into gcbench's cache by its name, the way node-sdk is.

npm packages: `npm install PACKAGE@VERSION` into <cache>/real/<name>-<version>/ (its package-lock.json records
every transitive version it got). PyPI packages: a venv of the running Python at
<cache>/real/<name>-<version>-py<X.Y.Z>-<hash of the interpreter>/ with `pip install PACKAGE==VERSION`.
Either folder is moved into place complete (build.install_into_cache); a marker written last says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from gcbench.backends.base import Availability
from gcbench.backends.build import cache_dir, install_into_cache, run_install_step
from gcbench.errors import GcbenchError
from gcbench.real import RealServer

DONE_MARKER = "gcbench-real.json"  # written last: a folder with it is complete
INSTALL_TIMEOUT_S = 600


def install_dir(server: RealServer) -> Path:
    base = f"{server.name}-{server.version}"
    if server.registry == "pypi":
        h = hashlib.sha256(json.dumps([os.path.realpath(sys.executable), sys.prefix, sys.version]).encode())
        base += f"-py{platform.python_version()}-{h.hexdigest()[:10]}"
    return cache_dir() / "real" / base


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_installed(server: RealServer) -> bool:
    return read_marker(install_dir(server)) is not None


def command(server: RealServer, folder: Path) -> list[str]:
    """The argv that starts the installed server (without its fixture's arguments)."""
    if server.registry == "npm":
        script = folder / "node_modules" / Path(*server.package.split("/")) / server.entry
        return [shutil.which("node") or "node", str(script)]
    return [str(folder / "bin" / "python"), "-m", server.entry]


def tools_available(server: RealServer) -> Availability:
    """What installing and running it needs (node and npm, or the running Python's venv), without installing."""
    if server.registry == "npm":
        from gcbench.backends.node import node_availability
        from gcbench.backends.node_sdk import npm_availability

        node = node_availability()
        if not node.ok:
            return node
        if not is_installed(server):
            npm = npm_availability()
            if not npm.ok:
                return Availability(False, version=node.version, reason=npm.reason)
        return Availability(True, version=node.version)
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401  (Debian ships it apart: python3-venv)
    except ImportError:
        return Availability(False, reason=f"this Python ({sys.executable}) cannot make a venv (no venv/ensurepip "
                                          "module; on Debian: apt-get install python3-venv)")
    return Availability(True, version=f"CPython {platform.python_version()}")


def _run(argv: list[str], what: str, cwd: Path) -> str:
    return run_install_step(argv, what, cwd, INSTALL_TIMEOUT_S)


def install(server: RealServer, log) -> Path:
    """Install the pinned package once; return its folder. Every failure is one GcbenchError line."""
    target = install_dir(server)
    if read_marker(target) is not None:
        return target
    avail = tools_available(server)
    if not avail.ok:
        raise GcbenchError(f"cannot install {server.label}: {avail.reason}")
    log(f"gcbench: installing {server.label} into {target} (once; needs the package registry)")
    what = f"installing {server.label}"

    def fill_npm(work: Path) -> None:
        (work / "package.json").write_text(json.dumps(
            {"name": f"gcbench-real-{server.name}", "private": True,
             "dependencies": {server.package: server.version}}, indent=1) + "\n")
        _run([shutil.which("npm") or "npm", "install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund",
              "--loglevel=error"], f"{what}: npm install", work)
        script = Path(command(server, work)[1])
        if not script.is_file():
            raise GcbenchError(f"{what}: the package has no {server.entry}")
        lock = json.loads((work / "package-lock.json").read_text()).get("packages", {})
        versions = {k.removeprefix("node_modules/"): v.get("version") for k, v in lock.items() if k}
        _mark(work, {"packages": dict(sorted(versions.items()))})

    def fill_pypi(work: Path) -> None:
        _run([sys.executable, "-m", "venv", str(work)], f"{what}: python -m venv", work)
        py = str(work / "bin" / "python")
        _run([py, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--no-warn-script-location",
              f"{server.package}=={server.version}"], f"{what}: pip install", work)
        if server.post_install:
            _run([py, *server.post_install], f"{what}: its first-use step", work)
        frozen = _run([py, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"], f"{what}: pip list",
                      work)
        _mark(work, {"interpreter": sys.executable, "python_version": platform.python_version(),
                     "packages": {p["name"].lower(): p["version"] for p in json.loads(frozen)}})

    def _mark(work: Path, extra: dict) -> None:
        marker = {"package": server.package, "version": server.version, "registry": server.registry, **extra}
        (work / DONE_MARKER).write_text(json.dumps(marker, indent=1) + "\n")

    # a venv may move in one rename: its python finds pyvenv.cfg beside itself
    install_into_cache(target, fill_npm if server.registry == "npm" else fill_pypi,
                       lambda t: read_marker(t) is not None)
    return target
