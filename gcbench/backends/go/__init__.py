"""The built-in Go server (main.go, standard library only), built once with the `go` toolchain on PATH."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

from gcbench.backends import toolchain
from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.backends.build import cache_dir, cached_build
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.probes.go_gctrace import parse_log, place_cycles
from gcbench.scenario import Scenario

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "main.go", HERE / "go.mod")
GO_MODES = ("default", "disabled", "gogc", "memlimit", "oob")
MIN_GO = (1, 22)  # go.mod's go line; the runtime/metrics the server reads exist from 1.22
INSTALL_HINT = "pip install 'gcbench[go]'"
# Hermetic builds: no toolchain download, no module download, no C compiler needed, no workspace.
BUILD_ENV = {
    "GOTOOLCHAIN": "local",
    "GOPROXY": "off",
    "GOFLAGS": "-mod=mod",
    "CGO_ENABLED": "0",
    "GOWORK": "off",
}
BUILD_FLAGS = "-trimpath"


def go_mode_env(mode: GcMode) -> dict[str, str]:
    """The runtime knobs for a GC mode; every mode sets both, so the harness's own GOGC/GOMEMLIMIT never leak in."""
    if mode.name == "default":
        return {"GOGC": "100", "GOMEMLIMIT": "off"}
    if mode.name == "gogc":
        return {"GOGC": str(mode.int_args()[0]), "GOMEMLIMIT": "off"}
    if mode.name == "memlimit":
        return {"GOGC": "off", "GOMEMLIMIT": f"{mode.int_args()[0]}MiB"}
    # disabled, and oob (the server runs the collections itself between calls)
    return {"GOGC": "off", "GOMEMLIMIT": "off"}


def _writable_dir(path: str) -> bool:
    """True when path exists writable, or can be created."""
    p = Path(path)
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return os.access(p, os.W_OK | os.X_OK)


@functools.lru_cache(maxsize=1)
def _go_version() -> tuple[str | None, str]:
    """('go1.22.5 linux/amd64', '') or (None, why not)."""
    a = toolchain.probe("go", ["version"], r"go version (?P<version>go(\d+)\.(\d+)\S*.*)", MIN_GO, hint=INSTALL_HINT,
                        what="go toolchain", env={"GOTOOLCHAIN": "local"})
    return (a.version, "") if a.ok else (None, a.reason)


class GoBackend(SubprocessBackend):
    name = "go"
    runtime = "go"
    description = "Go MCP server, standard library only, over stdio or HTTP"
    gc_modes = GO_MODES
    gc_setting = gc_takes = "Go"

    def __init__(self) -> None:
        self.binary: Path | None = None

    def availability(self) -> Availability:
        version, reason = _go_version()
        if version is None:
            return Availability(False, reason=reason)
        return Availability(True, version=version)

    def build_env(self) -> dict[str, str]:
        env = dict(BUILD_ENV)
        # The toolchain needs a writable build cache; fall back to the gcbench cache (e.g. a read-only HOME).
        home = os.environ.get("HOME", "")
        cache_root = os.environ.get("XDG_CACHE_HOME") or (f"{home}/.cache" if home else "")
        gocache = os.environ.get("GOCACHE") or (f"{cache_root}/go-build" if cache_root else "")
        if not gocache or not _writable_dir(gocache):
            env["GOCACHE"] = str(cache_dir() / "go" / "build")
        gopath = os.environ.get("GOPATH") or (f"{home}/go" if home else "")
        if not gopath or not _writable_dir(gopath):
            env["GOPATH"] = str(cache_dir() / "go" / "path")
        return env

    def prepare(self, log) -> None:
        version, reason = _go_version()
        if version is None:
            raise GcbenchError(f"backend go is not available: {reason}")
        self.binary = cached_build(
            "gcbench-go",
            SOURCES,
            f"{version} {BUILD_FLAGS} CGO_ENABLED=0",
            lambda work, out: [shutil.which("go") or "go", "build", BUILD_FLAGS, "-o", str(out), "."],
            log,
            env=self.build_env(),
        )

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        if self.binary is None:
            self.prepare(lambda msg: print(msg, file=sys.stderr))
        assert self.binary is not None
        return LaunchSpec([str(self.binary)], env={**go_mode_env(mode), "GODEBUG": godebug_env()})

    def finish_events(self, events: list[dict], stats: dict, ctx: CellContext) -> tuple[list[dict], dict]:
        """Each cycle's summed pause becomes its two stop-the-world phases, placed with the cycle's gctrace line."""
        lines, damaged = parse_log(ctx.stderr_path)
        events, summary = place_cycles(events, lines)
        return events, {**stats, "stw_phases": {**summary, "gctrace_damaged_lines": damaged}}


def godebug_env() -> str:
    """The harness's GODEBUG with gctrace=1 added (last wins): the runtime then prints one line per cycle to
    stderr, written by the goroutine that finished the cycle after the world restarted, never during a pause.
    Its cost: one write(2) per printed field, 9-12 us per line to a file (measured with the runtime's print
    builtin on the 2-core test box), once per cycle, against a concurrent mark of milliseconds."""
    own = os.environ.get("GODEBUG", "").strip().strip(",")
    return f"{own},gctrace=1" if own else "gctrace=1"
