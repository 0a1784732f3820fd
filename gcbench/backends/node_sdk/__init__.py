"""A Node.js server built on the official MCP TypeScript SDK (`@modelcontextprotocol/sdk`).

The same `work` tool as the plain Node server (../node/work.js) behind the SDK's McpServer, its stdio
transport and its Streamable HTTP transport (stateless, JSON responses, a fresh server and transport per
HTTP request as the SDK documents), so the difference to the `node` backend is what the SDK costs.

The npm packages (pinned in package.json, every transitive version pinned in package-lock.json) are
installed once with `npm ci` into the gcbench cache: <cache>/node-sdk/<hash of the two files>/.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from gcbench.backends import toolchain
from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.backends.build import cache_dir, install_into_cache, run_tool
from gcbench.backends.node import NodeBackend, node_availability, node_flags
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


NPM_HINT = "install npm (it ships with Node.js)"


@functools.lru_cache(maxsize=1)
def npm_availability() -> Availability:
    return toolchain.probe("npm", ["--version"], r"^(\d+)\.\d+\S*", hint=NPM_HINT,
                           label=lambda m, _: f"npm {m.group(0)}")


def is_installed() -> bool:
    return (install_dir() / DONE_MARKER).is_file()


def install(log) -> Path:
    """npm ci the pinned packages into the cache (once); return the install folder."""
    target = install_dir()
    if (target / DONE_MARKER).is_file():
        return target
    npm = npm_availability()
    if not npm.ok:
        raise GcbenchError(f"backend node-sdk: {npm.reason}")
    log(f"gcbench: installing {SDK_PACKAGE} {sdk_version()} with npm into {target} (once; needs the npm registry)")

    def fill(work: Path) -> None:
        for path in MANIFESTS:
            shutil.copy2(path, work / path.name)
        argv = [shutil.which("npm") or "npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund",
                "--loglevel=error"]
        try:
            proc = run_tool(argv, work, timeout_s=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise GcbenchError(f"backend node-sdk: npm ci took more than {NPM_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise GcbenchError(f"backend node-sdk: npm ci failed: {' | '.join(detail)}")
        (work / DONE_MARKER).write_text(sdk_version() + "\n")

    install_into_cache(target, fill, lambda t: (t / DONE_MARKER).is_file())
    return target


class NodeSdkBackend(SubprocessBackend):
    name = "node-sdk"
    runtime = "node"
    description = f"Node.js MCP server on the official SDK ({SDK_PACKAGE}), over stdio or HTTP"
    gc_modes = NodeBackend.gc_modes  # the same work.js and GC flags as the plain Node server
    gc_setting = NodeBackend.gc_setting
    gc_mode_reasons = NodeBackend.gc_mode_reasons

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
        npm = npm_availability()
        if not npm.ok:
            return Availability(False, version=version, reason=npm.reason)
        return Availability(True, version=version, reason="not installed yet; installs on first use")

    def prepare(self, log) -> None:
        install(log)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        target = install(_stderr_log)  # prepare() has normally done it already
        return LaunchSpec(
            [shutil.which("node") or "node", *node_flags(mode), str(SERVER)],
            env={"GCBENCH_NODE_SDK_DIR": str(target)},
        )
