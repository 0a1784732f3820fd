"""GC mode names shared by every runtime; each backend maps them to its nearest equivalent or says why not."""

from __future__ import annotations

from dataclasses import dataclass

from gcbench.errors import GcbenchError

MAX_MODE_ARG = 2**31 - 1  # every number a mode takes must fit a C int / Go int32

# name -> (takes an argument, help). The backend decides which it supports.
MODES: dict[str, tuple[bool, str]] = {
    "default": (False, "the runtime's out-of-the-box GC"),
    "disabled": (False, "automatic GC off (Python gc.disable(), Go GOGC=off); Node has no off switch"),
    "freeze": (False, "Python: gc.freeze() after the start-up heap and warm-up"),
    "oob": (False, "out of band: automatic GC off; the server collects between calls by its own rule instead"),
    "thresholds": (True, "Python: gc.set_threshold(T0,T1,T2), e.g. thresholds:10000,10,10"),
    "gogc": (True, "Go: GOGC=N, e.g. gogc:400"),
    "memlimit": (True, "Go: GOGC=off with GOMEMLIMIT=N MiB, e.g. memlimit:512"),
    "semi": (True, "Node: --min- and --max-semi-space-size=N (MiB), a fixed young generation, e.g. semi:64"),
    "old": (True, "Node: --max-old-space-size=N (MiB)"),
    "g1": (False, "JVM: G1 (g1:N also fixes the heap at N MiB)"),
    "parallel": (False, "JVM: the parallel collector (parallel:N: heap N MiB)"),
    "serial": (False, "JVM: the serial collector (serial:N: heap N MiB)"),
    "zgc": (False, "JVM: ZGC (zgc:N: heap N MiB)"),
    "shenandoah": (False, "JVM: Shenandoah, where the JDK build has it (shenandoah:N: heap N MiB)"),
    "epsilon": (False, "JVM: Epsilon, no collection at all: the JVM's GC off (epsilon:N: heap N MiB)"),
    "heap": (True, "JVM: the JVM's own collector with the heap fixed at N MiB, e.g. heap:1024"),
}
# Modes whose argument may be left out (name or name:N); N is a positive integer.
OPTIONAL_ARG = {"g1", "parallel", "serial", "zgc", "shenandoah", "epsilon"}


@dataclass(frozen=True)
class GcMode:
    name: str
    arg: str | None = None

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"

    def int_args(self) -> list[int]:
        return [int(p) for p in (self.arg or "").split(",") if p != ""]


def parse_gc_mode(text: str) -> GcMode:
    text = text.strip()
    name, sep, arg = text.partition(":")
    if name not in MODES:
        raise GcbenchError(f"unknown --gc-mode {text!r}; valid modes: {', '.join(describe_syntax())}")
    takes_arg = MODES[name][0] or (name in OPTIONAL_ARG and bool(sep))
    if takes_arg != bool(sep):
        need = "needs an argument" if takes_arg else "takes no argument"
        raise GcbenchError(f"--gc-mode {text!r}: {name} {need} ({MODES[name][1]})")
    if takes_arg:
        parts = arg.split(",")
        expected = 3 if name == "thresholds" else 1
        if len(parts) != expected or not all(p.isascii() and p.isdigit() for p in parts) \
                or (name != "thresholds" and int(parts[0]) <= 0):
            raise GcbenchError(f"--gc-mode {text!r}: expected {MODES[name][1]}")
        big = next((p for p in parts if int(p) > MAX_MODE_ARG), None)
        if big is not None:  # CPython's set_threshold takes a C int; Go reads GOGC as int32 (else: 100)
            raise GcbenchError(f"--gc-mode {text!r}: {big} is above the cap of {MAX_MODE_ARG}")
        return GcMode(name, arg)
    return GcMode(name)


def parse_gc_modes(text: str) -> list[GcMode]:
    # thresholds take commas, so split on commas that start a new mode name
    modes: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if modes and part.isdigit() and modes[-1].startswith("thresholds:"):
            modes[-1] += "," + part
        else:
            modes.append(part)
    if not modes:
        raise GcbenchError("--gc-mode: give at least one mode")
    parsed = [parse_gc_mode(m) for m in modes]
    return list(dict.fromkeys(parsed))


def describe_syntax() -> list[str]:
    return [f"{n}:N" if takes else f"{n}[:N]" if n in OPTIONAL_ARG else n for n, (takes, _) in MODES.items()]
