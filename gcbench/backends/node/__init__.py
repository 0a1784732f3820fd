"""The built-in Node.js server (server.js, plain Node 18+, no dependencies) run by the `node` on PATH."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from gcbench.backends import toolchain
from gcbench.backends.base import (
    Availability,
    CellContext,
    LaunchSpec,
    SubprocessBackend,
    declared_mode_reason,
)
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

SERVER = Path(__file__).with_name("server.js")
NODE_MIN_MAJOR = 18
NODE_HINT = f"install Node.js {NODE_MIN_MAJOR}+"
NODE_MISSING = f"no node on PATH; {NODE_HINT}"

NODE_MODES = ("default", "oob", "semi", "old")  # what server.js takes (GCBENCH_GC_MODE)
NODE_MODE_REASONS = _UNSUPPORTED = {
    "disabled": "V8 has no switch to turn GC off (try oob, or semi:N to make minor GCs rarer)",
    "freeze": "V8 has no gc.freeze(); its old generation is not rescanned by minor GCs anyway",
    "thresholds": "thresholds are CPython's generation counters; Node takes semi:N and old:N",
    "gogc": "gogc is a Go knob; Node takes semi:N and old:N",
    "memlimit": "memlimit is a Go knob; Node takes old:N (--max-old-space-size)",
}


@functools.lru_cache(maxsize=4)
def _node_probe(node: str) -> Availability:
    return toolchain.probe(node, ["--version"], r"^v(\d+)\.\d+\S*", (NODE_MIN_MAJOR,), hint=NODE_HINT,
                           label=lambda m, _: f"node {m.group(0)}")


def node_availability() -> Availability:
    node = shutil.which("node")
    return _node_probe(node) if node else Availability(False, reason=NODE_MISSING)


def node_mode_reason(mode: GcMode) -> str | None:
    return declared_mode_reason(mode, NODE_MODES, "Node", "node", _UNSUPPORTED)


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
    gc_modes = NODE_MODES
    gc_setting = "Node"
    gc_mode_reasons = _UNSUPPORTED

    def availability(self) -> Availability:
        return node_availability()

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        return LaunchSpec([shutil.which("node") or "node", *node_flags(mode), str(SERVER)])
