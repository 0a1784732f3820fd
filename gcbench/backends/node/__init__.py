"""The built-in Node.js server (server.js, plain Node 18+, no dependencies) run by the `node` on PATH."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

SERVER = Path(__file__).with_name("server.js")
NODE_MISSING = "no node on PATH; install Node.js 18+"
NODE_MIN_MAJOR = 18

_UNSUPPORTED = {
    "disabled": "V8 has no switch to turn GC off (try oob, or semi:N to make minor GCs rarer)",
    "freeze": "V8 has no gc.freeze(); its old generation is not rescanned by minor GCs anyway",
    "thresholds": "thresholds are CPython's generation counters; Node takes semi:N and old:N",
    "gogc": "gogc is a Go knob; Node takes semi:N and old:N",
    "memlimit": "memlimit is a Go knob; Node takes old:N (--max-old-space-size)",
}


@functools.lru_cache(maxsize=4)
def _node_version(node: str) -> str:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def node_availability() -> Availability:
    node = shutil.which("node")
    if node is None:
        return Availability(False, reason=NODE_MISSING)
    version = _node_version(node)
    if not version:
        return Availability(False, reason=f"{node} --version failed; install Node.js {NODE_MIN_MAJOR}+")
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < NODE_MIN_MAJOR:
        return Availability(False, version=f"node {version}", reason=f"node {version} is too old; install Node.js {NODE_MIN_MAJOR}+")
    return Availability(True, version=f"node {version}")


def node_mode_reason(mode: GcMode) -> str | None:
    return _UNSUPPORTED.get(mode.name)


def node_flags(mode: GcMode) -> list[str]:
    """The node command-line flags a GC mode stands for."""
    if mode.name == "semi":
        # Both bounds: with the maximum alone V8 starts at 1 MiB and grows, and the cell still scavenges as often
        # as default (measured on Node 20: semi:512 as max only saw 39 minor GCs, default 39; min = max saw 0).
        # A fixed young generation this large is the GC-quiet same-runtime reference the counterfactual looks for.
        n = mode.int_args()[0]
        return [f"--min-semi-space-size={n}", f"--max-semi-space-size={n}"]
    if mode.name == "old":
        return [f"--max-old-space-size={mode.int_args()[0]}"]
    if mode.name == "oob":
        return ["--expose-gc"]
    return []


class NodeBackend(SubprocessBackend):
    name = "node"
    runtime = "node"
    description = "Node.js MCP server, no dependencies, over stdio or HTTP"

    def availability(self) -> Availability:
        return node_availability()

    def unsupported_reason(self, mode: GcMode) -> str | None:
        return node_mode_reason(mode)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        return LaunchSpec([shutil.which("node") or "node", *node_flags(mode), str(SERVER)])
