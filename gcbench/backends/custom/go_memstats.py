"""Read a live, unmodified Go program's own GC pause buffer from outside, through /proc/<pid>/mem.

The Go runtime keeps, in the global `runtime.memstats`, the fields that `runtime.ReadMemStats` copies out:

    last_gc_unix uint64; pause_total_ns uint64; pause_ns [256]uint64; pause_end [256]uint64; numgc uint32; ...

(runtime/mstats.go; the same run of fields since Go 1.0, because MemStats exposes them in that order). For each
of the last 256 cycles, pause_ns is the exact sum of its two stop-the-world phases and pause_end is the wall
clock read next to nanotime() at the end of mark termination (runtime/mgc.go, gcMarkTermination); in Go 1.19+
`last_gc_nanotime` (that same nanotime, CLOCK_MONOTONIC) follows numgc, numforcedgc and gc_cpu_fraction.

The run of fields is found by its own consistency, not by a version table: at offset o, numgc (u32 at
o + 4112) is at least the last cycle gctrace printed, and last_gc_unix (u64 at o) equals
pause_end[(numgc - 1) % 256]. With the ELF symbol table (the default `go build`) the search is limited to the
`runtime.memstats` symbol and `runtime.runtimeInitTime` (the nanotime gctrace's `@` field counts from) is read
too; a stripped binary (-ldflags=-s) is searched in its .noptrbss and .bss sections.

Reading /proc/<pid>/mem does not stop the process (the kernel copies the pages); the harness does it once the
measured calls are over. It needs the right to ptrace the process, which a parent has over its child.
"""

from __future__ import annotations

import functools
import os
import struct
import time
from dataclasses import dataclass

PAUSE_SLOTS = 256
NUMGC_OFFSET = 16 + 2 * 8 * PAUSE_SLOTS  # after last_gc_unix, pause_total_ns and the two buffers
LAST_GC_NANOTIME_OFFSET = NUMGC_OFFSET + 4 + 4 + 8  # after numgc, numforcedgc, gc_cpu_fraction (Go 1.19+)
BLOCK_BYTES = LAST_GC_NANOTIME_OFFSET + 8
UNIX_NS_MIN = 1_000_000_000 * 1_000_000_000  # 2001-09-09: a pause_end before this is not a wall clock reading


class GoMemError(OSError):
    """The process's memory cannot be read, or holds no recognisable pause buffer."""


@dataclass(frozen=True)
class ElfInfo:
    is_pie: bool
    sections: dict[str, tuple[int, int]]  # name -> (address, size)
    symbols: dict[str, tuple[int, int]]  # wanted name -> (address, size)
    first_load_vaddr: int  # the lowest PT_LOAD p_vaddr - p_offset (to find a PIE's load bias)


def read_elf(path: str, wanted: tuple[str, ...] = ("runtime.memstats", "runtime.runtimeInitTime")) -> ElfInfo:
    """Section addresses and the wanted symbols of a 64-bit little-endian ELF file (Go on amd64/arm64)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise GoMemError(f"{path}: not a 64-bit little-endian ELF file")
    e_type, = struct.unpack_from("<H", data, 0x10)
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    first_load = None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr = struct.unpack_from("<IIQQ", data, phoff + i * phentsize)
        if p_type == 1 and (first_load is None or p_vaddr - p_offset < first_load):
            first_load = p_vaddr - p_offset
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)] if shoff else []
    if not headers or shstrndx >= len(headers):
        raise GoMemError(f"{path}: no ELF section headers")
    strtab = headers[shstrndx][4]

    def name_at(table: int, off: int) -> str:
        end = data.index(b"\0", table + off)
        return data[table + off:end].decode("latin-1")

    sections = {name_at(strtab, h[0]): (h[3], h[5]) for h in headers}
    symbols: dict[str, tuple[int, int]] = {}
    for h in headers:
        if h[1] != 2:  # SHT_SYMTAB
            continue
        sym_off, sym_size, link, entsize = h[4], h[5], h[6], h[9] or 24
        names = headers[link][4]
        want = {w.encode() for w in wanted}
        for pos in range(sym_off, sym_off + sym_size, entsize):
            st_name, = struct.unpack_from("<I", data, pos)
            start = names + st_name
            end = data.find(b"\0", start)
            if data[start:end] in want:
                value, size = struct.unpack_from("<QQ", data, pos + 8)
                symbols[data[start:end].decode()] = (value, size)
    return ElfInfo(e_type == 3, sections, symbols, first_load or 0)


@functools.lru_cache(maxsize=8)
def _read_elf_cached(path: str, mtime_ns: int, size: int) -> ElfInfo:
    """read_elf, once per program file (every cell of a run starts the same binary)."""
    return read_elf(path)


def load_bias(pid: int, exe: str, elf: ElfInfo) -> int:
    """0 for a fixed-address executable; a PIE's load address minus its link address, from /proc/<pid>/maps."""
    if not elf.is_pie:
        return 0
    real = os.path.realpath(exe)
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16) - elf.first_load_vaddr
    raise GoMemError(f"cannot find where {exe} is mapped in process {pid}")


@dataclass(frozen=True)
class PauseBuffer:
    """What the runtime holds about its last cycles, read at `read_mono_ns` (harness clock)."""

    numgc: int
    pause_ns: tuple[int, ...]  # 256 slots, cycle c (1-based) in slot (c - 1) % 256
    pause_end_unix_ns: tuple[int, ...]
    last_gc_unix_ns: int
    last_gc_mono_ns: int  # 0 when this Go version has no last_gc_nanotime there (or it does not fit)
    runtime_init_mono_ns: int  # 0 without the symbol table
    read_mono_ns: int
    read_unix_ns: int  # the harness's wall clock read next to read_mono_ns
    address: int
    found_by: str  # "symbol runtime.memstats" | "search of .noptrbss" ...

    def cycles(self) -> dict[int, tuple[int, int]]:
        """cycle number -> (pause_ns, pause_end_unix_ns) for the cycles still in the buffer."""
        first = max(1, self.numgc - PAUSE_SLOTS + 1)
        return {c: (self.pause_ns[(c - 1) % PAUSE_SLOTS], self.pause_end_unix_ns[(c - 1) % PAUSE_SLOTS])
                for c in range(first, self.numgc + 1)}

    def unix_to_mono_offset_ns(self) -> tuple[int, str]:
        """(unix - monotonic, how known): the runtime's own pair for its last cycle when it has one, else the
        harness's pair read with the buffer (the same kernel clocks; off by any wall-clock step in between)."""
        if self.last_gc_mono_ns:
            return self.last_gc_unix_ns - self.last_gc_mono_ns, "the runtime's (last_gc_unix, last_gc_nanotime) pair"
        return self.read_unix_ns - self.read_mono_ns, "the harness's (wall, monotonic) pair read with the buffer"


VECTOR_SEARCH_BYTES = 1 << 16  # larger regions (a stripped binary's .noptrbss: 33 MB) are filtered with numpy


def _candidates(mem: bytes, min_numgc: int):
    """8-aligned offsets where numgc and last_gc_unix are plausible (numpy for a large region: the loop took
    1.5 s CPU over a 33 MB .noptrbss)."""
    if len(mem) <= VECTOR_SEARCH_BYTES:
        return range(0, len(mem) - BLOCK_BYTES + 1, 8)
    import numpy as np

    a = np.frombuffer(mem, dtype="<u8", count=len(mem) // 8)
    m = len(a) - BLOCK_BYTES // 8 + 1
    if m <= 0:
        return []
    numgc = a[NUMGC_OFFSET // 8:NUMGC_OFFSET // 8 + m] & 0xFFFFFFFF
    ok = (numgc >= max(1, min_numgc)) & (numgc <= 1 << 31) & (a[:m] >= UNIX_NS_MIN)
    return (int(i) * 8 for i in np.flatnonzero(ok))


def _find_block(mem: bytes, min_numgc: int, max_mono_ns: int) -> int | None:
    """The offset of last_gc_unix in `mem`, by the fields' consistency (8-aligned)."""
    for o in _candidates(mem, min_numgc):
        numgc, = struct.unpack_from("<I", mem, o + NUMGC_OFFSET)
        if numgc < max(1, min_numgc) or numgc > 1 << 31:
            continue
        last, total = struct.unpack_from("<QQ", mem, o)
        if last < UNIX_NS_MIN:
            continue
        idx = (numgc - 1) % PAUSE_SLOTS
        end, = struct.unpack_from("<Q", mem, o + 16 + 8 * PAUSE_SLOTS + 8 * idx)
        pause, = struct.unpack_from("<Q", mem, o + 16 + 8 * idx)
        if end == last and pause <= total:
            return o
    return None


def memstats_regions(pid: int, exe: str | None = None) -> tuple[list[tuple[int, int, str]], int]:
    """Where to look for the buffer in process `pid` ((address, size, how) in search order), and the address of
    runtime.runtimeInitTime (0 without the symbol table)."""
    exe = exe or f"/proc/{pid}/exe"
    try:
        real = os.path.realpath(exe)
        st = os.stat(exe)
        elf = _read_elf_cached(real if os.path.isfile(real) else exe, st.st_mtime_ns, st.st_size)
        bias = load_bias(pid, exe, elf)
    except (OSError, ValueError, struct.error) as e:
        raise GoMemError(f"cannot read the program of process {pid}: {e}") from None
    regions: list[tuple[int, int, str]] = []
    if "runtime.memstats" in elf.symbols:
        addr, size = elf.symbols["runtime.memstats"]
        regions.append((addr + bias, max(size, BLOCK_BYTES), "symbol runtime.memstats"))
    for sec in (".noptrbss", ".bss", ".noptrdata", ".data"):
        if sec in elf.sections and elf.sections[sec][1]:
            addr, size = elf.sections[sec]
            regions.append((addr + bias, size, f"search of {sec}"))
    init = elf.symbols.get("runtime.runtimeInitTime")
    return regions, init[0] + bias if init else 0


def _locate(fd: int, regions: list[tuple[int, int, str]], min_numgc: int) -> tuple[int, str] | None:
    for addr, size, how in regions:
        try:
            mem = os.pread(fd, size, addr)
        except OSError:
            continue
        o = _find_block(mem, min_numgc, 0)
        if o is not None:
            return addr + o, how
    return None


def read_pause_buffer(pid: int, min_numgc: int = 1, exe: str | None = None) -> PauseBuffer:
    """The pause buffer of the Go process `pid` (numgc >= min_numgc: the last cycle seen in its gctrace)."""
    regions, init_addr = memstats_regions(pid, exe)
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as e:
        raise GoMemError(f"cannot open /proc/{pid}/mem: {e.strerror or e}") from None
    try:
        init_ns = struct.unpack("<q", os.pread(fd, 8, init_addr))[0] if init_addr else 0
        found = _locate(fd, regions, min_numgc)
        if found is None:
            raise GoMemError(f"no Go pause buffer with numgc >= {min_numgc} found in process {pid}'s memory")
        addr, how = found
        read_mono = time.monotonic_ns()
        read_unix = time.time_ns()
        mem = os.pread(fd, BLOCK_BYTES, addr)
    except OSError as e:
        raise GoMemError(f"cannot read process {pid}'s memory: {e.strerror or e}") from None
    finally:
        os.close(fd)
    numgc, = struct.unpack_from("<I", mem, NUMGC_OFFSET)
    last_unix, = struct.unpack_from("<Q", mem, 0)
    last_mono = plausible_mono(last_unix, struct.unpack_from("<Q", mem, LAST_GC_NANOTIME_OFFSET)[0], init_ns,
                               read_mono, read_unix)
    slots = struct.unpack_from(f"<{2 * PAUSE_SLOTS}Q", mem, 16)
    return PauseBuffer(numgc, slots[:PAUSE_SLOTS], slots[PAUSE_SLOTS:], last_unix, last_mono, init_ns,
                       read_mono, read_unix, addr, how)


def plausible_mono(last_unix: int, last_mono: int, init_ns: int, read_mono: int, read_unix: int) -> int:
    """last_gc_nanotime is where Go 1.19+ keeps it: believe it only when it is a plausible reading (after the
    runtime started, before now, and within a second of the wall clock's offset), else 0."""
    ok = init_ns <= last_mono <= read_mono and abs((last_unix - last_mono) - (read_unix - read_mono)) < 1_000_000_000
    return last_mono if ok else 0


# ------------------------------------------------------------------------------------------------- sampler
#
# The buffer holds 256 cycles; a server that collects faster than 256 cycles per cell would lose the older ones.
# So while the calls run, a separate process (this file run as a script: standard library only, nothing of
# gcbench imported) reads the buffer every SAMPLE_INTERVAL_S and keeps each new cycle in memory; it writes
# them once, when its stdin ends. It never touches the harness (its own interpreter and GIL) or the server
# (a pread of 4 KiB of its memory; the process is not stopped).

SAMPLE_INTERVAL_S = 0.05  # 256 cycles per 50 ms: 5,120 cycles/s before one is missed
SEARCH_INTERVAL_S = 1.0  # before the first cycle the buffer cannot be recognised: look again this seldom


def sample(pid: int, regions: list[tuple[int, int, str]], interval_s: float, out_path: str, stdin_fd: int = 0,
           known_address: int = 0) -> dict:
    """Read the buffer every interval until stdin ends or the process is gone; write what was seen to out_path
    (JSON: cycle -> [pause_ns, pause_end_unix_ns]; the runtime's (numgc, unix, monotonic) pairs, each one
    taken from two identical reads so it is never half old, half new)."""
    import select

    cycles: dict[int, tuple[int, int]] = {}
    pairs: list[tuple[int, int, int]] = []
    result = {"samples": 0, "address": 0, "error": ""}
    taken = 0  # cycles up to this one are recorded (the newest one seen may still be being written)
    poller = select.poll()
    poller.register(stdin_fd, select.POLLIN | select.POLLHUP)
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as e:
        result["error"] = f"cannot open /proc/{pid}/mem: {e.strerror or e}"
        fd = -1
    addr = known_address
    os.write(1, b"ready\n")  # the harness starts the measured calls only now: this start-up is not in them
    next_search = 0.0
    try:
        while fd >= 0 and not poller.poll(interval_s * 1000):
            try:
                if not addr:
                    if time.monotonic() < next_search:
                        continue
                    next_search = time.monotonic() + SEARCH_INTERVAL_S
                    found = _locate(fd, regions, 1)
                    if found is None:
                        continue
                    addr = result["address"] = found[0]
                mem = os.pread(fd, BLOCK_BYTES, addr)
            except OSError as e:
                result["error"] = f"process {pid}: {e.strerror or e}"
                break
            result["samples"] += 1
            numgc, = struct.unpack_from("<I", mem, NUMGC_OFFSET)
            if numgc <= taken + 1:
                continue
            slots = struct.unpack_from(f"<{2 * PAUSE_SLOTS}Q", mem, 16)
            for c in range(max(taken + 1, numgc - PAUSE_SLOTS + 1), numgc):
                cycles[c] = (slots[(c - 1) % PAUSE_SLOTS], slots[PAUSE_SLOTS + (c - 1) % PAUSE_SLOTS])
            taken = numgc - 1
            again = os.pread(fd, BLOCK_BYTES, addr)
            if again[NUMGC_OFFSET:LAST_GC_NANOTIME_OFFSET + 8] == mem[NUMGC_OFFSET:LAST_GC_NANOTIME_OFFSET + 8] \
                    and again[:8] == mem[:8]:
                pairs.append((numgc, struct.unpack_from("<Q", mem, 0)[0],
                              struct.unpack_from("<Q", mem, LAST_GC_NANOTIME_OFFSET)[0]))
    finally:
        if fd >= 0:
            os.close(fd)
        import json

        result.update({"cycles": {str(c): list(v) for c, v in cycles.items()}, "pairs": pairs})
        tmp = out_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f)
        os.replace(tmp, out_path)
    return result


if __name__ == "__main__":
    import sys

    # go_memstats.py PID INTERVAL_S OUT KNOWN_ADDRESS|0 [ADDR:SIZE...]  (regions to search while the address is 0)
    _pid, _interval, _out, _known = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    _regions = [(int(a), int(n), "") for a, n in (r.split(":") for r in sys.argv[5:])]
    sample(_pid, _regions, _interval, _out, known_address=_known)
