"""Sweeps: a grid of scenarios (live-heap size x allocation profile x agents x offered rate x think time) x
backends x their
GC modes, one run folder per grid point, resumable, shardable across machines and mergeable."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from gcbench.atomic import atomic_write_json, os_reason
from gcbench.errors import GcbenchError
from gcbench.formats import SWEEP_FORMAT, SWEEP_KIND, check_version, upgrade_manifest
from gcbench.gcmode import GcMode, parse_gc_mode
from gcbench.metadata import SWEEP_MACHINE_KEYS, collect_environment, machine_label, machine_of
from gcbench.progress import Progress
from gcbench.scenario import (
    MAX_AGENTS,
    MAX_OBJECTS,
    MAX_THINK_MS,
    Scenario,
    _check_float,
    _check_int,
    _check_rate,
    _only_keys,
    _type_name,
    parse_scenario,
    read_toml,
)
from gcbench.store import COMPLETE_STATUSES

MANIFEST = "sweep.json"
LOCK = ".lock"  # held (flock) by the sweep or merge writing into the folder; holds its pid
MERGING = ".merging-"
DONE_STATUSES = COMPLETE_STATUSES


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: Scenario
    backends: tuple[str, ...]
    gc_modes: dict[str, tuple[GcMode, ...]]
    heap_objects: tuple[int, ...]
    profiles: dict[str, dict]
    reps: int
    source: str
    agents: tuple[int, ...] = ()  # () : the base scenario's chain.agents, no axis
    rates: tuple[float, ...] = ()  # chain.rate_per_s values; () : the base scenario's, no axis
    p99_target_ms: float | None = None  # the load study's p99 target (not part of the grid)
    think: tuple[float, ...] = ()  # fixed chain.think_ms values; () : the base scenario's, no axis

    @property
    def agents_axis(self) -> tuple[int, ...]:
        return self.agents or (self.base.chain.agents,)

    @property
    def rate_axis(self) -> tuple[float, ...]:
        return self.rates or (self.base.chain.rate_per_s,)

    @property
    def think_axis(self) -> tuple[float, ...]:
        return self.think or (self.base.chain.think.ms,)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "base": self.base.to_dict(), "backends": list(self.backends),
            "gc_modes": {b: [str(m) for m in ms] for b, ms in self.gc_modes.items()},
            "heap_objects": list(self.heap_objects), "profiles": self.profiles, "reps": self.reps,
            "agents": list(self.agents_axis), "rate_per_s": list(self.rate_axis), "think_ms": list(self.think_axis),
        }

    def grid_hash(self) -> str:
        d = self.to_dict()
        # an axis of one value, the base scenario's, is what every grid built before the axes existed
        for key, base in (("agents", self.base.chain.agents), ("rate_per_s", self.base.chain.rate_per_s),
                          ("think_ms", self.base.chain.think.ms)):
            if d[key] == [base]:
                del d[key]
        # `lists` is what every grid built before heap shapes existed: left out, such a sweep resumes and merges
        for section, key in (("server", "heap_shape"), ("work", "retain_shape")):
            if d["base"].get(section, {}).get(key) == "lists":
                del d["base"][section][key]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    index: int
    id: str
    heap_objects: int
    profile: str
    scenario: Scenario
    agents: int = 1
    rate_per_s: float = 0.0
    think_ms: float = 0.0


def point_id(heap: int, profile: str, agents: int, rate: float, agents_axis: bool, rate_axis: bool,
             think: float = 0.0, think_axis: bool = False) -> str:
    """h{heap}-{profile}, then -a{agents}, -r{rate} and -t{think ms} when the grid has that axis (ids of older
    grids kept)."""
    return (f"h{heap}-{profile}" + (f"-a{agents}" if agents_axis else "")
            + (f"-r{rate:g}" if rate_axis else "") + (f"-t{think:g}" if think_axis else ""))


def _base_think_ms(chain: dict) -> float:
    think = chain.get("think") if isinstance(chain, dict) else None
    ms = think.get("ms", 0.0) if isinstance(think, dict) else 0.0
    return float(ms) if type(ms) in (int, float) else 0.0


def grid_points(grid: dict) -> dict[str, dict]:
    """point id -> {heap_objects, profile, agents, rate_per_s, think_ms} of a manifest's grid (expand's order)."""
    chain = grid.get("base", {}).get("chain", {}) if isinstance(grid.get("base"), dict) else {}
    base_agents, base_rate, base_think = chain.get("agents", 1), chain.get("rate_per_s", 0.0), _base_think_ms(chain)
    agents = grid.get("agents") or [base_agents]
    rates = grid.get("rate_per_s") or [base_rate]
    thinks = grid.get("think_ms") or [base_think]
    a_axis, r_axis, t_axis = agents != [base_agents], rates != [base_rate], thinks != [base_think]
    return {point_id(h, p, a, r, a_axis, r_axis, t, t_axis): {"heap_objects": h, "profile": p, "agents": a,
                                                               "rate_per_s": r, "think_ms": float(t)}
            for h in grid.get("heap_objects", []) for p in grid.get("profiles", {}) for a in agents for r in rates
            for t in thinks}


def load_sweep(path: str | Path) -> SweepSpec:
    p = Path(path)
    if not p.is_file():
        from gcbench.scenario import resolve_path

        p = resolve_path(str(path))
    src = str(p)
    data = read_toml(p)
    sweep = data.pop("sweep", None)
    if not isinstance(sweep, dict):
        raise GcbenchError(f"{src}: field 'sweep': a sweep file needs a [sweep] table (backends, gc_modes, ...)")
    base = parse_scenario(data, src, default_name=p.stem)
    _only_keys(src, "sweep.", sweep, {"backends", "gc_modes", "heap_objects", "profiles", "reps",
                                        "agents", "rate_per_s", "think_ms", "p99_target_ms"})
    backends = sweep.get("backends")
    if not isinstance(backends, list) or not backends or not all(isinstance(b, str) for b in backends):
        raise GcbenchError(f"{src}: field 'sweep.backends': expected a non-empty array of backend names")
    modes_t = sweep.get("gc_modes", {})
    if not isinstance(modes_t, dict):
        raise GcbenchError(f"{src}: field 'sweep.gc_modes': expected a table of backend = [modes]")
    gc_modes: dict[str, tuple[GcMode, ...]] = {}
    for b in backends:
        raw = modes_t.get(b, ["default"])
        if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
            raise GcbenchError(f"{src}: field 'sweep.gc_modes.{b}': expected an array of mode names")
        try:
            gc_modes[b] = tuple(parse_gc_mode(m) for m in raw)
        except GcbenchError as e:
            raise GcbenchError(f"{src}: field 'sweep.gc_modes.{b}': {e}") from None
    for b in modes_t:
        if b not in backends:
            raise GcbenchError(f"{src}: field 'sweep.gc_modes.{b}': {b} is not in sweep.backends")
    heaps = sweep.get("heap_objects", [base.server.heap_objects])
    if not isinstance(heaps, list) or not heaps:
        raise GcbenchError(f"{src}: field 'sweep.heap_objects': expected a non-empty array of integers")
    heaps = tuple(_check_int(src, f"sweep.heap_objects[{i}]", h, 0, MAX_OBJECTS) for i, h in enumerate(heaps))
    profiles_t = sweep.get("profiles", {"base": {}})
    if not isinstance(profiles_t, dict) or not profiles_t:
        raise GcbenchError(f"{src}: field 'sweep.profiles': expected tables of [work] overrides")
    profiles = {}
    for name, overrides in profiles_t.items():
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name):  # it names a folder of the sweep
            raise GcbenchError(f"{src}: field 'sweep.profiles': profile name {name[:40]!r} must be letters, digits, "
                               f"'_', '.' or '-' (at most 64)")
        if not isinstance(overrides, dict):
            raise GcbenchError(f"{src}: field 'sweep.profiles.{name}': expected a table, got {_type_name(overrides)}")
        # validated by parsing the scenario it makes
        parse_scenario({**data, "work": {**data.get("work", {}), **overrides}}, f"{src} (profile {name})")
        profiles[name] = dict(overrides)
    reps = _check_int(src, "sweep.reps", sweep.get("reps", 1), 1, 1000)
    agents = _axis(src, sweep, "agents", lambda f, v: _check_int(src, f, v, 1, MAX_AGENTS))
    rates = _axis(src, sweep, "rate_per_s", lambda f, v: _check_rate(src, f, v))
    think = _axis(src, sweep, "think_ms", lambda f, v: _check_float(src, f, v, 0.0, MAX_THINK_MS))
    if think and base.chain.think.dist != "fixed":
        raise GcbenchError(f"{src}: field 'sweep.think_ms': the axis sets a fixed think time per point; the base "
                           f"chain.think_ms is a {base.chain.think.dist} distribution (make it a number)")
    target = sweep.get("p99_target_ms")
    if target is not None:
        target = _check_float(src, "sweep.p99_target_ms", target, 0.0, 3_600_000.0)
        if target <= 0:
            raise GcbenchError(f"{src}: field 'sweep.p99_target_ms': expected a time above 0 ms, got {target:g}")
    for r in rates:  # every point's chain as a scenario: the totals and limits a run would check
        parse_scenario({**data, "chain": {**data.get("chain", {}), "rate_per_s": r}}, f"{src} (rate_per_s {r:g})")
    return SweepSpec(base.name, base, tuple(backends), gc_modes, heaps, profiles, reps, src, agents, rates, target,
                     think)


def _axis(src: str, sweep: dict, key: str, check) -> tuple:
    """An optional axis: a non-empty array of distinct values, each checked like the scenario field."""
    if key not in sweep:
        return ()
    raw = sweep[key]
    if not isinstance(raw, list) or not raw:
        raise GcbenchError(f"{src}: field 'sweep.{key}': expected a non-empty array, got {_type_name(raw)}"
                           + (" (empty)" if raw == [] else ""))
    values = tuple(check(f"sweep.{key}[{i}]", v) for i, v in enumerate(raw))
    seen = set()
    for i, v in enumerate(values):
        if v in seen:
            raise GcbenchError(f"{src}: field 'sweep.{key}[{i}]': {raw[i]} is listed twice")
        seen.add(v)
    return values


def expand(spec: SweepSpec) -> list[Point]:
    """Grid points in a fixed order (shards and resume rely on it)."""
    points = []
    base = spec.base.chain
    a_axis, r_axis = spec.agents_axis != (base.agents,), spec.rate_axis != (base.rate_per_s,)
    t_axis = spec.think_axis != (base.think.ms,)
    for heap in spec.heap_objects:
        for profile, overrides in spec.profiles.items():
            work = replace(spec.base.work, **overrides) if overrides else spec.base.work
            for agents in spec.agents_axis:
                for rate in spec.rate_axis:
                    for think in spec.think_axis:
                        pid = point_id(heap, profile, agents, rate, a_axis, r_axis, think, t_axis)
                        sc = replace(
                            spec.base, name=f"{spec.name}-{pid}", work=work,
                            server=replace(spec.base.server, heap_objects=heap),
                            chain=replace(base, agents=agents, rate_per_s=rate,
                                          think=replace(base.think, ms=think) if t_axis else base.think),
                        )
                        points.append(Point(len(points), pid, heap, profile, sc, agents, rate, think))
    return points


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise GcbenchError(f"--shard {text!r}: expected i/n, e.g. 1/4") from None
    if not (n >= 1 and 1 <= i <= n):
        raise GcbenchError(f"--shard {text!r}: i must be from 1 to n")
    return i - 1, n


def _manifest(spec: SweepSpec, shard: tuple[int, int]) -> dict:
    env = collect_environment()
    return {
        "kind": SWEEP_KIND, "schema_version": SWEEP_FORMAT, "name": spec.name, "grid_hash": spec.grid_hash(),
        "grid": spec.to_dict(), "source": spec.source, "shard": f"{shard[0] + 1}/{shard[1]}",
        "p99_target_ms": spec.p99_target_ms,
        "gcbench_version": env["gcbench_version"], "machine": {k: env.get(k) for k in SWEEP_MACHINE_KEYS},
        "machines": [machine_of(env)], "point_machines": {},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read_manifest(folder: Path) -> dict:
    """A sweep folder's manifest of any known format, upgraded in memory to the latest one (formats.py)."""
    path = folder / MANIFEST
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GcbenchError(f"{folder}: not a sweep folder (no {MANIFEST})") from None
    except OSError as e:
        raise GcbenchError(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise GcbenchError(f"{path}: corrupted") from None
    if not isinstance(m, dict) or m.get("kind") != SWEEP_KIND:
        raise GcbenchError(f"{path}: not a gcbench sweep manifest")
    if "schema_version" not in m:
        raise GcbenchError(f"{path}: not a gcbench sweep manifest (no schema_version)")
    found = check_version(path, m["schema_version"], SWEEP_FORMAT)  # a newer one: "upgrade gcbench"
    m = upgrade_manifest(m, found)
    _check_manifest(path, m)
    return m


# what the readers of a manifest rely on (check_compatible, the study's grid order)
_MANIFEST_TYPES = {"name": str, "grid_hash": str, "grid": dict, "gcbench_version": str, "machine": dict,
                   "machines": list, "point_machines": dict}
_GRID_TYPES = {"backends": list, "gc_modes": dict, "profiles": dict, "heap_objects": list}


def _check_manifest(path: Path, m: dict) -> None:
    """A damaged manifest is one line naming the field, not a KeyError later."""
    _check_fields(path, m, _MANIFEST_TYPES, "")
    _check_fields(path, m["grid"], _GRID_TYPES, "grid.")


def _check_fields(path: Path, doc: dict, types: dict, prefix: str) -> None:
    for key, typ in types.items():
        if key not in doc:
            raise GcbenchError(f"{path}: field '{prefix}{key}' is missing")
        if not isinstance(doc[key], typ) or isinstance(doc[key], bool):
            raise GcbenchError(f"{path}: field '{prefix}{key}' should be {_JSON_NAMES[typ]}, "
                               f"not {_JSON_NAMES.get(type(doc[key]), type(doc[key]).__name__)}")


_JSON_NAMES = {str: "a string", dict: "an object", list: "an array", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Atomically (temp file, fsync, rename): an interrupted write leaves no half manifest behind."""
    atomic_write_json(folder / MANIFEST, manifest)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GcbenchError(f"{folder}: cannot create the sweep folder ({os_reason(e)})") from None


@contextmanager
def folder_lock(folder: Path):
    """One writer per sweep folder: an advisory lock (flock) held for the life of a sweep or merge. A second
    one is refused naming the holder's pid; the lock goes with its holder, however that ends."""
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by servers (O_CLOEXEC)
    except OSError as e:
        raise GcbenchError(f"{path}: cannot open the sweep folder's lock ({os_reason(e)})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise GcbenchError(f"{folder}: another gcbench (pid {holder}) is writing into this sweep folder; "
                               f"wait for it to finish or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # the lock file stays: deleting it would let two writers lock two different files


def upgrade_sweep(folder: Path) -> tuple[int, bool]:
    """Rewrite a sweep manifest in the latest format; (the schema_version it said, rewritten)."""
    manifest = read_manifest(folder)  # refuses a damaged or newer manifest
    stored = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["schema_version"]
    if stored == SWEEP_FORMAT:
        return stored, False
    write_manifest(folder, manifest)
    return stored, True


# what shards measured on different machines must still share (merge): the harness's Python version, which is
# also the `python` backend's interpreter
SHARD_SOFTWARE_KEYS = ("python_version",)


def check_compatible(a: dict, b: dict, what: str, *, same_machine: bool = True) -> None:
    """Refuse to mix results of different grids, gcbench versions or machines (named field in the message).

    `same_machine=False` (merge): the shards may come from different machines, as a CI matrix runs them; each
    grid point is then measured whole on one machine (merge checks that per point), and the harness's Python
    version must still be the same."""
    if a["grid_hash"] != b["grid_hash"]:
        raise GcbenchError(f"{what}: a different sweep grid (grid_hash {a['grid_hash']} vs {b['grid_hash']})")
    if a["gcbench_version"] != b["gcbench_version"]:
        raise GcbenchError(f"{what}: gcbench_version differs ({a['gcbench_version']} vs {b['gcbench_version']})")
    for k in (SWEEP_MACHINE_KEYS if same_machine else SHARD_SOFTWARE_KEYS):
        if a["machine"].get(k) != b["machine"].get(k):
            raise GcbenchError(f"{what}: measured on another machine ({k}: {a['machine'].get(k)!r} vs "
                               f"{b['machine'].get(k)!r})")


def point_status(folder: Path) -> str | None:
    """A point folder's run status; None when it has no run.json yet (created, killed before the first write).

    A run.json that cannot be read as a run (not JSON, not an object, no status) is refused with one line: it
    was damaged from outside (gcbench writes it atomically), and no command should guess what it held."""
    path = folder / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise GcbenchError(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise GcbenchError(f"{path}: corrupted ({e.__class__.__name__}); move the point folder away to measure it "
                           f"again") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("status"), str):
        raise GcbenchError(f"{path}: not a gcbench run.json (no status); move the point folder away to measure it "
                           f"again")
    return meta["status"]


def run_sweep(spec: SweepSpec, out_dir: Path, shard: tuple[int, int] = (0, 1), *, transport: str = "stdio",
              log: Callable[[str], None] = print) -> list[Path]:
    """Run the points of this shard that are not measured yet; return every point folder of the shard."""
    from gcbench.backends import get_backend

    backends = [get_backend(b) for b in spec.backends]  # exit 2 now if one is unavailable
    _make_folder(out_dir)
    with folder_lock(out_dir):  # a second sweep into the folder would take this one's live point for a leftover
        return _run_points(spec, out_dir, shard, transport, log, backends)


def _run_points(spec: SweepSpec, out_dir: Path, shard: tuple[int, int], transport: str, log: Callable[[str], None],
                backends: list) -> list[Path]:
    manifest = _manifest(spec, shard)
    if (out_dir / MANIFEST).exists():
        check_compatible(read_manifest(out_dir), manifest, f"{out_dir} holds another sweep")
    else:
        write_manifest(out_dir, manifest)
    points = expand(spec)
    mine = [p for p in points if p.index % shard[1] == shard[0]]
    todo = [p for p in mine if point_status(out_dir / p.id) not in DONE_STATUSES]
    cells_per_point = sum(len(spec.gc_modes[b]) for b in spec.backends) * spec.reps
    total = len(todo) * cells_per_point
    log(f"gcbench sweep {spec.name}: {len(mine)} points in this shard, {len(mine) - len(todo)} already measured, "
        f"{len(todo)} to run ({total} cells) into {out_dir}")
    progress = Progress(total)

    def on_cell(cell: dict) -> None:
        if not progress.live:  # on a terminal the bar shows it
            log(progress.bar_line())

    with progress:
        _run_todo(spec, out_dir, transport, log, backends, points, todo, progress, on_cell)
    return [out_dir / p.id for p in mine]


def _run_todo(spec, out_dir, transport, log, backends, points, todo, progress, on_cell) -> None:
    from gcbench.runner import RunConfig, execute

    for p in todo:
        folder = out_dir / p.id
        if folder.exists():  # an interrupted point: kept aside, measured again
            aside = out_dir / f".{p.id}.incomplete-{int(time.time())}"
            os.replace(folder, aside)
            log(f"point {p.id}: an earlier attempt did not finish; kept as {aside.name}, measuring again")
        log(f"point {p.index + 1}/{len(points)} {p.id}")
        execute(RunConfig(scenario=p.scenario, backends=backends, gc_modes=[], out_dir=out_dir, reps=spec.reps,
                          transport=transport, modes_by_backend={b: list(m) for b, m in spec.gc_modes.items()},
                          run_id=p.id), log=log, on_cell=on_cell, progress=progress)
        _record_point_machine(out_dir, p.id)


def point_machine(folder: Path) -> dict:
    """The machine a point folder was measured on, from its run.json environment (metadata.MACHINE_KEYS)."""
    path = folder / "run.json"
    try:
        env = json.loads(path.read_text(encoding="utf-8")).get("environment")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        raise GcbenchError(f"{path}: cannot read the point's environment") from None
    if not isinstance(env, dict):
        raise GcbenchError(f"{path}: field 'environment' should be an object")
    return machine_of(env)


def _machine_index(manifest: dict, machine: dict) -> int:
    machines = manifest.setdefault("machines", [])
    if machine not in machines:
        machines.append(machine)
    return machines.index(machine)


def _record_point_machine(out_dir: Path, point: str) -> None:
    """The manifest names the machine of every point measured (between points, never during one)."""
    if point_status(out_dir / point) not in DONE_STATUSES:
        return
    manifest = read_manifest(out_dir)
    manifest["point_machines"][point] = _machine_index(manifest, point_machine(out_dir / point))
    write_manifest(out_dir, manifest)


def merge(out_dir: Path, shards: list[Path], log: Callable[[str], None] = print) -> int:
    """Join shard folders into one sweep folder; refuses different grids or versions. Shards may come from
    different machines (a CI matrix) as long as every grid point was measured whole on one machine: the same
    point measured on two machines is refused; the merged manifest names each point's machine."""
    manifests = [read_manifest(s) for s in shards]
    for s, m in zip(shards[1:], manifests[1:], strict=True):
        check_compatible(manifests[0], m, f"{s} cannot be merged with {shards[0]}", same_machine=False)
    _make_folder(out_dir)
    with folder_lock(out_dir):
        return _merge_points(out_dir, shards, manifests, log)


def _merge_points(out_dir: Path, shards: list[Path], manifests: list[dict], log: Callable[[str], None]) -> int:
    for stale in out_dir.glob(f".*{MERGING}*"):  # what a merge killed mid-copy left (this one holds the lock)
        shutil.rmtree(stale, ignore_errors=True)
    if (out_dir / MANIFEST).exists():
        merged = read_manifest(out_dir)
        check_compatible(merged, manifests[0], f"{out_dir} holds another sweep", same_machine=False)
    else:
        merged = {**manifests[0], "shard": "merged", "merged_from": [str(s) for s in shards], "machines": [],
                  "point_machines": {}}
        write_manifest(out_dir, merged)  # a sweep folder from the start; its points' machines written at the end
    # every point's machine, checked before anything is copied: a point measured on two machines is refused
    where: dict[str, tuple[dict, Path]] = {}
    for folder in _done_points(out_dir):
        where[folder.name] = (point_machine(folder), folder)
    todo = []
    for shard in shards:
        for folder in _done_points(shard):
            machine = point_machine(folder)
            if folder.name in where:
                seen, first = where[folder.name]
                if seen != machine:
                    raise GcbenchError(
                        f"{folder}: point {folder.name} was also measured on another machine ({first}: "
                        f"{machine_label(seen)}; here: {machine_label(machine)}); a grid point must be measured "
                        f"whole on one machine: merge only one of them")
                log(f"{folder.name}: already in {first.parent}, kept the first one")
                continue
            where[folder.name] = (machine, folder)
            todo.append(folder)
    for name, (machine, _) in sorted(where.items()):
        merged["point_machines"][name] = _machine_index(merged, machine)
    copied = 0
    for folder in todo:
        target = out_dir / folder.name
        tmp = out_dir / f".{folder.name}{MERGING}{os.getpid()}"
        try:  # a copy cut short is a hidden temp folder, never a partial point that later merges keep
            shutil.copytree(folder, tmp)
            os.rename(tmp, target)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError):
                raise GcbenchError(f"{target}: cannot copy {folder}: {os_reason(e)}") from None
            raise
        copied += 1
    merged["merged_from"] = list(dict.fromkeys([*merged.get("merged_from", []), *(str(s) for s in shards)]))
    write_manifest(out_dir, merged)  # after the copies: the manifest names only points that are there
    n = len(merged["machines"])
    log(f"merged {copied} points into {out_dir}" + (f" (measured on {n} machines)" if n > 1 else ""))
    return copied


def _done_points(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".") and point_status(p) in DONE_STATUSES]


def load_sweep_runs(folder: Path) -> list[tuple[dict, object]]:
    """(point info, RunData) for every measured point of a sweep folder, in grid order."""
    from gcbench.store import load_run

    manifest = read_manifest(folder)
    known = grid_points(manifest["grid"])
    out = []
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not sub.name.startswith(".") and point_status(sub) in DONE_STATUSES:
            run = load_run(sub)
            server = run.meta["scenario"].get("server")
            heap = server.get("heap_objects") if isinstance(server, dict) else None
            if type(heap) is not int:
                raise GcbenchError(f"{sub / 'run.json'}: field 'scenario.server.heap_objects' should be an integer")
            chain = run.meta["scenario"].get("chain")
            chain = chain if isinstance(chain, dict) else {}
            where = known.get(sub.name)
            profile = where["profile"] if where else (sub.name.split("-", 1)[1] if "-" in sub.name else "")
            agents, rate = chain.get("agents", 1), chain.get("rate_per_s", 0.0)
            think = _base_think_ms(chain)
            if type(agents) is not int or type(rate) not in (int, float):
                raise GcbenchError(f"{sub / 'run.json'}: field 'scenario.chain' should hold integer agents and a "
                                   f"numeric rate_per_s")
            out.append(({"point": sub.name, "heap_objects": heap, "profile": profile, "agents": agents,
                         "rate_per_s": float(rate), "think_ms": think, "grid_hash": manifest["grid_hash"]}, run))
    return out
