"""A Node.js server built on the official MCP TypeScript SDK (`@modelcontextprotocol/sdk`).

The same `work` tool as the plain Node server (../node/work.js) behind the SDK's McpServer, its stdio
transport and its Streamable HTTP transport (stateless, JSON responses, a fresh server and transport per
HTTP request as the SDK documents), so the difference to the `node` backend is what the SDK costs.

The npm packages (pinned in package.json, every transitive version pinned in package-lock.json) are
installed once with `npm ci` into the gcbench cache: <cache>/node-sdk/<hash of the two files>/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.backends.build import cache_dir
from gcbench.backends.node import node_availability, node_flags, node_mode_reason
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

HERE = Path(__file__).parent
SERVER = HERE / "server.js"
MANIFESTS = (HERE / "package.json", HERE / "package-lock.json")
SDK_PACKAGE = "@modelcontextprotocol/sdk"
SDK_NODE_MIN_MAJOR = 20  # a transitive dependency of the pinned SDK (its HTTP adapter) needs Node 20
DONE_MARKER = ".gcbench-installed"
NPM_TIMEOUT_S = 600


def _stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sdk_version() -> str:
    return json.loads(MANIFESTS[0].read_text())["dependencies"][SDK_PACKAGE]


def install_dir() -> Path:
    """Where this exact package.json + package-lock.json is (or will be) installed."""
    h = hashlib.sha256()
    for path in MANIFESTS:
        h.update(path.read_bytes())
    return cache_dir() / "node-sdk" / h.hexdigest()[:16]


def is_installed() -> bool:
    return (install_dir() / DONE_MARKER).is_file()


def install(log) -> Path:
    """npm ci the pinned packages into the cache (once); return the install folder."""
    target = install_dir()
    if (target / DONE_MARKER).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise GcbenchError("backend node-sdk: npm not found; install npm (it ships with Node.js)")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    log(f"gcbench: installing {SDK_PACKAGE} {sdk_version()} with npm into {target} (once; needs the npm registry)")
    work = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
    try:
        for path in MANIFESTS:
            shutil.copy2(path, work / path.name)
        argv = [npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise GcbenchError(f"backend node-sdk: npm ci took more than {NPM_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise GcbenchError(f"backend node-sdk: npm ci failed: {' | '.join(detail)}")
        (work / DONE_MARKER).write_text(sdk_version() + "\n")
        try:
            os.rename(work, target)  # atomic: a folder with the marker is always complete
        except OSError:
            if not (target / DONE_MARKER).is_file():  # else another run finished first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class NodeSdkBackend(SubprocessBackend):
    name = "node-sdk"
    runtime = "node"
    description = f"Node.js MCP server on the official SDK ({SDK_PACKAGE}), over stdio or HTTP"

    def availability(self) -> Availability:
        node = node_availability()
        if not node.ok:
            return node
        version = f"{node.version} + {SDK_PACKAGE} {sdk_version()}"
        major = int(node.version.split()[-1].lstrip("v").split(".")[0])
        if major < SDK_NODE_MIN_MAJOR:
            return Availability(False, version=version, reason=f"{node.version} is too old for the SDK; install Node.js {SDK_NODE_MIN_MAJOR}+")
        if is_installed():
            return Availability(True, version=version)
        if shutil.which("npm") is None:
            return Availability(False, version=version, reason="npm not found; install npm (it ships with Node.js)")
        return Availability(True, version=version, reason="not installed yet; installs on first use")

    def unsupported_reason(self, mode: GcMode) -> str | None:
        return node_mode_reason(mode)

    def prepare(self, log) -> None:
        install(log)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        target = install(_stderr_log)  # prepare() has normally done it already
        return LaunchSpec(
            [shutil.which("node") or "node", *node_flags(mode), str(SERVER)],
            env={"GCBENCH_NODE_SDK_DIR": str(target)},
        )
