"""The built-in Java server (Server.java + Json.java + Http.java + Hiccup.java, JDK standard library only).

Compiled once per source change with the machine's ``javac --release 17`` into a jar in the gcbench cache.
Its GC pauses come from the JVM itself: unified logging with the ``timenanos`` decorator (async), parsed
after the server exits by ``gcbench/probes/jvm_log.py`` and appended to the side channel.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gcbench.backends import toolchain
from gcbench.backends.base import (
    Availability,
    CellContext,
    LaunchSpec,
    SubprocessBackend,
    declared_mode_reason,
)
from gcbench.backends.build import cached_build
from gcbench.errors import CellError, GcbenchError
from gcbench.gcmode import GcMode
from gcbench.probes import jvm_log
from gcbench.scenario import Scenario

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "Server.java", HERE / "Json.java", HERE / "Http.java", HERE / "Hiccup.java")
MIN_JAVA = 17  # -Xlog:async is new in 17
INSTALL_HINT = "install a JDK 17+ (javac and java on PATH), e.g. apt-get install openjdk-17-jdk-headless"
# Collector modes and their JVM options; `heap:N` is the JVM's own choice with a fixed heap.
COLLECTOR_FLAGS: dict[str, list[str]] = {
    "default": [],
    "heap": [],
    "g1": ["-XX:+UseG1GC"],
    "parallel": ["-XX:+UseParallelGC"],
    "serial": ["-XX:+UseSerialGC"],
    "zgc": ["-XX:+UseZGC"],
    "shenandoah": ["-XX:+UseShenandoahGC"],
    "epsilon": ["-XX:+UnlockExperimentalVMOptions", "-XX:+UseEpsilonGC"],
}
JAVA_MODES = tuple(COLLECTOR_FLAGS)
JAVA_MODE_REASONS = {"disabled": "{mode} is not a JVM GC setting; the JVM's GC-off is epsilon ({name} takes: {takes})"}
OFF_MODE = "epsilon"  # the JVM's GC-off: the same-runtime reference of the counterfactual
# JVM options read from the environment would change what a mode measures: set empty for the server
JVM_OPTION_VARS = ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")
# Epsilon never frees: its heap must hold everything a cell allocates. Bytes per allocation, measured layout
# on 64-bit HotSpot with compressed oops: a node is a 12-byte header + two 4-byte references = 24 bytes, plus
# its 4-byte slot in the call's array; a request costs a few KiB of parsing and response building.
NODE_BYTES = 24 + 4
# Bytes the server allocates per object of each heap shape, garbage of the building included (Epsilon keeps it
# all): heap_used_bytes / 300,000 after building 300k of them under Epsilon, OpenJDK 17.0.15, measured:
# records 760, instances 383, json 2343 (the document's text and its decoding too); rounded up.
SHAPE_BYTES = {"lists": NODE_BYTES, "records": 800, "instances": 400, "json": 2400}
REQUEST_BYTES = 8 << 10
EPSILON_BASE_MIB = 256  # the JVM's own start-up allocations, JIT, class loading, slack
EPSILON_MAX_SHARE = 0.5  # of physical memory: beyond it the cell is refused with the fix


def _run(argv: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess | None:
    env = {**os.environ, **{v: "" for v in JVM_OPTION_VARS}}
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None


@functools.lru_cache(maxsize=1)
def jdk() -> tuple[str, str, str]:
    """(javac path, java path, version text) or ("", "", why not). The java beside javac: one JDK."""
    javac = shutil.which("javac")
    if javac is None:
        return "", "", f"no javac on PATH; {INSTALL_HINT}"
    real = Path(os.path.realpath(javac))
    java = real.with_name("java")
    if not java.is_file():
        found = shutil.which("java")
        if found is None:
            return "", "", f"no java beside {real}; {INSTALL_HINT}"
        java = Path(found)
    # `java -version` writes to stderr; "1.8.0" is Java 8
    a = toolchain.probe(str(java), ["-version"], r'version "(?:1\.)?(\d+)', (MIN_JAVA,), hint=INSTALL_HINT,
                        env={v: "" for v in JVM_OPTION_VARS}, label=_version_lines)
    return (javac, str(java), a.version) if a.ok else ("", "", a.reason)


def _version_lines(match, text: str) -> str:
    """The JVM's first two version lines, without the notes it prints about options from the environment."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Picked up", "NOTE:"))]
    return " / ".join(lines[:2])


@functools.cache
def collector_reason(java: str, mode_name: str) -> str | None:
    """None when this JVM starts with the mode's collector, else its own words (e.g. no Shenandoah)."""
    flags = COLLECTOR_FLAGS[mode_name]
    if not flags:
        return None
    proc = _run([java, *flags, "-Xlog:disable", "-version"])
    if proc is None:
        return f"`java {' '.join(flags)} -version` did not finish"
    if proc.returncode == 0:
        return None
    said = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return f"this JVM cannot run {mode_name} (java {' '.join(flags)}: {' | '.join(said[:2])[:200]})"


def java_mode_reason(java: str, mode: GcMode) -> str | None:
    """None when the JVM at `java` can run the GC mode, else why not (also for a user's JVM server)."""
    declared = declared_mode_reason(mode, JAVA_MODES, "JVM", "java", JAVA_MODE_REASONS)
    if declared is not None:
        return declared
    return collector_reason(java, mode.name) if java else None


def build_jar(log=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """The server's jar, compiled on first use (cached by source hash and JDK version)."""
    javac, _, version = jdk()
    if not javac:
        raise GcbenchError(f"cannot build the Java server: {version}")
    return cached_build("gcbench-java.jar", SOURCES, version, lambda work, out: _build_argv(javac, out), log)


# javac into a folder, then the classes into a jar (a zip) with the standard library's zipfile: no `jar` tool
_PACK = """
import os, subprocess, sys, zipfile
javac, out = sys.argv[1], sys.argv[2]
srcs = sorted(f for f in os.listdir(".") if f.endswith(".java"))
r = subprocess.run([javac, "--release", "17", "-encoding", "UTF-8", "-Xlint:all", "-Werror", "-d", "classes", *srcs])
if r.returncode:
    sys.exit(r.returncode)
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(os.listdir("classes")):
        z.write(os.path.join("classes", f), f)
os.chmod(out, 0o755)
"""


def _build_argv(javac: str, out: Path) -> list[str]:
    return [sys.executable, "-c", _PACK, javac, str(out)]


def epsilon_heap_mib(scenario: Scenario) -> int:
    """A heap that holds everything the cell allocates (Epsilon frees nothing): an estimate x 1.5 + a base."""
    w, chain = scenario.work, scenario.chain
    per_call = (w.alloc_objects * NODE_BYTES + w.retain_objects * SHAPE_BYTES[w.retain_shape] * 2 + w.payload_bytes * 3
                + REQUEST_BYTES)
    calls = chain.warmup_calls + chain.chains * chain.calls
    total = scenario.server.heap_objects * SHAPE_BYTES[scenario.server.heap_shape] + calls * per_call
    mib = int(total * 1.5) // (1 << 20) + EPSILON_BASE_MIB
    return -(-mib // 64) * 64


COLLECTOR_MIN_HEAP_MIB = 256
COLLECTOR_HEADROOM = 4  # x the live heap: room for a cell's garbage between collections


def collector_heap_mib(scenario: Scenario) -> int:
    """The fixed heap a named collector runs with when none is given: the same for every collector, so g1 and
    zgc are compared at one heap size (a container limit, not the JVM's quarter of the machine). Measured: with
    the JVM's own sizing (6 GiB on a 24 GiB machine) ZGC never collected in the default scenario's 1,000 calls;
    at 256 MiB g1 made 2 young pauses and zgc 3."""
    w = scenario.work
    live = scenario.server.heap_objects * SHAPE_BYTES[scenario.server.heap_shape] \
        + w.retain_cap * SHAPE_BYTES[w.retain_shape]
    mib = max(COLLECTOR_MIN_HEAP_MIB, COLLECTOR_HEADROOM * live // (1 << 20) + 128)
    return -(-mib // 64) * 64


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def heap_flags(mode: GcMode, scenario: Scenario) -> list[str]:
    """-Xms/-Xmx for a mode: its N MiB when given, Epsilon's estimate, a named collector's collector_heap_mib,
    and the JVM's own sizing for `default`.

    A fixed heap is also touched at start-up (AlwaysPreTouch), so no collector pays first-touch page faults
    inside the calls: Epsilon never reuses memory, and without it took 29-32 minor faults per big-heap call
    (112 KB of new objects / 4 KiB pages) against 2-6 with it and 13 for G1 with a 512 MiB heap (measured,
    /proc/<pid>/stat, 1000 calls).
    """
    if mode.arg is not None:
        mib = mode.int_args()[0]
    elif mode.name == "epsilon":
        mib = epsilon_heap_mib(scenario)
        limit = physical_memory_bytes() * EPSILON_MAX_SHARE
        if limit and mib << 20 > limit:
            raise CellError(
                f"epsilon frees nothing: this cell allocates about {mib} MiB, more than half the machine's "
                f"memory; give the heap yourself (epsilon:N, N MiB) or a smaller scenario"
            )
    elif mode.name in ("default", "heap"):
        return []  # `default` is the JVM's own choice, heap size included
    else:
        mib = collector_heap_mib(scenario)
    return [f"-Xms{mib}m", f"-Xmx{mib}m", "-XX:+AlwaysPreTouch"]


def jvm_log_path(events_path: Path) -> Path:
    """The JVM's log beside the cell's side channel (kept in the run folder: the raw record)."""
    return events_path.with_name(events_path.name.split(".")[0] + ".jvm.log")


class JavaBackend(SubprocessBackend):
    name = "java"
    runtime = "java"
    description = "Java MCP server, JDK standard library only, over stdio or HTTP; pauses from the JVM's log"
    gc_modes = JAVA_MODES  # and only where this JVM starts with the collector (collector_reason)
    gc_setting = "JVM"
    gc_mode_reasons = JAVA_MODE_REASONS

    def __init__(self) -> None:
        self.jar: Path | None = None

    def availability(self) -> Availability:
        javac, _, version = jdk()
        return Availability(True, version=version) if javac else Availability(False, reason=version)

    def unsupported_reason(self, mode: GcMode) -> str | None:
        return java_mode_reason(jdk()[1], mode)

    def prepare(self, log) -> None:
        self.jar = build_jar(log)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        if self.jar is None:
            self.jar = build_jar()
        _, java, _ = jdk()
        log_path = jvm_log_path(ctx.events_path)
        log_path.unlink(missing_ok=True)  # the parser must see this JVM's lines only
        argv = [
            java,
            *jvm_log.xlog_options(log_path),
            *COLLECTOR_FLAGS[mode.name],
            *heap_flags(mode, scenario),
            "-XX:+ExitOnOutOfMemoryError",  # a heap too small fails the cell with its reason, not a limp
            "-XX:+DisplayVMOutputToStderr",  # the VM's own messages (e.g. that one) go to stdout otherwise
            # An IPv4 socket: otherwise the HTTP server binds 127.0.0.1 as ::ffff:127.0.0.1 on a dual-stack socket
            "-Djava.net.preferIPv4Stack=true",
            "-cp", str(self.jar), "Server",
        ]
        events_path = ctx.events_path

        def after_exit() -> None:
            try:
                jvm_log.append_to_side_channel(log_path, events_path, runtime="java")
            except OSError as e:
                raise CellError(f"cannot turn the JVM log {log_path} into events: {e.strerror or e}") from None

        return LaunchSpec(argv, env={v: "" for v in JVM_OPTION_VARS}, after_exit=after_exit)
