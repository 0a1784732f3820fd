"""The built-in Rust server (main.rs + json.rs + http.rs, standard library only): the no-GC control.

Built once per source change with ``rustc -O --edition 2021`` into the gcbench cache (no Cargo, no crates).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from gcbench.backends import toolchain
from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.backends.build import cached_build
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "main.rs", HERE / "json.rs", HERE / "http.rs", HERE / "hiccup.rs")
BUILD_NAME = "rust"
MIN_RUSTC = (1, 70)
INSTALL_HINT = "install Rust (rustup) 1.70+"
NO_GC_REASON = "Rust has no garbage collector: only 'default' applies (it is the no-GC control)"


@functools.lru_cache(maxsize=1)
def rustc_version() -> tuple[str, str]:
    """(``rustc --version`` output, "") when usable, else ("", why not)."""
    a = toolchain.probe("rustc", ["--version"], r"rustc (\d+)\.(\d+)\.\d+.*", MIN_RUSTC, hint=INSTALL_HINT)
    return (a.version, "") if a.ok else ("", a.reason)


def build_server(log=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """The server executable, compiled on first use (cached by source hash and rustc version)."""
    version, reason = rustc_version()
    if not version:
        raise GcbenchError(f"cannot build the Rust server: {reason}")
    return cached_build(
        BUILD_NAME,
        SOURCES,
        version,
        lambda work, out: ["rustc", "-O", "--edition", "2021", "main.rs", "-o", str(out)],
        log,
        # stamped into the binary (option_env!) for serverInfo and the stats record
        env={"GCBENCH_RUSTC_VERSION": version.split()[1]},
    )


class RustBackend(SubprocessBackend):
    name = "rust"
    runtime = "rust"
    description = "Rust MCP server, standard library only, no GC (the control): stdio or HTTP"
    gc_modes = ("default",)
    gc_mode_reasons = {"*": NO_GC_REASON}

    def __init__(self) -> None:
        self._binary: Path | None = None

    def availability(self) -> Availability:
        version, reason = rustc_version()
        return Availability(True, version=version) if version else Availability(False, reason=reason)

    def prepare(self, log) -> None:
        self._binary = build_server(log)

    def server_env(self) -> dict[str, str]:
        return {}

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        if self._binary is None:
            self._binary = build_server()
        return LaunchSpec([str(self._binary)], env=self.server_env())
